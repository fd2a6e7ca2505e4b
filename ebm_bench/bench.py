"""``ebm-bench bench``: costs measured side by side in one process, printed as ratios.

Timings never live in tests (they would be flaky on shared 2-core CI machines); they live
here. Each benchmark times its candidates interleaved (A, B, A, B, ...) so that machine
load affects all of them alike, and reports medians and ratios to a named baseline.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

from .methods.base import DataInfo
from .registry import METHODS


def _median_time(fns: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():  # warm-up
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_train_iteration(quick: bool = False) -> None:
    """Seconds per training iteration of every registered method, same data/net/batch."""
    info = DataInfo((1, 8, 8), True, 10)
    g = torch.Generator().manual_seed(0)
    x = torch.rand((512, 1, 8, 8), generator=g) * 2 - 1
    common = {"net": "convnet", "net_params": {"nf": 16}, "n_steps": 20}
    fns = {}
    for name, cls in METHODS.items():
        params = {k: v for k, v in common.items() if k in cls.defaults}
        m = cls({**params, **({"buffer_size": 1000} if "buffer_size" in cls.defaults else {})}, info, "cpu", 0)
        batch = x[:64]
        fns[name] = (lambda m=m, batch=batch: m.train_step(batch, 1))
    med = _median_time(fns, 3 if quick else 10)
    base = med.get("short_run") or min(med.values())
    print("train iteration, digits-size ConvNet (nf=16), batch 64, K=20 where applicable")
    for name, t in med.items():
        print(f"  {name:16s} {1e3 * t:8.2f} ms/iter   x{t / base:5.2f} vs short_run")


def bench_ula_vectorisation(quick: bool = False) -> None:
    """ULA over a batch of chains in one call vs the same chains stepped one at a time."""
    from .nets import build_net
    from .samplers import ULA

    net = build_net("mlp", (2,), {"hidden": 64, "depth": 2})
    ula = ULA(step_size=0.01)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 2, generator=g)
    med = _median_time(
        {
            "batched": lambda: ula.run(net, x, 10, g),
            "per_chain": lambda: [ula.run(net, x[i : i + 1], 10, g) for i in range(len(x))],
        },
        2 if quick else 5,
    )
    print("ULA, 256 chains x 10 steps, 2D MLP energy")
    print(f"  batched   {1e3 * med['batched']:8.2f} ms")
    print(f"  per chain {1e3 * med['per_chain']:8.2f} ms   speed-up x{med['per_chain'] / med['batched']:.1f}")


BENCHMARKS: dict[str, Callable[[bool], None]] = {
    "train_iteration": bench_train_iteration,
    "ula_vectorisation": bench_ula_vectorisation,
}


def run_benchmarks(quick: bool = False, threads: int | None = None, only: list[str] | None = None) -> None:
    if threads:
        torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, fn in BENCHMARKS.items():
        if only and name not in only:
            continue
        print(f"\n== {name}")
        fn(quick)
