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
    common = {"net": "convnet", "net_params": {"nf": 16}, "n_steps": 20, "n_walkers": 64}  # n_walkers: jarzynski
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


def bench_jarzynski_overhead(quick: bool = False) -> None:
    """Jarzynski (paper 003 Alg. 1/2) against PCD (Alg. 4) per training iteration, same network,
    data batch, walker count and ULA steps, timed side by side; then the wall time of one
    GMM teacher-student run at the App. B.1 settings (paper 003 reports ~6% overhead on GPU)."""
    g = torch.Generator().manual_seed(0)
    print("train iteration, image ConvNet (short-run net of Nijkamp et al.), data batch 64;\n"
          "  Alg. 1 vs Alg. 4: N walkers, all moved, K = 1 ULA step per update (pcd: buffer = N chains, no restarts)\n"
          "  Alg. 2 vs PCD with mini-batches: N walkers, N' moved, K ULA steps per update, gradient over the\n"
          "  moved walkers; N/N' = 16 and K = 60 as in paper 003's CIFAR-10 runs (N = 4096, N' = 256; ref code K).\n"
          "  Alg. 2 adds one forward pass over all N walkers (work term) and one gradient over the N' moved\n"
          "  last update (second half of Eq. 5): about (N/N' / 3 + 1) / K of a PCD update")
    cases = [((1, 8, 8), 16, 256, 256, 1), ((3, 32, 32), 16, 64, 64, 1), ((1, 8, 8), 16, 1024, 64, 60),
             ((3, 32, 32), 16, 256, 16, 60)]
    for shape, nf, n, n_moved, k in cases[::2] if quick else cases:
        info = DataInfo(shape, True, 10)
        x = torch.rand((64, *shape), generator=g) * 2 - 1
        common = {"net": "convnet", "net_params": {"nf": nf}, "n_steps": k, "energy_reg": 0.0}
        ms = {
            "pcd": METHODS.get("pcd")({**common, "buffer_size": n, "n_chains": n_moved, "reinit_prob": 0.0},
                                      info, "cpu", 0),
            "jarzynski": METHODS.get("jarzynski")({**common, "n_walkers": n, "n_moved": n_moved, "walker_init": "noise",
                                                   "resample_threshold": 0.5, "grad_walkers": "moved"}, info, "cpu", 0),
        }
        fns = {name: (lambda m=m: m.train_step(x, 2)) for name, m in ms.items()}
        med = _median_time(fns, 5 if quick else 30)
        over = med["jarzynski"] / med["pcd"] - 1
        label = "Alg. 1" if n_moved == n else "Alg. 2"
        print(f"  {shape[1]}x{shape[2]}x{shape[0]} nf={nf}, N={n}, N'={n_moved}, K={k} ({label}):  "
              f"pcd {1e3 * med['pcd']:7.2f} ms/iter   jarzynski {1e3 * med['jarzynski']:7.2f} ms/iter   "
              f"overhead {100 * over:+.1f}%")
    bench_gmm_run(quick)


def bench_gmm_run(quick: bool = False) -> None:
    """Wall time of one GMM run at paper 003 App. B.1 (d = 50, N = n = 1e4, full batch,
    reference convention: 8,000 steps); quick: 100 steps, extrapolated."""
    import time

    from . import runs
    from .config import run_spec
    from .experiments.gmm_teacher import pipeline_config

    cfg = pipeline_config("reference")
    steps = int(cfg["datasets"]["gmm_b1"]["train"]["steps"])
    print(f"GMM teacher-student, App. B.1 settings, {torch.get_num_threads()} torch threads")
    for variant in cfg["variants"]:
        spec = run_spec(cfg, "gmm_b1", variant, 0)
        data = runs.load_data(spec)
        method = runs.build_method(spec, data)
        full = not quick and variant == "jarzynski"
        k = steps if full else 100
        t = time.perf_counter()
        for step in range(1, k + 1):
            method.train_step(data.x_train, step)
        wall = time.perf_counter() - t
        what = f"{wall:7.1f} s measured" if full else f"{wall * steps / k:7.1f} s extrapolated from {k} steps"
        print(f"  {variant:12s} {steps} steps: {what} ({1e3 * wall / k:.1f} ms/step)")


BENCHMARKS: dict[str, Callable[[bool], None]] = {
    "train_iteration": bench_train_iteration,
    "ula_vectorisation": bench_ula_vectorisation,
    "jarzynski_overhead": bench_jarzynski_overhead,
}


def run_benchmarks(quick: bool = False, threads: int | None = None, only: list[str] | None = None) -> None:
    from .errors import ConfigError

    unknown = sorted(set(only or ()) - set(BENCHMARKS))
    if unknown:
        raise ConfigError(f"unknown benchmark {unknown[0]!r}; known: {', '.join(BENCHMARKS)}")
    if threads:
        torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, fn in BENCHMARKS.items():
        if only and name not in only:
            continue
        print(f"\n== {name}")
        fn(quick)
