"""``run_trial(config, reporter)``: one trial, from a validated config to a result.

Builds the dataset, the networks, the loss, the tricks and the metrics from the
registries (loading the study's plugins in this process first), resumes from the
reporter's checkpoint if it has one, trains, and returns the
:class:`~harness.reporting.TrialResult`. Knows nothing of Ray or MLflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from pydantic_core import to_jsonable_python

from harness import names
from harness.config import TrialConfig
from harness.environment import provenance_tags
from harness.errors import DeviceError
from harness.loop import TrainingLoop
from harness.metrics import chance_metrics
from harness.plugins import load_plugins
from harness.reporting import Reporter, TrialInfo, TrialResult
from harness.trainer import Trainer


def _no_cuda_reason() -> str:
    built = torch.version.cuda
    return (f"torch {torch.__version__} was built without CUDA" if built is None else
            f"torch {torch.__version__} (CUDA {built}) sees no GPU (no driver, or "
            "CUDA_VISIBLE_DEVICES hides them)")


def resolve_device(name: str, granted_gpus: float | None = None) -> torch.device:
    """The torch device of a trial whose ``train.device`` is ``name``.

    ``granted_gpus`` is the GPU share the scheduler granted the trial (Ray's assigned
    ``GPU`` resource, e.g. 0.25), or None when no scheduler placed it (``harness run``,
    tests, benchmarks). Ray makes a granted GPU the only one visible, so ``cuda`` is it.

    * ``cpu``: the CPU, always.
    * ``auto``: ``cuda`` when a GPU was granted; the CPU when the scheduler granted none
      (even if the node has GPUs: other trials hold them); outside a scheduler ``cuda`` if
      torch can use one, else the CPU.
    * ``cuda``: ``cuda``; :class:`~harness.errors.DeviceError` when the scheduler granted
      no GPU or torch cannot use one -- before anything is built, not deep inside torch.
    """
    cpu = torch.device("cpu")
    if name == "cpu":
        return cpu
    if name not in ("auto", "cuda"):
        raise DeviceError(f"train.device: unknown device {name!r}; allowed: cpu, cuda, auto")
    if granted_gpus is not None and granted_gpus <= 0:
        if name == "auto":
            return cpu
        raise DeviceError("train.device is 'cuda' but the trial was granted no GPU; set "
                          "resources.gpu > 0 in the study file (e.g. 0.25: four trials per "
                          "GPU), or train.device: auto to train on the CPU")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if name == "auto" and granted_gpus is None:
        return cpu
    asked = ("train.device is 'cuda'" if granted_gpus is None else
             f"the trial was granted {granted_gpus:g} GPU (train.device {name!r})")
    raise DeviceError(f"{asked} but torch cannot use CUDA in this process: {_no_cuda_reason()}; "
                      "use train.device: cpu (and resources.gpu: 0), or run where a GPU is")


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
    plugins derived. The one place both trial paths (:func:`run_trial`, and
    :func:`harness.tune_glue.vector_trainable` for each vectorized copy) assemble them.

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


def run_trial(config: TrialConfig | dict[str, Any], reporter: Reporter,
              granted_gpus: float | None = None) -> TrialResult:
    """Train one configuration; every failure is passed to ``reporter.fail`` and re-raised.

    ``granted_gpus``: the GPU share a scheduler granted this trial, None outside one
    (see :func:`resolve_device`)."""
    cfg = config if isinstance(config, TrialConfig) else TrialConfig.model_validate(config)
    try:
        trainer, plugins = _build(cfg, granted_gpus)
        state = reporter.restore()
        if state is not None:
            trainer.load_state_dict(state)
        tags = {**trainer.dataset.tags(), **trial_tags(cfg), **provenance_tags(),
                names.TAG_DEVICE: trainer.device.type}
        for metric in trainer.metrics:
            tags.update(metric.provenance(trainer.dataset))
        params, derived = recorded_params(cfg, **plugins)
        chance = chance_metrics(trainer.metrics, trainer.dataset, cfg.train.eval_samples)
        reporter.start(TrialInfo(cfg, params, tags, trainer.step, derived, chance))
        return trainer.fit(reporter)
    except BaseException as exc:
        reporter.fail(exc)
        raise
