"""GPU placement on one machine (ebm_bench.pipeline.gpu), with stand-in device ids on a CPU box.

Concurrent jobs that each hold a claim get distinct cards, every time; a job waits
while every card is held and takes the one freed; a job killed with SIGKILL frees its
card; a job that SLURM placed keeps SLURM's card whatever the local locks say; and the
CLI stages record the card in their log and in train_status.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ebm_bench.pipeline import gpu

ROOT = Path(__file__).resolve().parents[1]


def _env(tmp_path: Path, ids: str = "0,1", **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SLURM_") and k not in ("CUDA_VISIBLE_DEVICES", gpu.ENV_IDS, gpu.ENV_LOCK_DIR)}
    # a holder that waits too long fails instead of hanging the test
    env.update({gpu.ENV_IDS: ids, gpu.ENV_LOCK_DIR: str(tmp_path / "locks"), gpu.ENV_WAIT: "30"}, **extra)
    return env


def _holder(env: dict, until: Path, n: int = 1) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ebm_bench.cli", "gpu", "hold", "--gpus", str(n), "--until", str(until)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _claimed(proc: subprocess.Popen) -> str:
    """The ids a holder printed once it holds its claim."""
    line = proc.stdout.readline().strip()
    assert line, proc.stderr.read()
    return line


def test_two_concurrent_jobs_get_different_cards_every_time(tmp_path: Path) -> None:
    env = _env(tmp_path)
    seen = []
    for i in range(8):
        release = tmp_path / f"release{i}"
        a, b = _holder(env, release), _holder(env, release)
        try:
            # both hold their claim at the same time: neither is released before both printed
            ids = {_claimed(a), _claimed(b)}
        finally:
            release.touch()
            a.wait(30), b.wait(30)
        assert ids == {"0", "1"}, ids
        seen.append(ids)
    assert len(seen) == 8


def test_a_third_job_waits_for_a_free_card_and_takes_the_freed_one(tmp_path: Path) -> None:
    env = _env(tmp_path)
    r1, r2, r3 = (tmp_path / f"r{i}" for i in range(3))
    a, b = _holder(env, r1), _holder(env, r2)
    try:
        held = {_claimed(a): r1, _claimed(b): r2}
        c = _holder(env, r3)
        time.sleep(1.5)
        assert c.poll() is None and "waiting" in _stderr_so_far(c)
        free_me = "1"
        held[free_me].touch()  # release the holder of card 1
        assert _claimed(c) == free_me
    finally:
        for r in (r1, r2, r3):
            r.touch()
        for p in (a, b):
            p.wait(30)
        c.wait(30)


def _stderr_so_far(proc: subprocess.Popen) -> str:
    os.set_blocking(proc.stderr.fileno(), False)
    try:
        return proc.stderr.read() or ""
    finally:
        os.set_blocking(proc.stderr.fileno(), True)


def test_a_killed_job_frees_its_card(tmp_path: Path) -> None:
    env = _env(tmp_path, ids="3")  # one stand-in card, id 3
    a = _holder(env, tmp_path / "never")
    assert _claimed(a) == "3"
    b = _holder(env, tmp_path / "r")
    time.sleep(1.0)
    assert b.poll() is None  # waits: card 3 is taken
    a.send_signal(signal.SIGKILL)
    a.wait(30)
    try:
        assert _claimed(b) == "3"
    finally:
        (tmp_path / "r").touch()
        b.wait(30)


def test_claim_respects_cuda_visible_devices_and_slurm(tmp_path: Path) -> None:
    env = _env(tmp_path)
    env["CUDA_VISIBLE_DEVICES"] = "2,5"  # the user restricts the run to cards 2 and 5
    c = gpu.claim(1, env=env)
    try:
        assert c.source == "lock" and c.devices == ["2"] and env["CUDA_VISIBLE_DEVICES"] == "2"
        env["CUDA_VISIBLE_DEVICES"] = "2,5"
        d = gpu.claim(1, env=env, wait_s=0)
        assert d.devices == ["5"]
        env["CUDA_VISIBLE_DEVICES"] = "2,5"
        with pytest.raises(TimeoutError):
            gpu.claim(1, env=env, wait_s=0)
        d.release()
    finally:
        c.release()
    # Under SLURM the card SLURM put in CUDA_VISIBLE_DEVICES is used as it is, even
    # where a local lock says it is taken (the locks are another machine's business).
    slurm = _env(tmp_path, SLURM_JOB_ID="42", CUDA_VISIBLE_DEVICES="1")
    slurm[gpu.ENV_LOCK_DIR] = str(tmp_path / "locks")
    held = gpu.claim(2, env=_env(tmp_path))  # this process holds both stand-in cards
    try:
        s = gpu.claim(1, env=slurm, wait_s=0)
        assert (s.source, s.devices, slurm["CUDA_VISIBLE_DEVICES"]) == ("slurm", ["1"], "1")
    finally:
        held.release()
    # a CPU job (no card asked for) that SLURM placed on a card records that card
    cpu_job = _env(tmp_path, SLURM_JOB_ID="43", CUDA_VISIBLE_DEVICES="1")
    assert (gpu.claim(0, env=cpu_job).source, cpu_job["CUDA_VISIBLE_DEVICES"]) == ("slurm", "1")
    # lock folders: per SLURM allocation only for ids relative to it
    assert gpu.lock_dir({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "0,1"}).name == "slurm-7"
    assert gpu.lock_dir({"SLURM_JOB_ID": "7", gpu.ENV_IDS: "0,1"}).name == "ebm-bench-gpu-locks"
    assert gpu.lock_dir({gpu.ENV_IDS: "0,1"}).name == "ebm-bench-gpu-locks"
    # no GPU asked for: nothing claimed, CUDA_VISIBLE_DEVICES untouched
    plain = _env(tmp_path)
    assert gpu.claim(0, env=plain).source == "none" and "CUDA_VISIBLE_DEVICES" not in plain


# the spec the train rule passes for a tiny rings/short_run run (from `snakemake -p`)
SPEC = (
    '{"data_root": "data", "dataset": {"data_root": "data", "default_net": "mlp", "default_net_params": '
    '{"depth": 3, "hidden": 128}, "embedded": true, "name": "rings", "params": {"density": "rings", '
    '"mode_std": 0.15, "n_modes": 8, "n_test": 300, "n_train": 500, "radii": [1.0, 2.0, 3.0], "radius": 2.0, '
    '"ring_std": 0.1, "split_seed": 0, "weights": null}, "type": "toy2d"}, "device": "cpu", "evaluate": '
    '{"features": "auto", "inception_weights": null, "n_real": 100, "probe_max_train": 300, "use_inception": '
    'false}, "method": "short_run", "method_params": {"adam_beta1": 0.9, "chain_init": "noise", "clamp": false, '
    '"data_noise": 0.03, "energy_reg": 0.0, "grad_clip": null, "init_scale": 4.0, "lr": 0.001, "lr_times_h": '
    'false, "n_steps": 10, "net": "mlp", "net_params": {"depth": 3, "hidden": 128}, "optimizer": "adam", '
    '"param_lr": {}, "sample_batch": 500, "step_size": 0.01, "temperature": 1.0}, "sample": {"n": 100}, '
    '"seed": 0, "train": {"batch_size": 32, "checkpoint_every": 5, "diverge_above": 10000000000.0, '
    '"log_every": 2, "steps": 12}, "variant": "short_run"}'
)


def test_cli_stage_records_the_card_it_claimed(tmp_path: Path) -> None:
    """`ebm-bench train --gpus 1` on a CPU config, card 0 held by another job: the run
    takes card 1 and says so in its log and train_status.json."""
    full = json.loads(SPEC)
    full["data_root"] = full["dataset"]["data_root"] = str(tmp_path / "data")
    env = _env(tmp_path)
    release = tmp_path / "release"
    other = _holder(env, release)
    try:
        assert _claimed(other) == "0"
        r = subprocess.run([str(Path(sys.executable).with_name("ebm-bench")), "train", "--spec", json.dumps(full),
                            "--run-dir", str(tmp_path / "run"), "--threads", "1", "--gpus", "1"],
                           env=env, capture_output=True, text=True, timeout=300)
    finally:
        release.touch()
        other.wait(30)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "gpu: CUDA_VISIBLE_DEVICES=1 claimed from EBM_BENCH_GPU_IDS" in r.stderr
    status = json.loads((tmp_path / "run" / "train_status.json").read_text())
    assert status["gpu"]["devices"] == "1" and status["gpu"]["source"] == "lock"
