"""Study files: YAML -> validated, frozen :class:`StudySpec` -> one :class:`TrialConfig` per trial.

This module is the schema: it knows no registry and no runtime. Validation happens in two
passes, both before anything starts:

1. pydantic checks the shape (unknown keys are refused, listing the known ones), here;
2. :func:`harness.resolve.resolve` loads the plugins and checks every registered name and
   parameter, the search space and the evaluation cadence against the registries.

Every error is a :class:`~harness.errors.ConfigError` whose message starts with the key
path, e.g. ``variants[1].loss: unknown loss 'minmax'; registered: least_squares, ...``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from harness import names, value_specs
from harness.errors import ConfigError
from harness.validation_errors import format_validation_error

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
STUDIES_DIR = PROJECT_ROOT / "studies"
#: the largest study seed (``seed``, ``harness run --seed``): seeds derived from it stay
#: within numpy's 32-bit range for the searcher's samplers
MAX_SEED = 2**31 - 1


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ComponentSpec(Strict):
    """A registered plugin by name with its parameters; YAML may give just the name."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class TrainSettings(Strict):
    """How one trial trains; every key may be overridden per variant or searched."""

    steps: int = Field(2000, ge=1, description="generator steps (the budget)")
    eval_every: int = Field(500, ge=1, description="generator steps between evaluations")
    eval_samples: int = Field(2500, ge=1, description="generated samples per evaluation")
    log_every: int = Field(5, ge=1, description="generator steps between history points")
    batch_size: int = Field(64, ge=1)
    lr_d: float = Field(1e-3, gt=0)
    lr_g: float = Field(1e-3, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    d_steps: int = Field(1, ge=1, description="discriminator steps per generator step (k)")
    #: cpu, cuda, or auto (cuda when the trial has a GPU: Ray granted one, or, outside Ray,
    #: torch can use one). In a study file the default is auto when ``resources.gpu > 0``,
    #: else cpu (see :func:`harness.resolve.resolve`); :func:`harness.device.resolve_device`
    #: decides.
    device: Literal["cpu", "cuda", "auto"] = "cpu"

    @model_validator(mode="after")
    def _cadence(self) -> TrainSettings:
        if self.eval_every > self.steps:
            raise ValueError(
                f"eval_every ({self.eval_every}) is larger than steps ({self.steps}); "
                f"allowed: 1..{self.steps}"
            )
        if self.log_every > self.steps:
            raise ValueError(
                f"log_every ({self.log_every}) is larger than steps ({self.steps}); "
                f"allowed: 1..{self.steps}"
            )
        return self


#: keys of TrainSettings a search may vary
SEARCHABLE_TRAIN = ("batch_size", "lr_d", "lr_g", "beta1", "beta2", "d_steps")


class DiagnosticSettings(Strict):
    """Thresholds that turn a trial's histories into its ``status`` (see harness.diagnostics)."""

    collapse_fraction: float = Field(0.25, gt=0, le=1)
    collapse_patience: int = Field(2, ge=1)
    diverge_loss: float = Field(1e6, gt=0)
    overpower_margin: float = Field(0.05, gt=0, lt=0.5)
    vanishing_grad: float = Field(1e-3, ge=0)
    tail_fraction: float = Field(0.1, gt=0, le=1)
    #: statuses that end training at the evaluation where they first hold (the rule of
    #: :func:`harness.diagnostics.early_stop_reason`): ``collapsed`` once
    #: ``collapse_patience`` evaluations in a row covered too few modes, ``d_overpowers`` as
    #: soon as the history's tail says so. Empty by default: every trial runs its budget
    #: (``diverged`` always stops training, listed or not).
    stop_early: list[str] = Field(default_factory=list)

    @field_validator("stop_early")
    @classmethod
    def _stop_early(cls, v: list[str]) -> list[str]:
        for reason in v:
            if reason not in names.EARLY_STOP_REASONS:
                extra = (" (diverged trials always stop)" if reason == names.STATUS_DIVERGED
                         else "")
                raise ValueError(f"cannot stop early for {reason!r}{extra}; allowed: "
                                 f"{', '.join(names.EARLY_STOP_REASONS)}")
        if len(set(v)) != len(v):
            raise ValueError(f"lists a status twice: {v}")
        return v


class SearchParam(Strict):
    """One searched hyperparameter: a range or a list of choices."""

    type: Literal["loguniform", "uniform", "int", "choice"]
    low: float | None = None
    high: float | None = None
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> SearchParam:
        if self.type == "choice":
            if not self.values:
                raise ValueError("a 'choice' needs a non-empty 'values' list")
            if self.low is not None or self.high is not None:
                raise ValueError("a 'choice' takes 'values', not 'low'/'high'")
            return self
        if self.values is not None:
            raise ValueError(f"a '{self.type}' range takes 'low' and 'high', not 'values'")
        if self.low is None or self.high is None:
            raise ValueError(f"a '{self.type}' range needs both 'low' and 'high'")
        if not self.low < self.high:
            raise ValueError(f"'low' ({self.low}) must be smaller than 'high' ({self.high})")
        if self.type == "loguniform" and self.low <= 0:
            raise ValueError(f"a 'loguniform' range needs low > 0, got {self.low}")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("an 'int' range needs whole-number 'low' and 'high'")
        return self


#: values of ``search.pruner``'s ``type`` (see :class:`PrunerSettings`)
PRUNERS = ("none", "median", "asha")


class PrunerSettings(Strict):
    """``search.pruner``: stops search-phase trials that trail the other trials of their
    (variant, dataset) pair on ``search.metric`` (:mod:`harness.tune_pruning`). YAML may give
    just the type: ``pruner: median``."""

    type: str = "none"
    grace: int = Field(1, ge=1, description="evaluations a trial runs before it may be pruned")
    min_trials: int = Field(3, ge=1, description="median: other trials of the pair that must "
                                                 "have reached the step before it is compared")
    reduction_factor: int = Field(3, ge=2, description="asha: a trial goes on past a rung "
                                                       "when it is in the best 1/reduction_factor")

    @model_validator(mode="before")
    @classmethod
    def _from_type(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        if v not in PRUNERS:
            raise ValueError(f"unknown pruner {v!r}; allowed: {', '.join(PRUNERS)}")
        return v

    @model_validator(mode="after")
    def _knobs(self) -> PrunerSettings:
        # a value other than the default only (a dumped spec lists every field: it must
        # validate again)
        only = {"min_trials": "median", "reduction_factor": "asha"}
        for key, owner in only.items():
            if (self.type != owner and key in self.model_fields_set
                    and getattr(self, key) != type(self).model_fields[key].default):
                raise ValueError(f"{key!r} is a setting of the {owner!r} pruner, not of "
                                 f"{self.type!r}")
        return self


class SearchSettings(Strict):
    """The search phase: ``trials`` Optuna suggestions per variant over ``space``.

    ``trials: 0`` runs no search: each pair's seeds phase trains the variant's own settings
    (a fixed protocol, e.g. a published one), and ``space`` must then be left out."""

    algorithm: Literal["tpe", "random", "grid"] = "tpe"
    trials: int = Field(4, ge=0, description="search trials per variant and dataset; 0: no "
                        "search, the seeds phase trains each variant's own settings")
    #: a value some metric declares with a direction (:func:`harness.value_specs.objectives`);
    #: checked by :func:`check_search_metric`, once the metrics that could declare it are loaded
    metric: str = names.MODES_COVERED
    mode: Literal["max", "min"] | None = None
    space: dict[str, SearchParam] = Field(default_factory=dict, validate_default=True)
    pruner: PrunerSettings = Field(default_factory=PrunerSettings)

    @field_validator("space")
    @classmethod
    def _space(cls, v: dict[str, SearchParam], info: ValidationInfo
               ) -> dict[str, SearchParam]:
        trials = info.data.get("trials")  # absent when trials itself was refused
        if trials and not v:
            raise ValueError(
                "the search space is empty; declare at least one hyperparameter, e.g. "
                "lr_d: {type: loguniform, low: 1.0e-4, high: 3.0e-3}, or set trials: 0 to "
                "run each variant's own settings without a search"
            )
        if trials == 0 and v:
            raise ValueError(
                f"trials is 0 (no search) but a search space is declared "
                f"({', '.join(v)}); leave space out, or set trials >= 1 to search it")
        return v

    @model_validator(mode="after")
    def _pruned_metric(self) -> SearchSettings:
        # the pruner compares trials at their evaluations; stability_score exists only at the end
        if self.pruner.type != "none" and self.metric == names.STABILITY_SCORE:
            raise ValueError(
                f"pruner {self.pruner.type!r} compares trials at every evaluation, but metric "
                f"{self.metric!r} is only computed when a trial ends; use pruner: none or a "
                "metric logged at every evaluation (e.g. modes_covered)")
        return self

    @property
    def direction(self) -> str:
        """``mode``, else the direction :attr:`metric` is declared with (its ValueSpec)."""
        return self.mode or value_specs.direction(self.metric) or "max"


#: resource names Ray gives a meaning of its own (``tune.with_resources``), not custom ones
RESERVED_RESOURCES = ("cpu", "gpu", "memory", "object_store_memory", "custom_resources")


class Resources(Strict):
    """What one trial asks Ray for; ``gpu`` may be fractional (e.g. 0.25: four trials share
    a GPU). With ``gpu > 0`` a trial trains on the GPU Ray grants it (``train.device``
    defaults to ``auto`` then, see :func:`harness.resolve.resolve`)."""

    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)
    #: Ray custom resources per trial, e.g. ``{a100: 1}``: trials then run only on nodes
    #: that offer them (``ray start --resources='{"a100": 8}'``, or the cluster launcher's
    #: ``resources:``), at most as many at a time on a node as its amount allows
    custom: dict[str, float] = Field(default_factory=dict)

    @field_validator("custom")
    @classmethod
    def _custom(cls, v: dict[str, float]) -> dict[str, float]:
        for name, amount in v.items():
            if name.lower() in RESERVED_RESOURCES or not name.strip():
                raise ValueError(f"{name!r} is not a custom resource: Ray reserves "
                                 f"{', '.join(RESERVED_RESOURCES)} (CPUs and GPUs are "
                                 "resources.cpu and resources.gpu)")
            if not amount > 0:
                raise ValueError(f"custom resource {name!r}: the amount must be > 0, got {amount}")
        return v

    @field_validator("gpu")
    @classmethod
    def _gpu(cls, v: float) -> float:
        # Ray's rules: shares of one GPU down to 0.0001, whole GPUs above one
        if v > 1 and not float(v).is_integer():
            raise ValueError(f"a trial takes a share of one GPU (0 < gpu <= 1) or whole GPUs, "
                             f"got {v}; allowed e.g. 0.25, 0.5, 1, 2")
        if 0 < v < 1e-4:
            raise ValueError(f"Ray cannot split a GPU finer than 0.0001, got {v}")
        return v


class VariantSpec(Strict):
    """A model family, a loss and a list of tricks, trained on one or more datasets."""

    name: str = Field(pattern=NAME_PATTERN)
    model: ComponentSpec
    #: required by every model that plays the adversarial game; refused for models that
    #: define their own objective (``Model.uses_loss`` false, e.g. the xy game)
    loss: ComponentSpec | None = None
    tricks: list[ComponentSpec] = Field(default_factory=list)
    datasets: list[str] | None = None
    train: dict[str, Any] = Field(default_factory=dict)
    #: metrics for this variant only, after the study's (e.g. ``code_accuracy`` for InfoGAN)
    metrics: list[ComponentSpec] = Field(default_factory=list)


#: what a published ``±`` means (:class:`PublishedSpec`); the Reproduction section turns each
#: into a 95 % half-width (:mod:`harness.reports.sections.reproduction`)
PUBLISHED_ERRORS = ("standard_error", "std", "ci95")


class PublishedSpec(Strict):
    """``published:``: a paper's numbers the study sets out to reproduce.

    ``results`` maps variant -> dataset key -> metric value -> ``[mean, error]``, where
    ``error`` is what the paper's ``±`` means (``error``: a standard error, a standard
    deviation over ``seeds`` trials, or a 95 % half-width). ``budget`` holds the published
    protocol's settings as the runs record them (MLflow params such as ``steps``,
    ``batch_size``, ``model.preset``), compared with the runs'. Names are checked against
    the study by :func:`harness.resolve.resolve`.
    """

    source: str = Field(min_length=1, description="citation: paper, table, what the ± means")
    url: str | None = None
    seeds: int = Field(ge=1, description="trials per published number")
    error: str
    budget: dict[str, str | int | float | bool] = Field(default_factory=dict)
    results: dict[str, dict[str, dict[str, list[float]]]]

    @field_validator("error")
    @classmethod
    def _error(cls, v: str) -> str:
        if v not in PUBLISHED_ERRORS:
            raise ValueError(f"unknown error kind {v!r}; allowed: {', '.join(PUBLISHED_ERRORS)}")
        return v

    @field_validator("results")
    @classmethod
    def _results(cls, v: dict) -> dict:
        if not v:
            raise ValueError("no published numbers; give results: {variant: {dataset: "
                             "{metric: [mean, error]}}}")
        for variant, per_ds in v.items():
            for ds, per_metric in per_ds.items():
                for metric, pair in per_metric.items():
                    where = f"{variant}.{ds}.{metric}"
                    if len(pair) != 2 or not all(map(_finite, pair)) or pair[1] < 0:
                        raise ValueError(f"{where}: expected [mean, error] with a finite "
                                         f"mean and an error >= 0, got {pair}")
        return v


def _finite(x: float) -> bool:
    return math.isfinite(x)


class StudySpec(Strict):
    """A whole study file.

    ``vectorize: N`` (optional: a whole number >= 1, or ``auto``; absent: off) trains up
    to N copies of a (variant, dataset) pair in one Tune trial, as one vectorized model
    (:mod:`harness.vector.trial`), when the pair's model is the MLP GAN (model ``mlp``:
    linear layers, batch norm and maxout; not dropout) or the unconditional DCGAN
    (``dcgan``), with no trick but those that only change the networks (``packing``) and
    a loss that declares itself vectorizable (the four classic ones); any metrics
    (``mode_coverage``, ``class_modes`` and ``fidelity`` score all copies at once): its seeds
    phase as ``ceil(seeds / N)`` trials of up to N seeds, and its search phase as batches
    of up to N Optuna suggestions when it searches only ``lr_d``, ``lr_g``, ``beta1`` and
    ``beta2`` and sets no pruner. ``auto`` chooses N per pair and phase for the device
    (:mod:`harness.vector.plan`). MLflow still gets one ordinary child run per copy (its
    seed, params, histories, artifacts and status, equal to the unvectorized run's on the
    CPU: bit for bit for the MLP, to float rounding for the DCGAN). The study prints what runs vectorized, and which pairs fell back and why, once,
    at its start.
    """

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    plugins: list[str] = Field(default_factory=list)
    #: the study's base seed: trials' seeds and the searcher's samplers derive from it
    #: (Optuna's samplers take numpy seeds, which must be non-negative 32-bit integers)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    seeds: int = Field(3, ge=1, description="fresh seeds for each variant's best configuration")
    datasets: dict[str, ComponentSpec]
    metrics: list[ComponentSpec] | None = None
    train: TrainSettings = Field(default_factory=TrainSettings)
    diagnostics: DiagnosticSettings = Field(default_factory=DiagnosticSettings)
    search: SearchSettings
    resources: Resources = Field(default_factory=Resources)
    max_concurrent_trials: int | None = Field(None, ge=1)
    #: Tune ``FailureConfig(max_failures)``: a trial whose process dies or raises is
    #: restarted this many times from its last checkpoint, continuing the same MLflow run
    max_failures: int = Field(1, ge=0)
    #: opt-in: up to this many copies of an MLP GAN or DCGAN pair per Tune trial, trained as
    #: one vectorized model (seeds, and search suggestions of per-copy settings), or
    #: ``auto`` (chosen for the device); each copy gets its own MLflow child run. None
    #: (default): off. See the class docstring and :mod:`harness.vector.plan`.
    vectorize: int | Literal["auto"] | None = Field(
        None, description="copies per trial of an MLP GAN or DCGAN pair, trained as one vectorized "
        "model, or auto")
    variants: list[VariantSpec] = Field(min_length=1)
    #: optional: the published numbers the study reproduces (:class:`PublishedSpec`)
    published: PublishedSpec | None = None

    @field_validator("vectorize", mode="before")
    @classmethod
    def _vectorize(cls, v: Any) -> Any:
        if v == "auto":
            return v
        if isinstance(v, bool) or (v is not None and not isinstance(v, int)) or (
                isinstance(v, int) and v < 1):
            raise ValueError("allowed: a whole number of copies per trial >= 1, auto (chosen "
                             "for the device), or no vectorize key (off)")
        return v

    @field_validator("datasets", mode="before")
    @classmethod
    def _datasets(cls, v: Any) -> Any:
        if isinstance(v, list):  # [ring8, grid25] -> {ring8: ring8, grid25: grid25}
            return {x if isinstance(x, str) else x.get("name"): x for x in v}
        return v

    @field_validator("datasets")
    @classmethod
    def _datasets_nonempty(cls, v: dict) -> dict:
        if not v:
            raise ValueError("declare at least one dataset, e.g. datasets: [ring8]")
        for key in v:
            if not re.match(NAME_PATTERN, str(key)):
                raise ValueError(f"dataset key {key!r} must match {NAME_PATTERN}")
        return v

    @model_validator(mode="after")
    def _unique_variants(self) -> StudySpec:
        seen = set()
        for i, v in enumerate(self.variants):
            if v.name in seen:
                raise ValueError(f"variants[{i}].name: duplicate variant name {v.name!r}")
            seen.add(v.name)
            for ds in v.datasets or []:
                if ds not in self.datasets:
                    raise ValueError(
                        f"variants[{i}].datasets: unknown dataset {ds!r}; "
                        f"declared: {', '.join(self.datasets)}"
                    )
        return self


class TrialConfig(Strict):
    """Everything one trial needs, fully resolved; logged as the run's ``config.json``."""

    study: str
    variant: str
    dataset_key: str
    model: ComponentSpec
    loss: ComponentSpec | None = None
    tricks: list[ComponentSpec] = Field(default_factory=list)
    dataset: ComponentSpec
    metrics: list[ComponentSpec] = Field(default_factory=list)
    train: TrainSettings = Field(default_factory=TrainSettings)
    diagnostics: DiagnosticSettings = Field(default_factory=DiagnosticSettings)
    seed: int = Field(0, ge=0)
    phase: str = names.PHASE_SINGLE
    plugins: list[str] = Field(default_factory=list)
    plugin_paths: list[str] = Field(default_factory=list)

    @property
    def key(self) -> str:
        """``variant/dataset``: the unit a study searches and compares."""
        return f"{self.variant}/{self.dataset_key}"

    def with_params(self, params: dict[str, Any], seed: int | None = None,
                    phase: str | None = None) -> TrialConfig:
        """A copy with searched ``params`` applied (``lr_d``, ``model.z_dim``, ``loss.a`` ...)."""
        train = self.train.model_dump()
        model_p = dict(self.model.params)
        loss_p = dict(self.loss.params) if self.loss is not None else {}
        for key, value in params.items():
            if key.startswith("model."):
                model_p[key[6:]] = value
            elif key.startswith("loss."):
                loss_p[key[5:]] = value
            else:
                train[key] = value
        data = self.model_dump()
        data.update(
            train=train,
            model={"name": self.model.name, "params": model_p},
            loss=None if self.loss is None else {"name": self.loss.name, "params": loss_p},
        )
        if seed is not None:
            data["seed"] = seed
        if phase is not None:
            data["phase"] = phase
        try:
            return TrialConfig.model_validate(data)
        except pydantic.ValidationError as exc:
            raise ConfigError(format_validation_error(exc, TrialConfig)) from None

    def flat_params(self) -> dict[str, Any]:
        """Every hyperparameter as a flat ``{name: value}`` (MLflow params): the train
        settings, ``seed``, and every plugin parameter as ``model.<p>``, ``loss.<p>``,
        ``dataset.<p>``, ``trick.<name>.<p>``, ``metric.<name>.<p>`` (all of them, defaults
        included, for a config from :func:`harness.resolve.resolve`)."""
        out: dict[str, Any] = dict(self.train.model_dump())
        out.update({f"model.{k}": v for k, v in self.model.params.items()})
        if self.loss is not None:
            out.update({f"loss.{k}": v for k, v in self.loss.params.items()})
        out.update({f"dataset.{k}": v for k, v in self.dataset.params.items()})
        for t in self.tricks:
            out.update({f"trick.{t.name}.{k}": v for k, v in t.params.items()})
        for m in self.metrics:
            out.update({f"metric.{m.name}.{k}": v for k, v in m.params.items()})
        out["seed"] = self.seed
        return out

    def digest(self) -> str:
        """Equal for equal configs, whatever the order of their keys (a config read back
        from ``config.json`` has its keys sorted)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------
# Loading and resolving
# --------------------------------------------------------------------------------------


def find_study_file(path: str | Path) -> Path:
    """``path`` as given, else a bare name looked up in the project's ``studies/``."""
    p = Path(path)
    if p.is_file():
        return p.resolve()
    if not p.is_absolute() and len(p.parts) == 1:
        for cand in (STUDIES_DIR / p, STUDIES_DIR / f"{p}.yaml"):
            if cand.is_file():
                return cand
    known = sorted(x.name for x in STUDIES_DIR.glob("*.yaml")) if STUDIES_DIR.is_dir() else []
    raise ConfigError(
        f"study file {str(path)!r} not found in the working directory or {STUDIES_DIR}; "
        f"available there: {', '.join(known) or '(none)'}"
    )


def load_study(path: str | Path) -> StudySpec:
    """Read and shape-check a study file (plugin lookups: :func:`harness.resolve.resolve`)."""
    file = find_study_file(path)
    try:
        raw = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: a study file is a mapping of keys (name, datasets, variants, ...)")
    return parse_study(raw, source=str(file))


def parse_study(raw: dict, source: str = "study") -> StudySpec:
    try:
        spec = StudySpec.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc, StudySpec)}") from None
    if not spec.plugins:
        # a study's own plugin modules may declare its metric: those are only loaded by
        # harness.resolve.resolve, which checks the metric again
        check_search_metric(spec, source)
    return spec


def check_search_metric(spec: StudySpec, source: str = "study") -> None:
    """``search.metric`` must be a value a registered metric (or the harness) declares with a
    direction: else the search would have no direction and the summary and the verdict no
    label for it. The installed plugins count; a study's ``plugins:`` modules only once
    loaded."""
    choices = value_specs.objectives()
    if spec.search.metric not in choices:
        raise ConfigError(
            f"{source}: search.metric: unknown metric {spec.search.metric!r}: no registered "
            "metric declares it as a value to optimise, so the search would have no direction "
            f"and the study summary and the verdict could not show it; choices: "
            f"{', '.join(choices)}")


@dataclass(frozen=True)
class VariantPlan:
    """One (variant, dataset) pair of a study: its base config and its search space."""

    key: str
    base: TrialConfig
    space: dict[str, SearchParam]


def config_json(cfg: TrialConfig) -> str:
    return json.dumps(cfg.model_dump(), indent=2, sort_keys=True)
