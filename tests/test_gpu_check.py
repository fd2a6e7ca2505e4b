"""The GPU check (ebm_bench/gpu_check.py) rehearsed on CPU: ``--quick`` runs the same code at
tiny sizes on a machine that has torch and numpy but none of PyYAML, scikit-learn,
Snakemake, torch-fidelity, SciPy or matplotlib (pandas is allowed), and writes every paper.yaml row."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

from ebm_bench import gpu_check, mini_yaml
from ebm_bench.config import dataset_variants

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("yaml", "sklearn", "snakemake", "torch_fidelity", "pytorch_fid", "scipy", "matplotlib")

# run a module with some top-level packages made unimportable (a machine without them)
_RUNNER = """
import importlib.machinery, runpy, sys
blocked = set(sys.argv[1].split(","))
class Absent:  # a spec without origin (torch._dynamo's find_spec probes skip it); importing fails
    def create_module(self, spec):
        raise ImportError(f"{spec.name} is blocked (not installed on the GPU machine)")
    def exec_module(self, module):
        raise ImportError(module.__name__)
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            return importlib.machinery.ModuleSpec(name, Absent(), origin=None)
        return None
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[2:]
runpy.run_module("ebm_bench.gpu_check", run_name="__main__")
"""


def test_quick_gpu_check_without_optional_packages(tmp_path):
    out = tmp_path / "gpu"
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="")
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", _RUNNER, ",".join(BLOCKED), "gpu_check", "--out", str(out), "--quick"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t
    assert r.returncode == 0, r.stderr[-3000:]
    assert wall < 120, f"--quick took {wall:.0f} s"
    report = json.loads((out / "gpu_check.json").read_text())
    cfg = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    expected = [(d, v) for d in cfg["datasets"] for v in dataset_variants(cfg, d)]
    assert [(r["dataset"], r["variant"]) for r in report["rows"]] == expected
    assert report["quick"] and report["device"] == "cpu" and report["seeds"] == len(cfg["seeds"])
    for row in report["rows"]:
        assert row["status"] == "ok", row
        assert row["ms_per_update"] > 0 and row["how"] in ("measured", "extrapolated")
        assert abs(row["gpu_hours_all_seeds"] - row["gpu_hours_per_seed"] * len(cfg["seeds"])) < 1e-9
        for key in ("grad_evals_per_s", "peak_gpu_mb", "generation_s", "burn_in_s", "fid_pass_s", "steps"):
            assert key in row
    assert any(r["how"] == "extrapolated" for r in report["rows"])  # HEE's long presentation at least
    assert report["fid_feature_pass"]["status"].startswith("skipped: torch-fidelity is not installed")
    assert report["sampler_compile"]["status"].startswith("skipped: needs CUDA")
    md = (out / "gpu_check.md").read_text()
    assert "QUICK" in md and "GPU-h/seed" in md
    for d, v in expected:
        assert f"| {d} | {v} |" in md
    assert "gpu check: 40/40 rows timed" in r.stdout or f"{len(expected)}/{len(expected)} rows timed" in r.stdout


def test_mini_yaml_reads_the_configs_as_pyyaml_does():
    # the run configs (what a GPU machine without PyYAML may be asked to read); not
    # config/claims.yaml, which only the claims layer reads, with PyYAML, where the results are
    files = sorted(f for f in (ROOT / "config").glob("*.yaml") if f.name != "claims.yaml") + \
        sorted((ROOT / "profiles").glob("*/config.yaml"))
    assert any(f.name == "paper.yaml" for f in files)
    for f in files:
        assert mini_yaml.load(f.read_text()) == yaml.safe_load(f.read_text()), f
    text = "a: &x {p: 1.0e-4, q: 1e-4, r: [1, 'two', null]}\nb:\n  <<: *x\n  q: 2\nc:\n  - 1\n  - k: v\n"
    assert mini_yaml.load(text) == yaml.safe_load(text)


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
