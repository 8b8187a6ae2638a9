"""One trial, from validated configs to results: :func:`run_copies` (every path: the Tune
trainable, ``harness run``) and :func:`run_trial`, its one-copy form.

Builds the dataset, the networks, the loss, the tricks and the metrics from the
registries (loading the study's plugins in this process first) -- one game, or the
vectorized game of several copies -- resumes from a checkpoint if there is one, starts
each copy's reporter, trains, and returns each copy's
:class:`~harness.reporting.TrialResult`. Knows nothing of Ray or MLflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from pydantic_core import to_jsonable_python

from harness import names
from harness.config import TrialConfig
from harness.device import resolve_device
from harness.environment import provenance_tags
from harness.loop import AfterEvaluation, CopiesLoop, TrainingLoop
from harness.metrics import chance_metrics
from harness.plugins import load_plugins
from harness.reporting import Reporter, TrialInfo, TrialResult
from harness.trainer import Trainer


def trial_tags(cfg: TrialConfig) -> dict[str, str]:
    return {
        names.TAG_VARIANT: cfg.variant,
        names.TAG_MODEL: cfg.model.name,
        names.TAG_LOSS: cfg.loss.name if cfg.loss is not None else "none",
        names.TAG_TRICKS: ",".join(t.name for t in cfg.tricks) or "none",
        names.TAG_DATASET: cfg.dataset_key,
        names.TAG_SEED: str(cfg.seed),
        names.TAG_PHASE: cfg.phase,
        names.TAG_STUDY: cfg.study,
        names.TAG_KIND: "trial",
        names.TAG_CONFIG_DIGEST: cfg.digest(),
        # how it ran; a vectorized trial's copies override both (harness.tune_glue)
        names.TAG_VECTORIZED: "false",
        names.TAG_VECTOR_COPIES: "1",
    }


def build_trainer(cfg: TrialConfig, granted_gpus: float | None = None) -> TrainingLoop:
    """Config -> objects, once: the registries build every plugin with its parameters.

    The device is chosen first (:func:`resolve_device`, with the scheduler's
    ``granted_gpus``); the game moves its networks and training data there once.
    """
    return _build(cfg, granted_gpus)[0]


def _build(cfg: TrialConfig, granted_gpus: float | None = None
           ) -> tuple[TrainingLoop, dict[str, Any]]:
    """:func:`build_trainer`'s loop and the plugins it was built from, as the keyword
    arguments of :func:`recorded_params`."""
    from harness.registry import DATASETS, LOSSES, METRICS, MODELS, TRICKS

    device = resolve_device(cfg.train.device, granted_gpus)
    load_plugins(cfg.plugins, cfg.plugin_paths)
    torch.manual_seed(cfg.seed)
    dataset = DATASETS.build(cfg.dataset.name, cfg.dataset.params, "dataset.params")
    model = MODELS.build(cfg.model.name, cfg.model.params, "model.params")
    gan = model.build(dataset)
    loss = (None if cfg.loss is None
            else LOSSES.build(cfg.loss.name, cfg.loss.params, "loss.params"))
    tricks = [TRICKS.build(t.name, t.params, f"tricks[{i}].params") for i, t in enumerate(cfg.tricks)]
    metrics = [METRICS.build(m.name, m.params, f"metrics[{i}].params")
               for i, m in enumerate(cfg.metrics)]
    loop_cls = model.loop_class() or Trainer  # None: the standard adversarial game
    loop = loop_cls(model, gan, loss, dataset, metrics, cfg.train, cfg.diagnostics,
                    cfg.seed, tricks=tricks, device=device, title=cfg.key)
    return loop, {"model": model, "dataset": dataset, "loss": loss, "tricks": tricks,
                  "metrics": metrics}


def recorded_params(cfg: TrialConfig, *, model: Any, dataset: Any, loss: Any = None,
                    tricks: Sequence[Any] = (), metrics: Sequence[Any] = ()
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(params, derived)``: the MLflow params of a trial built from ``cfg`` and what its
    plugins derived, for every copy of every trial (:func:`copy_info`).

    ``params`` is :meth:`TrialConfig.flat_params` where every parameter that is ``None`` in
    ``cfg`` and that its built plugin reports in ``derived_params()``
    (:meth:`harness.models.Model.derived_params`; any plugin may define the method) holds
    the value the plugin used -- e.g. ``model.g_hidden`` = ``[128, 128, 128]`` for the
    ``mlp`` preset ``default``. ``derived`` is just those entries, JSON values (tuples as
    lists), for the run's :data:`~harness.names.ARTIFACT_DERIVED_PARAMS` artifact. A value
    given in ``cfg`` is never replaced; ``cfg`` itself (``config.json``, the config digest)
    is left as it is. ``tricks`` and ``metrics`` are built in the order of ``cfg``'s.
    """
    flat = cfg.flat_params()
    plugins: list[tuple[str, Any]] = [("model", model), ("dataset", dataset)]
    if cfg.loss is not None:
        plugins.append(("loss", loss))
    plugins += [(f"trick.{spec.name}", obj) for spec, obj in zip(cfg.tricks, tricks)]
    plugins += [(f"metric.{spec.name}", obj) for spec, obj in zip(cfg.metrics, metrics)]
    derived: dict[str, Any] = {}
    for prefix, obj in plugins:
        hook = getattr(obj, "derived_params", None)
        for name, value in (hook() if callable(hook) else {}).items():
            key = f"{prefix}.{name}"
            if key in flat and flat[key] is None and value is not None:
                derived[key] = to_jsonable_python(value)
    return {**flat, **derived}, derived


def build_copies(cfgs: Sequence[TrialConfig], granted_gpus: float | None = None
                 ) -> tuple[CopiesLoop, dict[str, Any]]:
    """The loop of one trial and the plugins it was built from (the keyword arguments of
    :func:`recorded_params`): the game of ``cfgs[0]`` (:func:`build_trainer`) for one
    config, the :class:`~harness.vector.trial.VectorTrainer` of every config for several
    (a vectorized trial: the configs differ only in seed and per-copy train settings)."""
    if len(cfgs) == 1:
        return _build(cfgs[0], granted_gpus)
    from harness.vector.trial import VectorTrainer

    loop = VectorTrainer(cfgs, device=resolve_device(cfgs[0].train.device, granted_gpus))
    return loop, {"model": loop.vec.model, "dataset": loop.dataset, "loss": loop.vec.loss,
                  "tricks": loop.vec.tricks, "metrics": loop.metrics}


def copy_info(loop: CopiesLoop, plugins: dict[str, Any], cfg: TrialConfig, k: int,
              tags: dict[str, str] | None = None) -> TrialInfo:
    """What copy ``k`` of ``loop`` (trained from ``cfg``) tells its reporter when it
    starts: its config, its params (derived values included), its tags -- the dataset's,
    :func:`trial_tags`, the machine's, each metric's provenance, the device, then
    ``tags`` -- its step and its metrics' chance levels."""
    all_tags = {**loop.dataset.tags(), **trial_tags(cfg), **provenance_tags(),
                names.TAG_DEVICE: loop.device.type}
    for metric in loop.metrics:
        all_tags.update(metric.provenance(loop.dataset))
    all_tags.update(tags or {})
    params, derived = recorded_params(cfg, **plugins)
    chance = chance_metrics(loop.metrics, loop.dataset, cfg.train.eval_samples)
    return TrialInfo(cfg, params, all_tags, loop.copy_step(k), derived, chance)


def run_copies(cfgs: Sequence[TrialConfig], reporters: Sequence[Reporter], *,
               state: dict[str, Any] | None = None, finished: Sequence[bool] | None = None,
               tags: Sequence[dict[str, str]] | None = None, granted_gpus: float | None = None,
               after_evaluation: AfterEvaluation | None = None) -> list[TrialResult | None]:
    """Train one trial of ``len(cfgs)`` copies (:func:`build_copies`), copy ``k`` reporting
    to ``reporters[k]``; every trial path runs through here.

    ``state``: a checkpoint to resume from. ``finished[k]``: copy ``k``'s run already
    ended (a resumed study): it is left as it is, neither started nor trained. ``tags[k]``:
    extra tags of copy ``k``'s run. Returns each copy's result (None for finished ones).
    Every failure is passed to the reporters of the copies not finished before (a
    ``SystemExit(0)``, how Ray Tune ends a trial it stopped, is left to the driver) and
    re-raised."""
    finished = list(finished or [False] * len(cfgs))
    try:
        loop, plugins = build_copies(cfgs, granted_gpus)
        if state is not None:
            loop.load_state_dict(state)
        live: list[Reporter | None] = []
        for k, (cfg, reporter) in enumerate(zip(cfgs, reporters)):
            if loop.runs[k].done or finished[k]:
                loop.runs[k].done = finished[k] = True
                live.append(None)
                continue
            reporter.start(copy_info(loop, plugins, cfg, k, tags[k] if tags else None))
            live.append(reporter)
        return loop.run(live, after_evaluation)
    except BaseException as exc:
        if not (isinstance(exc, SystemExit) and exc.code == 0):
            for reporter, done in zip(reporters, finished):
                if not done:
                    reporter.fail(exc)
        raise


def run_trial(config: TrialConfig | dict[str, Any], reporter: Reporter,
              granted_gpus: float | None = None) -> TrialResult:
    """Train one configuration (:func:`run_copies` with one copy), resuming from
    ``reporter.restore()``; every failure is passed to ``reporter.fail`` and re-raised.

    ``granted_gpus``: the GPU share a scheduler granted this trial, None outside one
    (see :func:`resolve_device`)."""
    cfg = config if isinstance(config, TrialConfig) else TrialConfig.model_validate(config)
    try:
        state = reporter.restore()
    except BaseException as exc:
        reporter.fail(exc)
        raise
    loop_result = run_copies([cfg], [reporter], state=state, granted_gpus=granted_gpus)[0]
    if loop_result is None:  # restored after its end
        raise RuntimeError(f"{cfg.key}: the checkpoint to resume from is of a finished trial")
    return loop_result
