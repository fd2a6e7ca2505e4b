"""The whole DAG on a tiny config in a temporary directory, as a user runs it.

Covers: every stage end to end (train, sample, classifier, evaluate, tables, curves);
a run forced to diverge is recorded as diverged while the rest completes; a training
job killed mid-run resumes from its checkpoint when the workflow is rerun and ends in
the same state as an uninterrupted run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from ebm_bench.core.io import load_torch

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.workflow

TOY = {"step_size": 0.01, "temperature": 1.0, "n_steps": 10, "init_scale": 4.0, "lr": 0.001}


def tiny_config(**over) -> dict:
    cfg = {
        "seeds": [0],
        "threads": 1,
        "datasets": {
            "digits": {"type": "digits", "variant_params": {"*": {"n_steps": 3, "sample_steps": 3,
                                                                  "net_params": {"nf": 4}}}},
            "rings": {"type": "toy2d", "params": {"density": "rings", "n_train": 500, "n_test": 300},
                      # the pcd run is forced to diverge: an absurd Langevin step explodes the chains
                      "variant_params": {"*": TOY, "pcd": {"step_size": 1.0e12}}},
        },
        "variants": {"short_run": {"method": "short_run"}, "pcd": {"method": "pcd", "buffer_size": 200}},
        "train": {"steps": 12, "batch_size": 32, "checkpoint_every": 5, "log_every": 2},
        "sample": {"n": 100},
        "evaluate": {"n_real": 100, "probe_max_train": 300},
    }
    cfg.update(over)
    return cfg


def snakemake(workdir: Path, config: dict, *targets: str, popen: bool = False, timeout: int = 600,
              bin_first: Path | None = None):
    """Run the workflow; ``bin_first``: a folder searched before this environment's for the
    jobs' commands (a wrapped ``ebm-bench``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    path = [str(bin_first)] if bin_first else []
    env = dict(os.environ, PATH=os.pathsep.join([*path, str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    cmd = [str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"), "--cores", "2",
           "--workflow-profile", str(ROOT / "profiles" / "default"), *targets]
    if popen:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return r


def cli_with_a_raising_family(bin_dir: Path, label: str, family: str) -> Path:
    """An ``ebm-bench`` command whose metric ``family`` raises for the run ``label``
    (dataset/variant/seedN), everything else being the real CLI: the crash the workflow
    must record and get past."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "ebm-bench"
    script.write_text(f"""#!{sys.executable}
import sys

from ebm_bench import evaluation
from ebm_bench.cli import main

registered = evaluation.families


def family_for(name, fn):
    def checked(ctx):
        if ctx.label == {label!r} and name == {family!r}:
            raise RuntimeError(f"failure injected into {{name}} of {{ctx.label}} by the test")
        return fn(ctx)

    return checked


evaluation.families = lambda: [(name, family_for(name, fn)) for name, fn in registered()]
sys.exit(main())
""")
    script.chmod(0o755)
    return bin_dir


def wait_for_checkpoint(proc, ckpt: Path, step: int, timeout: float) -> None:
    """Poll until ``ckpt`` holds at least ``step`` training steps, ``proc`` ends, or time runs out."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists():
            try:
                if load_torch(ckpt)["step"] >= step:
                    return
            except Exception:  # being replaced right now
                pass
        time.sleep(0.2)


def test_whole_dag_with_a_diverging_run(tmp_path: Path) -> None:
    """One run diverges and one run's probe raises: the DAG completes, the tables and the
    claims table build, the failed cells read `error` with the message."""
    # combine_stages: one job per run, as the embedded suite runs (the SLURM test runs the
    # stages as separate jobs)
    r = snakemake(tmp_path, tiny_config(combine_stages=True),
                  bin_first=cli_with_a_raising_family(tmp_path / "bin", "digits/pcd/seed0", "probe"))
    # the FID/KID/IS reference is computed once per dataset, not once per run
    assert len(re.findall(r"^(local)?rule reference:", r.stdout + r.stderr, re.M)) == 2
    tables = tmp_path / "results" / "tables"
    runs = pd.read_csv(tables / "runs.csv", keep_default_na=False, na_values=[""])
    assert list(runs.columns) == ["dataset", "method", "seed", "metric", "value", "status", "fingerprint", "note"]
    diverged = runs[(runs.dataset == "rings") & (runs.method == "pcd")]
    assert len(diverged) and (diverged.status == "diverged").all() and diverged.value.isna().all()
    failed = runs[(runs.dataset == "digits") & (runs.method == "pcd") & runs.metric.str.startswith("probe_acc")]
    assert len(failed) and (failed.status == "error").all() and failed.note.str.contains("injected").all()
    assert "error" in (tables / "digits.md").read_text() and "injected" in (tables / "digits.md").read_text()
    claims = pd.read_csv(tables / "claims.csv")
    assert len(claims) > 20 and set(claims.verdict) <= set(
        ["holds", "contradicted", "inconclusive", "too few seeds", "not run", "protocol mismatch", "diverged", "error"])
    assert (tables / "summary.md").read_text().index("Claims and verdicts") < (tables / "summary.md").read_text().index("## digits")
    ok = runs[~((runs.dataset == "rings") & (runs.method == "pcd")) & (runs.status != "error")]
    assert (ok.status == "ok").all()
    # values are null only where a family could not compute one (train_final of a short log)
    assert ok[ok.metric.isin(["fid_domain", "kid_domain", "probe_acc_penultimate", "kl_exact", "mmd_samples"])
              ].value.notna().all()
    # every family that applies was computed
    for metric in ("fid_domain", "is_domain", "probe_acc_penultimate", "mode_rel_error_mean"):
        assert metric in set(ok[ok.dataset == "digits"].metric), metric
    assert "kl_exact" in set(ok[ok.dataset == "rings"].metric)
    summary = (tables / "summary.md").read_text()
    assert "diverged" in summary and "digits" in summary and "rings" in summary
    for ext in ("csv", "md", "tex"):
        assert (tables / f"digits.{ext}").stat().st_size > 0
    for run in ("digits/short_run", "digits/pcd", "rings/short_run", "rings/pcd"):
        assert (tmp_path / "results" / "runs" / run / "seed0" / "samples.png").exists()
    # tables are a pure function of the metrics files: rerunning them trains nothing
    r = snakemake(tmp_path, tiny_config(combine_stages=True), "--forcerun", "tables")
    assert "rule train:" not in r.stdout + r.stderr and "rule run:" not in r.stdout + r.stderr


def test_killed_training_resumes_to_the_same_state(tmp_path: Path) -> None:
    cfg = tiny_config(
        datasets={"rings": {"type": "toy2d", "params": {"density": "rings", "n_train": 500, "n_test": 300},
                            "variant_params": {"*": {**TOY, "n_steps": 40}}}},
        variants={"pcd": {"method": "pcd", "buffer_size": 200}},
        train={"steps": 400, "batch_size": 64, "checkpoint_every": 25, "log_every": 25},
    )
    target = "results/runs/rings/pcd/seed0/model.pt"
    snakemake(tmp_path / "full", cfg, target)

    work = tmp_path / "killed"
    proc = snakemake(work, cfg, target, popen=True)
    ckpt = work / "results/runs/rings/pcd/seed0/checkpoint.pt"
    wait_for_checkpoint(proc, ckpt, 50, timeout=300)
    assert proc.poll() is None, "training finished before it could be killed; make it longer"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (work / target).exists()

    subprocess.run([str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(ROOT / "Snakefile"),
                    "--directory", str(work), "--configfile", str(work / "config.yaml"), "--unlock"],
                   capture_output=True, timeout=120)
    snakemake(work, cfg, target)
    status = yaml.safe_load((work / "results/runs/rings/pcd/seed0/train_status.json").read_text())
    assert status["resumed_from"] is not None and status["resumed_from"] >= 50
    a = load_torch(tmp_path / "full" / target)["method"]
    b = load_torch(work / target)["method"]
    assert torch.equal(a["buffer"], b["buffer"])
    for k in a["net"]:
        assert torch.equal(a["net"][k], b["net"][k]), k


def test_paper_config_builds_the_dag_offline(tmp_path: Path) -> None:
    """Every torchvision dataset and both baselines: the DAG is built without network
    access or data on disk (downloads are local rules that a dry run does not execute)."""
    cfg = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    cfg["datasets"]["folder"] = {"type": "image_folder", "params": {"path": "my_images"}}
    r = snakemake(tmp_path, cfg, "-n")
    out = r.stdout + r.stderr
    for rule in ("download", "fetch_inception", "train", "sample", "evaluate", "tables"):
        assert f"rule {rule}:" in out or f"localrule {rule}:" in out, rule
