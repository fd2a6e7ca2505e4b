"""The workflow through a real SLURM cluster: the one-node cluster of
profiles/slurm-local/cluster.sh (two stand-in GPUs), driven by Snakemake's SLURM
executor plugin with profiles/slurm-local.

One test, because every SLURM round trip costs ~30 s on two cores: the tiny
configuration (one run, rings/pcd) goes through SLURM while the same configuration
runs locally; mid-way the training job is cancelled with scancel; the workflow is run
again. Checked: every GPU rule was submitted with a GPU request, every job ran under
SLURM (it has a log in Snakemake's slurm_logs, and its rule log names that SLURM job),
a running job uses the card SLURM gave it (scontrol's IDX) even though every card is
claimed locally, the cancelled training resumed from its checkpoint, and the tables
(and the model) equal those of the uninterrupted local run.

Needs root and apt (the fixture brings the cluster up, idempotently); elsewhere it is
skipped with the reason. Select it with `-m slurm`, leave it out with `-m "not slurm"`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from ebm_bench.pipeline import gpu
from ebm_bench.core.io import load_torch
from test_workflow import TOY, tiny_config, wait_for_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "profiles" / "slurm-local" / "cluster.sh"
GPU_RULES = ("classifier", "reference", "train", "sample", "evaluate")
LOCAL_RULES = ("tables", "training_curves", "all")
RUN = "results/runs/rings/pcd/seed0"
COST_COLUMNS = ("train_time_s", "peak_mem_mb", "sample_time_s", "evaluate_time_s")

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """Bring the local cluster up (idempotent; installs SLURM with apt if needed), or skip."""
    if os.environ.get("EBM_BENCH_SKIP_SLURM"):
        pytest.skip("EBM_BENCH_SKIP_SLURM is set")
    r = subprocess.run(["bash", str(CLUSTER), "up"], capture_output=True, text=True, timeout=900)
    if r.returncode == 3:
        pytest.skip(r.stderr.strip().splitlines()[-1])
    assert r.returncode == 0, f"cluster.sh up failed:\n{r.stdout}\n{r.stderr}"


def config() -> dict:
    # the tiny configuration, one run: rings/pcd, trained long enough to be cancelled
    return tiny_config(
        datasets={"rings": {"type": "toy2d", "params": {"density": "rings", "n_train": 500, "n_test": 300},
                            "variant_params": {"*": {**TOY, "n_steps": 30}}}},
        variants={"pcd": {"method": "pcd", "buffer_size": 200}},
        train={"steps": 300, "batch_size": 64, "checkpoint_every": 20, "log_every": 20},
    )


def _env(locks: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k != "CUDA_VISIBLE_DEVICES"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # stand-in cards of "this machine" and where jobs would lock them: a job that ignored
    # SLURM's choice and claimed locally would block (the test holds both) or pick another card
    env.update({gpu.ENV_IDS: "0,1", gpu.ENV_LOCK_DIR: str(locks), "EBM_BENCH_GPU_WAIT": "60"})
    return env


def _snakemake(workdir: Path, cfg: dict, env: dict, *args: str) -> subprocess.Popen:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
           "--workflow-profile", str(ROOT / "profiles" / "default"), *args]
    out = open(workdir / f"snakemake{len(list(workdir.glob('snakemake*.log')))}.log", "w")
    return subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _finish(proc: subprocess.Popen, timeout: float = 600) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        raise


def _log_of(proc: subprocess.Popen) -> str:
    return Path(proc.stdout.name).read_text()[-6000:] if proc.stdout else ""


def _slurm_jobs(workdir: Path) -> list[tuple[str, str, int]]:
    """(rule, wildcards, SLURM job id) of every job with a log in Snakemake's slurm_logs."""
    jobs = []
    for path in (workdir / ".snakemake" / "slurm_logs").glob("rule_*/*/*.log"):
        jobs.append((path.parent.parent.name[len("rule_"):], path.parent.name, int(path.stem)))
    return sorted(jobs, key=lambda j: j[2])


def _scontrol(job: int) -> str:
    return subprocess.run(["scontrol", "show", "job", "-d", str(job)], capture_output=True, text=True,
                          timeout=30).stdout


# measured wall times (the cost family's metrics) differ between any two runs
TIMING_METRICS = ("time_per_update_ms", "train_time_s")


def _table_frames(tables: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for p in sorted(tables.glob("*.csv")):
        df = pd.read_csv(p)
        drop = [c for c in df.columns if c in COST_COLUMNS or any(c.startswith(m) for m in TIMING_METRICS)]
        if "metric" in df.columns:
            df = df[~df["metric"].isin(TIMING_METRICS)]
        out[p.name] = df.drop(columns=drop).reset_index(drop=True)
    return out


def test_dag_through_slurm_with_a_cancelled_job(slurm_cluster, tmp_path: Path) -> None:
    t0 = time.monotonic()
    cfg = config()
    env = _env(tmp_path / "locks")
    # the uninterrupted local run of the same configuration, in parallel
    local = _snakemake(tmp_path / "local", cfg, env, "--cores", "2")
    # every stand-in card is claimed on this machine for the whole SLURM run
    held = gpu.claim(2, env=dict(env), wait_s=0)
    work = tmp_path / "slurm"
    procs = [local]
    try:
        first = _snakemake(work, cfg, env, "--profile", str(ROOT / "profiles" / "slurm-local"))
        procs.append(first)
        ckpt = work / RUN / "checkpoint.pt"
        wait_for_checkpoint(first, ckpt, 40, timeout=400)
        assert ckpt.exists(), "no checkpoint of the training job appeared:\n" + _log_of(first)
        assert first.poll() is None, "training finished before it could be cancelled:\n" + _log_of(first)
        (train_job,) = [j for r, _, j in _slurm_jobs(work) if r == "train"]
        # the card SLURM gave the running job, and the one the job says it uses
        detail = _scontrol(train_job)
        idx = re.search(r"GRES=gpu(?::[^(]*)?\(IDX:(\d+)\)", detail)
        assert idx, detail
        rule_log = (work / "results/logs/train/rings/pcd/seed0.log").read_text()
        assert f"gpu: CUDA_VISIBLE_DEVICES={idx.group(1)} as set by SLURM (job {train_job})" in rule_log, rule_log
        subprocess.run(["scancel", str(train_job)], check=True, timeout=30)
        t_cancel = time.monotonic() - t0
        assert _finish(first) != 0, "the workflow should fail: its training job was cancelled"
        state = subprocess.run(["squeue", "-h", "-t", "all", "-j", str(train_job), "-o", "%T"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
        assert state == "CANCELLED", state
        assert not (work / RUN / "model.pt").exists() and ckpt.exists()

        t1 = time.monotonic()
        second = _snakemake(work, cfg, env, "--profile", str(ROOT / "profiles" / "slurm-local"))
        procs.append(second)
        assert _finish(second) == 0, _log_of(second)
        t_resume = time.monotonic() - t1
        assert _finish(local) == 0, _log_of(local)
    finally:
        held.release()
        for p in procs:  # on failure: stop what still runs (Snakemake cancels its SLURM jobs)
            if p.poll() is None:
                os.killpg(p.pid, 15)
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, 9)

    # the cancelled training resumed from its checkpoint, under SLURM
    status = yaml.safe_load((work / RUN / "train_status.json").read_text())
    assert status["resumed_from"] is not None and status["resumed_from"] >= 40, status
    assert status["gpu"]["source"] == "slurm", status

    # every job of a GPU rule ran under SLURM and asked for a GPU; local rules stayed local
    jobs = _slurm_jobs(work)
    assert {r for r, _, _ in jobs} == set(GPU_RULES), jobs
    assert [j for r, _, j in jobs if r == "train"][0] == train_job and len([r for r, _, _ in jobs if r == "train"]) == 2
    last = {}
    for rule, wildcards, job in jobs:
        detail = _scontrol(job)
        assert f"JobId={job} " in detail, f"SLURM has no record of job {job}"
        assert re.search(r"TresPerJob=\S*gres[:/]gpu[:=]1", detail), f"{rule} job {job} asked for no GPU:\n{detail}"
        last[rule] = job
    rule_logs = {"classifier": "results/logs/classifier/rings.log", "train": "results/logs/train/rings/pcd/seed0.log",
                 "sample": "results/logs/sample/rings/pcd/seed0.log",
                 "evaluate": "results/logs/evaluate/rings/pcd/seed0.log"}
    for rule, path in rule_logs.items():
        text = (work / path).read_text()
        assert re.search(rf"gpu: CUDA_VISIBLE_DEVICES=[01] as set by SLURM \(job {last[rule]}\)", text), (rule, text)
    for rule in LOCAL_RULES:
        assert not (work / ".snakemake" / "slurm_logs" / f"rule_{rule}").exists(), rule

    # the tables (less the timing and memory columns) and the model equal the local run's
    ours, theirs = work / "results" / "tables", tmp_path / "local" / "results" / "tables"
    a, b = _table_frames(ours), _table_frames(theirs)
    pd.testing.assert_frame_equal(a["runs.csv"], b["runs.csv"])
    assert a.keys() == b.keys() and len(a) >= 2
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=name)
    ma, mb = load_torch(work / RUN / "model.pt")["method"], load_torch(tmp_path / "local" / RUN / "model.pt")["method"]
    assert torch.equal(ma["buffer"], mb["buffer"])
    for k in ma["net"]:
        assert torch.equal(ma["net"][k], mb["net"][k]), k
    print(f"slurm: train job {train_job} on card {idx.group(1)}, cancelled at {t_cancel:.0f}s, resumed run {t_resume:.0f}s, "
          f"total {time.monotonic() - t0:.0f}s; SLURM jobs {[j for _, _, j in jobs]}")
