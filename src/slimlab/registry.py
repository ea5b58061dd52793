"""A tiny name -> object registry, shared by datasets, models and treatments."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from slimlab.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self._items[name] = item
            return item

        return decorate

    def get(self, name: str, where: str | None = None) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.what, name, list(self._items), where) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
