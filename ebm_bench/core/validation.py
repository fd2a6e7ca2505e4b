"""Per-key value checks of the registered components, run before any job.

Every registered dataset, network and method declares its parameters in ``defaults``;
how a value is checked comes from an optional ``checks`` class attribute (key ->
:class:`Check`), merged along the class hierarchy, and for every other key is inferred
from the default's type (see :func:`infer`). A class may also define a classmethod
``check_params(params)`` for rules that relate several keys; it receives the merged
parameters and raises :class:`~ebm_bench.core.errors.ConfigError`.

Networks declare their parameters as constructor keyword arguments: ``defaults`` of a
network is read from its ``__init__`` signature.

Every message is one line that starts with the config key path::

    datasets.rings.variant_params.*.stpe_size: unknown key; known: ...
    variants.pcd.step_size: -1 is out of range; expected > 0
"""

from __future__ import annotations

import inspect
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ebm_bench.core.errors import ConfigError

_TYPES = ("any", "int", "number", "str", "bool", "list", "dict")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class Check:
    """How one parameter value is checked.

    ``kind``: one of any, int, number (a finite int or float: nan, inf and -inf are
    refused), str, bool, list, dict.
    ``ge``/``gt``/``le``/``lt``: bounds of a number; ``choices``: allowed values;
    ``nullable``: ``None`` is allowed; ``item``: check of every element of a list,
    ``min_len``/``length`` its size; ``alt``: a second accepted form (e.g. a number or a
    list of numbers).
    """

    kind: str = "any"
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple | None = None
    nullable: bool = False
    item: "Check | None" = None
    min_len: int = 0
    length: int | None = None
    alt: "Check | None" = field(default=None)

    def __post_init__(self) -> None:
        if self.kind not in _TYPES:
            raise ValueError(f"Check kind {self.kind!r}; expected one of {_TYPES}")

    # --- description ----------------------------------------------------------------
    def describe(self) -> str:
        if self.choices is not None:
            what = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind == "list":
            what = "a list"
            if self.length is not None:
                what += f" of length {self.length}"
            elif self.min_len:
                what += f" of at least {self.min_len}"
            if self.item is not None:
                what += f" of {self.item.describe()}"
        else:
            what = {"any": "anything", "int": "an integer", "number": "a number", "str": "a string",
                    "bool": "true or false", "dict": "a mapping"}[self.kind]
            bounds = self._bounds()
            if bounds:
                what += f" {bounds}"
        if self.alt is not None:
            what += f", or {self.alt.describe()}"
        if self.nullable:
            what += ", or null"
        return what

    def _bounds(self) -> str:
        parts = []
        if self.gt is not None:
            parts.append(f"> {self.gt:g}")
        if self.ge is not None:
            parts.append(f">= {self.ge:g}")
        if self.lt is not None:
            parts.append(f"< {self.lt:g}")
        if self.le is not None:
            parts.append(f"<= {self.le:g}")
        return " and ".join(parts)

    # --- checking -------------------------------------------------------------------
    def problem(self, value: Any) -> str | None:
        """None if ``value`` passes, else why not (without the key)."""
        if value is None:
            return None if self.nullable or self.kind == "any" else f"null is not allowed; expected {self.describe()}"
        why = self._problem(value)
        if why is not None and self.alt is not None and self.alt.problem(value) is None:
            return None
        if why is not None and self.alt is not None:
            return f"{value!r} is not {self.describe()}"
        return why

    def _problem(self, value: Any) -> str | None:
        kind_ok = {
            "any": True,
            "int": _is_int(value),
            "number": _is_number(value),
            "str": isinstance(value, str),
            "bool": isinstance(value, bool),
            "list": isinstance(value, list),
            "dict": isinstance(value, dict),
        }[self.kind]
        if not kind_ok:
            return f"{value!r} has type {type(value).__name__}; expected {self.describe()}"
        if self.choices is not None and value not in self.choices:
            return f"{value!r} is not one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "number" and isinstance(value, float) and not math.isfinite(value):
            # nan passes no comparison and inf passes every lower bound; neither is a setting
            return f"{value!r} is not finite; expected {self.describe()}"
        if _is_number(value) and self.kind in ("int", "number"):
            ok = ((self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge)
                  and (self.lt is None or value < self.lt) and (self.le is None or value <= self.le))
            if not ok:
                return f"{value!r} is out of range; expected {self._bounds()}"
        if self.kind == "list":
            if self.length is not None and len(value) != self.length:
                return f"{value!r} has {len(value)} entries; expected {self.length}"
            if len(value) < self.min_len:
                return f"{value!r} has {len(value)} entries; expected at least {self.min_len}"
            if self.item is not None:
                for i, v in enumerate(value):
                    why = self.item.problem(v)
                    if why is not None:
                        return f"entry {i}: {why}"
        return None


# --- constructors used in the classes' `checks` ---------------------------------------


def integer(ge: int | None = None, le: int | None = None, nullable: bool = False) -> Check:
    return Check("int", ge=ge, le=le, nullable=nullable)


def number(ge: float | None = None, gt: float | None = None, le: float | None = None,
           lt: float | None = None, nullable: bool = False) -> Check:
    return Check("number", ge=ge, gt=gt, le=le, lt=lt, nullable=nullable)


def positive(nullable: bool = False) -> Check:
    """A number > 0 (step sizes, temperatures, learning rates)."""
    return number(gt=0, nullable=nullable)


def nonnegative(nullable: bool = False) -> Check:
    return number(ge=0, nullable=nullable)


def count(minimum: int = 1, nullable: bool = False) -> Check:
    """An integer >= ``minimum`` (steps, sizes)."""
    return integer(ge=minimum, nullable=nullable)


def fraction() -> Check:
    """A number strictly between 0 and 1."""
    return number(gt=0, lt=1)


def probability() -> Check:
    """A number in [0, 1]."""
    return number(ge=0, le=1)


def choice(*options: Any) -> Check:
    kind = "str" if all(isinstance(o, str) for o in options) else "any"
    return Check(kind, choices=tuple(options))


def list_of(item: Check | None = None, min_len: int = 0, length: int | None = None,
            nullable: bool = False) -> Check:
    return Check("list", item=item, min_len=min_len, length=length, nullable=nullable)


def either(first: Check, second: Check, nullable: bool = False) -> Check:
    """``first``, or else ``second`` (e.g. a number or a list of numbers)."""
    return Check(first.kind, ge=first.ge, gt=first.gt, le=first.le, lt=first.lt, choices=first.choices,
                 item=first.item, min_len=first.min_len, length=first.length, alt=second, nullable=nullable)


def infer(default: Any) -> Check:
    """The check of a key that declares none, from its default: its type (an int default
    takes integers, a float default any finite number, a list default a list of its first
    element's type); a default of None accepts anything."""
    if isinstance(default, bool):
        return Check("bool")
    if _is_int(default):
        return Check("int")
    if isinstance(default, float):
        return Check("number")
    if isinstance(default, str):
        return Check("str")
    if isinstance(default, (list, tuple)):
        return list_of(infer(default[0]) if default else None)
    if isinstance(default, dict):
        return Check("dict")
    return Check("any")


# --- a class's declared checks ------------------------------------------------------


def defaults_of(cls: Any) -> dict[str, Any]:
    """The parameters a component accepts, with their defaults. Networks: keyword
    arguments of ``__init__`` after the data shape."""
    if isinstance(getattr(cls, "defaults", None), dict):
        return dict(cls.defaults)
    sig = inspect.signature(cls.__init__)
    params = list(sig.parameters.values())[2:]  # self, shape
    return {p.name: (None if p.default is inspect.Parameter.empty else p.default) for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def checks_of(cls: Any) -> dict[str, Check]:
    """key -> Check for every key of ``defaults_of(cls)``: declared ``checks`` (merged
    along the class hierarchy, subclasses winning), else inferred from the default."""
    declared: dict[str, Check] = {}
    for klass in reversed(type.mro(cls) if isinstance(cls, type) else [cls]):
        declared.update(vars(klass).get("checks", {}) or {})
    return {k: declared.get(k) or infer(v) for k, v in defaults_of(cls).items()}


def known_keys(keys) -> str:
    return ", ".join(sorted(keys)) or "(none)"


def check_value(cls: Any, key: str, value: Any, path: str) -> None:
    """One key of ``cls`` at config path ``path`` (which ends in ``key``)."""
    checks = checks_of(cls)
    if key not in checks:
        raise ConfigError(f"{path}: unknown key; known: {known_keys(checks)}")
    why = checks[key].problem(value)
    if why is not None:
        raise ConfigError(f"{path}: {why}")


def check_block(cls: Any, block: dict[str, Any], path: str, skip: tuple[str, ...] = ()) -> None:
    """Every key of a config block (``variants.V``, ``datasets.D.params``, ...)."""
    for key, value in block.items():
        if key not in skip:
            check_value(cls, key, value, f"{path}.{key}")


def check_cross(cls: Any, params: dict[str, Any], path: str) -> None:
    """The class's own ``check_params(params)`` (rules relating several keys)."""
    hook = getattr(cls, "check_params", None)
    if hook is None:
        return
    try:
        hook(params)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def checked(cls: Any, params: dict[str, Any], path: str) -> dict[str, Any]:
    """``params`` checked key by key (:func:`check_block`), then merged over the
    defaults and checked by the class's cross-key rules (:func:`check_cross`); returns
    the merged parameters. The config check and a dataset load both run this."""
    check_block(cls, params, path)
    merged = {**defaults_of(cls), **params}
    check_cross(cls, merged, path)
    return merged


# --- containment --------------------------------------------------------------------


def inside(root: str | os.PathLike, path: str | os.PathLike, key: str) -> Path:
    """``root / path`` resolved (links followed); refused unless it lies inside ``root``."""
    base = Path(root).expanduser().resolve()
    target = (base / Path(path).expanduser()).resolve()
    if target != base and base not in target.parents:
        raise ConfigError(f"{key}: {str(path)!r} resolves to {target}, outside data_root {base}; "
                          f"datasets are read only from inside data_root")
    return target
