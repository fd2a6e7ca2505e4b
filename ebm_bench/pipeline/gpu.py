"""GPU placement: a job gets cards of its own, on one machine and under SLURM.

Snakemake counts GPUs (``--resources gpu=N`` caps how many GPU jobs run at once) but
does not say *which* card a job may use, so on a workstation with several GPUs every
job would start on card 0. :func:`claim` gives a job ``n`` distinct cards before CUDA
starts, and narrows ``CUDA_VISIBLE_DEVICES`` to them:

- **SLURM already chose.** Inside a SLURM job (``SLURM_JOB_ID``) whose
  ``CUDA_VISIBLE_DEVICES`` lists no more cards than the job asks for (one, for a job
  that asks for none), those cards are the job's: they are used as they are, no lock
  is taken, and they are recorded.
- **Otherwise the job claims cards from a pool**, the machine's cards: the ids in
  ``CUDA_VISIBLE_DEVICES`` when set (a user restricting the run to some cards, or a
  SLURM allocation shared by several local jobs), else ``EBM_BENCH_GPU_IDS``
  (comma-separated; stand-in ids for tests on a CPU machine, or to reserve cards),
  else the cards ``nvidia-smi`` lists. A card is claimed by holding an exclusive
  ``fcntl.flock`` on ``<lock dir>/gpu-<id>.lock`` for the lifetime of the process; the
  kernel drops the lock when the process ends, however it ends (SIGKILL included), so
  no lock is ever stale. When every card is taken the job waits for one.

The lock dir is ``EBM_BENCH_GPU_LOCK_DIR``, else ``<tmp>/ebm-bench-gpu-locks`` (for ids
taken from CUDA_VISIBLE_DEVICES inside a SLURM allocation, one folder per allocation:
those ids may only be meaningful within it).
Nothing here imports torch or asks CUDA for the device count: CUDA reads
``CUDA_VISIBLE_DEVICES`` once, when it starts, so the claim must come first.

``ebm-bench gpu hold --gpus 1`` claims, prints the ids and holds them until stdin closes or
``--until FILE`` exists (used by the tests; handy to reserve a card); ``ebm-bench gpu show``
says who holds which card.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ENV_IDS = "EBM_BENCH_GPU_IDS"
ENV_LOCK_DIR = "EBM_BENCH_GPU_LOCK_DIR"
ENV_WAIT = "EBM_BENCH_GPU_WAIT"  # seconds to wait for a free card; unset: forever

_HELD: list = []  # claims of this process: their lock files stay open until it exits


@dataclass
class Claim:
    """The cards a job uses. ``devices`` are ids as CUDA_VISIBLE_DEVICES lists them."""

    devices: list[str]
    source: str  # "slurm": chosen by SLURM; "lock": claimed from `pool`; "none"
    pool: list[str] = field(default_factory=list)
    pool_from: str = ""
    lock_dir: str | None = None
    waited_s: float = 0.0
    _fds: list[int] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        d = {"devices": ",".join(self.devices), "source": self.source, "pool": ",".join(self.pool),
             "pool_from": self.pool_from, "host": socket.gethostname()}
        if os.environ.get("SLURM_JOB_ID"):
            d["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
            for k in ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "GPU_DEVICE_ORDINAL"):
                if k in os.environ:
                    d[k.lower()] = os.environ[k]
        if self.lock_dir:
            d["lock_dir"] = self.lock_dir
        if self.waited_s:
            d["waited_s"] = round(self.waited_s, 3)
        return d

    def describe(self) -> str:
        if self.source == "none":
            return f"no GPU claimed ({self.pool_from or 'no GPU asked for'})"
        if self.source == "slurm":
            return (f"CUDA_VISIBLE_DEVICES={','.join(self.devices)} as set by SLURM "
                    f"(job {os.environ.get('SLURM_JOB_ID')})")
        return (f"CUDA_VISIBLE_DEVICES={','.join(self.devices)} claimed from {self.pool_from} "
                f"[{','.join(self.pool)}] (locks in {self.lock_dir})")

    def release(self) -> None:
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()
        if self in _HELD:
            _HELD.remove(self)


def _split(ids: str) -> list[str]:
    return [d.strip() for d in ids.split(",") if d.strip()]


def machine_gpus() -> list[str]:
    """Ids of this machine's NVIDIA cards, without starting CUDA (nvidia-smi, else the
    driver's /proc entries); [] where there are none."""
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=30)
            if out.returncode == 0:
                return [line.strip() for line in out.stdout.splitlines() if line.strip()]
        except (OSError, subprocess.TimeoutExpired):
            pass
    proc = Path("/proc/driver/nvidia/gpus")
    if proc.is_dir():
        return [str(i) for i in range(len(list(proc.iterdir())))]
    return []


def pool(env=None) -> tuple[list[str], str]:
    """(card ids a job may claim from, where they came from)."""
    env = os.environ if env is None else env
    if env.get("CUDA_VISIBLE_DEVICES") is not None:
        return _split(env["CUDA_VISIBLE_DEVICES"]), "CUDA_VISIBLE_DEVICES"
    if env.get(ENV_IDS):
        return _split(env[ENV_IDS]), ENV_IDS
    return machine_gpus(), "nvidia-smi"


def lock_dir(env=None, origin: str | None = None) -> Path:
    """Where the per-card locks live. Card ids that come from CUDA_VISIBLE_DEVICES inside
    a SLURM job may be relative to that job's allocation, so they are locked in a
    folder of the job's own; all other ids name the machine's cards."""
    env = os.environ if env is None else env
    if env.get(ENV_LOCK_DIR):
        return Path(env[ENV_LOCK_DIR])
    base = Path(tempfile.gettempdir()) / "ebm-bench-gpu-locks"
    origin = origin or pool(env)[1]
    if env.get("SLURM_JOB_ID") and origin == "CUDA_VISIBLE_DEVICES":
        return base / f"slurm-{env['SLURM_JOB_ID']}"
    return base


def _lock_path(folder: Path, dev: str) -> Path:
    return folder / f"gpu-{dev.replace('/', '_')}.lock"


def _open_lock(folder: Path, dev: str) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    try:  # users share a machine's cards: everyone may create and lock
        os.chmod(folder, 0o1777)
    except OSError:
        pass
    fd = os.open(_lock_path(folder, dev), os.O_RDWR | os.O_CREAT, 0o666)  # close-on-exec (Python's default)
    try:
        os.fchmod(fd, 0o666)
    except OSError:
        pass
    return fd


def _try_claim(folder: Path, devices: list[str], n: int) -> tuple[list[str], list[int]]:
    got, fds = [], []
    for dev in devices:
        fd = _open_lock(folder, dev)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
                continue
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.time():.0f}\n".encode())
        got.append(dev)
        fds.append(fd)
        if len(got) == n:
            return got, fds
    for fd in fds:  # not enough: hold none (two jobs holding one card each must not deadlock)
        os.close(fd)
    return [], []


def claim(n: int, env=None, wait_s: float | None = None, poll_s: float = 0.5, say=None) -> Claim:
    """Give this process ``n`` cards of its own and set CUDA_VISIBLE_DEVICES to them.

    ``env`` (default os.environ) is read and updated. Call before anything starts CUDA.
    Raises TimeoutError if no card frees up within ``wait_s`` (default: EBM_BENCH_GPU_WAIT,
    else wait forever)."""
    env = os.environ if env is None else env
    say = say or (lambda msg: print(f"gpu: {msg}", file=sys.stderr, flush=True))
    devices, origin = pool(env)
    if env.get("SLURM_JOB_ID") and origin == "CUDA_VISIBLE_DEVICES" and 0 < len(devices) <= max(n, 1):
        # SLURM chose the job's cards: use them (and record them, even for a CPU job)
        return Claim(devices, "slurm", devices, origin)
    if n <= 0:
        return Claim([], "none")
    if not devices:
        return Claim([], "none", [], f"no GPU found ({origin})")
    if len(devices) < n:
        raise RuntimeError(f"{n} GPUs asked for, but {origin} lists only {len(devices)}: {devices}")
    if wait_s is None and env.get(ENV_WAIT):
        wait_s = float(env[ENV_WAIT])
    folder = lock_dir(env, origin)
    t0 = time.monotonic()
    told = False
    while True:
        got, fds = _try_claim(folder, devices, n)
        if got:
            break
        waited = time.monotonic() - t0
        if wait_s is not None and waited >= wait_s:
            raise TimeoutError(f"no free GPU among {devices} ({origin}) after {waited:.0f}s; "
                               f"holders: {folder}")
        if not told:
            say(f"all of {devices} ({origin}) are claimed by other jobs; waiting for one (locks in {folder})")
            told = True
        time.sleep(poll_s)
    c = Claim(got, "lock", devices, origin, str(folder), time.monotonic() - t0, fds)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(got)
    _HELD.append(c)
    return c


def show() -> None:
    """Print the pool, the lock dir and who holds which card (``ebm-bench gpu show``)."""
    devices, origin = pool()
    folder = lock_dir()
    print(f"pool: {devices} ({origin}); locks: {folder}")
    for dev in devices:
        path = _lock_path(folder, dev)
        fd = _open_lock(folder, dev)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            print(f"  {dev}: free")
        except OSError:
            print(f"  {dev}: held by {path.read_text().strip()}")
        finally:
            os.close(fd)


def hold(n: int, until: str | None = None) -> None:
    """Claim ``n`` cards, print their ids and hold them until ``until`` exists, else until
    stdin closes (``ebm-bench gpu hold``; used by the tests, handy to reserve a card)."""
    c = claim(n)
    print(c.devices and ",".join(c.devices) or "-", flush=True)
    print(c.describe(), file=sys.stderr, flush=True)
    if until:
        while not os.path.exists(until):
            time.sleep(0.05)
    else:
        sys.stdin.read()
