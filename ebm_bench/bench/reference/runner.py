"""``ebm-bench bench reference [--method NAME] --reference-dir DIR``: the comparisons by
name, run in float64 on one thread, a table printed per method and
``OUT/reference_equivalence.json`` written (docs/reference-equivalence.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ebm_bench.bench.reference.cifar import compare_jarzynski_cifar10, compare_pcd_cifar10
from ebm_bench.bench.reference.common import TOL, find_reference, reference_commit
from ebm_bench.bench.reference.gmm import compare_gmm
from ebm_bench.bench.reference.grbm import compare_grbm
from ebm_bench.bench.reference.mnist import compare_jarzynski_mnist
from ebm_bench.bench.reference.short_run import compare_short_run

PAPER_003 = "github.com/submissionx12/EBMs_Jarzynski"
GRBM_LIAO = "github.com/DSL-Lab/GRBM"
SHORT_RUN = "github.com/enijkamp/short_run"


@dataclass(frozen=True)
class Comparison:
    marker: str  # a folder or file the clone holds (found in --reference-dir or its parent)
    env: str  # the environment variable naming the clone when --reference-dir is not given
    repository: str
    compare: Callable[..., dict[str, Any]]


COMPARISONS: dict[str, Comparison] = {
    "gmm": Comparison("GMM_code", "EBM_BENCH_REFERENCE_DIR", PAPER_003, compare_gmm),
    "jarzynski_mnist": Comparison("MNIST_code", "EBM_BENCH_REFERENCE_DIR", PAPER_003, compare_jarzynski_mnist),
    "jarzynski_cifar10": Comparison("CIFAR-10_code", "EBM_BENCH_REFERENCE_DIR", PAPER_003, compare_jarzynski_cifar10),
    "pcd_cifar10": Comparison("CIFAR-10_code", "EBM_BENCH_REFERENCE_DIR", PAPER_003, compare_pcd_cifar10),
    "grbm": Comparison("grbm.py", "EBM_BENCH_REFERENCE_DIR_GRBM", GRBM_LIAO, compare_grbm),
    "short_run": Comparison("train_cifar10_minimal.py", "EBM_BENCH_REFERENCE_DIR_SHORT_RUN", SHORT_RUN,
                            compare_short_run),
}
METHODS = tuple(COMPARISONS)


def run(method: str | None, reference_dir: str | None, updates: int | None, out: str | None,
        quick: bool = False) -> dict[str, Any] | None:
    names = [method] if method else list(COMPARISONS)
    unknown = [n for n in names if n not in COMPARISONS]
    if unknown:
        from ebm_bench.core.errors import ConfigError

        raise ConfigError(f"bench reference: unknown --method {unknown[0]!r}; known: {', '.join(COMPARISONS)}")
    old_dtype, old_threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    result: dict[str, Any] = {"tolerance": TOL, "methods": {}}
    try:
        for name in names:
            c = COMPARISONS[name]
            ref = find_reference(reference_dir, c.marker, c.env)
            if ref is None:
                print(f"  {name}: skipped: no reference checkout (pass --reference-dir to a clone of "
                      f"{c.repository}, or set {c.env})")
                continue
            result["reference_commit"] = reference_commit(ref)
            r = c.compare(ref, updates=int(updates or 3), ablations=not quick)
            r.setdefault("reference_repository", c.repository)
            r.setdefault("reference_commit", result["reference_commit"])
            result["methods"][name] = r
            print_table(r)
    finally:
        torch.set_default_dtype(old_dtype)
        torch.set_num_threads(old_threads)
    if not result["methods"]:
        return None
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "reference_equivalence.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        print(f"  wrote {Path(out) / 'reference_equivalence.json'}")
    return result


def print_table(r: dict[str, Any]) -> None:
    print(f"  {r['method']}: {r['updates']} updates, float64, CPU, N = {r.get('n_walkers')} walkers, "
          f"N' = {r.get('n_moved')}, burn-in {r.get('burn_in_steps')} steps; {r['network']}")
    w = max([45, *(len(label) for label in r["rows"])])
    print(f"  {'configuration (paper.yaml value)':{w}s} {'update':>6s} {'params (rel)':>13s} {'walkers (rel)':>13s} {'log w (abs)':>12s}")
    for label, row in r["rows"].items():
        if "error" in row:
            print(f"  {label:{w}s} error: {row['error']}")
            continue
        for u in row["updates"]:
            lw = u["max_abs_diff_log_weights"]
            print(f"  {label:{w}s} {u['update']:6d} {u['max_rel_diff_params']:13.2e} {u['max_rel_diff_walkers']:13.2e} "
                  f"{'n/a' if lw is None else format(lw, '.2e'):>12s}")
