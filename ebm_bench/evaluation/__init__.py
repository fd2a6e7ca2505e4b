"""Metric families: what the evaluate stage computes for one run, one file each.

A family is a function registered with ``@register_family("name", order=N)`` in a module
of this package (the registry imports every module here, so adding a file adds a
family). The evaluate stage (:func:`ebm_bench.pipeline.stages.evaluate_stage`) calls every family
in ``order`` with one :class:`EvalContext` and writes what it returns to
``metrics/{name}.json``. A family

- returns ``None`` where it does not apply to the run (no labels, no known density, ...);
- otherwise returns ``(metrics, protocol)``: ``metrics`` maps metric names to floats (or
  ``None`` where a value cannot be computed, e.g. a diverged run: families must return
  their keys with ``None`` when ``ctx.ok`` is false), ``protocol`` is a JSON-able dict
  that says how the numbers were made; its ``"fingerprint"`` entry (a flat dict of the
  facts two values must share to be compared: feature extractor and weights hash, real
  split and size, number generated, library versions) is hashed by the stage;
- may flag a value its own diagnostic says not to trust: ``protocol["flags"][metric] =
  unreliable(reason)``; the text begins with ``UNRELIABLE`` ("unreliable: "), which the
  tables show as a note and the claims layer recognises (the stage adds the prefix to a
  flag that lacks it);
- may raise: the stage records ``status: error`` with the exception's message in that
  family's file and goes on with the next family (one broken metric never takes the
  run, or the suite, down).

Families read the layers below them (data, methods, metrics) and never each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ebm_bench.core.registry import Registry

FAMILIES: Registry[Any] = Registry("metric family", "ebm_bench.evaluation")


UNRELIABLE = "unreliable: "  # every flag text begins with it (the claims layer matches it)


def unreliable(reason: str) -> str:
    """The flag text of a metric its own diagnostic says not to trust."""
    return reason if reason.startswith(UNRELIABLE) else UNRELIABLE + reason


def register_family(name: str, order: int = 100) -> Callable:
    """Register ``fn(ctx) -> (metrics, protocol) | None`` as metric family ``name``."""

    def deco(fn: Callable) -> Callable:
        fn.order = order  # type: ignore[attr-defined]
        return FAMILIES.register(name)(fn)

    return deco


def kid_subsets(ev: dict[str, Any]) -> int:
    """Subsets KID and the samples' MMD average over (``evaluate.kid_subsets``)."""
    return int(ev.get("kid_subsets", 100))


def families() -> list[tuple[str, Callable]]:
    """Registered families in evaluation order."""
    return sorted(FAMILIES.items(), key=lambda kv: (getattr(kv[1], "order", 100), kv[0]))


@dataclass
class EvalContext:
    """Everything a family may read about one run (built once by the evaluate stage)."""

    spec: dict[str, Any]
    label: str
    run_dir: Path
    data: Any                      # ebm_bench.data.Dataset
    method: Any                    # the trained ebm_bench.methods.base.Method
    samples: np.ndarray            # samples.npz: uint8 images or float32 vectors
    status: str                    # "ok" or "diverged" (training or sampling)
    domain: Any = None             # DomainExtractor of the dataset, or None
    reference: Path | None = None  # the dataset's reference statistics (reference.npz)
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def ev(self) -> dict[str, Any]:
        return self.spec["evaluate"]

    @property
    def fake(self) -> torch.Tensor:
        return torch.from_numpy(self.samples)

    def log(self, msg: str) -> None:
        print(f"[{self.label}] {msg}", flush=True)
