"""The GPU check (ebm_bench/bench/gpu_check.py) rehearsed on CPU: ``--quick`` runs the same code at
tiny sizes on a machine that has torch, numpy and PyYAML but none of scikit-learn, pandas, Pillow,
torchvision, Snakemake, torch-fidelity, SciPy, matplotlib, jsonschema or tabulate, and writes every
paper.yaml row."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

from ebm_bench.bench import gpu_check
from ebm_bench.pipeline.config import dataset_variants

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("sklearn", "pandas", "torchvision", "snakemake", "torch_fidelity", "pytorch_fid", "scipy", "matplotlib",
           "jsonschema", "tabulate", "PIL")

# run a module with some top-level packages made unimportable (a machine without them)
_RUNNER = """
import importlib.machinery, runpy, sys
blocked = set(sys.argv[1].split(","))
class Absent:  # a spec without origin (torch._dynamo's find_spec probes skip it); importing fails
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r} (blocked: not installed on the GPU machine)",
                                  name=spec.name)
    def exec_module(self, module):
        raise ImportError(module.__name__)
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            return importlib.machinery.ModuleSpec(name, Absent(), origin=None)
        return None
sys.meta_path.insert(0, Block())
sys.argv = ["ebm-bench"] + sys.argv[2:]
runpy.run_module("ebm_bench.cli", run_name="__main__")
"""


def test_quick_gpu_check_without_optional_packages(tmp_path):
    out = tmp_path / "gpu"
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="")
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", _RUNNER, ",".join(BLOCKED), "gpu-check", "--out", str(out), "--quick"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t
    assert r.returncode == 0, r.stderr[-3000:]
    assert wall < 120, f"--quick took {wall:.0f} s"
    report = json.loads((out / "gpu_check.json").read_text())
    cfg = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    expected = [(d, v) for d in cfg["datasets"] for v in dataset_variants(cfg, d)]
    assert [(r["dataset"], r["variant"]) for r in report["rows"]] == expected
    assert report["quick"] and report["device"] == "cpu" and report["seeds"] == len(cfg["seeds"])
    # torchvision is absent here, so the row whose augmentation is torchvision's says so
    needs_torchvision = {"pcd_da"}
    for row in report["rows"]:
        if row["variant"] in needs_torchvision:
            assert row["status"] == "skipped: needs torchvision (not installed on this machine)", row
            continue
        assert row["status"] == "ok", row
        assert row["ms_per_update"] > 0 and row["how"] in ("measured", "extrapolated")
        assert abs(row["gpu_hours_all_seeds"] - row["gpu_hours_per_seed"] * len(cfg["seeds"])) < 1e-9
        for key in ("grad_evals_per_s", "peak_gpu_mb", "generation_s", "burn_in_s", "fid_pass_s", "steps"):
            assert key in row
    assert any(r.get("how") == "extrapolated" for r in report["rows"])  # HEE's long presentation at least
    assert report["fid_feature_pass"]["status"].startswith("skipped: torch-fidelity is not installed")
    assert report["sampler_compile"]["status"].startswith("skipped: needs CUDA")
    md = (out / "gpu_check.md").read_text()
    assert "QUICK" in md and "GPU-h/seed" in md
    for d, v in expected:
        assert f"| {d} | {v} |" in md
    n_ok = sum(r["status"] == "ok" for r in report["rows"])
    assert n_ok == len(expected) - sum(v in needs_torchvision for _, v in expected)
    assert f"gpu check: {n_ok}/{len(expected)} rows timed" in r.stdout


def test_without_pyyaml_the_check_says_so_in_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="")
    r = subprocess.run([sys.executable, "-c", _RUNNER, "yaml", "gpu-check", "--out", str(tmp_path), "--quick"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].endswith("not installed: pip install pyyaml")

def test_fid_pass_times_inception_with_random_weights():
    res = gpu_check.time_fid_pass(torch.device("cpu"), quick=True)
    assert res["status"] == "ok" and "RANDOM" in res["weights"] and res["images_per_s"] > 0


def test_loop_length_extrapolation_is_linear():
    params = {"n_steps": 60, "sample_steps": 100}
    fr = gpu_check._fractions(params, "pcd", quick=False)
    assert len(fr) == 2 and fr[0] < fr[1] < 1
    assert gpu_check._scaled(params, "pcd", fr[0])["n_steps"] == 3
    pts = [(0.1, {"t": 2.0}), (0.4, {"t": 5.0})]
    assert abs(gpu_check._extrapolate(pts, "t") - 11.0) < 1e-12
    assert gpu_check._fractions({"n_steps": 1}, "jarzynski", quick=False) == [1.0]
