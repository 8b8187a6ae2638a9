"""Sections of the report: :class:`Section`, and the ordered registry the report is built from.

The report is its sections, in registry order (the built-in ones:
:mod:`harness.reports.sections`). A new section is a :class:`Section` subclass registered
with :func:`register_section`, placed ``before`` or ``after`` a registered one (default:
last). A package adds one from a module that registers it when imported, named in the
``harness.report_sections`` entry-point group; the report imports those modules before it
writes (:func:`sections`).
"""

from __future__ import annotations

import abc
import inspect
import re
from collections.abc import Callable
from pathlib import Path

from harness.errors import ConfigError, RegistryError
from harness.reports.context import ReportContext

#: the entry-point group of modules that register report sections
GROUP = "harness.report_sections"
_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")


class Section(abc.ABC):
    """One part of the report (a heading and what follows it). A fresh instance writes each
    report."""

    @abc.abstractmethod
    def write(self, ctx: ReportContext) -> list[Path]:
        """Called once per report, in registry order, after every section before it has
        written: append this section's blocks to ``ctx.doc`` (nothing where it does not
        apply to the study), write its figures into ``ctx.out_dir``, and return the paths
        of the files written."""


class SectionRegistry:
    """Name -> :class:`Section` subclass, in the order the report shows them."""

    def __init__(self) -> None:
        self._items: dict[str, type[Section]] = {}

    def register(self, name: str, cls: type[Section], *, before: str | None = None,
                 after: str | None = None) -> type[Section]:
        """Add ``cls`` as ``name``, before or after a registered section (default: last);
        refuses bad names, non-sections, abstract classes and duplicates."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise RegistryError(f"cannot register section {name!r}: names are lower-case "
                                "letters, digits, '_' or '-', starting with a letter")
        if not (isinstance(cls, type) and issubclass(cls, Section)):
            raise RegistryError(f"cannot register section {name!r}: expected a subclass of "
                                f"harness.reports.Section, got {cls!r}")
        if inspect.isabstract(cls):
            raise RegistryError(f"cannot register section {name!r}: {cls.__qualname__} "
                                "does not implement write()")
        if name in self._items:
            existing = self._items[name]
            raise RegistryError(f"section {name!r} is already registered by "
                                f"{existing.__module__}.{existing.__qualname__}")
        if before is not None and after is not None:
            raise RegistryError(f"cannot register section {name!r}: give before or after, "
                                "not both")
        order = list(self._items)
        anchor = before if before is not None else after
        if anchor is not None:
            self._known(anchor)
        at = len(order) if anchor is None else order.index(anchor) + (after is not None)
        order.insert(at, name)
        cls.registered_name = name
        items = {**self._items, name: cls}
        self._items = {n: items[n] for n in order}
        return cls

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests and interactive sessions)."""
        self._items.pop(name, None)

    def _known(self, name: str) -> type[Section]:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise RegistryError(f"unknown section {name!r}; registered, in report order: "
                                f"{', '.join(self._items) or '(none)'}") from None

    def get(self, name: str) -> type[Section]:
        return self._known(name)

    def names(self) -> list[str]:
        """The registered sections' names, in report order."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


SECTIONS = SectionRegistry()


def register_section(name: str, cls: type[Section] | None = None, *,
                     before: str | None = None, after: str | None = None) -> Callable | type:
    """Register a :class:`Section` (usable as ``@register_section("name", after="pairwise")``)."""
    if cls is not None:
        return SECTIONS.register(name, cls, before=before, after=after)

    def deco(c: type[Section]) -> type[Section]:
        return SECTIONS.register(name, c, before=before, after=after)

    return deco


def load_entry_points() -> None:
    """Import every ``harness.report_sections`` entry point's module once per process."""
    from harness.plugins import load_group

    load_group(GROUP, "report section plugin", ConfigError)


def sections() -> list[tuple[str, type[Section]]]:
    """``[(name, class)]`` of every registered section, the installed plugins' included,
    in report order. (The built-ins are registered when :mod:`harness.reports` is imported.)"""
    load_entry_points()
    return [(name, SECTIONS.get(name)) for name in SECTIONS.names()]
