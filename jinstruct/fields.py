"""Typed values for dataclass configs from YAML, JSON and command-line strings.

One coercion for every config we read: the trainer's `TrainConfig`, the leaderboard's `ModelSpec`
and the demo's `DemoConfig`. The dataclass's own type hints say what a field holds, so a new field
needs no second list of names or types.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from jinstruct.names import check_keys

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def parse_bool(text: str) -> bool | None:
    """True/False for the usual spellings (true/false, yes/no, on/off, 1/0; any case); None otherwise."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def field_types(cls: type, name: str) -> tuple[type, ...]:
    """The types a dataclass field accepts, `None` left out (`int | str | None` -> (int, str))."""
    hint = typing.get_type_hints(cls)[name]
    union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    return tuple(a for a in (typing.get_args(hint) if union else (hint,)) if a is not type(None))


def admits_none(cls: type, name: str) -> bool:
    hint = typing.get_type_hints(cls)[name]
    return hint is Any or type(None) in typing.get_args(hint)


def coerce(cls: type, name: str, value: Any, where: str, error: type[Exception] = ValueError) -> Any:
    """`value` as the type of field `name` of dataclass `cls`: lists from comma-separated strings,
    booleans from true/false words, numbers from strings; a union tries its types in order."""
    kinds = field_types(cls, name)
    if value is None:
        if admits_none(cls, name):
            return None
        raise error(f"{where}: field {name!r} needs a value, got null")
    kind = kinds[0]
    origin = typing.get_origin(kind)
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return [str(v) for v in value]
    if kind is bool:
        if isinstance(value, str):
            parsed = parse_bool(value)
            if parsed is None:
                raise error(f"{where}: field {name!r} expects true/false, got {value!r}")
            return parsed
        return bool(value)
    if any(type(value) is k for k in kinds):  # already one of the accepted types
        return value
    for k in kinds:
        try:
            if k is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return (typing.get_origin(k) or k)(value)
        except (TypeError, ValueError):
            continue
    expected = " or ".join(getattr(k, "__name__", str(k)) for k in kinds)
    raise error(f"{where}: field {name!r} expects {expected}, got {value!r}") from None


def coerce_fields(
    cls: type,
    values: Mapping[str, Any],
    where: str,
    error: type[Exception] = ValueError,
    null_is_default: bool = False,
) -> dict[str, Any]:
    """`values` checked against the fields of dataclass `cls` (unknown keys named, with the closest
    field) and each coerced to its field's type: ready for `cls(**result)` or `dataclasses.replace`.
    With `null_is_default`, a key set to null is left out, so the field keeps its default."""
    check_keys(values, (f.name for f in dataclasses.fields(cls)), where, error)
    return {
        name: coerce(cls, name, value, where, error)
        for name, value in values.items()
        if not (null_is_default and value is None)
    }
