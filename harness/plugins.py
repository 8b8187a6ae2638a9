"""Loading plugins: the ``harness.plugins`` entry-point group and a study's ``plugins:`` list.

An entry point may name a module (imported; it registers at import time) or a
callable (called with no arguments). The built-ins arrive the same way: this
project's ``pyproject.toml`` declares ``builtin = "harness.builtin"``.

Study-file plugin modules are imported on the driver when the study is validated and
again in every trial process. The driver records the folder each module was imported
from and the trials put it on ``sys.path``, so a module that sits in a checkout (for
example ``tests/``) works without being installed.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from pathlib import Path
from types import ModuleType

from harness.errors import ConfigError, RegistryError

GROUP = "harness.plugins"
_loaded_entry_points: set[str] = set()


def load_group(group: str, what: str, error: type[Exception] = RegistryError) -> None:
    """Load every entry point of ``group`` once per process: a module is imported (it
    registers at import time), a callable is called with no arguments. A broken one raises
    ``error`` naming it (``what`` says what kind of plugin it is); a RegistryError of its
    own registration passes through as it is."""
    for ep in importlib.metadata.entry_points(group=group):
        key = f"{group}:{ep.name}={ep.value}"
        if key in _loaded_entry_points:
            continue
        _loaded_entry_points.add(key)
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, ModuleType):
                obj()
        except RegistryError:
            raise
        except Exception as exc:  # a broken third-party plugin must say who it is
            raise error(f"{what} {ep.name!r} ({ep.value}) failed to load: "
                        f"{type(exc).__name__}: {exc}") from exc


def load_entry_points() -> None:
    """Load every ``harness.plugins`` entry point once per process."""
    load_group(GROUP, "plugin entry point")


def load_plugins(modules: list[str] | tuple[str, ...] = (), paths: list[str] | tuple[str, ...] = (),
                 search_dirs: list[str | Path] | tuple[str | Path, ...] = ()) -> list[str]:
    """Load entry points, then import ``modules`` (after putting ``paths`` on ``sys.path``).

    ``search_dirs`` (the study file's folder, then the working directory) are *appended*
    to ``sys.path``: a study's own module next to its file imports without ``PYTHONPATH``
    or an install, and, being last, such a folder never hides an installed package (the
    built-ins live inside ``harness``, which is imported before any of this runs).

    Returns, for each module, the ``sys.path`` folder it was imported from, which the
    driver passes to trial processes.
    """
    load_entry_points()
    for p in paths:
        if p and p not in sys.path:
            sys.path.insert(0, p)
    for d in search_dirs:
        d = str(Path(d).resolve())
        if d not in sys.path:
            sys.path.append(d)
    roots = []
    for i, name in enumerate(modules):
        try:
            mod = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"plugins[{i}]: cannot import module {name!r}: {exc}") from None
        except RegistryError as exc:
            raise ConfigError(f"plugins[{i}]: module {name!r}: {exc}") from None
        roots.append(_import_root(mod, name))
    return roots


def _import_root(mod: ModuleType, name: str) -> str:
    file = getattr(mod, "__file__", None)
    if not file:
        return ""
    path = Path(file).resolve()
    depth = name.count(".") + (1 if path.name == "__init__.py" else 0)
    root = path.parent
    for _ in range(depth):
        root = root.parent
    return str(root)
