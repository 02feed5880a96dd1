"""A lock-free ``cached_property`` for the immutable descriptor objects (Python 3.12's semantics on 3.11 too).

Python 3.11's :class:`functools.cached_property` takes an ``RLock`` on first access, which ``torch.compile``
cannot trace; 3.12 dropped the lock. The descriptors are immutable, so computing a value twice in a race is
harmless: both threads store the same value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["cached_property"]


class cached_property:  # noqa: N801 - the name of the functools decorator it replaces
    """``@cached_property``: computed on first access, then stored in the instance's ``__dict__`` (which shadows
    this non-data descriptor from then on). Works on frozen dataclasses (the ``__dict__`` is written directly)."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = self.fn(obj)
        obj.__dict__[self.name] = value
        return value
