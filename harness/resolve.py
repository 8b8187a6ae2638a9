"""Resolving a study: its shape-checked :class:`~harness.config.StudySpec` against the
registries, into one :class:`~harness.config.VariantPlan` per (variant, dataset) pair.

The second validation pass (the first is the schema, :mod:`harness.config`): loads the
study's plugins, then checks every registered name and parameter, what each trick and
metric needs of its model, which tricks a loss excludes (``Trick.excludes`` against
``Loss.provides``) and which losses a family playing its own game can use, the search
metric and space, and the device against the resources. Every error is a
:class:`~harness.errors.ConfigError` whose message starts with the key path.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import pydantic
from pydantic_core import PydanticSerializationError, to_jsonable_python

from harness import names, value_specs
from harness.config import (
    SEARCHABLE_TRAIN,
    ComponentSpec,
    StudySpec,
    TrainSettings,
    TrialConfig,
    VariantPlan,
    VariantSpec,
    check_search_metric,
)
from harness.errors import ConfigError, RegistryError
from harness.losses import Loss, hooks_of
from harness.plugins import load_plugins
from harness.registry import DATASETS, LOSSES, METRICS, MODELS, TRICKS
from harness.tricks import CHANGES, STACKABLE
from harness.validation_errors import format_validation_error


def resolve(spec: StudySpec, source: str = "study", base_dir: Path | None = None
            ) -> list[VariantPlan]:
    """Check every plugin name/parameter against the registries; expand variants x datasets.

    Loads the study's plugins (and the entry points) in this process. Relative values of
    ``Path``-annotated plugin parameters are made absolute against ``base_dir`` (the
    study file's folder; the working directory for a study given as a dict). Each plan's
    base config names every parameter of every plugin, defaults filled in
    (:func:`resolved_component`), so each run records what it trained with.
    """

    def fail(msg: str) -> typing.NoReturn:
        raise ConfigError(f"{source}: {msg}")

    try:
        roots = load_plugins(spec.plugins, search_dirs=[base_dir or Path.cwd(), Path.cwd()])
    except ConfigError as exc:
        fail(str(exc))
    check_search_metric(spec, source)  # now with the study's own metrics registered

    def check(reg, comp: ComponentSpec, where: str) -> Any:
        try:
            return reg.build(comp.name, comp.params, where=f"{where}.params")
        except RegistryError as exc:
            fail(f"{where}: {exc}")
        except ConfigError as exc:
            fail(str(exc))

    dataset_specs = {k: absolute_paths(DATASETS, c, base_dir) for k, c in spec.datasets.items()}
    datasets = {k: check(DATASETS, c, f"datasets.{k}") for k, c in dataset_specs.items()}
    plans: list[VariantPlan] = []
    provides: dict[tuple[str, str], list[str]] = {}  # (variant, dataset) -> values computed
    for i, v in enumerate(spec.variants):
        where = f"variants[{i}]"
        model = check(MODELS, v.model, f"{where}.model")
        if v.loss is None and model.uses_loss and model.default_loss is not None:
            v = v.model_copy(update={"loss": ComponentSpec(name=model.default_loss)})
        if v.loss is None and model.uses_loss:
            fail(f"{where}.loss: model {v.model.name!r} needs a loss; registered: "
                 f"{', '.join(LOSSES.names())}")
        if v.tricks and not model.accepts_tricks:
            fail(f"{where}.tricks: model {v.model.name!r} plays its own game, which takes no "
                 f"tricks; remove {', '.join(repr(t.name) for t in v.tricks)}")
        if v.loss is not None and not model.uses_loss:
            fail(f"{where}.loss: model {v.model.name!r} plays its own game and takes no loss; "
                 f"remove 'loss: {v.loss.name}'")
        loss = None if v.loss is None else check(LOSSES, v.loss, f"{where}.loss")
        if loss is not None and model.loop_class() is not None:
            _check_own_game_loss(v, loss, where, fail)
        tricks = [check(TRICKS, t, f"{where}.tricks[{j}]") for j, t in enumerate(v.tricks)]
        owners: dict[str, str] = {}
        caps = set(model.capabilities()) | (
            {"loss_targets"} if loss is not None and loss.supports_targets else set())
        for t_spec, trick in zip(v.tricks, tricks):
            bad = set(trick.changes) - CHANGES
            if bad:
                fail(f"{where}.tricks: trick {t_spec.name!r} declares unknown changes {sorted(bad)}; "
                     f"allowed: {', '.join(sorted(CHANGES))}")
            missing = sorted(set(trick.requires) - caps)
            if missing:
                fail(f"{where}.tricks: trick {t_spec.name!r} needs {', '.join(missing)}, which "
                     f"model {v.model.name!r} with loss {getattr(v.loss, 'name', None)!r} "
                     f"does not offer "
                     f"(it offers: {', '.join(sorted(caps)) or 'nothing'})")
            clash = sorted(set(trick.excludes) & set(loss.provides if loss is not None else ()))
            if clash:
                what = ", ".join(clash)
                fail(f"{where}.tricks: trick {t_spec.name!r} cannot be combined with loss "
                     f"{v.loss.name!r}, which provides {what} (as configured); allowed with "
                     f"{t_spec.name!r}: {', '.join(_losses_without(clash))}, or loss "
                     f"{v.loss.name!r} configured without {what}")
            if trick.applies_to is not None and model.family not in trick.applies_to:
                fail(f"{where}.tricks: trick {t_spec.name!r} does not apply to model family "
                     f"{model.family!r} of model {v.model.name!r}; it applies to "
                     f"{', '.join(sorted(trick.applies_to))}")
            for change in set(trick.changes) - STACKABLE:
                if change in owners:
                    fail(f"{where}.tricks: {owners[change]!r} and {t_spec.name!r} both change "
                         f"the {change}; only one trick may")
                owners[change] = t_spec.name
        try:
            train = TrainSettings.model_validate({**spec.train.model_dump(), **v.train})
        except pydantic.ValidationError as exc:
            msg = format_validation_error(exc, TrainSettings)
            fail(f"{where}.train{'' if msg.startswith('(top level)') else '.'}"
                 f"{msg.removeprefix('(top level)')}")
        train = _device_for_resources(spec, v, train, where, fail)
        for j, (t_spec, trick) in enumerate(zip(v.tricks, tricks)):
            try:
                trick.check_train(train)
            except ValueError as exc:
                fail(f"{where}.tricks[{j}]: trick {t_spec.name!r}: {exc}")
        for key in v.datasets or list(spec.datasets):
            ds = datasets[key]
            try:
                model.check(ds)
            except ValueError as exc:
                fail(f"{where}.model: model {v.model.name!r} cannot be built for dataset "
                     f"{key!r}: {exc}")
            metric_specs = spec.metrics if spec.metrics is not None else [
                ComponentSpec(name=m) for m in ds.default_metrics
            ]
            n_study = len(metric_specs)
            metric_specs = [absolute_paths(METRICS, m, base_dir)
                            for m in (*metric_specs, *v.metrics)]
            seen: set[str] = set()
            provided: list[str] = []
            for j, m in enumerate(metric_specs):
                at = f"metrics[{j}]" if j < n_study else f"{where}.metrics[{j - n_study}]"
                metric = check(METRICS, m, at)
                provided += [p for p in metric.provides if p not in provided]
                if m.name in seen:
                    fail(f"{at}: metric {m.name!r} is listed twice for variant {v.name!r}")
                seen.add(m.name)
                if not metric.applies_to(ds):
                    fail(f"{at}: metric {m.name!r} does not apply to dataset {key!r}")
                missing = sorted(set(metric.requires) - caps)
                if missing:
                    fail(f"{at}: metric {m.name!r} needs {', '.join(missing)}, which "
                         f"model {v.model.name!r} of variant {v.name!r} does not offer "
                         f"(it offers: {', '.join(sorted(caps)) or 'nothing'})")
            _check_search_metric(spec, provided, v.name, key, metric_specs, fail)
            provides[(v.name, key)] = provided + (
                [names.STABILITY_SCORE] if names.MODES_COVERED in provided else [])
            base = TrialConfig(
                study=spec.name, variant=v.name, dataset_key=key,
                model=resolved_component(MODELS, v.model),
                loss=None if v.loss is None else resolved_component(LOSSES, v.loss),
                tricks=[resolved_component(TRICKS, t) for t in v.tricks],
                dataset=resolved_component(DATASETS, dataset_specs[key]),
                metrics=[resolved_component(METRICS, m) for m in metric_specs], train=train,
                diagnostics=spec.diagnostics, seed=spec.seed, plugins=spec.plugins,
                plugin_paths=[r for r in roots if r],
            )
            plans.append(VariantPlan(key=base.key, base=base, space=spec.search.space))
    _check_space(spec, plans, fail)
    if spec.published is not None:
        _check_published(spec, provides, plans, fail)
    return plans


def _losses_without(provided: list[str]) -> list[str]:
    """The registered losses whose default configuration provides none of ``provided``."""
    out = []
    for name in LOSSES.names():
        try:
            loss = LOSSES.build(name)
        except ConfigError:  # a loss with required parameters: judged when configured
            continue
        if not set(provided) & set(loss.provides):
            out.append(name)
    return out


def _check_own_game_loss(v: VariantSpec, loss: Loss, where: str, fail) -> None:
    """A family playing its own game (its ``loop_class``) calls ``d_loss``/``g_loss`` only
    and reads D's outputs as probabilities: a loss with hooks or a critic is refused."""
    problems = [f"uses the {h} hook" for h in hooks_of(type(loss))]
    if loss.critic:
        problems.append("scores with a critic (no probabilities)")
    if not problems:
        return
    allowed = []
    for name in LOSSES.names():
        cls = LOSSES.get(name)
        if not hooks_of(cls) and not getattr(cls, "critic", False):
            allowed.append(name)
    fail(f"{where}.loss: loss {v.loss.name!r} {' and '.join(problems)}, which model "
         f"{v.model.name!r} does not support: it plays its own game, which calls only a "
         f"loss's d_loss and g_loss; allowed with {v.model.name!r}: {', '.join(allowed)}")


def _check_published(spec: StudySpec, provides: dict[tuple[str, str], list[str]],
                     plans: list[VariantPlan], fail) -> None:
    """Every name under ``published:`` must be one the study runs: a variant, a dataset key
    that variant trains on, a value its metrics compute there, and a budget key its runs
    record as a param (else the Reproduction section would compare nothing)."""
    variants = {v.name: v for v in spec.variants}
    for variant, per_ds in spec.published.results.items():
        where = f"published.results.{variant}"
        if variant not in variants:
            fail(f"{where}: unknown variant {variant!r}; variants of the study: "
                 f"{', '.join(variants)}")
        trained = variants[variant].datasets or list(spec.datasets)
        for ds, per_metric in per_ds.items():
            if ds not in trained:
                fail(f"{where}.{ds}: variant {variant!r} does not train on dataset {ds!r}; "
                     f"its datasets: {', '.join(trained)}")
            computed = provides.get((variant, ds), [])
            for metric, (mean, _) in per_metric.items():
                if metric not in computed:
                    fail(f"{where}.{ds}.{metric}: no metric of variant {variant!r} on dataset "
                         f"{ds!r} computes {metric!r}; choices here: "
                         f"{', '.join(computed) or 'none'}")
                vs = value_specs.spec(metric)
                if vs is not None and vs.outside(mean):
                    hint = (f"; a fraction stays a fraction ({mean:g} % is {mean / 100:g})"
                            if vs.bounds == value_specs.FRACTION and 1 < mean <= 100 else "")
                    fail(f"{where}.{ds}.{metric}: published mean {mean:g} is outside the "
                         f"values {metric!r} takes ({vs.bounds_text()}){hint}")
    named = {(v, d) for v, per_ds in spec.published.results.items() for d in per_ds}
    recorded: list[str] = []
    for plan in plans:
        if (plan.base.variant, plan.base.dataset_key) in named:
            recorded += [k for k in plan.base.flat_params() if k not in recorded and k != "seed"]
    for key in spec.published.budget:
        if key not in recorded:
            fail(f"published.budget.{key}: no run of the published variants records {key!r}, "
                 f"so it could not be compared; choices: {', '.join(recorded)}")


def _check_search_metric(spec: StudySpec, provided: list[str], variant: str, dataset: str,
                         metric_specs: list[ComponentSpec], fail) -> None:
    """``search.metric`` must be a value the (variant, dataset)'s metrics compute (the
    stability score comes with a mode count): else the search would optimise nothing and
    the summary's study-metric column and the verdict would stay empty. A pair given no
    metric at all (``metrics: []``) asks for no numbers and is let through."""
    if not metric_specs:
        return
    if names.MODES_COVERED in provided:
        provided = [*provided, names.STABILITY_SCORE]
    metric = spec.search.metric
    if metric in provided:
        return
    objectives = value_specs.objectives()
    choices = [m for m in provided if m in objectives]
    fail(f"search.metric: {metric!r} is computed by none of the metrics of variant "
         f"{variant!r} on dataset {dataset!r} ({', '.join(m.name for m in metric_specs)}), so "
         "the search could not optimise it and the summary could not show it; choices "
         f"here: {', '.join(choices) or 'none'} (or list a metric that computes "
         f"{metric!r} under metrics:)")


def _device_for_resources(spec: StudySpec, v: VariantSpec, train: TrainSettings, where: str,
                          fail) -> TrainSettings:
    """``train.device`` against ``resources.gpu``: unless the file sets the device, trials
    given a GPU share train on it (``auto``) and the others on the CPU; a device that
    contradicts the resources is refused (a GPU share never used, or ``cuda`` with none)."""
    gpu = spec.resources.gpu
    in_variant = "device" in v.train
    if not in_variant and "device" not in spec.train.model_fields_set:
        return train.model_copy(update={"device": "auto"}) if gpu > 0 else train
    key = f"{where}.train.device" if in_variant else "train.device"
    if gpu > 0 and train.device == "cpu":
        fail(f"{key}: 'cpu' wastes the GPU share every trial asks for (resources.gpu: {gpu:g}); "
             "allowed with resources.gpu > 0: auto, cuda (or set resources.gpu: 0)")
    if gpu == 0 and train.device == "cuda":
        fail(f"{key}: 'cuda' needs a GPU, but resources.gpu is 0 so Ray gives the trials none; "
             "set resources.gpu (e.g. 0.25: four trials per GPU), or use train.device: auto or cpu")
    return train


def _is_path(annotation: Any) -> bool:
    return annotation is Path or Path in typing.get_args(annotation)


def path_param_keys(keys, model: str | None = None, loss: str | None = None) -> set[str]:
    """Which of a run's recorded param keys (:meth:`TrialConfig.flat_params`: ``model.<p>``,
    ``loss.<p>``, ``dataset.<p>``, ``trick.<name>.<p>``, ``metric.<name>.<p>``) hold a
    ``Path``-annotated plugin parameter: where files are, which differs between machines
    holding the same files. ``model``/``loss`` are the run's plugin names; ``dataset.<p>`` is
    judged over every registered dataset (a run records its dataset key, not its plugin)."""
    load_plugins()  # the built-ins and installed plugins (entry points)

    def paths(registry, name) -> set[str]:
        if name is None or name not in registry:
            return set()
        return {p.name for p in registry.params(name) if _is_path(p.annotation)}

    datasets = set().union(*(paths(DATASETS, n) for n in DATASETS.names()))
    out = set()
    for key in keys:
        kind, _, rest = key.partition(".")
        if kind in ("trick", "metric"):
            name, _, param = rest.partition(".")
            hit = param in paths(TRICKS if kind == "trick" else METRICS, name)
        else:
            hit = rest in {"model": lambda: paths(MODELS, model),
                           "loss": lambda: paths(LOSSES, loss),
                           "dataset": lambda: datasets}.get(kind, set)()
        if hit:
            out.add(key)
    return out


def absolute_paths(registry, comp: ComponentSpec, base: Path | None = None) -> ComponentSpec:
    """``comp`` with every relative value of a ``Path``-annotated parameter made absolute
    against ``base`` (the study file's folder; default: the working directory), so that
    trials -- which Ray may start in other directories -- read the same files."""
    if comp.name not in registry:
        return comp
    base = base or Path.cwd()
    changed = {}
    for p in registry.params(comp.name):
        value = comp.params.get(p.name)
        if isinstance(value, (str, Path)) and _is_path(p.annotation):
            path = Path(value).expanduser()
            if not path.is_absolute():
                changed[p.name] = str((base / path).resolve())
    if not changed:
        return comp
    return comp.model_copy(update={"params": {**comp.params, **changed}})


def resolved_component(registry, comp: ComponentSpec) -> ComponentSpec:
    """``comp`` with every constructor parameter of its plugin: the given values coerced to
    their types, the others at their defaults (``None`` where the plugin derives the value
    itself, e.g. from a preset), so that a run's ``config.json`` and MLflow params say what
    it trained with. Values are JSON ones (paths as text, tuples as lists): the config reads
    back from ``config.json`` equal, with the same digest, and builds the same plugin.
    ``comp`` must have passed ``registry.validate_params``."""
    given = registry.validate_params(comp.name, comp.params, "params")
    full: dict[str, Any] = {}
    for p in registry.params(comp.name):
        value = given.get(p.name, p.default)
        try:
            full[p.name] = to_jsonable_python(value)
        except PydanticSerializationError:
            if p.name in comp.params:  # a default JSON cannot hold is left to the plugin
                full[p.name] = comp.params[p.name]
    return ComponentSpec(name=comp.name, params=full)


def _check_space(spec: StudySpec, plans: list[VariantPlan], fail) -> None:
    for key, param in spec.search.space.items():
        where = f"search.space.{key}"
        if spec.search.algorithm == "grid" and param.type != "choice":
            fail(f"{where}: grid search needs every entry to be a 'choice' list, got '{param.type}'")
        for plan in plans:
            if key.startswith("model."):
                reg, comp, pkey = MODELS, plan.base.model, key[6:]
            elif key.startswith("loss."):
                reg, comp, pkey = LOSSES, plan.base.loss, key[5:]
                if comp is None:
                    fail(f"{where}: variant {plan.base.variant!r} has no loss to search")
            else:
                if key not in SEARCHABLE_TRAIN:
                    fail(f"{where}: cannot search {key!r}; allowed: "
                         f"{', '.join(SEARCHABLE_TRAIN)}, model.<param>, loss.<param>")
                continue
            known = [p.name for p in reg.params(comp.name)]
            if pkey not in known:
                fail(f"{where}: {reg.kind} {comp.name!r} of variant {plan.base.variant!r} has no "
                     f"parameter {pkey!r}; allowed: {', '.join(known) or '(none)'}")
    # every value a search can produce must make a valid trial config
    for plan in plans:
        probe = {}
        for key, param in spec.search.space.items():
            probe[key] = param.values[0] if param.type == "choice" else (
                int(param.low) if param.type == "int" else param.low)
        try:
            plan.base.with_params(probe)
        except ConfigError as exc:
            fail(f"search.space: with the lowest values for variant {plan.key}: {exc}")
    # a searched batch size must suit every trick (packing: multiples of m); an int range
    # of two or more values always holds one that does not suit m >= 2
    param = spec.search.space.get("batch_size")
    if param is not None:
        values = ([int(v) for v in param.values] if param.type == "choice"
                  else [int(param.low), int(param.low) + 1])
        for plan in plans:
            for t in plan.base.tricks:
                trick = TRICKS.build(t.name, t.params, f"variant {plan.key} trick {t.name}")
                for value in values:
                    try:
                        trick.check_train(plan.base.train.model_copy(update={"batch_size": value}))
                    except ValueError as exc:
                        fail(f"search.space.batch_size: variant {plan.key}, trick {t.name!r}: "
                             f"{exc}; search a 'choice' of such values")
