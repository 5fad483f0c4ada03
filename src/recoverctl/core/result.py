"""A result's JSON, declared on the result: one serialiser for every --json result.

A result is a frozen dataclass whose fields are its JSON fields, in order. What a field
needs beyond its value is said in its metadata (`meta(...)`): kept out (`internal`), named
otherwise, rounded, `null` when empty, its value's own fields spread in its place
(`flatten`), or placed after another JSON field (`after`). A JSON field computed from the
others is a property marked `@computed(after=...)`. cli/contract.py derives each command's
JSON Schema model from the same declarations, so a field is declared once.

A pydantic model is dumped as pydantic does it (its dates end in `Z`); a dataclass's dates
keep Python's `isoformat` (`+00:00`). A pydantic field whose JSON Schema type says more
than its annotation carries `Spec(schema=...)` in its `Annotated` metadata. An object
with a `to_json` of its own (the manifest and the drill record, which are also files on
disk) is asked for it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import PurePath
from typing import Any, TypeVar

from pydantic import BaseModel

_KEY = "recoverctl.json"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Spec:
    """How one field or property appears in the JSON."""

    name: str | None = None  # the JSON name when it is not the attribute's
    internal: bool = False  # not in the JSON at all
    digits: int | None = None  # rounded to this many decimals
    empty_is_null: bool = False  # "" (or any empty value) becomes null
    flatten: bool = False  # the value's own JSON fields, spread in this field's place
    pick: tuple[str, ...] = ()  # flattened: only these of them, in this order
    omit: tuple[str, ...] = ()  # flattened: all of them but these
    after: str | None = None  # placed after this JSON field; "" places it first
    encode: Callable[[Any], Any] | None = None  # a value whose JSON has a shape of its own
    schema: Any = None  # its JSON Schema type, when the annotation says less than the JSON


def meta(**spec: Any) -> dict[str, Spec]:
    """A dataclass field's metadata: `field(metadata=meta(name="modulus"))`."""
    return {_KEY: Spec(**spec)}


INTERNAL = meta(internal=True)


def computed(after: str | None = None, **spec: Any) -> Callable[[F], F]:
    """A property's getter that is a JSON field: `@property`, then `@computed(after=...)`."""

    def mark(getter: F) -> F:
        getter.__dict__[_KEY] = Spec(after=after, **spec)
        return getter

    return mark


@dataclass(frozen=True)
class Item:
    """One JSON field of a result class: its name, where its value comes from, its spec,
    and the attribute whose annotation is its type."""

    name: str
    attribute: str
    spec: Spec
    is_property: bool


def items(cls: type) -> tuple[Item, ...]:
    """The class's JSON fields in JSON order (before flattening)."""
    found: list[Item] = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(_KEY, Spec())
        if not spec.internal:
            found.append(Item(spec.name or f.name, f.name, spec, False))
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            if isinstance(value, property) and value.fget is not None:
                spec = getattr(value.fget, _KEY, None)
                if isinstance(spec, Spec):
                    found = [i for i in found if i.attribute != attr]
                    found.append(Item(spec.name or attr, attr, spec, True))
    ordered = [i for i in found if i.spec.after is None]
    for item in (i for i in found if i.spec.after is not None):
        names = [o.name for o in ordered]
        if item.spec.after == "":
            ordered.insert(0, item)
        elif item.spec.after in names:
            ordered.insert(names.index(item.spec.after) + 1, item)
        else:
            raise TypeError(f"{cls.__name__}.{item.attribute}: no JSON field {item.spec.after!r}")
    return tuple(ordered)


def is_declared(cls: type) -> bool:
    """A dataclass whose JSON comes from its declarations (not from its own to_json)."""
    own = getattr(cls, "to_json", None)
    return dataclasses.is_dataclass(cls) and (own is None or own is JsonResult.to_json)


def to_json(value: Any) -> Any:
    """A result, or any value inside one, as JSON-ready Python (dicts, lists, scalars)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, type):
        raise TypeError(f"{value.__name__} is a type, not a result")
    if dataclasses.is_dataclass(value) and is_declared(type(value)):
        return dict(_fields(value))
    own = getattr(value, "to_json", None)
    if callable(own):
        return own()
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    raise TypeError(f"{type(value).__name__} is not JSON")


def _fields(value: Any) -> Iterator[tuple[str, Any]]:
    for item in items(type(value)):
        raw = getattr(value, item.attribute)
        spec = item.spec
        if spec.flatten:
            spread = to_json(raw)
            if not isinstance(spread, dict):
                raise TypeError(f"{item.attribute} is not an object to flatten")
            if spec.pick:
                spread = {name: spread[name] for name in spec.pick}
            yield from ((k, v) for k, v in spread.items() if k not in spec.omit)
            continue
        if spec.empty_is_null and not raw:
            raw = None
        if spec.digits is not None and raw is not None:
            raw = round(raw, spec.digits)
        yield item.name, to_json(spec.encode(raw) if spec.encode and raw is not None else raw)


class JsonResult:
    """A result class's `to_json()`, for the callers that ask a result for its JSON."""

    __slots__ = ()

    def to_json(self) -> Any:
        return to_json(self)
