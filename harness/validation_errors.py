"""One-line messages from pydantic validation errors: the key path, what is wrong, what is allowed.

Used for study files (:mod:`harness.config`) and for per-variant train overrides
(:mod:`harness.resolve`); kept apart from the schema so each stays one idea.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import pydantic
from pydantic import BaseModel


def _loc_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unwrap(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return [a for arg in typing.get_args(tp) for a in _unwrap(arg)]
    return [tp]


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class that owns the key at ``loc`` (for 'allowed keys' lists)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            current = field.annotation
            continue
        found = None
        for cand in _unwrap(current):
            origin = typing.get_origin(cand)
            args = typing.get_args(cand)
            if origin is list and isinstance(part, int):
                found = args[0]
            elif origin is dict and isinstance(part, str):
                found = args[1]
            if found is not None:
                break
        if found is None:
            return None
        current = found
    for cand in _unwrap(current):
        if isinstance(cand, type) and issubclass(cand, BaseModel):
            return cand
    return None


def format_validation_error(exc: pydantic.ValidationError, model: type[BaseModel]) -> str:
    """One line naming the key path, what is wrong and what is allowed."""
    err = exc.errors()[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    path = _loc_path(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        allowed = ", ".join(owner.model_fields) if owner else "?"
        return f"{path}: unknown key; allowed keys here: {allowed}"
    if err["type"] == "missing":
        return f"{path}: required key is missing"
    msg = err["msg"]
    msg = msg.removeprefix("Value error, ")
    inp = err.get("input")
    shown = "" if isinstance(inp, (dict, list)) or inp is None else f" (got {inp!r})"
    return f"{path}: {msg}{shown}"
