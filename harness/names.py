"""Every metric, tag and status name the harness's core writes or reads.

These constants are the one place where the names live: the trainer, the MLflow
tracking, the study summary and the reports all import them from here, so a rename
is one edit and a typo is an ``AttributeError`` rather than a silently empty column.
A name only a plugin writes lives in that plugin's module (e.g. ``cycle_error_ab`` in
:mod:`harness.builtin.cycle_error`); how each metric value is labelled, rounded and
compared is declared with the metric (:mod:`harness.value_specs`).
"""

from __future__ import annotations

# --- per-step histories (logged every ``log_every`` generator steps) -------------
LOSS_D = "loss_d"
LOSS_G = "loss_g"
D_REAL = "d_real"  # mean D(x) on the real batch of the last D step
D_FAKE = "d_fake"  # mean D(G(z)) before the generator step
D_FAKE_AFTER = "d_fake_after"  # mean D(G(z)) on the same z after the generator step
GRAD_D = "grad_d"  # L2 norm of the discriminator's gradient (last D step)
GRAD_G = "grad_g"  # L2 norm of the generator's gradient
LOSS_Q = "loss_q"  # InfoGAN mutual-information term
LOSS_CYCLE = "loss_cycle"  # CycleGAN: L1 cycle-consistency term (both directions, before λ)
XY_X = "x"  # the xy game: the minimising player's position
XY_Y = "y"  # the xy game: the maximising player's position
XY_DISTANCE = "xy_distance"  # the xy game: distance of (x, y) to the equilibrium (0, 0)

# critic losses (``Loss.critic``: WGAN, hinge) log D's raw scores instead of d_real/d_fake/
# d_fake_after, which would push scores through a sigmoid
CRITIC_REAL = "critic_real"  # mean critic score f(x) on the real batch of the last D step
CRITIC_FAKE = "critic_fake"  # mean f(G(z)) before the generator step
CRITIC_GAP = "critic_gap"  # critic_real - critic_fake: WGAN's Wasserstein-1 estimate

#: the histories the standard game logs for a probability D ...
STEP_HISTORIES = (LOSS_D, LOSS_G, D_REAL, D_FAKE, D_FAKE_AFTER, GRAD_D, GRAD_G)
#: ... and for a critic (``Loss.critic``)
CRITIC_STEP_HISTORIES = (LOSS_D, LOSS_G, CRITIC_REAL, CRITIC_FAKE, CRITIC_GAP, GRAD_D, GRAD_G)

# --- evaluations (every ``eval_every`` generator steps) ----------------------------
MODES_COVERED = "modes_covered"
HQ_FRACTION = "hq_fraction"
MODE_KL = "mode_kl"
FID = "fid"
FID_FLOOR = "fid_floor"  # FID of unseen real images against the same reference, same sample count
IS_MEAN = "is_mean"
IS_STD = "is_std"
KID_MEAN = "kid_mean"
KID_STD = "kid_std"
PRECISION = "precision"
RECALL = "recall"
CODE_ACCURACY = "code_accuracy"
COND_ACCURACY = "cond_accuracy"
CYCLE_ERROR = "cycle_error"  # CycleGAN: mean of the two directions' reconstruction L1
TRANSLATION_ACCURACY = "translation_accuracy"  # mean of the two directions'
FID_AB = "fid_ab"  # FID of G(a) against real B images
FID_BA = "fid_ba"  # FID of F(b) against real A images
XY_FINAL_DISTANCE = "xy_final_distance"  # the xy game: distance at the end
XY_DISTANCE_RATIO = "xy_distance_ratio"  # the xy game: final / initial distance

# --- per-trial summaries (logged once, at the end) ---------------------------------
N_MODES = "n_modes"
STABILITY_SCORE = "stability_score"
MODE_HOPS = "mode_hops"
STEPS_TO_FULL_COVERAGE = "steps_to_full_coverage"
STEPS_DONE = "steps_done"
TRAIN_SECONDS = "train_seconds"
STEPS_PER_SECOND = "steps_per_second"
STEPS_BUDGET = "steps_budget"  # the trial's budget, ``train.steps``
STOPPED_EARLY = "stopped_early"  # 1.0 when training ended before the budget, else 0.0

#: run metrics with a value's chance level (harness.metrics.chance_metrics): the mean score
#: of a generator that ignores the data, and (for the values that decide whether a result is
#: at chance) the bound a result must beat to be clearly above chance
CHANCE_PREFIX = "chance."
CHANCE_BOUND_PREFIX = "chance_bound."

# --- tags --------------------------------------------------------------------------
TAG_VARIANT = "variant"
TAG_MODEL = "model"
TAG_LOSS = "loss"
TAG_TRICKS = "tricks"
TAG_DATASET = "dataset"
TAG_SEED = "seed"
TAG_PHASE = "phase"
TAG_STATUS = "status"
TAG_ERROR = "error"
TAG_DIVERGED_REASON = "diverged_reason"  # which logged loss went bad, its value and step
TAG_TRIAL_ID = "trial_id"
TAG_STUDY = "study"
TAG_KIND = "kind"  # "study" on parent runs, "trial" on child runs
TAG_PARENT = "mlflow.parentRunId"
TAG_RUN_NAME = "mlflow.runName"
# fault tolerance: a retried (FailureConfig) or resumed (--resume) trial continues its run
TAG_RESTARTS = "restarts"  # how many times the run was reopened
TAG_RESUMED_FROM_STEP = "resumed_from_step"  # the checkpoint step of the latest reopening
TAG_PREVIOUS_ERROR = "previous_error"  # the error that made the latest restart necessary
# vectorized seeds trials (study key ``vectorize``): several child runs, one Tune trial
TAG_VECTOR_TRIAL = "vector_trial"  # the Tune trial id all copies of one vectorized trial share
TAG_VECTOR_COPY = "vector_copy"  # this run's copy index in that trial (0, 1, ...)
TAG_VECTOR_COPIES = "vector_copies"  # how many copies that trial trained (1: not vectorized)
TAG_VECTORIZED = "vectorized"  # "true" on every copy of a vectorized trial, "false" otherwise
TAG_DEVICE = "device"  # the torch device type the trial trained on ("cpu", "cuda")
COPY_SUFFIX = "-copy"  # a copy's trial_id tag: Tune trial id + COPY_SUFFIX + copy index
#: config keys of a trial the searcher suggests again after it failed before it started: the
#: first trial's id (its MLflow run keeps that id) and which retry it is
RETRY_OF, RETRY_ATTEMPT = "retry_of", "retry_attempt"
#: config key the study sets on a trial Tune runs again after it failed running (its MLflow
#: run exists: the retry looks it up; a first attempt skips that request)
RECOVERED = "recovered"
TAG_CONFIG_DIGEST = "config_digest"  # TrialConfig.digest(): equal for the same trial
TAG_CHECKPOINT_SKIPPED = "checkpoint_skipped"  # unusable checkpoints passed over, and why
TAG_ORBIT = "orbit"  # the xy game: how the run's orbit behaved (ORBITS)
# where a study trial ran (a retried trial: its latest attempt)
TAG_RAY_NODE = "ray.node_id"  # the Ray node's id (``ray.get_runtime_context().get_node_id()``)
TAG_HOST = "host"  # the host name of that node's machine
# what code ran (harness.environment): the project's commit, whether the checkout had
# uncommitted changes to tracked files, and version.<package> tags
TAG_GIT_COMMIT = "git_commit"
TAG_GIT_DIRTY = "git_dirty"
TAG_VERSION_PREFIX = "version."

ORBIT_CONVERGING = "converging"
ORBIT_OSCILLATING = "oscillating"
ORBIT_DIVERGING = "diverging"
ORBITS = (ORBIT_CONVERGING, ORBIT_OSCILLATING, ORBIT_DIVERGING)

PHASE_SEARCH = "search"
PHASE_SEEDS = "seeds"
PHASE_SINGLE = "single"  # `harness run`

# --- statuses ----------------------------------------------------------------------
STATUS_OK = "ok"
STATUS_COLLAPSED = "collapsed"
STATUS_DIVERGED = "diverged"
STATUS_D_OVERPOWERS = "d_overpowers"
STATUS_FAILED = "failed"
STATUS_STOPPED = "stopped"
STATUS_PRUNED = "pruned"  # a search trial the study's pruner (search.pruner) stopped
STATUSES = (
    STATUS_OK,
    STATUS_COLLAPSED,
    STATUS_DIVERGED,
    STATUS_D_OVERPOWERS,
    STATUS_FAILED,
    STATUS_STOPPED,
    STATUS_PRUNED,
)
#: statuses a trial may be stopped early for (``diagnostics.stop_early``); ``diverged``
#: always stops training
EARLY_STOP_REASONS = (STATUS_COLLAPSED, STATUS_D_OVERPOWERS)

# --- artifacts -----------------------------------------------------------------------
ARTIFACT_CONFIG = "config.json"
#: the params a trial's plugins derived (``None`` in config.json), as JSON: ``{"model.g_hidden":
#: [128, 128, 128], ...}``; ``{}`` when none was (:func:`harness.trial.recorded_params`)
ARTIFACT_DERIVED_PARAMS = "derived_params.json"
ARTIFACT_SAMPLES_DIR = "samples"
ARTIFACT_GENERATOR = "generator.pt"
ARTIFACT_FINAL_SAMPLES = "final_samples.png"
#: a study's ``published:`` block as JSON, on its parent run (the report's Reproduction section)
ARTIFACT_PUBLISHED = "study/published.json"
#: the file ``harness server --artifacts-root`` leaves in a local root folder: a client that
#: does not find it is on a machine where the shared folder is not mounted
#: (:func:`harness.tracking.check_artifact_access`)
ARTIFACT_ROOT_MARKER = ".harness-artifact-root"

# --- tags of image datasets (``Dataset.tags()``) ---------------------------------------
TAG_DATASET_SPLIT = "dataset.split"  # how the train / held-out split was made (provenance)
TAG_DATASET_DATA_DIR = "dataset.data_dir"  # where the files were read (not provenance)
TAG_DATASET_STACKS = "dataset.stacks"  # how Stacked MNIST's stacks were drawn (provenance)

# --- provenance tags of the image metrics (fidelity, class_modes, cond/code accuracy) -------
TAG_FIDELITY_EXTRACTOR = "fidelity.extractor"  # "classifier" or "inception"
TAG_FIDELITY_EXTRACTOR_HASH = "fidelity.extractor_hash"  # hash of the extractor's weights
TAG_FIDELITY_REAL_HASH = "fidelity.real_hash"  # hash of the real reference images
TAG_FIDELITY_SAMPLES_EVAL = "fidelity.samples_eval"
TAG_FIDELITY_SAMPLES_FINAL = "fidelity.samples_final"
TAG_CLASSIFIER_HASH = "classifier.hash"  # hash of the harness classifier's weights file
TAG_CLASSIFIER_ACCURACY = "classifier.accuracy"  # its held-out accuracy
TAG_TRANSLATION_FID_REAL = "translation_fid.real_hashes"  # "a:<hash>,b:<hash>"
TAG_TRANSLATION_FID_SAMPLES = "translation_fid.samples"
TAG_CLASS_MODES_SAMPLES_FINAL = "class_modes.samples_final"
TAG_CLASS_MODES_MIN_COUNT = "class_modes.min_count"
TAG_CLASS_MODES_CONFIDENCE = "class_modes.confidence"
