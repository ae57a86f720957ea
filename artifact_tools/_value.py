"""Small value classes for the modules every inspection imports, written out instead of ``@dataclass``.

``dataclasses`` imports ``inspect`` (and with it ``ast``, ``dis`` and ``tokenize``): about 9 ms of a CLI start that
Python's own ``zipfile -l`` finishes in 30 ms, and each dataclass then builds its methods by compiling generated
code (0.2-0.5 ms per class, Python 3.11). A class on this base lists its fields in ``_fields`` and writes its own
``__init__`` (keyword names = field names); the base gives what a dataclass would: ``__repr__``, ``__eq__`` (same
class only), ``replace(**changes)`` (as ``dataclasses.replace``, through ``__init__``), and for
:class:`FrozenValue` a hash and refused assignment.
"""

from __future__ import annotations

from typing import Any, TypeVar

V = TypeVar("V", bound="Value")


class Value:
    """``__repr__``, ``__eq__`` and ``replace`` over ``_fields``; mutable, so unhashable (as a dataclass)."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def _values(self) -> tuple:
        return tuple(getattr(self, k) for k in self._fields)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in self._fields)})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]

    def replace(self: V, **changes: Any) -> V:
        """A copy with ``changes`` (field names) applied, built through ``__init__`` so that its checks run."""
        unknown = sorted(set(changes) - set(self._fields))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {', '.join(unknown)}")
        return type(self)(**{k: changes.get(k, getattr(self, k)) for k in self._fields})


class FrozenValue(Value):
    """A :class:`Value` whose fields cannot be assigned after ``__init__`` (which sets them with
    ``object.__setattr__``); hashable over its fields."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of a {type(self).__name__}")

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self._values())

    def __reduce__(self):  # copy, deepcopy and pickle rebuild it through __init__ (assignment is refused)
        return type(self), self._values()
