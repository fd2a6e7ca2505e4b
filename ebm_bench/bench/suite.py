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

from ebm_bench.core import progress
from ebm_bench.methods.base import DataInfo
from ebm_bench.core.registry import METHODS


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
    common = {"net": "convnet", "net_params": {"nf": 16}, "n_steps": 20, "n_walkers": 64,  # n_walkers: jarzynski
              "present_time": 0.2}  # hee: 20 Euler steps per update (its default is 30,000)
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
    from ebm_bench.nets import build_net
    from ebm_bench.samplers import ULA

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
    reference convention: 8,000 steps) through the training loop (in memory: the loop's
    own clock, the workflow's batches); quick: 100 steps, extrapolated."""
    from ebm_bench.training import runs
    from ebm_bench.training.loop import train
    from ebm_bench.pipeline.config import run_spec
    from ebm_bench.experiments.gmm_teacher import B1, pipeline_config

    cfg = pipeline_config("reference")
    steps = int(cfg["datasets"][B1]["train"]["steps"])
    print(f"GMM teacher-student, App. B.1 settings, {torch.get_num_threads()} torch threads")
    for variant in cfg["variants"]:
        spec = run_spec(cfg, B1, variant, 0)
        data = runs.load_data(spec)
        method = runs.build_method(spec, data)
        full = not quick and variant == "jarzynski"
        k = steps if full else 100
        status = train(method, data.x_train, {**spec["train"], "steps": k}, None, "", 0,
                       label=f"{B1}/{variant}", stage="bench gmm_run")  # 8,000 full-batch steps: minutes
        wall = float(status["wall_time_s"])
        what = f"{wall:7.1f} s measured" if full else f"{wall * steps / k:7.1f} s extrapolated from {k} steps"
        print(f"  {variant:12s} {steps} steps: {what} ({1e3 * wall / k:.1f} ms/step)")


def bench_hee_em_step(quick: bool = False) -> None:
    """HEE (paper 000 supp. Eq. 4-13): ms per EM step of the method's inference loop (with
    learning), first vs second order, interleaved. How fast each order reaches the
    posterior is analysis, not timing: ``ebm-bench hee-mixing``."""
    from ebm_bench.methods.hee import HEE

    info = DataInfo((2,), False)
    g = torch.Generator().manual_seed(0)
    base = {"layers": [10] * 5, "weight_init": 1.0, "tau_z": [1.0, 10.0], "dt": 0.01}
    xs = torch.randn(256, 2, generator=g)
    ms = {o: HEE({**base, "nonlinearity": "tanh", "order": o, "present_time": 1.0}, info, "cpu", 0) for o in (1, 2)}
    med = _median_time({f"order {o}": (lambda m=m: m.train_step(xs, 1)) for o, m in ms.items()}, 3 if quick else 10)
    n_em = ms[1].sampler_steps_per_iter
    print(f"cost per EM step (inference + interneurons + local learning, batch 256, tanh, {torch.get_num_threads()} "
          f"threads)")
    for k, t in med.items():
        print(f"  {k}: {1e3 * t / n_em:7.3f} ms/step")
    print(f"  second-order / first-order cost: x{med['order 2'] / med['order 1']:.2f}")


def bench_hee_inner_loop(quick: bool = False) -> None:
    """HEE's Euler loop (inference + interneurons + local learning, one training presentation)
    at supp. Table 1's 2D setting (L = 5 layers of 10, tau_z = linspace(1, 10), dt = 0.01,
    order 2, m = 0.5, tau_u = 0.1, tau_theta = 10) and batch 512: ms per Euler step of the
    eager loop (the reference), the fused one (``inner_loop: fused``) and the C one
    (``inner_loop: compiled``; its gcc build timed first, uncached, in a private cache
    directory), HEE-L and the nonlinear (tanh) model, timed interleaved in one process;
    then the projected wall time of a presentation (300 tau_x = 30,000 steps) and of
    paper.yaml's 300 presentations."""
    import os
    import tempfile

    from ebm_bench.methods.hee import HEE
    from ebm_bench.samplers import hee_compiled

    info = DataInfo((2,), False)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 2, generator=g)
    present = 0.5 if quick else 2.0  # tau_x timed per call (50 / 200 Euler steps)
    base = {"layers": [10] * 5, "tau_z": [1.0, 10.0], "tau_theta": 10.0, "present_time": present}
    print(f"HEE Euler step, supp. Table 1 2D setting (L=5 x 10, order 2, interneurons, learning), batch 512, "
          f"{torch.get_num_threads()} threads; {int(present / 0.01)} steps per timed call")
    loops = ["eager", "fused"]
    saved = os.environ.get("EBM_BENCH_KERNEL_CACHE")
    with tempfile.TemporaryDirectory() as tmp:  # an empty cache: the build is timed, not a cached load
        os.environ["EBM_BENCH_KERNEL_CACHE"] = tmp
        hee_compiled.forget()
        ok, why = hee_compiled.available()
        if saved is None:
            del os.environ["EBM_BENCH_KERNEL_CACHE"]
        else:
            os.environ["EBM_BENCH_KERNEL_CACHE"] = saved
        if ok:
            loops.append("compiled")
            print(f"  compiled kernel: gcc build + load {hee_compiled.compile_seconds():.2f} s (once per machine; "
                  f"cached afterwards)")
        else:
            print(f"  compiled kernel unavailable ({why}): eager and fused only")
    for nl in ("linear", "tanh"):
        ms = {loop: HEE({**base, "nonlinearity": nl, "inner_loop": loop}, info, "cpu", 0) for loop in loops}
        med = _median_time({k: (lambda m=m: m.train_step(x, 1)) for k, m in ms.items()}, 3 if quick else 7)
        n = ms["eager"].sampler_steps_per_iter
        t = {k: 1e3 * med[k] / n for k in loops}
        label = "HEE-L (linear)" if nl == "linear" else "HEE (tanh)"
        print(f"  {label:15s} " + "   ".join(f"{k} {t[k]:6.3f} ms/step" for k in loops)
              + "   speed-up " + ", ".join(f"{k}/eager x{t['eager'] / t[k]:5.2f}" for k in loops[1:])
              + (f", compiled/fused x{t['fused'] / t['compiled']:5.2f}" if "compiled" in t else ""))
        print(f"  {'':15s} per presentation (30,000 steps): "
              + " / ".join(f"{k} {30 * t[k]:5.1f} s" for k in loops)
              + ";   300 presentations: " + " / ".join(f"{k} {30 * t[k] * 300 / 60:5.1f} min" for k in loops))


def bench_gmm_reference(quick: bool = False, reference_dir: str | None = None, **_) -> None:
    """Paper 003 App. B.1 GMM update against the authors' script (ebm_bench/bench/gmm_reference.py)."""
    from ebm_bench.bench.gmm_reference import bench_gmm_reference as run

    run(quick, reference_dir=reference_dir)


def bench_reference(quick: bool = False, reference_dir: str | None = None, out: str | None = None,
                    method: str | None = None, updates: int | None = None, **_) -> None:
    """Update-level equivalence with the authors' code (ebm_bench/bench/reference/)."""
    from ebm_bench.bench.reference import run

    run(method, reference_dir, updates, out or "results/benchmarks/reference", quick=quick)


def bench_gpu(quick: bool = False, out: str | None = None, **_) -> None:
    """The GPU check of every paper.yaml row (ebm_bench/bench/gpu_check.py); --quick: CPU rehearsal."""
    from ebm_bench.bench.gpu_check import run

    if not quick and not torch.cuda.is_available():
        print("  skipped: no CUDA device (ebm-bench bench gpu --quick rehearses it on CPU at tiny sizes)")
        return
    run(out or ("results/benchmarks/gpu_quick" if quick else "results/benchmarks/gpu"), quick=quick)


def bench_cost_claim(quick: bool = False, out: str | None = None, repeats: int | None = None,
                     warmup: int | None = None, updates: int | None = None, threads: int | None = None,
                     first_seed: int = 0, **_) -> None:
    """Paper 003's cost claim as one update at the CIFAR-10 row's N, N', K and network, one
    thread, written as run records for the claims layer (ebm_bench/bench/cost_claim.py)."""
    from ebm_bench.bench.cost_claim import run

    run(out or ("results/benchmarks/cost_claim_quick" if quick else "results/paper_cpu"), quick=quick,
        repeats=repeats, warmup=warmup, updates=updates, threads=threads or 1,
        first_seed=first_seed or 0)


def bench_paper_smoke(quick: bool = False, out: str | None = None, data_root: str | None = None,
                      cores: int | None = None, datasets: list[str] | None = None, threads: int | None = None,
                      inception_weights: str | None = None, **_) -> None:
    """Every config/paper.yaml row end to end at full network size on CPU through the real
    DAG (ebm_bench/bench/paper_smoke.py); writes OUT/paper_smoke.json."""
    from ebm_bench.core.errors import ConfigError
    from ebm_bench.bench.paper_smoke import THREADS, run

    if not out or not data_root:
        raise ConfigError("bench paper_smoke needs --data-root DIR (MNIST/raw, FashionMNIST/raw) and --out OUT")
    run(out, data_root, cores=cores or 2, threads=threads or THREADS, inception_weights=inception_weights,
        only=datasets or None)


def bench_first_epochs(quick: bool = False, out: str | None = None, data_root: str | None = None,
                       datasets: list[str] | None = None, method: str | None = None, updates: int | None = None,
                       warmup: int | None = None, threads: int | None = None, **_) -> None:
    """The first epochs of a config/paper.yaml row (default paper 003's MNIST 2/3/6 Jarzynski
    row) on CPU: cost per update and per burn-in step, the weights' ESS and resamplings
    (ebm_bench/bench/first_epochs.py); writes OUT/first_epochs.{csv,json}."""
    from ebm_bench.core.errors import ConfigError
    from ebm_bench.bench.first_epochs import DATASET, VARIANT, run

    if not out:
        raise ConfigError("bench first_epochs needs --out OUT (and --data-root DIR holding MNIST/raw)")
    if datasets and len(datasets) != 1:
        raise ConfigError(f"bench first_epochs runs one row: --datasets {','.join(datasets)} names {len(datasets)}")
    run(out, data_root, dataset=(datasets or [DATASET])[0], variant=method or VARIANT, updates=updates,
        burn_in=warmup, quick=quick, threads=threads or 1)


BENCHMARKS: dict[str, Callable[..., None]] = {
    "train_iteration": bench_train_iteration,
    "ula_vectorisation": bench_ula_vectorisation,
    "jarzynski_overhead": bench_jarzynski_overhead,
    "hee_em_step": bench_hee_em_step,
    "hee_inner_loop": bench_hee_inner_loop,
    "gmm_reference": bench_gmm_reference,
    "reference": bench_reference,
    "gpu": bench_gpu,
    "cost_claim": bench_cost_claim,
    "paper_smoke": bench_paper_smoke,
    "first_epochs": bench_first_epochs,
}
# run only when named: hours on one CPU thread at the paper's sizes, and it writes run
# records (cost_claim); a Snakemake run of every paper.yaml row that needs data (paper_smoke);
# epochs of a paper row at full size, on real data (first_epochs)
EXPLICIT_ONLY = {"cost_claim", "paper_smoke", "first_epochs"}


def run_benchmarks(quick: bool = False, threads: int | None = None, only: list[str] | None = None,
                   **options) -> None:
    """``options`` (``out``, ``reference_dir``, ...) go to the benchmarks that take them;
    those in ``EXPLICIT_ONLY`` run only when named."""
    from ebm_bench.core.errors import ConfigError

    unknown = sorted(set(only or ()) - set(BENCHMARKS))
    if unknown:
        raise ConfigError(f"unknown benchmark {unknown[0]!r}; known: {', '.join(BENCHMARKS)}")
    if threads and "paper_smoke" not in (only or ()):  # paper_smoke: --threads is per Snakemake job
        torch.set_num_threads(threads)
    options["threads"] = threads
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, fn in BENCHMARKS.items():
        if only and name not in only:
            continue
        if not only and name in EXPLICIT_ONLY:
            print(f"\n== {name}: run only when named (ebm-bench bench {name} [--quick] --out DIR)")
            continue
        print(f"\n== {name}")
        with progress.scope("bench", name):  # the benchmark's loops print progress lines as bench: name
            if name in ("gmm_reference", "gpu", "reference", "cost_claim", "paper_smoke", "first_epochs"):  # cost_claim: 1 thread unless --threads
                fn(quick, **options)
            else:
                fn(quick)
