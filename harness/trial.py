"""``run_trial(config, reporter)``: one trial, from a validated config to a result.

Builds the dataset, the networks, the loss, the tricks and the metrics from the
registries (loading the study's plugins in this process first), resumes from the
reporter's checkpoint if it has one, trains, and returns the
:class:`~harness.reporting.TrialResult`. Knows nothing of Ray or MLflow.
"""

from __future__ import annotations

from typing import Any

import torch

from harness import names
from harness.config import TrialConfig
from harness.plugins import load_plugins
from harness.reporting import Reporter, TrialInfo, TrialResult
from harness.loop import TrainingLoop


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is visible to this trial")
    return torch.device(name)


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
    }


def build_trainer(cfg: TrialConfig) -> TrainingLoop:
    """Config -> objects, once: the registries build every plugin with its parameters."""
    from harness.registry import DATASETS, LOSSES, METRICS, MODELS, TRICKS

    load_plugins(cfg.plugins, cfg.plugin_paths)
    device = resolve_device(cfg.train.device)
    torch.manual_seed(cfg.seed)
    dataset = DATASETS.build(cfg.dataset.name, cfg.dataset.params, "dataset.params")
    model = MODELS.build(cfg.model.name, cfg.model.params, "model.params")
    gan = model.build(dataset)
    loss = (None if cfg.loss is None
            else LOSSES.build(cfg.loss.name, cfg.loss.params, "loss.params"))
    tricks = [TRICKS.build(t.name, t.params, f"tricks[{i}].params") for i, t in enumerate(cfg.tricks)]
    metrics = [METRICS.build(m.name, m.params, f"metrics[{i}].params")
               for i, m in enumerate(cfg.metrics)]
    return model.loop_class()(model, gan, loss, dataset, metrics, cfg.train, cfg.diagnostics,
                              cfg.seed, tricks=tricks, device=device, title=cfg.key)


def run_trial(config: TrialConfig | dict[str, Any], reporter: Reporter) -> TrialResult:
    """Train one configuration; every failure is passed to ``reporter.fail`` and re-raised."""
    cfg = config if isinstance(config, TrialConfig) else TrialConfig.model_validate(config)
    try:
        trainer = build_trainer(cfg)
        state = reporter.restore()
        if state is not None:
            trainer.load_state_dict(state)
        tags = {**trainer.dataset.tags(), **trial_tags(cfg)}
        for metric in trainer.metrics:
            tags.update(metric.provenance(trainer.dataset))
        reporter.start(TrialInfo(cfg, cfg.flat_params(), tags, trainer.step))
        return trainer.fit(reporter)
    except BaseException as exc:
        reporter.fail(exc)
        raise
