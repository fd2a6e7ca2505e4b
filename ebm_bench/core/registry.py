"""Name -> component registries (datasets, networks, methods, feature extractors).

Components register themselves with a decorator in the module that defines them; the
registry imports every module of its package on first use, so adding a file to
``ebm_bench/methods/`` (or ``data/``, ``nets/``) is all it takes to add a component.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, Generic, TypeVar

from ebm_bench.core.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, package: str):
        self.kind = kind
        self.package = package
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            try:
                obj.name = name  # type: ignore[attr-defined]
            except (AttributeError, TypeError):
                pass
            return obj

        return deco

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        pkg = importlib.import_module(self.package)
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{self.package}.{mod.name}")

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def get(self, name: str, key: str | None = None) -> T:
        self._load()
        if name not in self._items:
            where = f"{key}: " if key else ""
            raise ConfigError(f"{where}unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self._items[name]

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items

    def items(self) -> list[tuple[str, T]]:
        self._load()
        return sorted(self._items.items())


DATASETS: Registry[Any] = Registry("dataset", "ebm_bench.data")
NETWORKS: Registry[Any] = Registry("network", "ebm_bench.nets")
METHODS: Registry[Any] = Registry("method", "ebm_bench.methods")
