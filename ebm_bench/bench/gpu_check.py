"""The GPU check: every ``config/paper.yaml`` row timed on one CUDA device in under 4 minutes.

    PYTHONPATH=. python3 -m ebm_bench.cli gpu-check --out DIR          # on the GPU machine (no install)
    PYTHONPATH=. python3 -m ebm_bench.cli gpu-check --out DIR --quick  # CPU rehearsal, tiny sizes
    ebm-bench gpu-check --out DIR [--quick] / ebm-bench bench gpu       # the same, installed

Needs only torch (>= 2.1; written for 2.11+), numpy, PyYAML (common on GPU images; it reads
the config) and this checkout: no snakemake, no scikit-learn, no pandas, no torchvision, no
dataset download (random data of each dataset's shape), torch-fidelity optional (the FID
feature pass is skipped, saying so, without it).

For every (dataset, variant) row of the config it resolves the run spec
(:func:`ebm_bench.pipeline.config.run_spec`), builds the method (:func:`ebm_bench.training.runs.build_method`)
and times, after a warm-up update, a few updates and one generation batch. Methods whose
update is a long inner loop (K Langevin steps, Gibbs sweeps, HEE's presentation time) are
timed at two reduced loop lengths and extrapolated linearly to the paper's (the report
says ``extrapolated`` and from which lengths); when the predicted full update fits the
row's time cap it is measured at full length instead (``measured``). Jarzynski's burn-in
(thousands of unweighted ULA steps before training) is projected from the measured cost
of one ULA step over all walkers. Reported per row: ms per update, gradient evaluations
per second (:mod:`ebm_bench.samplers.counting`), peak GPU memory (at the timed loop
length), generation time, and the projected GPU-hours: updates x time per update +
burn-in + generation of ``sample.n`` + the FID feature pass over them (Inception-v3 of
torch-fidelity with RANDOM weights: its cost, not its features), per seed and for all
seeds. Also: the Langevin inner loop eager vs ``sampler_compile`` (cuda_graph,
torch_compile when time allows). Outputs ``gpu_check.json`` and ``gpu_check.md`` in --out.

Longer than 500 lines because it must run on a GPU machine with only torch, numpy and PyYAML:
it keeps its timing, extrapolation and report in one module that imports nothing else of the
suite's optional stack.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from ebm_bench.core import progress
from ebm_bench.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = ROOT / "config" / "paper.yaml"
BUDGET_S = 225.0  # of the 4 minutes: rows + FID pass + compile comparison (start-up is the rest)
QUICK_BUDGET_S = 90.0

# loop-length parameters of each method: scaled together by one factor, cost affine in it
KNOBS: dict[str, tuple[str, ...]] = {
    "short_run": ("n_steps",),
    "ebm_matched": ("n_steps",),
    "pcd": ("n_steps", "sample_steps"),
    "pcd_da": ("n_steps", "sample_steps"),
    "cd": ("n_steps", "sample_steps"),
    "jarzynski": ("n_steps", "sample_steps"),
    "stanley": ("n_steps", "sample_steps"),
    "nnefh": ("langevin_steps",),
    "ebm_free_energy": ("langevin_steps",),  # the NN-EFH's M x L loop (M = gibbs_steps kept)
    "grbm": ("gibbs_steps", "sample_gibbs_steps"),
    # feature_*: the inference run behind the probe's features (evaluation, not timed here)
    "hee": ("present_time", "joint_time", "joint_average", "marginal_time", "marginal_average",
            "feature_time", "feature_average"),
}
FLOAT_KNOBS = {"present_time", "joint_time", "joint_average", "marginal_time", "marginal_average",
               "feature_time", "feature_average"}
# one-off loops before training (unweighted ULA over all chains / walkers: paper 003's
# reference runs 2,000 and 8,000 steps): not part of an update, so never in KNOBS
BURN_IN_KNOBS = ("burn_in_steps",)
# outer loops around a KNOBS loop (NN-EFH: M Gibbs sweeps of L Langevin steps): scaling
# both by one factor would make the cost quadratic in it, so the GPU check keeps them and
# only shrink_loops cuts them
NESTED_KNOBS: dict[str, tuple[str, ...]] = {"nnefh": ("gibbs_steps",), "ebm_free_energy": ("gibbs_steps",)}


def load_config(path: str | Path) -> dict[str, Any]:
    text = Path(path).read_text()
    try:
        import yaml
    except ImportError:
        raise ConfigError(f"the GPU check reads {path} with PyYAML, which is not installed: pip install pyyaml") from None
    return yaml.safe_load(text)


def data_info(config: dict, dataset: str):
    """The dataset's DataInfo without downloading it: image datasets from their channels and
    ``size``; embedded vector datasets (toys) are generated (cheap)."""
    from ebm_bench.pipeline.config import dataset_spec
    from ebm_bench.methods.base import DataInfo
    from ebm_bench.core.registry import DATASETS

    ds = dataset_spec(config, dataset)
    cls = DATASETS.get(ds["type"])
    p = ds["params"]
    if hasattr(cls, "channels") and "size" in p:
        ch = int(p.get("channels", cls.channels))
        return DataInfo((ch, int(p["size"]), int(p["size"])), True, 10 if cls.labelled else None)
    from ebm_bench.data import load_dataset

    data = load_dataset(ds["type"], p, Path(ds["data_root"]), 0)
    return DataInfo.of(data)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _consistent(p: dict, method: str) -> dict:
    """Keys bounded by a loop length, kept valid after it shrank (grbm: the negatives start
    within the Gibbs chain; hee: learning starts within the presentation)."""
    if method == "grbm":
        p["neg_burn_in"] = min(int(p.get("neg_burn_in", 0)), int(p["gibbs_steps"]) - 1)
    if method == "hee":
        p["learn_after"] = min(float(p.get("learn_after", 0.0)), 0.5 * float(p["present_time"]))
    return p


def _scaled(params: dict, method: str, frac: float) -> dict:
    p = dict(params)
    for k in KNOBS.get(method, ()):
        if k in p and p[k]:
            p[k] = float(p[k]) * frac if k in FLOAT_KNOBS else max(1, int(round(int(p[k]) * frac)))
    return _consistent(p, method)


def shrink_loops(params: dict, method: str, steps: int = 2, burn_in: int = 1) -> dict:
    """``params`` with every loop-length knob of ``method`` (KNOBS and NESTED_KNOBS) cut
    to at most ``steps`` steps and the burn-in (BURN_IN_KNOBS: ULA over every chain, the
    costliest loop per step) to at most ``burn_in``, each on its own: an integer knob to
    min(value, steps); a time knob (HEE, in tau_x) to at most ``steps`` Euler steps of
    ``dt``, an average never above its total (supp. Table 1's 300 tau_x presentation is
    30,000 steps). Knobs that are 0 ("off", or "= another knob") stay 0. Nothing else
    changes: network, populations (walkers, buffers, hidden units) and step sizes are the
    row's. Used by the CPU paper smoke (ebm_bench/bench/paper_smoke.py)."""
    p = dict(params)
    dt = float(p.get("dt", 1.0))
    limits = {**{k: steps for k in (*KNOBS.get(method, ()), *NESTED_KNOBS.get(method, ()))},
              **{k: burn_in for k in BURN_IN_KNOBS}}
    for k, n in limits.items():
        if k not in p or not p[k]:
            continue
        if k in FLOAT_KNOBS:
            p[k] = min(float(p[k]), n * dt)
        else:
            p[k] = min(int(p[k]), int(n))
    return _consistent(p, method)


def _fractions(params: dict, method: str, quick: bool) -> list[float]:
    """Two reduced loop lengths (as fractions of the paper's), or [1.0] when short already."""
    knobs = [k for k in KNOBS.get(method, ()) if params.get(k)]
    if not knobs:
        return [1.0]
    main = knobs[0]
    steps = float(params[main]) / float(params.get("dt", 1.0)) if main in FLOAT_KNOBS else float(params[main])
    lo, hi = (2, 4) if quick else (3, 12)
    if steps <= hi:
        return [1.0]
    return [lo / steps, hi / steps]


def _random_batch(info, n: int, device: torch.device, gen: torch.Generator) -> torch.Tensor:
    x = torch.rand((n, *info.shape), generator=gen) * 2 - 1 if info.is_image else torch.randn((n, *info.shape),
                                                                                               generator=gen)
    return x.to(device)


def _time_point(cls, params: dict, info, device: torch.device, batch: torch.Tensor, gen_batch: int,
                deadline: float, repeats: int) -> dict[str, float]:
    from ebm_bench.samplers.counting import grad_evals

    m = cls(params, info, device, 0)
    m.train_step(batch, 1)  # warm-up: lazy state (walkers, optimiser, cuDNN plans)
    _sync(device)
    done, t_upd, e0 = 0, 0.0, grad_evals()
    for step in range(2, 2 + repeats):
        t = time.perf_counter()
        m.train_step(batch, step)
        _sync(device)
        t_upd += time.perf_counter() - t
        done += 1
        if time.perf_counter() > deadline:
            break
    evals = (grad_evals() - e0) / done
    with torch.no_grad():
        t = time.perf_counter()
        m.sample(gen_batch)
        _sync(device)
        t_gen = time.perf_counter() - t
    out = {"update_s": t_upd / done, "updates_timed": done, "grad_evals_per_update": evals,
           "gen_batch_s": t_gen, "sampler_steps_per_iter": int(getattr(m, "sampler_steps_per_iter", 0) or 0)}
    burn = int(params.get("burn_in_steps", 0) or 0)
    if cls.name == "jarzynski" and getattr(m, "walkers", None) is not None and len(m.walkers):
        t = time.perf_counter()
        m.sampler.run(m.energy, m.walkers, 2, m.gen)  # one ULA step over all N walkers, twice
        _sync(device)
        out["ula_step_all_walkers_s"] = (time.perf_counter() - t) / 2
    out["burn_in_steps"] = burn
    return out


def _extrapolate(points: list[tuple[float, dict]], key: str) -> float:
    if len(points) == 1:
        return points[0][1][key]
    (f1, a), (f2, b) = points[0], points[-1]
    slope = (b[key] - a[key]) / (f2 - f1)
    return max(a[key] + (1.0 - f1) * slope, b[key])


def time_row(spec: dict, info, device: torch.device, cap_s: float, quick: bool) -> dict[str, Any]:
    from ebm_bench.core.registry import METHODS

    cls = METHODS.get(spec["method"])
    params = dict(spec["method_params"])
    bs = int(spec["train"]["batch_size"])
    if quick:  # the method's own tiny settings (contract tests) on 8x8 images, batch 8
        params = {**params, **cls.tiny_params(info)}
        bs = min(bs, 8)
        if info.is_image:
            info = type(info)((info.shape[0], 8, 8), True, info.num_classes)
    burn_full = int(params.get("burn_in_steps", 0) or 0)
    if "burn_in_steps" in params:
        params["burn_in_steps"] = 0  # projected from the cost of one ULA step instead
    n_sample = int(spec["sample"]["n"]) if not quick else 16
    gen_batch = max(1, min(int(params.get("sample_batch", 500) or 500), n_sample))
    if quick:
        gen_batch = min(gen_batch, 8)
    g = torch.Generator().manual_seed(0)
    batch = _random_batch(info, bs, device, g)
    t0 = time.perf_counter()
    deadline = t0 + cap_s
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    points = []
    fracs = _fractions(params, spec["method"], quick)
    for f in fracs:
        p = _scaled(params, spec["method"], f) if f < 1.0 else params
        points.append((f, _time_point(cls, p, info, device, batch, gen_batch, deadline, 1 if quick else 3)))
        if time.perf_counter() > deadline:
            break
    how = "measured"
    if fracs[0] < 1.0:
        how = "extrapolated"
        pred = _extrapolate(points, "update_s") * 3 + _extrapolate(points, "gen_batch_s")
        if len(points) == 2 and not quick and time.perf_counter() + 1.5 * pred < deadline:
            points = [(1.0, _time_point(cls, params, info, device, batch, gen_batch, deadline, 2))]
            how = "measured"
    upd = _extrapolate(points, "update_s")
    gen_b = _extrapolate(points, "gen_batch_s")
    evals = _extrapolate(points, "grad_evals_per_update") if all(p[1]["grad_evals_per_update"] for p in points) else 0
    last = points[-1][1]
    burn_s = burn_full * last.get("ula_step_all_walkers_s", 0.0)
    row = {
        "method": spec["method"],
        "how": how,
        "loop_fractions_timed": [round(f, 6) for f, _ in points],
        "ms_per_update": 1e3 * upd,
        "grad_evals_per_update": evals,
        "grad_evals_per_s": evals / upd if evals and upd > 0 else None,
        "generation_batch": gen_batch,
        "generation_s": gen_b * math.ceil(n_sample / gen_batch),
        "burn_in_s": burn_s,
        "peak_gpu_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "row_wall_s": time.perf_counter() - t0,
        "steps": int(spec["train"]["steps"]),
        "batch_size": bs,
        "n_sample": n_sample,
    }
    return row


def time_fid_pass(device: torch.device, quick: bool) -> dict[str, Any]:
    """Images per second through torch-fidelity's Inception-v3 (2048-d pool + logits), with
    random weights (timing only: nothing is loaded or downloaded)."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError:
        return {"status": "skipped: torch-fidelity is not installed (pip install torch-fidelity to time the FID "
                          "feature pass); evaluation hours below leave it out"}
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, _no_weights(FeatureExtractorInceptionV3):
        empty = Path(tmp) / "no-weights.pt"  # an empty state dict; loading it is a no-op
        torch.save({}, empty)
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                          feature_extractor_weights_path=str(empty))
    net = net.to(device).eval()
    b = 4 if quick else 250
    x = torch.randint(0, 256, (b, 3, 32, 32), dtype=torch.uint8, device=device)
    with torch.no_grad():
        net(x)
        _sync(device)
        reps = 1 if quick else 4
        t = time.perf_counter()
        for _ in range(reps):
            net(x)
        _sync(device)
    dt = (time.perf_counter() - t) / reps
    return {"status": "ok", "weights": "RANDOM (timing only; real FIDs need the pinned torch-fidelity file)",
            "batch": b, "input": "uint8 3x32x32, resized to 299 inside", "images_per_s": b / dt}


@contextlib.contextmanager
def _no_weights(cls):
    saved = cls.load_state_dict
    cls.load_state_dict = lambda self, sd, *a, **k: None
    try:
        yield
    finally:
        cls.load_state_dict = saved


def compare_compile(config: dict, device: torch.device, deadline: float, quick: bool) -> dict[str, Any]:
    """The K-step Langevin loop of the first short_run row, eager vs sampler_compile."""
    from ebm_bench.pipeline.config import run_spec
    from ebm_bench.core.registry import METHODS

    if device.type != "cuda":
        return {"status": "skipped: needs CUDA (torch.compile on CPU takes minutes; cuda_graph is CUDA-only)"}
    row = next(((d, v) for d, v in _rows(config) if v == "short_run"), None)
    if row is None:
        return {"status": "skipped: no short_run row"}
    spec = run_spec(config, row[0], row[1], 0)
    info = data_info(config, row[0])
    x0 = _random_batch(info, int(spec["train"]["batch_size"]), device, torch.Generator().manual_seed(1))
    k = 20
    out: dict[str, Any] = {"row": f"{row[0]}/{row[1]}", "chains": int(x0.shape[0]), "steps_timed": k}
    for mode in ("none", "cuda_graph", "torch_compile"):
        left = deadline - time.perf_counter()
        if left < (90 if mode == "torch_compile" else 10):
            out[mode] = {"status": f"skipped: {left:.0f} s left in the budget"}
            continue
        try:
            m = METHODS.get("short_run")({**spec["method_params"], "sampler_compile": mode}, info, device, 0)
            t = time.perf_counter()
            m.sampler.run(m.energy, x0, 2, m.gen)  # capture / compile
            _sync(device)
            first = time.perf_counter() - t
            t = time.perf_counter()
            m.sampler.run(m.energy, x0, k, m.gen)
            _sync(device)
            out[mode] = {"status": "ok", "ms_per_step": 1e3 * (time.perf_counter() - t) / k, "first_call_s": first}
        except Exception as e:  # noqa: BLE001 - report, keep going
            out[mode] = {"status": f"error: {type(e).__name__}: {str(e)[:300]}"}
    base = out.get("none", {}).get("ms_per_step")
    for mode in ("cuda_graph", "torch_compile"):
        if base and out.get(mode, {}).get("ms_per_step"):
            out[mode]["speedup_vs_eager"] = base / out[mode]["ms_per_step"]
    return out


def _rows(config: dict) -> list[tuple[str, str]]:
    from ebm_bench.pipeline.config import dataset_variants

    return [(d, v) for d in config["datasets"] for v in dataset_variants(config, d)]


def run(out_dir: str | Path, quick: bool = False, config_path: str | Path = DEFAULT_CONFIG,
        budget_s: float | None = None, device_name: str | None = None, say=print) -> dict[str, Any]:
    from ebm_bench.pipeline.config import dataset_seeds, run_spec

    start = time.perf_counter()
    device = torch.device(device_name or ("cpu" if quick else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("no CUDA device is visible (run with --quick for the CPU rehearsal)")
    budget = float(budget_s or (QUICK_BUDGET_S if quick else BUDGET_S))
    if device.type == "cpu":
        torch.set_num_threads(1)  # tiny sizes: threads only add overhead (and shared CI machines are busy)
    config = load_config(config_path)
    config["device"] = device.type
    rows = _rows(config)
    seeds = len(config.get("seeds") or [0])  # the default; a dataset's own `seeds` overrides it per row
    say(f"gpu check: {len(rows)} rows of {config_path} on {device}"
        f"{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
        f"budget {budget:.0f} s{', QUICK: tiny sizes on CPU' if quick else ''}")
    fid = time_fid_pass(device, quick)
    say(f"FID feature pass: {fid.get('images_per_s', 0):.0f} images/s ({fid['status'] if fid['status'] != 'ok' else fid['weights']})")
    reserve = 0.0 if quick or device.type != "cuda" else 100.0  # for the compile comparison
    row_end = start + budget - reserve
    results: list[dict[str, Any]] = []
    seen: dict[str, dict] = {}
    fid_rate = fid.get("images_per_s")
    # one row can be timed for minutes: its updates' samplers tick inside this task
    with progress.Task("row", len(rows)) as task:
        for i, (ds, variant) in enumerate(rows):
            task.tick(i, f"{ds}/{variant}")
            entry: dict[str, Any] = {"dataset": ds, "variant": variant}
            try:
                spec = run_spec(config, ds, variant, 0)
                info = data_info(config, ds)
                key = json.dumps([spec["method"], spec["method_params"], list(info.shape), spec["train"]["batch_size"],
                                  spec["sample"]["n"]], sort_keys=True, default=str)
                left = row_end - time.perf_counter()
                cap = max(1.0, left / max(1, len(rows) - i))
                if key in seen:
                    entry.update({**seen[key]["timing"], "same_as": seen[key]["name"]})
                elif left <= 0:
                    entry["status"] = "not timed: time budget spent"
                else:
                    timing = time_row(spec, info, device, cap, quick)
                    seen[key] = {"timing": timing, "name": f"{ds}/{variant}"}
                    entry.update(timing)
                if "ms_per_update" in entry:
                    eval_s = entry["n_sample"] / fid_rate if (fid_rate and spec["evaluate"].get("use_inception")) else 0.0
                    per_seed = entry["steps"] * entry["ms_per_update"] / 1e3 + entry["burn_in_s"] + entry["generation_s"] + eval_s
                    entry.update(status="ok", fid_pass_s=eval_s, gpu_hours_per_seed=per_seed / 3600,
                                 gpu_hours_all_seeds=len(dataset_seeds(config, ds)) * per_seed / 3600)
            except ModuleNotFoundError as e:  # a method whose own library is absent (pcd_da: torchvision)
                entry["status"] = f"skipped: needs {e.name} (not installed on this machine)"
            except Exception as e:  # noqa: BLE001 - one row's failure (OOM, bad spec) is reported, not fatal
                entry["status"] = f"error: {type(e).__name__}: {str(e)[:300]}"
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            results.append(entry)
            say(_row_line(entry))
    comp = compare_compile(config, device, start + budget, quick)
    ok = [r for r in results if r.get("status") == "ok"]
    n_real = {ds: int(run_spec(config, ds, _rows_of(config, ds)[0], 0)["evaluate"].get("n_real") or 0)
              for ds in config["datasets"]}
    ref_s = sum(n / fid_rate for ds, n in n_real.items() if fid_rate and run_spec(
        config, ds, _rows_of(config, ds)[0], 0)["evaluate"].get("use_inception"))
    report = {
        "config": str(config_path),
        "quick": quick,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "seeds": seeds,
        "precision": "fp32, TF32 off (the default policy, ebm_bench/core/precision.py)",
        "fid_feature_pass": fid,
        "sampler_compile": comp,
        "rows": results,
        "totals": {
            "rows": len(results), "rows_ok": len(ok),
            "gpu_hours_all_seeds": sum(r["gpu_hours_all_seeds"] for r in ok),
            "reference_statistics_gpu_hours": ref_s / 3600,
        },
        "wall_s": time.perf_counter() - start,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "gpu_check.md").write_text(markdown(report))
    say(f"gpu check: {len(ok)}/{len(results)} rows timed, projected {report['totals']['gpu_hours_all_seeds']:.1f} "
        f"GPU-hours ({seeds} seed(s) unless a dataset sets its own); wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'} "
        f"in {report['wall_s']:.0f} s")
    return report


def _rows_of(config: dict, dataset: str) -> list[str]:
    from ebm_bench.pipeline.config import dataset_variants

    return dataset_variants(config, dataset)


def _fmt(v: Any, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def _row_line(r: dict) -> str:
    name = f"{r['dataset']}/{r['variant']}"
    if r.get("status") != "ok":
        return f"  {name:36s} {r.get('status')}"
    return (f"  {name:36s} {r['ms_per_update']:9.1f} ms/update ({r['how']}) {_fmt(r.get('grad_evals_per_s'), '.3g'):>8s} "
            f"grad/s  {_fmt(r.get('peak_gpu_mb'), '.0f'):>6s} MB  {r['gpu_hours_per_seed']:8.2f} GPU-h/seed")


def markdown(report: dict) -> str:
    lines = [f"# GPU check: {report['device_name']} ({report['device']}), torch {report['torch']}"
             f"{' - QUICK (CPU, tiny sizes: not paper-scale numbers)' if report['quick'] else ''}", "",
             f"Config `{report['config']}`, {report['seeds']} seed(s), precision {report['precision']}, "
             f"load average {_fmt(report['load_average'])}, wall {report['wall_s']:.0f} s.", "",
             "| dataset | variant | method | ms/update | how | grad evals/s | peak GPU MB | burn-in s | generation s "
             "| FID pass s | GPU-h/seed | GPU-h all seeds |",
             "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in report["rows"]:
        if r.get("status") != "ok":
            lines.append(f"| {r['dataset']} | {r['variant']} | {r.get('method', '')} | - | {r.get('status')} "
                         "| | | | | | | |")
            continue
        how = r["how"] + (f" (loop x{', x'.join(f'{f:.3g}' for f in r['loop_fractions_timed'])})"
                          if r["how"] == "extrapolated" else "")
        if r.get("same_as"):
            how += f"; = {r['same_as']}"
        lines.append(f"| {r['dataset']} | {r['variant']} | {r['method']} | {r['ms_per_update']:.1f} | {how} | "
                     f"{_fmt(r.get('grad_evals_per_s'), '.3g')} | {_fmt(r.get('peak_gpu_mb'), '.0f')} | "
                     f"{r['burn_in_s']:.0f} | {r['generation_s']:.0f} | {r['fid_pass_s']:.0f} | "
                     f"{r['gpu_hours_per_seed']:.2f} | {r['gpu_hours_all_seeds']:.2f} |")
    t = report["totals"]
    fid = report["fid_feature_pass"]
    lines += ["", f"Total: {t['gpu_hours_all_seeds']:.1f} GPU-hours for {t['rows_ok']}/{t['rows']} rows "
              f"(+ {t['reference_statistics_gpu_hours']:.2f} h for the datasets' reference statistics).", "",
              f"FID feature pass: {fid['status']}" + (f", {fid['images_per_s']:.0f} images/s, batch {fid['batch']}, "
                                                     f"weights {fid['weights']}" if fid["status"] == "ok" else ""), ""]
    comp = report["sampler_compile"]
    lines.append(f"Langevin inner loop, `sampler_compile`: {comp.get('status', comp.get('row', ''))}")
    for mode in ("none", "cuda_graph", "torch_compile"):
        if mode in comp:
            c = comp[mode]
            lines.append(f"- {mode}: {c['status'] if c['status'] != 'ok' else ''}"
                         + (f"{c['ms_per_step']:.3f} ms/step (first call {c['first_call_s']:.1f} s)"
                            if c["status"] == "ok" else "")
                         + (f", x{c['speedup_vs_eager']:.2f} vs eager" if c.get("speedup_vs_eager") else ""))
    lines += ["", "GPU-hours = steps x ms/update + burn-in + generation of sample.n + the FID feature pass over "
              "them. `extrapolated`: timed at the loop lengths shown (fractions of the paper's K / Gibbs sweeps / "
              "presentation time) and extended linearly; peak memory is at the timed length."]
    return "\n".join(lines) + "\n"
