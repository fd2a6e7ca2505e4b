"""``ebm-bench bench gmm_reference --reference-dir DIR``: paper 003's App. B.1 GMM update
(d = 50, N = n = 1e4, Jarzynski Alg. 1, full batch) against the authors' own script,
side by side in one run, one thread each.

The reference is ``GMM_code/GMM.py`` of github.com/submissionx12/EBMs_Jarzynski; it is
*not* part of this repository: point ``--reference-dir`` at a clone (the folder holding
``GMM_code/``, or ``GMM_code/`` itself). Nothing of it is copied here: at run time its text
is read and trimmed by a few literal substitutions (each checked, so a changed script is
reported rather than mis-timed) to the same experiment as ours:

- Jarzynski only (``algo = [0]``), one repetition (``n_stat = 1``), one resampling
  threshold, ``std1 = 0.05``: the script resamples when the weights' squared coefficient
  of variation 1/ESS - 1 exceeds it, i.e. ESS < 1/1.05, our threshold (Sec. 4.1);
- ``UPDATES`` updates instead of 8,000 (``n_iter = UPDATES + 1``, its loop runs n_iter - 1);
- CPU (``CUDA_VISIBLE_DEVICES`` empty), ``torch.set_num_threads(1)``, ``OMP_NUM_THREADS=1``,
  outputs written into a temporary folder.

It runs in float64 (its own ``set_default_dtype``), ours in float32. Both are timed as whole
processes (start-up, data, the loop) and over the update loop alone, candidates
interleaved (ours, reference, ours, ...) so machine load affects both alike. Ours is
:class:`~ebm_bench.methods.jarzynski.Jarzynski` built from the pipeline's own B.1 spec
(``experiments.gmm_teacher.pipeline_config``), trained by the training loop (full batch).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = Path("GMM_code") / "GMM.py"
# (what the reference says, what the trimmed copy says); every pattern must occur once
def _substitutions(updates: int) -> list[tuple[str, str]]:
    return [
        ("algo=[0,1,2]", "algo=[0]"),
        ("std1=th.tensor([0.1,0.2,0.4,0.8,1],device=device)", "std1=th.tensor([0.05],device=device)"),
        ("n_iter = th.ceil(tmax/dt).int()", f"n_iter = th.tensor([{int(updates) + 1}]).int()"),
        ("n_stat=5", "n_stat=1\nimport time as _bench_time\n_bench_t0 = _bench_time.perf_counter()\n"
                     "_bench_c0 = _bench_time.process_time()"),
        ("th.backends.cudnn.benchmark = True", "th.backends.cudnn.benchmark = True\nth.set_num_threads(1)"),
    ]


def find_script(reference_dir: str | Path | None) -> Path | None:
    if not reference_dir:
        return None
    d = Path(reference_dir)
    for cand in (d / SCRIPT, d / "GMM.py", d):
        if cand.is_file() and cand.name == "GMM.py":
            return cand
    return None


def trimmed_reference(text: str, updates: int) -> str:
    """The reference script trimmed to ``updates`` Jarzynski updates (see module doc)."""
    for old, new in _substitutions(updates):
        if text.count(old) != 1:
            raise ValueError(f"the reference script changed: expected the line {old!r} exactly once")
        text = text.replace(old, new)
    # the plotting/analysis imports are unused by the computation; drop those not installed
    lines = []
    for line in text.splitlines():
        mod = line.split()[1].split(".")[0] if line.startswith(("import ", "from ")) else None
        if mod and mod not in ("torch", "numpy", "os", "datetime"):
            try:
                __import__(mod)
            except ImportError:
                line = f"# (not installed) {line}"
        lines.append(line)
    lines.append('print("BENCH_LOOP_S", _bench_time.perf_counter() - _bench_t0)')
    lines.append('print("BENCH_LOOP_CPU_S", _bench_time.process_time() - _bench_c0)')
    return "\n".join(lines) + "\n"


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _run(cmd: list[str], cwd: str) -> dict[str, float]:
    """Seconds of one run: whole process (wall, and CPU = user + system of the child) and
    the update loop (wall and CPU, measured inside the process)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    res = {"process_wall_s": wall, "process_cpu_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)}
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_LOOP_S"):
            res["loop_wall_s"] = float(line.split()[1])
        if line.startswith("BENCH_LOOP_CPU_S"):
            res["loop_cpu_s"] = float(line.split()[1])
    if "loop_wall_s" not in res:
        raise RuntimeError(f"no BENCH_LOOP_S line in the output of {' '.join(cmd[:3])}")
    return res


def ours(updates: int) -> None:
    """Worker (own process, one thread): ``updates`` Jarzynski updates at App. B.1, through
    the training loop (in memory, seed 0: the workflow's batches)."""
    import torch

    torch.set_num_threads(1)
    from ebm_bench.training import runs
    from ebm_bench.pipeline.config import run_spec
    from ebm_bench.experiments.gmm_teacher import B1, pipeline_config
    from ebm_bench.training.loop import train

    spec = run_spec(pipeline_config("reference"), B1, "jarzynski", 0)
    data = runs.load_data(spec)
    method = runs.build_method(spec, data)
    # set-up, as the reference's set-up precedes its timer: the optimiser is built on first
    # use, and building a torch optimiser imports torch._dynamo (~1.5 s, once per process:
    # the process times include it; the reference has no optimiser object)
    method.opt
    t, c = time.perf_counter(), time.process_time()
    train(method, data.x_train, {**spec["train"], "steps": int(updates)}, None, "", 0, label=f"{B1}/jarzynski")
    print("BENCH_LOOP_S", time.perf_counter() - t)
    print("BENCH_LOOP_CPU_S", time.process_time() - c)
    print("BENCH_RESAMPLES", method.n_resamples)


def bench_gmm_reference(quick: bool = False, reference_dir: str | None = None, updates: int | None = None,
                        repeats: int | None = None) -> dict | None:
    """Side-by-side timing; returns the medians (None when the reference is absent)."""
    script = find_script(reference_dir or os.environ.get("EBM_BENCH_GMM_REFERENCE"))
    if script is None:
        print("  skipped: the reference script is not here (pass --reference-dir to a clone of "
              "github.com/submissionx12/EBMs_Jarzynski, the folder holding GMM_code/GMM.py)")
        return None
    updates = int(updates or (50 if quick else 1000))
    repeats = int(repeats or 1)
    tmp = tempfile.mkdtemp(prefix="ebm-bench-gmm-ref-")
    ref_path = Path(tmp) / "GMM_trimmed.py"
    ref_path.write_text(trimmed_reference(script.read_text(), updates))
    cands = {
        "ebm-bench": [sys.executable, "-c", f"from ebm_bench.bench.gmm_reference import ours; ours({updates})"],
        "reference": [sys.executable, str(ref_path)],
    }
    times: dict[str, list[dict[str, float]]] = {k: [] for k in cands}
    for _ in range(repeats):
        for name, cmd in cands.items():
            times[name].append(_run(cmd, tmp))
    med = {k: {f: statistics.median(r[f] for r in v) for f in v[0]} for k, v in times.items()}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"GMM App. B.1 (d = 50, N = n = 1e4), {updates} Jarzynski updates, 1 thread each, "
          f"{repeats} interleaved run(s) each, load {load:.1f} on {os.cpu_count()} cores")
    print(f"  reference: {script}")
    print("  seconds (wall / CPU); the update loop is timed inside each process, CPU time is the robust "
          "figure on a loaded machine")
    for name, r in med.items():
        print(f"  {name:10s} process {r['process_wall_s']:7.2f} / {r['process_cpu_s']:7.2f} s   update loop "
              f"{r['loop_wall_s']:7.2f} / {r.get('loop_cpu_s', float('nan')):7.2f} s   "
              f"{1e3 * r['loop_wall_s'] / updates:7.2f} / {1e3 * r.get('loop_cpu_s', float('nan')) / updates:7.2f} "
              f"ms/update")
    ref, our = med["reference"], med["ebm-bench"]
    out = {f"speedup_{k}": ref[k] / our[k] for k in our if k in ref}
    print("  speed-up of ebm-bench: " + ", ".join(f"x{v:.1f} {k[8:]}" for k, v in out.items()))
    return {"updates": updates, "repeats": repeats, "load": load, "ebm_bench": our, "reference": ref, **out}
