"""``ebm-bench bench cost_claim``: paper 003's cost claim measured as one update, on CPU.

Paper 003 (Sec. 4.3) reports Jarzynski (Alg. 2) at about +6% per update over PCD with
mini-batches (Alg. 4) on CIFAR-10 (36 h vs 34 h on one A100). The claim is a property of
one parameter update at the paper's N = 4096 walkers, N' = 256 moved, K = 60 ULA steps
and network, so it is measured here in one process on one thread:

- both methods are built from config/paper.yaml's CIFAR-10 rows (``jarzynski_systematic``
  and ``pcd_minibatch``: the short-run ConvNet with n_f = 128, N = 4096 chains, N' = 256
  drawn / moved per update, K = 60, the gradient over the moved walkers), resolved with
  :func:`ebm_bench.pipeline.config.run_spec`; Jarzynski's burn-in (unweighted ULA before training)
  is set to 0: it is not part of an update;
- the same random data batch (3 x 32 x 32, the row's batch size 512) feeds both;
- per repeat r (seed r for both methods: the same initial network), W warm-up then U timed
  updates of each method, interleaved (pcd, jarzynski, pcd, jarzynski, ...), so machine
  load touches both alike; ms per update = mean over the U timed updates;
- the table: per repeat the ms per update of each and jarzynski / pcd - 1; then the
  ratio's mean and spread, against the network-work floor (N + 3N') / (3KN')
  (docs/performance.md).

Each repeat is written in the run format the claims layer reads (``--out`` RESULTS_DIR):
``runs/cifar10_cost/{jarzynski,pcd}/seed{r}/train_status.json`` and ``metrics/cost.json``
(family ``cost``, as the evaluate stage writes it; provenance ``config/paper_cpu.yaml``),
paired by seed. ``timed_quietly`` is measured, not asserted: 1.0 only when, over the timed
updates, the 1-minute load average beside this process's threads stayed at most
``QUIET_OTHER_LOAD`` on average (``os.getloadavg``, read after each timed update) and the
process had at least ``QUIET_CPU_SHARE`` of a core per thread (CPU time / wall time); both
numbers go into the record (``load_other``, ``cpu_share``) so a reader sees how quiet.
config/claims.yaml's ``p003_cost`` design at scale ``paper`` judges them.

On one CPU thread one update at the paper's sizes takes minutes (K N' = 15,360 network
forward + backward passes at ~30 ms each); ``--repeats/--warmup/--updates`` size the run.
``--quick``: 2 repeats at tiny sizes (the test suite's check of the records).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from ebm_bench.core import progress
from ebm_bench.core.errors import ConfigError
from ebm_bench.evaluation.cost import PIPELINE_TIMING, QUIET_TIMING

ROOT = Path(__file__).resolve().parents[2]
PAPER_CONFIG = ROOT / "config" / "paper.yaml"
DATASET = "cifar10_cost"  # the records' dataset name (config/paper_cpu.yaml's comment block)
PROVENANCE = "config/paper_cpu.yaml"  # the config the claim's design names
ROWS = {"jarzynski": "jarzynski_systematic", "pcd": "pcd_minibatch"}  # record variant -> paper.yaml row
SOURCE_DATASET = "cifar10"
DEFAULTS = {"repeats": 5, "warmup": 1, "updates": 2}
QUICK = {"repeats": 2, "warmup": 1, "updates": 2}
# --quick: tiny network and populations, N / N' = 8 (<= 16) and K = 60 so the gates of
# cost_structure read the same way as at the paper's sizes
QUICK_SIZES = {"nf": 4, "n_walkers": 64, "n_moved": 8, "n_steps": 60, "batch_size": 16}
# a quiet machine: on average at most half a core of other runnable work beside the timed
# threads (a second job on a 2-core machine reads ~1.0), and the timed threads on a core
# at least 90% of the wall time (below that they waited for a core)
QUIET_OTHER_LOAD = 0.5
QUIET_CPU_SHARE = 0.9


def other_load(threads: int) -> float:
    """Runnable work beside this process's timed threads: the 1-minute load average minus
    ``threads``, floored at 0 (``os.getloadavg``; the average lags by about a minute, so it is
    read after every timed update and averaged)."""
    return max(0.0, os.getloadavg()[0] - threads)


def timed_quietly(loads: list[float], cpu_s: float, wall_s: float, threads: int) -> dict[str, float]:
    """``timed_quietly`` (1.0 / 0.0) with the two readings that decide it."""
    load = statistics.fmean(loads) if loads else float("inf")
    share = cpu_s / (wall_s * threads) if wall_s > 0 else 0.0
    quiet = load <= QUIET_OTHER_LOAD and share >= QUIET_CPU_SHARE
    return {"timed_quietly": QUIET_TIMING if quiet else PIPELINE_TIMING, "load_other": load, "cpu_share": share}


def method_specs(quick: bool, config_path: str | Path = PAPER_CONFIG) -> tuple[dict[str, dict], dict[str, Any]]:
    """{variant: run spec} of the two methods (seed 0) and facts of the setting."""
    from ebm_bench.pipeline.config import run_spec
    from ebm_bench.bench.gpu_check import data_info, load_config

    cfg = load_config(config_path)
    specs = {v: run_spec(cfg, SOURCE_DATASET, row, 0, "config/paper.yaml") for v, row in ROWS.items()}
    info = data_info(cfg, SOURCE_DATASET)
    j, p = specs["jarzynski"]["method_params"], specs["pcd"]["method_params"]
    # burn-in (both rows have one: Jarzynski's unweighted ULA, PCD's 2,000 steps on all
    # chains, the reference notebook's) happens before training, not in an update; left in,
    # PCD's alone is 2,000 ULA steps over 4,096 chains (~40 h on one thread)
    j["burn_in_steps"] = p["burn_in_steps"] = 0
    if quick:
        q = QUICK_SIZES
        for mp in (j, p):
            mp["net_params"] = {**(mp.get("net_params") or {}), "nf": q["nf"]}
            mp["n_steps"] = q["n_steps"]
        j.update(n_walkers=q["n_walkers"], n_moved=q["n_moved"])
        p.update(buffer_size=q["n_walkers"], n_chains=q["n_moved"])
        for s in specs.values():
            s["train"]["batch_size"] = q["batch_size"]
    for s in specs.values():
        s["device"] = "cpu"
    if j["net"] != p["net"] or j["net_params"] != p["net_params"] or j["n_steps"] != p["n_steps"]:
        raise RuntimeError("cost_claim: the two rows differ in network or K; they must match")
    facts = {"shape": tuple(info.shape), "batch_size": int(specs["pcd"]["train"]["batch_size"]),
             "N": int(j["n_walkers"]), "N_moved": int(j["n_moved"]), "K": int(j["n_steps"]),
             "pcd_chains": int(p["n_chains"]), "pcd_buffer": int(p["buffer_size"]), "net": j["net"],
             "net_params": dict(j["net_params"]), "info": info}
    return specs, facts


def _record(out: Path, variant: str, seed: int, method, spec: dict, ms: float, warmup: int, updates: int,
            quietness: dict[str, float]) -> None:
    """train_status.json + metrics/cost.json of one (variant, repeat), as the pipeline writes them."""
    from ebm_bench.evaluation.cost import sampler_steps_per_update, walkers_per_moved
    from ebm_bench.core.io import write_json
    from ebm_bench.core.artefacts import clean_metrics, fingerprint_id
    from ebm_bench.training.loop import n_trainable

    run_dir = out / "runs" / DATASET / variant / f"seed{seed}"
    (run_dir / "metrics").mkdir(parents=True, exist_ok=True)
    params = spec["method_params"]
    threads = torch.get_num_threads()
    per_iter = int(method.sampler_steps_per_iter)
    n_params = n_trainable(method)
    provenance = {"config": PROVENANCE}
    write_json({"status": "ok", "diverged_step": None, "steps": warmup + updates, "timed_updates": updates,
                "warmup_updates": warmup, "time_per_update_ms": ms, "n_params": n_params,
                "sampler_steps_per_iter": per_iter, "device": "cpu", "threads": threads,
                "source_row": f"config/paper.yaml {SOURCE_DATASET}/{ROWS[variant]}",
                "written_by": "ebm-bench bench cost_claim", "provenance": provenance},
               run_dir / "train_status.json")
    metrics = {"time_per_update_ms": ms,
               "walkers_per_moved": walkers_per_moved(method, params, int(spec["train"]["batch_size"])),
               "sampler_steps_per_update": sampler_steps_per_update(params, per_iter),
               **quietness,
               "n_params": n_params}
    fingerprint = {"device": "cpu", "threads": threads, "torch": torch.__version__}
    protocol = {"directions": {k: "" for k in metrics}, "steps": updates, "warmup": warmup, "device": "cpu",
                "resumed_from": None, "n_sampled": None, "interleaved": True, "fingerprint": fingerprint}
    doc = {"dataset": DATASET, "variant": variant, "method": spec["method"], "seed": seed, "family": "cost",
           "status": "ok", "metrics": clean_metrics(metrics), "protocol": protocol,
           "fingerprint": fingerprint_id(fingerprint), "provenance": provenance}
    write_json(doc, run_dir / "metrics" / "cost.json")


def run(out: str | Path, quick: bool = False, repeats: int | None = None, warmup: int | None = None,
        updates: int | None = None, threads: int = 1, first_seed: int = 0, say=print) -> list[dict[str, float]]:
    """Time both methods per repeat, write the records, print the table; returns the rows.
    Repeats run seeds ``first_seed`` .. ``first_seed + repeats - 1``, so a session can add
    repeats to earlier ones (one repeat at the paper's sizes is ~15 min on one core)."""
    from ebm_bench.core.registry import METHODS

    base = QUICK if quick else DEFAULTS
    repeats = int(repeats or base["repeats"])
    warmup = int(base["warmup"] if warmup is None else warmup)
    updates = int(updates or base["updates"])
    torch.set_num_threads(int(threads))
    specs, f = method_specs(quick)
    out = Path(out)
    n, nm, k = f["N"], f["N_moved"], f["K"]
    floor = (n + 3 * nm) / (3 * k * nm)
    say(f"paper 003 cost claim, CIFAR-10 row of config/paper.yaml{' (--quick: tiny sizes)' if quick else ''}: "
        f"{f['net']} {f['net_params']}, data batch {f['batch_size']} x {'x'.join(map(str, f['shape']))}, "
        f"K = {k}\n  jarzynski (Alg. 2): N = {n}, N' = {nm} moved, gradient over the moved walkers;  "
        f"pcd (Alg. 4): buffer {f['pcd_buffer']}, {f['pcd_chains']} chains per update\n"
        f"  {torch.get_num_threads()} thread(s), torch {torch.__version__}; per repeat {warmup} warm-up + {updates} "
        f"timed updates each, interleaved; network-work floor (N + 3N')/(3KN') = {100 * floor:+.1f}%")
    g = torch.Generator().manual_seed(12345)
    batch = torch.rand((f["batch_size"], *f["shape"]), generator=g) * 2 - 1
    rows = []
    t_all = time.perf_counter()
    # the updates' samplers tick inside this task (their lines say where a long update is)
    if int(first_seed) < 0:
        raise ConfigError(f"--first-seed = {first_seed}; expected >= 0")
    first = int(first_seed)
    with progress.Task("update", repeats * (warmup + updates)) as task:
        for r in range(first, first + repeats):
            ms = {v: METHODS.get(s["method"])(s["method_params"], f["info"], torch.device("cpu"), r)
                  for v, s in specs.items()}
            order = ["pcd", "jarzynski"]
            times: dict[str, list[float]] = {v: [] for v in order}
            loads: list[float] = []
            cpu_s = wall_s = 0.0
            for step in range(1, warmup + updates + 1):
                for v in order:
                    t, c = time.perf_counter(), time.process_time()
                    ms[v].train_step(batch, step)
                    dt, dc = time.perf_counter() - t, time.process_time() - c
                    if step > warmup:
                        times[v].append(dt)
                        cpu_s, wall_s = cpu_s + dc, wall_s + dt
                        loads.append(other_load(torch.get_num_threads()))
                    if not quick:  # minutes per update at the paper's sizes: say where it is
                        say(f"    seed {r} update {step} ({'timed' if step > warmup else 'warm-up'}) {v}: "
                            f"{1e3 * dt:.0f} ms")
                task.tick((r - first) * (warmup + updates) + step, f"seed {r}")
            per = {v: 1e3 * statistics.fmean(times[v]) for v in order}
            quietness = timed_quietly(loads, cpu_s, wall_s, torch.get_num_threads())
            for v in order:
                _record(out, v, r, ms[v], specs[v], per[v], warmup, updates, quietness)
            row = {"seed": r, "pcd_ms": per["pcd"], "jarzynski_ms": per["jarzynski"],
                   "overhead": per["jarzynski"] / per["pcd"] - 1, **quietness}
            rows.append(row)
            say(f"  repeat {r} (seed {r}): pcd {row['pcd_ms']:10.1f} ms/update   jarzynski {row['jarzynski_ms']:10.1f} "
                f"ms/update   jarzynski/pcd - 1 = {100 * row['overhead']:+6.2f}%   "
                f"{'quiet' if row['timed_quietly'] else 'NOT quiet'} (other load {row['load_other']:.2f}, "
                f"CPU share {row['cpu_share']:.2f})   [{time.perf_counter() - t_all:.0f} s so far]")
    ov = [row["overhead"] for row in rows]
    sd = statistics.stdev(ov) if len(ov) > 1 else float("nan")
    say(f"  jarzynski/pcd - 1 over {len(ov)} repeats: mean {100 * statistics.fmean(ov):+.2f}%, sd {100 * sd:.2f}%, "
        f"min {100 * min(ov):+.2f}%, max {100 * max(ov):+.2f}%  (paper: +6% on one A100; floor {100 * floor:+.1f}%)")
    say(f"  records: {out / 'runs' / DATASET}/{{jarzynski,pcd}}/seed<r> (provenance {PROVENANCE}); "
        f"wall {time.perf_counter() - t_all:.0f} s")
    return rows
