"""``ebm-bench bench first_epochs``: the first epochs of a config/paper.yaml row on CPU.

    ebm-bench bench first_epochs --data-root DIR --out OUT [--datasets mnist_236]
        [--method jarzynski_multinomial] [--updates N] [--warmup BURN_IN] [--quick]

Paper 003's biased MNIST (Sec. 4.2) at the authors' settings is 46,200 updates: GPU work.
What one CPU core can say about it: the cost of one update and of one burn-in ULA step at
the row's full sizes, the projected hours of the whole row, and whether the Jarzynski
weights stay as healthy over the first epochs as the paper reports (Fig. 4: the ESS of the
unresampled weights; one resampling in the whole run of Fig. 4, four in App. B.3's runs).

The row is config/paper.yaml's (``run_spec``: the one source of its settings) with two
changes, both printed and written into the summary:

- ``train.steps`` = ``--updates`` (default: ``EPOCHS`` epochs of ceil(n_train / batch)
  updates), a log row every update;
- ``burn_in_steps`` = ``--warmup`` (default ``BURN_IN``) instead of the row's 20,000
  unweighted ULA steps at theta_0 (hours on one core; the burn-in's cost per step is timed
  and projected to the row's count instead).

Training goes through the one loop (:func:`ebm_bench.training.loop.train`, ``run_dir``
OUT/run: its train_log.csv and train_status.json), with a hook recording every update's
seconds and the weights' state (``ess`` before the update's resampling, ``resampled``,
``n_resamples``, ``n_ancestors``). Outputs: ``OUT/first_epochs.csv`` (one row per update)
and ``OUT/first_epochs.json`` (the summary: seconds per update and per burn-in step, the
projection to the row's updates and burn-in on one core, ESS per epoch, resamplings,
ancestors). ``--quick``: the same row at tiny sizes on a tiny MNIST (what
tests/test_first_epochs.py runs).
"""

from __future__ import annotations

import csv
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from ebm_bench.core.errors import ConfigError
from ebm_bench.core.io import write_json

ROOT = Path(__file__).resolve().parents[2]
PAPER_CONFIG = ROOT / "config" / "paper.yaml"
DATASET, VARIANT = "mnist_236", "jarzynski_multinomial"
EPOCHS = 2
BURN_IN = 200
# --quick: tiny populations, network and data; every ratio of the row is not kept (a check
# of the records, not a measurement)
QUICK = {"counts": [8, 4, 2], "n_walkers": 16, "n_moved": 4, "n_steps": 2, "hidden_features": 4, "batch_size": 4,
         "burn_in": 2}
WEIGHT_KEYS = ("ess", "resampled", "n_resamples", "n_ancestors")
PROGRESS_EVERY = 10  # updates between the progress lines that show the weights


def row_spec(data_root: str | Path, dataset: str, variant: str, burn_in: int, updates: int | None,
             quick: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The row's run spec with the benchmark's changes, and the row's own counts."""
    from ebm_bench.bench.gpu_check import load_config
    from ebm_bench.pipeline.config import run_spec

    cfg = load_config(PAPER_CONFIG)
    if dataset not in (cfg.get("datasets") or {}):
        raise ConfigError(f"--datasets {dataset!r}: not a dataset of {PAPER_CONFIG.name}")
    cfg["data_root"] = str(data_root)
    if quick:
        cfg["datasets"][dataset]["params"] = {**cfg["datasets"][dataset]["params"], "counts": QUICK["counts"]}
    spec = run_spec(cfg, dataset, variant, 0, "config/paper.yaml")
    p = spec["method_params"]
    row = {"steps": int(spec["train"]["steps"]), "burn_in_steps": int(p.get("burn_in_steps", 0) or 0),
           "batch_size": int(spec["train"]["batch_size"])}
    if quick:
        p.update(n_walkers=QUICK["n_walkers"], n_moved=QUICK["n_moved"], n_steps=QUICK["n_steps"],
                 net_params={**(p.get("net_params") or {}), "hidden_features": QUICK["hidden_features"]})
        spec["train"]["batch_size"] = QUICK["batch_size"]
    if "burn_in_steps" in p:
        p["burn_in_steps"] = int(burn_in)
    spec["device"] = "cpu"
    spec["train"].update(steps=int(updates or 1), log_every=1, checkpoint_every=int(updates or 1))
    return spec, row


def run(out: str | Path, data_root: str | Path | None, dataset: str = DATASET, variant: str = VARIANT,
        updates: int | None = None, burn_in: int | None = None, quick: bool = False, threads: int = 1,
        say=print) -> dict[str, Any]:
    from ebm_bench.training.loop import Hook, train
    from ebm_bench.training.runs import build_method, config_id, load_data

    if data_root is None or not Path(data_root).is_dir():
        raise ConfigError(f"bench first_epochs needs --data-root DIR holding MNIST/raw (torchvision's files; "
                          f"ebm-bench write-idx writes them); got {data_root!r}")
    burn_in = int(QUICK["burn_in"] if quick and burn_in is None else BURN_IN if burn_in is None else burn_in)
    if burn_in < 0 or (updates is not None and updates < 1):
        raise ConfigError(f"--warmup (burn-in steps) = {burn_in}, --updates = {updates}: expected >= 0 and >= 1")
    torch.set_num_threads(int(threads))
    spec, row = row_spec(data_root, dataset, variant, burn_in, updates, quick)
    data = load_data(spec)
    per_epoch = math.ceil(len(data.x_train) / int(spec["train"]["batch_size"]))
    updates = int(updates or EPOCHS * per_epoch)
    spec["train"].update(steps=updates, checkpoint_every=updates)
    method = build_method(spec, data)
    p = spec["method_params"]
    say(f"first epochs of config/paper.yaml {dataset}/{variant} on CPU ({torch.get_num_threads()} thread(s)): "
        f"{len(data.x_train)} training images, batch {spec['train']['batch_size']} -> {per_epoch} updates an epoch; "
        f"{updates} updates here (the row: {row['steps']}); burn-in {burn_in} ULA steps (the row: "
        f"{row['burn_in_steps']}); N = {p.get('n_walkers')}, N' = {p.get('n_moved')}, K = {p.get('n_steps')}, "
        f"{p.get('n_minibatches', 1)} walker mini-batches{' (--quick: tiny sizes)' if quick else ''}")
    t = time.perf_counter()
    method.init_walkers(data.x_train)  # the burn-in, timed apart from the updates
    burn_s = time.perf_counter() - t
    records: list[dict[str, float]] = []

    def record(info) -> None:
        prev = records[-1]["train_s"] if records else 0.0
        records.append({"update": info.step, "epoch": (info.step - 1) // per_epoch + 1, "train_s": info.train_s,
                        "s_update": info.train_s - prev, **{k: float(info.scalars[k]) for k in WEIGHT_KEYS}})
        if info.step % PROGRESS_EVERY == 0 or info.step == updates:  # the weights, as training goes
            r = records[-1]
            say(f"  update {info.step}/{updates}: ESS {r['ess']:.3f}, resamplings {r['n_resamples']:.0f}, "
                f"ancestors {r['n_ancestors']:.0f}")

    out = Path(out)
    status = train(method, data.x_train, spec["train"], out / "run", config_id(spec), 0,
                   label=f"{dataset}/{variant}", hooks=[Hook(1, record)], stage="first epochs")
    with open(out / "first_epochs.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(records[0]))
        w.writeheader()
        w.writerows(records)
    steady = [r["s_update"] for r in records[1:]] or [records[0]["s_update"]]  # the first update warms up
    s_update = statistics.median(steady)
    s_burn = burn_s / burn_in if burn_in else float("nan")
    epochs = {}
    for r in records:
        e = epochs.setdefault(int(r["epoch"]), {"updates": 0, "ess_min": 1.0})
        e["updates"] += 1
        e["ess_min"] = min(e["ess_min"], r["ess"])
        e["ess_end"], e["n_resamples"], e["n_ancestors"] = r["ess"], r["n_resamples"], r["n_ancestors"]
    summary = {
        "dataset": dataset, "variant": variant, "config": "config/paper.yaml", "quick": quick,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "status": status["status"],
        "updates": updates, "updates_per_epoch": per_epoch, "row_updates": row["steps"],
        # the burn-in the method ran (its own params), beside the row's
        "burn_in_steps": int(method.params.get("burn_in_steps", 0)), "row_burn_in_steps": row["burn_in_steps"],
        "s_per_update_median": s_update, "s_per_update_mean": statistics.fmean(steady),
        "s_first_update": records[0]["s_update"], "s_burn_in": burn_s, "s_per_burn_in_step": s_burn,
        "projected_row_hours_one_core": (s_update * row["steps"] + (s_burn if burn_in else 0.0)
                                         * row["burn_in_steps"]) / 3600,
        "ess_min": min(r["ess"] for r in records), "ess_final": records[-1]["ess"],
        "n_resamples": records[-1]["n_resamples"], "n_ancestors_final": records[-1]["n_ancestors"],
        "n_walkers": int(p.get("n_walkers", 0)), "epochs": epochs,
    }
    write_json(summary, out / "first_epochs.json")
    for k, e in epochs.items():
        say(f"  epoch {k}: {e['updates']} updates, ESS min {e['ess_min']:.3f}, at its end {e['ess_end']:.3f}; "
            f"resamplings so far {e['n_resamples']:.0f}; ancestors {e['n_ancestors']:.0f} of {summary['n_walkers']}")
    say(f"  {s_update:.2f} s per update (median after the first; first {records[0]['s_update']:.2f} s), burn-in "
        f"{s_burn:.3f} s per ULA step; the row's {row['steps']} updates + {row['burn_in_steps']} burn-in steps: "
        f"~{summary['projected_row_hours_one_core']:.1f} h on one such core")
    say(f"  records: {out / 'first_epochs.csv'}, {out / 'first_epochs.json'}, the run in {out / 'run'}")
    return summary
