"""A small decorator registry, as in timm's model registry: register by name, create by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from ensemble.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names mapped to classes or factories; unknown and duplicate names are clear errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding ``obj`` under ``name``; a second registration of the same name fails."""

        def add(obj: T) -> T:
            if name in self._entries:
                raise RegistryError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        """The entry registered as ``name``; an unknown name fails and lists the known ones."""
        if name not in self._entries:
            raise RegistryError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
