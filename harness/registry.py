"""Registries of the plugins a study is built from: models, losses, tricks, datasets, metrics.

Each registry holds classes of one abstract base. A class's constructor keyword
arguments *are* its parameters: their annotations validate the values a study file
gives (through pydantic) and their defaults are what ``harness variants`` prints.

Built-in plugins (the :mod:`harness.builtin` package) register exactly like third-party
ones, through :func:`register_model` & co., so the core modules name no built-in.

A metric's declared values (:attr:`harness.metrics.Metric.values`) are checked against what
it provides when it is registered, and recorded in :mod:`harness.value_specs`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pydantic

from harness import value_specs
from harness.data import Dataset
from harness.errors import ConfigError, RegistryError
from harness.losses import Loss
from harness.metrics import Metric
from harness.models import Model
from harness.tricks import Trick

T = TypeVar("T")
_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")
_EMPTY = inspect.Parameter.empty


@dataclass(frozen=True)
class Param:
    """One constructor parameter of a registered plugin."""

    name: str
    annotation: Any
    default: Any  # inspect.Parameter.empty when required

    @property
    def required(self) -> bool:
        return self.default is _EMPTY

    def describe(self) -> str:
        ann = _type_name(self.annotation)
        text = self.name + (f": {ann}" if ann else "")
        return text if self.required else f"{text} = {self.default!r}"


def _init_params(cls: type) -> list[inspect.Parameter]:
    """Constructor parameters without ``self`` (none when the class defines no ``__init__``)."""
    if cls.__init__ is object.__init__:
        return []
    return list(inspect.signature(cls.__init__, eval_str=True).parameters.values())[1:]


def _type_name(annotation: Any) -> str:
    if annotation is _EMPTY:
        return ""
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


class Registry(Generic[T]):
    """Name -> plugin class for one kind of plugin, with validated registration."""

    def __init__(self, kind: str, base: type):
        self.kind = kind
        self.base = base
        self._items: dict[str, type] = {}

    # -- registration ---------------------------------------------------------------
    def register(self, name: str, cls: type) -> type:
        """Add ``cls`` under ``name``; refuses bad names, wrong types and duplicates."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise RegistryError(
                f"cannot register {self.kind} {name!r}: names are lower-case letters, digits, "
                "'_' or '-', starting with a letter"
            )
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise RegistryError(
                f"cannot register {self.kind} {name!r}: expected a subclass of "
                f"{self.base.__module__}.{self.base.__qualname__}, got {cls!r}"
            )
        if inspect.isabstract(cls):
            missing = ", ".join(sorted(cls.__abstractmethods__))
            raise RegistryError(
                f"cannot register {self.kind} {name!r}: {cls.__qualname__} leaves abstract "
                f"methods unimplemented: {missing}"
            )
        existing = self._items.get(name)
        if existing is not None:
            raise RegistryError(
                f"{self.kind} {name!r} is already registered by "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        for p in _init_params(cls):
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise RegistryError(
                    f"cannot register {self.kind} {name!r}: its constructor takes *{p.name}; "
                    "parameters must be named keyword arguments"
                )
        self._admit(name, cls)
        cls.registered_name = name
        self._items[name] = cls
        return cls

    def _admit(self, name: str, cls: type) -> None:
        """Last check before ``cls`` is added, for what one kind of plugin must declare;
        raises :class:`RegistryError`. Nothing by default."""

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests and interactive sessions)."""
        self._items.pop(name, None)

    # -- lookup -----------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def get(self, name: str) -> type:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            choices = ", ".join(self.names()) or "(none registered)"
            raise RegistryError(f"unknown {self.kind} {name!r}; registered: {choices}") from None

    def params(self, name: str) -> list[Param]:
        return [Param(p.name, p.annotation, p.default) for p in _init_params(self.get(name))]

    def validate_params(self, name: str, params: dict[str, Any], where: str) -> dict[str, Any]:
        """Check ``params`` against ``name``'s constructor; return them coerced to its types.

        ``where`` is the key path used in error messages (e.g. ``variants[0].model.params``).
        """
        known = {p.name: p for p in self.params(name)}
        unknown = sorted(set(params) - set(known))
        if unknown:
            allowed = ", ".join(known) or "(none)"
            raise ConfigError(
                f"{where}.{unknown[0]}: unknown parameter of {self.kind} {name!r}; "
                f"allowed: {allowed}"
            )
        out: dict[str, Any] = {}
        for key, value in params.items():
            ann = known[key].annotation
            if ann is _EMPTY:
                out[key] = value
                continue
            try:
                out[key] = pydantic.TypeAdapter(ann).validate_python(value)
            except pydantic.ValidationError as exc:
                msg = exc.errors()[0]["msg"]
                raise ConfigError(f"{where}.{key}: {msg} (got {value!r})") from None
        missing = [p.name for p in known.values() if p.required and p.name not in out]
        if missing:
            raise ConfigError(f"{where}.{missing[0]}: required parameter of {self.kind} {name!r}")
        return out

    def build(self, name: str, params: dict[str, Any] | None = None, where: str = "params") -> T:
        """Validate ``params`` and construct the plugin; constructor ValueErrors become ConfigErrors."""
        cls = self.get(name)
        clean = self.validate_params(name, dict(params or {}), where)
        try:
            return cls(**clean)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: {self.kind} {name!r}: {exc}") from None

    def describe(self) -> list[tuple[str, str, list[Param]]]:
        """(name, first docstring line, params) for every registered item."""
        rows = []
        for name in self.names():
            own = self._items[name].__dict__.get("__doc__")  # not the base class's docstring
            doc = inspect.cleandoc(own) if own else ""
            rows.append((name, doc.splitlines()[0] if doc else "", self.params(name)))
        return rows


def _decorator(registry: Registry, name: str, cls: type | None) -> Callable | type:
    if cls is not None:
        return registry.register(name, cls)

    def deco(c: type) -> type:
        return registry.register(name, c)

    return deco


class MetricRegistry(Registry[Metric]):
    """Metrics: each declares a :class:`~harness.value_specs.ValueSpec` for every value it
    provides, and its declarations go to :mod:`harness.value_specs` while it is registered."""

    def _admit(self, name: str, cls: type) -> None:
        values = cls.values
        if not isinstance(values, dict):
            raise RegistryError(f"cannot register {self.kind} {name!r}: {cls.__qualname__}.values "
                                f"must be a dict of value name -> ValueSpec, got {values!r}")
        provided, declared = set(cls.provides), set(values)
        if provided != declared:
            undeclared = ", ".join(sorted(provided - declared)) or "none"
            unprovided = ", ".join(sorted(declared - provided)) or "none"
            raise RegistryError(
                f"cannot register {self.kind} {name!r}: {cls.__qualname__}.values disagrees with "
                f"its provides (provided without a ValueSpec: {undeclared}; declared but not "
                f"provided: {unprovided})")
        value_specs.declare(name, values)

    def unregister(self, name: str) -> None:
        super().unregister(name)
        value_specs.withdraw(name)


# One registry per abstract base.
MODELS: Registry[Model] = Registry("model", Model)
LOSSES: Registry[Loss] = Registry("loss", Loss)
TRICKS: Registry[Trick] = Registry("trick", Trick)
DATASETS: Registry[Dataset] = Registry("dataset", Dataset)
METRICS: Registry[Metric] = MetricRegistry("metric", Metric)
ALL = {"models": MODELS, "losses": LOSSES, "tricks": TRICKS, "datasets": DATASETS, "metrics": METRICS}


def register_model(name: str, cls: type | None = None):
    """Register a :class:`~harness.models.Model` (usable as ``@register_model("name")``)."""
    return _decorator(MODELS, name, cls)


def register_loss(name: str, cls: type | None = None):
    """Register a :class:`~harness.losses.Loss`."""
    return _decorator(LOSSES, name, cls)


def register_trick(name: str, cls: type | None = None):
    """Register a :class:`~harness.tricks.Trick`."""
    return _decorator(TRICKS, name, cls)


def register_dataset(name: str, cls: type | None = None):
    """Register a :class:`~harness.data.Dataset`."""
    return _decorator(DATASETS, name, cls)


def register_metric(name: str, cls: type | None = None):
    """Register a :class:`~harness.metrics.Metric`."""
    return _decorator(METRICS, name, cls)
