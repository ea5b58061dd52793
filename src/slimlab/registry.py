"""The one name -> object registry, used for datasets, models, treatments, bench backends, bench scenarios and
metrics.

An entry is registered once, by name, optionally with a one-line description and other metadata:

    MODELS.register("mlp", description="a multilayer perceptron")(ModelSpec(...))  # or as a decorator

A lookup of an unknown name raises `UnknownNameError`, whose message lists the known names. A config field
that names an entry uses `registry.name_type()`, so the accepted names always follow the registry (entries a
user registers at run time included), the error names the field, and the JSON schema lists the names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar, overload

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from slimlab.errors import UnknownNameError

T = TypeVar("T")
_MISSING: Any = object()


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    item: T
    description: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Named entries of one kind (`what`, e.g. "backend"), kept in registration order."""

    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T] = {}
        self._about: dict[str, tuple[str, dict[str, Any]]] = {}  # name -> (description, meta)

    # --- registering ---------------------------------------------------------------------------------

    @overload
    def register(self, name: str, *, description: str = "", **meta: Any) -> Callable[[T], T]: ...
    @overload
    def register(self, name: str, item: T, *, description: str = "", **meta: Any) -> T: ...
    def register(self, name: str, item: T = _MISSING, *, description: str = "", **meta: Any) -> Any:
        """Register `item` under `name`; without `item`, a decorator that registers what it decorates."""

        def decorate(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self._items[name] = obj
            self._about[name] = (description, dict(meta))
            return obj

        return decorate if item is _MISSING else decorate(item)

    def unregister(self, name: str) -> None:
        self.entry(name)
        del self._items[name]
        self._about.pop(name, None)

    @contextmanager
    def registered(self, name: str, item: T, *, description: str = "", **meta: Any) -> Iterator[T]:
        """`item` registered for the duration of a `with` block (tests, plugins tried out once)."""
        self.register(name, item, description=description, **meta)
        try:
            yield item
        finally:
            self._items.pop(name, None)
            self._about.pop(name, None)

    # --- looking up ----------------------------------------------------------------------------------

    def entry(self, name: str, where: str | None = None) -> Entry[T]:
        description, meta = self._about.get(name, ("", {})) if isinstance(name, str) else ("", {})
        return Entry(name, self.get(name, where), description, meta)

    def get(self, name: str, where: str | None = None) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.what, str(name), list(self._items), where) from None

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def names(self) -> list[str]:
        """The registered names, sorted (for messages and help)."""
        return sorted(self._items)

    def entries(self) -> list[Entry[T]]:
        """The entries in registration order."""
        return [self.entry(name) for name in self._items]

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self.names())})"

    # --- config fields -------------------------------------------------------------------------------

    def check(self, name: str) -> str:
        """`name` if it is registered; else a pydantic error (type "slimlab") that lists the known names.
        slimlab.config turns it into one line naming the field."""
        if name not in self._items:
            message = f"unknown {self.what} {name!r}; known: {', '.join(self.names())}"
            raise PydanticCustomError("slimlab", message)  # no context: the message is not formatted
        return name

    def name_type(self, description: str | None = None) -> Any:
        """A pydantic field type for one registered name: a `str`, checked against this registry when a
        config is validated, whose JSON schema lists the names registered when the schema is made."""

        def schema(s: dict[str, Any]) -> None:
            s["enum"] = self.names()

        return Annotated[
            str,
            AfterValidator(self.check),
            Field(description=description or f"a registered {self.what}", json_schema_extra=schema),
        ]
