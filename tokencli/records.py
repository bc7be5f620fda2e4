"""Immutable value classes declared like dataclasses, without their start-up cost.

`dataclasses.dataclass` writes and compiles `__init__`, `__eq__`, `__repr__` (and
for frozen classes `__setattr__` and `__hash__`) for every class: about 0.7 ms
each. The settings every command reads and the `--json` documents are some
thirty such classes, which made start-up measurably slower. A `Record` reads
its fields from the class annotations once and shares one generic `__init__`;
type checkers see it as a frozen dataclass (PEP 681 `dataclass_transform`):

    class Budget(Record):
        name: str
        period: str = "month"
        scope: Scope = field(default_factory=Scope)

Fields are set in declaration order (a subclass's after its base's), positional
or by keyword; a `field(default_factory=...)` default is made per instance.
Instances compare and hash by their fields and refuse assignment; `replace()`
makes a changed copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Self, TypeVar, dataclass_transform

T = TypeVar("T")


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], T]) -> T:
    """A default made anew for each instance (a dict, a list, another record)."""
    return _Factory(default_factory)  # type: ignore[return-value]


@dataclass_transform(field_specifiers=(field,), frozen_default=True)
class Record:
    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields, defaults = list(cls._fields), dict(cls._defaults)
        # This class's own annotations (strings, never evaluated); `inspect` would
        # cost more start-up than the dataclasses this replaces.
        own = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
        for name, note in own.items():
            if "ClassVar" in str(note):
                continue
            if name not in fields:
                fields.append(name)
            if name in cls.__dict__:
                defaults[name] = cls.__dict__[name]
        cls._fields, cls._defaults = tuple(fields), defaults

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        name = type(self).__name__
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{name} takes at most {len(fields)} arguments, not {len(args)}")
        values = dict(zip(fields, args, strict=False))
        for key, value in kwargs.items():
            if key not in fields or key in values:
                raise TypeError(f"{name} got an unexpected or repeated argument {key!r}")
            values[key] = value
        for field_name in fields:
            if field_name in values:
                value = values[field_name]
            elif field_name in self._defaults:
                default = self._defaults[field_name]
                value = default.make() if isinstance(default, _Factory) else default
            else:
                raise TypeError(f"{name} needs {field_name!r}")
            object.__setattr__(self, field_name, value)

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes` made (what `dataclasses.replace` does for a dataclass)."""
        return type(self)(**{f: changes.pop(f, getattr(self, f)) for f in self._fields}, **changes)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; make a new one")

    def __delattr__(self, key: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__name__}({shown})"
