"""Tiny real training runs through run_trial with a MemoryReporter."""

import copy
import io
import math

import pytest
import torch

from harness import names
from harness.config import TrialConfig
from harness.data import GaussianMixture
from harness.losses import Loss
from harness.plugins import load_plugins
from harness.registry import DATASETS, LOSSES, MODELS
from harness.reporting import MemoryReporter
from harness.trainer import frozen
from harness.trial import run_trial

load_plugins()

SMALL_MLP = {"g_hidden": [16, 16], "d_hidden": [16, 16]}
TIMING = (names.TRAIN_SECONDS, names.STEPS_PER_SECOND)


def make_config(model="mlp", loss="minimax", seed=0, model_params=None, loss_params=None,
                dataset="ring8", **train):
    settings = {"steps": 40, "eval_every": 20, "log_every": 5, "eval_samples": 200,
                "batch_size": 32}
    settings.update(train)
    params = dict(SMALL_MLP) if model_params is None and model == "mlp" else (model_params or {})
    return TrialConfig(
        study="t", variant="v", dataset_key=dataset,
        model={"name": model, "params": params},
        loss={"name": loss, "params": loss_params or {}},
        dataset=dataset, metrics=["mode_coverage"], train=settings, seed=seed,
    )


def run(cfg, **reporter_kw):
    reporter = MemoryReporter(**reporter_kw)
    result = run_trial(cfg, reporter)
    return result, reporter


def untimed(final):
    return {k: v for k, v in final.items() if k not in TIMING}


ORIGINAL_PLOT = GaussianMixture.plot_samples


@pytest.fixture(scope="module", autouse=True)
def fast_and_deterministic(fast_mixtures):
    """One torch thread and no PNG rendering (conftest's ``fast_mixtures``)."""


class SnapshotReporter(MemoryReporter):
    """Keeps a *deep copy* of every checkpoint, so later training cannot change it."""

    def evaluation(self, step, values, artifacts, checkpoint):
        super().evaluation(step, values, artifacts, lambda: copy.deepcopy(checkpoint()))


@pytest.fixture(scope="module")
def reference():
    """The default 40-step run (seed 0) with snapshot checkpoints at steps 20 and 40."""
    reporter = SnapshotReporter(keep_checkpoints=True)
    result = run_trial(make_config(), reporter)
    return result, reporter


# --- (a) every registered model x loss trains --------------------------------------------


def installed(registry):
    """Every name registered by the installed plugins (not test-only ones from tests/)."""
    return [n for n in registry.names() if not registry.get(n).__module__.startswith("tests.")]


def test_smoke_grid_covers_the_builtins():
    assert "mlp" in installed(MODELS)
    assert {"minimax", "non_saturating", "maximum_likelihood", "least_squares", "wgan",
            "wgan_gp", "dragan", "hinge"} <= set(installed(LOSSES))


def builds_for_ring8(name: str) -> bool:
    try:
        MODELS.build(name).check(DATASETS.build("ring8"))
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("model", [m for m in installed(MODELS) if builds_for_ring8(m)])
@pytest.mark.parametrize("loss", installed(LOSSES))
def test_every_model_and_loss_trains(model, loss):
    """Every model that can model points in the plane (image models: test_image_models)."""
    params = SMALL_MLP if model == "mlp" else {}
    cfg = make_config(model=model, loss=loss, model_params=params, steps=10, eval_every=10)
    result, rep = run(cfg)
    assert result.status in names.STATUSES and result.status != names.STATUS_DIVERGED
    assert result.steps_done == 10
    assert [step for step, _ in result.history] == [5, 10]
    # a critic (WGAN, hinge) logs its scores instead of D's probabilities
    expected = (names.CRITIC_STEP_HISTORIES if LOSSES.get(loss).critic
                else names.STEP_HISTORIES)
    for step, values in result.history:
        assert set(expected) <= set(values), (step, sorted(values))
        assert names.D_REAL not in values or not LOSSES.get(loss).critic
        for key in expected:
            assert math.isfinite(values[key]), (loss, step, key, values[key])
    assert rep.rows == result.history
    assert set(result.final) >= {names.MODES_COVERED, names.HQ_FRACTION, names.MODE_KL,
                                 names.STEPS_DONE, names.N_MODES}


# --- what a run reports --------------------------------------------------------------------


def test_run_reports_in_order_and_completely(reference):
    result, rep = reference
    cfg = make_config()
    assert rep.error is None and rep.result is result
    assert rep.info.config == cfg and rep.info.resumed_from_step == 0
    assert rep.info.tags[names.TAG_LOSS] == "minimax" and rep.info.tags[names.TAG_KIND] == "trial"
    assert rep.info.params["lr_d"] == 1e-3 and rep.info.params["model.g_hidden"] == [16, 16]
    assert result.steps_done == 40
    assert [s for s, _ in rep.evals] == [20, 40]
    assert [e.step for e in result.evals] == [20, 40]
    assert [s for s, _ in result.history] == list(range(5, 41, 5))
    assert rep.rows == result.history
    assert result.final[names.STEPS_DONE] == 40.0
    assert result.final[names.N_MODES] == 8.0
    assert 0.0 <= result.final[names.HQ_FRACTION] <= 1.0
    assert 0 <= result.final[names.MODES_COVERED] <= 8
    assert 0.0 <= result.final[names.MODE_KL] <= math.log(8) + 1e-9
    assert result.final[names.MODES_COVERED] == rep.evals[-1][1][names.MODES_COVERED]
    assert result.final[names.MODES_COVERED] == len(result.evals[-1].covered)
    assert {names.STABILITY_SCORE, names.MODE_HOPS} <= set(result.final)
    assert result.train_seconds > 0 and result.final[names.TRAIN_SECONDS] == result.train_seconds
    assert names.ARTIFACT_GENERATOR in rep.artifacts


def test_checkpoints_are_kept_only_when_asked():
    result, rep = run(make_config(steps=10, eval_every=5))
    assert rep.checkpoints == [] and result.steps_done == 10


def test_artifacts_are_rendered(monkeypatch):
    monkeypatch.setattr(GaussianMixture, "plot_samples", ORIGINAL_PLOT)
    _, rep = run(make_config(steps=10, eval_every=5))
    # the last evaluation's picture is the final one
    assert set(rep.artifacts) == {
        f"{names.ARTIFACT_SAMPLES_DIR}/step_0000005.png",
        names.ARTIFACT_GENERATOR,
        names.ARTIFACT_FINAL_SAMPLES,
    }
    assert rep.artifacts[names.ARTIFACT_FINAL_SAMPLES].startswith(b"\x89PNG")
    assert rep.artifacts[f"{names.ARTIFACT_SAMPLES_DIR}/step_0000005.png"].startswith(b"\x89PNG")
    g = torch.load(io.BytesIO(rep.artifacts[names.ARTIFACT_GENERATOR]))
    assert g["net.0.weight"].shape == (16, 2)  # z_dim 2 -> first hidden layer of 16


def test_run_trial_accepts_a_dict():
    result, _ = run(make_config(steps=5, eval_every=5).model_dump())
    assert result.steps_done == 5


def test_uneven_eval_cadence_evaluates_at_the_end():
    result, rep = run(make_config(steps=25, eval_every=10, log_every=5))
    assert [s for s, _ in rep.evals] == [10, 20, 25]
    assert result.steps_done == 25


# --- (b) determinism -----------------------------------------------------------------------


def test_same_seed_is_deterministic(reference):
    a, _ = reference
    b, _ = run(make_config())
    assert a.status == b.status
    assert untimed(a.final) == untimed(b.final)
    assert a.history == b.history
    assert [(e.step, e.values, e.covered) for e in a.evals] == \
           [(e.step, e.values, e.covered) for e in b.evals]


def test_different_seed_differs(reference):
    a, _ = reference
    c, _ = run(make_config(seed=1))
    assert a.history != c.history
    assert a.history[0][1][names.LOSS_D] != c.history[0][1][names.LOSS_D]


# --- (c) several discriminator steps ---------------------------------------------------------


def test_d_steps_three(reference):
    three, rep = run(make_config(d_steps=3, steps=20, eval_every=20))
    assert three.steps_done == 20 and rep.error is None
    assert [s for s, _ in three.history] == [5, 10, 15, 20]
    for _, values in three.history:
        assert all(math.isfinite(values[k]) for k in names.STEP_HISTORIES)
    # the reference run (d_steps=1, same seed) logged different values over the same steps
    one = reference[0].history[:4]
    assert [s for s, _ in one] == [5, 10, 15, 20]
    assert three.history != one


# --- (d) checkpoint and resume ------------------------------------------------------------


def _assert_resume_matches(full, rep_full, first_checkpoint):
    assert first_checkpoint["step"] == 20
    assert [s for s, _ in first_checkpoint["copies"][0]["history"]] == [5, 10, 15, 20]
    resumed, rep = run(make_config(), resume=first_checkpoint)
    assert rep.info.resumed_from_step == 20
    assert resumed.steps_done == 40
    assert [s for s, _ in rep.evals] == [40]  # only the remaining evaluation
    assert [s for s, _ in rep.rows] == [25, 30, 35, 40]  # only the new history rows
    assert resumed.status == full.status
    assert untimed(resumed.final) == untimed(full.final)
    assert resumed.history == full.history
    assert [(e.step, e.values, e.covered) for e in resumed.evals] == \
           [(e.step, e.values, e.covered) for e in full.evals]
    g_full = torch.load(io.BytesIO(rep_full.artifacts[names.ARTIFACT_GENERATOR]))
    g_res = torch.load(io.BytesIO(rep.artifacts[names.ARTIFACT_GENERATOR]))
    assert all(torch.equal(g_full[k], g_res[k]) for k in g_full)


def test_resume_from_a_snapshot_checkpoint_matches_the_uninterrupted_run(reference):
    full, reporter = reference
    assert [c["step"] for c in reporter.checkpoints] == [20, 40]
    _assert_resume_matches(full, reporter, reporter.checkpoints[0])


def test_resume_from_the_last_checkpoint_trains_nothing_more(reference):
    full, reporter = reference
    resumed, rep = run(make_config(), resume=reporter.checkpoints[-1])
    assert resumed.steps_done == 40 and rep.rows == [] and rep.evals == []
    assert untimed(resumed.final) == untimed(full.final)


def test_memory_reporter_checkpoint_resume_matches_the_uninterrupted_run():
    reporter = MemoryReporter(keep_checkpoints=True)
    full = run_trial(make_config(), reporter)
    first = reporter.checkpoints[0]
    # the step-20 weights must differ from the final (step-40) weights
    assert not all(torch.equal(first["generator"][k], reporter.checkpoints[1]["generator"][k])
                   for k in first["generator"])
    _assert_resume_matches(full, reporter, first)


# --- (e) divergence ------------------------------------------------------------------------


class NaNLoss(Loss):
    """Test loss that returns NaN (keeps the graph so backward works)."""

    def d_loss(self, real_logits, fake_logits):
        return (real_logits.mean() + fake_logits.mean()) * float("nan")

    def g_loss(self, fake_logits):
        return fake_logits.mean() * float("nan")


class HugeLoss(Loss):
    """Finite but enormous: |loss| > diagnostics.diverge_loss."""

    def d_loss(self, real_logits, fake_logits):
        return 1e9 + 0.0 * (real_logits.mean() + fake_logits.mean())

    def g_loss(self, fake_logits):
        return 1e9 + 0.0 * fake_logits.mean()


@pytest.fixture
def bad_losses():
    names_ = {"test-trainer-nan": NaNLoss, "test-trainer-huge": HugeLoss}
    try:
        for name, cls in names_.items():
            LOSSES.register(name, cls)
        yield
    finally:
        for name in names_:
            LOSSES.unregister(name)


@pytest.mark.parametrize("loss", ["test-trainer-nan", "test-trainer-huge"])
def test_bad_loss_diverges_and_stops_early(bad_losses, loss):
    result, rep = run(make_config(loss=loss, steps=40, eval_every=20, log_every=5))
    assert result.status == names.STATUS_DIVERGED
    assert result.steps_done == 5  # stopped at the first logged step, not at 40
    assert result.final[names.STEPS_DONE] == 5.0
    assert result.final[names.STABILITY_SCORE] == 0.0
    assert [s for s, _ in result.history] == [5]
    assert [s for s, _ in rep.evals] == [5]  # evaluated once, where it stopped
    assert rep.result is result and rep.error is None


def test_bad_loss_is_unregistered_after_the_fixture():
    assert "test-trainer-nan" not in LOSSES and "test-trainer-huge" not in LOSSES


def test_frozen_restores_each_flag_even_when_the_block_raises():
    params = [torch.zeros(2, requires_grad=True), torch.zeros(2), torch.zeros(2, requires_grad=True)]
    with pytest.raises(RuntimeError, match="inside"), frozen(params):
        assert not any(p.requires_grad for p in params)
        assert not (params[0] * 2).requires_grad  # no graph through frozen parameters
        raise RuntimeError("inside")
    assert [p.requires_grad for p in params] == [True, False, True]


def test_the_standard_game_is_the_runtime_s_default_loop():
    """A model that names no loop of its own (``loop_class()`` None) is trained by Trainer;
    one that names its own gets it."""
    from harness.builtin.xy_game import XYLoop
    from harness.trainer import Trainer
    from harness.trial import build_trainer

    assert MODELS.build("mlp", SMALL_MLP).loop_class() is None
    assert type(build_trainer(make_config())) is Trainer
    assert MODELS.build("xy_game").loop_class() is XYLoop
