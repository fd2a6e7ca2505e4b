"""``gmm``: our paper-003 App. B.1 Jarzynski update against ``GMM_code/GMM.py`` of
github.com/submissionx12/EBMs_Jarzynski (docs/reference-equivalence.md, rows 21-24).

The script is trimmed as ``bench gmm_reference`` trims it, plus two hooks (checked once
each) that report its state; its ULA noise is read from its ``noise`` buffer and fed to ours.
"""

from __future__ import annotations

import contextlib
from collections import deque
from pathlib import Path
from typing import Any

import torch

from ebm_bench.bench.reference.common import Tape, diff_rows, replaying

def _gmm_hooks() -> list[tuple[str, str]]:
    """Literal substitutions (each checked to occur once) that let the script report its state:
    the initial walkers and parameters, and after each update the parameters, walkers, log
    weights and the noise it drew (its ``noise`` buffer after ``noise.normal_``)."""
    return [
        ("        #counter for number of resampling occurred in Jarzynski algo\n        count=0\n",
         "        #counter for number of resampling occurred in Jarzynski algo\n        count=0\n"
         "        _bench_init(x, a[0], z[0])\n"),
        ("            #store analytical log Z\n            CEte[i+1] =",
         "            _bench_snap(i, x, logw, a[i+1], z[i+1], noise, varian[i], count)\n"
         "            #store analytical log Z\n            CEte[i+1] ="),
    ]


def _reference_gmm(ref: Path, updates: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run GMM_code/GMM.py (trimmed as ``bench gmm_reference`` trims it, plus the two hooks)."""
    import io
    import os
    import tempfile

    from ebm_bench.bench.gmm_reference import trimmed_reference

    text = trimmed_reference((ref / "GMM_code" / "GMM.py").read_text(), updates)
    for old, new in _gmm_hooks():
        if text.count(old) != 1:
            raise ValueError(f"GMM.py changed: expected {old!r} exactly once")
        text = text.replace(old, new)
    init: dict[str, Any] = {}
    snaps: list[dict[str, Any]] = []

    def _bench_init(x, a0, z0):
        init.update(walkers=x.detach().clone(), a=a0.detach().clone(), z=z0.detach().clone())

    def _bench_snap(i, x, logw, a, z, noise, varian, count):
        snaps.append({"walkers": x.detach().clone(), "log_w": logw.detach().clone(), "a": a.detach().clone(),
                      "z": z.detach().clone(), "noise": noise.detach().clone(), "cv2_before": float(varian),
                      "resamplings": int(count)})

    ns: dict[str, Any] = {"__name__": "_ref_gmm", "_bench_init": _bench_init, "_bench_snap": _bench_snap}
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="ebm-bench-gmm-") as tmp:
        os.chdir(tmp)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(text, str(ref / "GMM_code" / "GMM.py"), "exec"), ns)
        finally:
            os.chdir(cwd)
    init["data"] = ns["x0"].detach().clone()
    init["dt"] = float(ns["dt"])
    return init, snaps


def compare_gmm(ref: Path, updates: int = 3, seed: int = 0, ablations: bool = True) -> dict[str, Any]:
    """``gmm``: our App. B.1 Jarzynski update (Alg. 1, full batch, N = n = 1e4, d = 50, the
    pipeline's ``reference`` convention) against GMM_code/GMM.py, from the script's own
    initial parameters, walkers and data; its ULA noise fed to ours."""
    from ebm_bench.experiments.gmm_teacher import variant_params
    from ebm_bench.methods.jarzynski import Jarzynski

    init, ref_snaps = _reference_gmm(ref, updates)
    base = dict(variant_params("reference")["jarzynski"])
    n, d = init["walkers"].shape
    base["n_walkers"] = n
    full = {**base, **GMM_REFERENCE_OPTIONS}
    configs = [("reference options", full)] + ([(f"{k}={Jarzynski.defaults[k]}", {**full, k: Jarzynski.defaults[k]})
                                                for k in GMM_REFERENCE_OPTIONS] if ablations else [])
    rows = {}
    for label, params in configs:
        rows[label] = _ours_gmm(params, init, ref_snaps, d, seed)
    return {"method": "gmm", "updates": updates, "n_walkers": n, "n_moved": n, "burn_in_steps": 0,
            "network": f"gmm_energy d = {d} (Eq. 15; the script's U with z of mode a frozen at 0)",
            "reference": {"dt": init["dt"], "n_data": len(init["data"])},
            "data": f"the script's own {len(init['data'])} teacher points (fed to ours)", "rows": rows}


GMM_REFERENCE_OPTIONS: dict[str, Any] = {
    "weights_aliased_positions": True,  # quirk 5: `xo = x` aliases the walkers: both kernels at X'
}


def _ours_gmm(params: dict[str, Any], init: dict[str, Any], ref_snaps: list[dict[str, Any]], d: int,
              seed: int) -> dict[str, Any]:
    from ebm_bench.methods.base import DataInfo
    from ebm_bench.methods.jarzynski import Jarzynski

    tape = Tape()
    tape.q["normal"] = deque(s_["noise"] for s_ in ref_snaps)
    m = Jarzynski(params, DataInfo((d,), False, None), "cpu", seed)
    x0 = init["data"]
    with torch.no_grad():
        m.net.a.copy_(init["a"][0])
        m.net.b.copy_(init["a"][1])
        m.net.z.copy_(init["z"][1] - init["z"][0])  # the script's z_0 of mode a is 0 and frozen
    m.init_walkers(x0)
    m.walkers = init["walkers"].clone()  # the script's start: N/2 walkers from each mode
    ours, theirs, extra = [], [], []
    with replaying(tape):
        for k, r in enumerate(ref_snaps, start=1):
            m.train_step(x0, k)
            # parameters a, b, z against the script's a[0], a[1] and z[1] - z[0]
            ours.append({"params": [m.net.a.detach().clone(), m.net.b.detach().clone(),
                                    m.net.z.detach().reshape(1).clone()],
                         "walkers": m.walkers.detach().clone(), "log_w": m.completed_log_weights()[0].detach().clone()})
            theirs.append({"params": [r["a"][0], r["a"][1], (r["z"][1] - r["z"][0]).reshape(1)],
                           "walkers": r["walkers"], "log_w": r["log_w"]})
            extra.append({"reference_cv2_before": r["cv2_before"], "reference_resamplings": r["resamplings"],
                          "our_resamplings": m.n_resamples})
    per = [{**row, **x} for row, x in zip(diff_rows(ours, theirs), extra)]
    return {"updates": per, "draws_left_unused": tape.left(),
            "options": {k: params[k] for k in ("lr_times_h", "resampler", "resample_threshold",
                                               *GMM_REFERENCE_OPTIONS)}}
