"""Validation of typed configuration dataclasses: each field's value against its annotation, one precise message.

Configuration arrives from YAML, where ``1e-3`` is read as a string (PyYAML follows YAML 1.1, whose floats need a
dot) and ``1:30`` as the number 90 (base 60). :func:`check_fields` therefore converts what is unambiguous (a
numeric string for a number field, an integral float for an integer field) and refuses everything else with a
:class:`~mlip.errors.MLIPInputError` naming ``section.field``, the expected type and the value received.

Supported annotations: ``bool``, ``int``, ``float``, ``str``, ``dict``, ``Any``, ``X | None``, ``list[X]``,
``tuple[X, ...]`` and dataclass types (an instance or a mapping passes; the dataclass validates the mapping
itself).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from mlip.errors import MLIPInputError

__all__ = ["check_choice", "check_fields", "check_range"]


class _Mismatch(Exception):
    pass


def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        item = typing.get_args(tp)[0]
        plural = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}
        return f"a list of {plural.get(item, _describe(item))}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        dict: "a mapping",
    }.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value, tp):
    """``value`` converted to ``tp`` where unambiguous; raises ``_Mismatch`` otherwise."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _Mismatch
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        item = typing.get_args(tp)[0]
        out = [_coerce(v, item) for v in value]
        return tuple(out) if origin is tuple else out
    if dataclasses.is_dataclass(tp):
        if isinstance(value, (tp, dict)):
            return value
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise _Mismatch from None
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            return int(value)
        raise _Mismatch
    if tp is float:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise _Mismatch from None
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if tp is dict:
        if isinstance(value, dict):
            return value
        raise _Mismatch
    return value


def check_fields(obj, section: str) -> None:
    """Check (and convert in place) every field of the dataclass instance ``obj`` against its annotation.

    ``section`` prefixes the field names in messages (``"train"`` -> ``train.lr``). Works on frozen dataclasses.
    """
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        tp = hints.get(f.name, Any)
        try:
            converted = _coerce(value, tp)
        except _Mismatch:
            hint = ""
            if isinstance(value, int) and not isinstance(value, bool) and tp in (str, str | None):
                hint = " (quote it in YAML: an unquoted 1:30 is read as the number 90)"
            raise MLIPInputError(f"{section}.{f.name} must be {_describe(tp)}, got {value!r}{hint}") from None
        if isinstance(converted, float) and not math.isfinite(converted):
            raise MLIPInputError(f"{section}.{f.name} must be finite, got {value!r}")
        if converted is not value:
            object.__setattr__(obj, f.name, converted)


def check_range(
    obj, section: str, name: str, *, low=None, high=None, low_open: bool = False, high_open: bool = False
) -> None:
    """Refuse ``obj.name`` outside ``[low, high]`` (``low_open``/``high_open`` exclude the ends); ``None`` passes."""
    value = getattr(obj, name)
    if value is None:
        return
    bad = (low is not None and (value < low or (low_open and value == low))) or (
        high is not None and (value > high or (high_open and value == high))
    )
    if bad:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low}"
        hi = "" if high is None else f"{high}" + (")" if high_open else "]")
        if low is not None and high is not None:
            want = f"in {lo}, {hi}"
        elif low is not None:
            want = f"> {low}" if low_open else f">= {low}"
        else:
            want = f"< {high}" if high_open else f"<= {high}"
        raise MLIPInputError(f"{section}.{name} must be {want}, got {value!r}")


def check_choice(obj, section: str, name: str, choices) -> None:
    """Refuse ``obj.name`` not among ``choices``."""
    value = getattr(obj, name)
    if value not in choices:
        raise MLIPInputError(f"{section}.{name} must be one of {list(choices)}, got {value!r}")
