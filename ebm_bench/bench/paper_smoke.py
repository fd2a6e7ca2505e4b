"""``ebm-bench bench paper_smoke``: every ``config/paper.yaml`` row, end to end at full size on CPU.

    ebm-bench bench paper_smoke --data-root DIR --out OUT [--cores 2] [--inception-weights PATH]

What it checks (issue 20): each (dataset, variant) row of the paper configuration trains
a couple of updates at its paper network size, samples and is evaluated through the real
Snakemake DAG (``snakemake --configfile OUT/paper_smoke_config.yaml --keep-going``: the
download, classifier, reference, train, sample and evaluate rules, one job per stage as
paper.yaml runs them), on data in each dataset's real on-disk format. It is a smoke test of
the paper configuration, not a measurement of any method: two updates say nothing about
what a method learns.

The smoke config is derived from paper.yaml by :func:`smoke_config`, which changes only:

- training length: ``train.steps`` = ``STEPS`` in every block that sets it (top level,
  ``datasets.X.train``, ``variants.V.train``, ``datasets.X.variant_params.V.train``),
  logging every update; batch sizes are the rows';
- inner-loop lengths: each row's loop-length knobs (Langevin K, Gibbs sweeps, HEE's
  presentation / generation / feature times) cut to ``LOOP_STEPS`` steps and its burn-in
  to ``BURN_IN_STEPS`` by :func:`ebm_bench.bench.gpu_check.shrink_loops` (the knobs the GPU
  check already scales, ``gpu_check.KNOBS``, and the outer Gibbs loop of NN-EFH),
  written into ``datasets.X.variant_params.V``. Networks, hidden units, layer widths and
  step sizes are untouched;
- counts per update, only where the data batch exceeds ``BATCH_CAP`` (paper 003's rows,
  HEE's, MNIST 2/3/6): the batch to ``BATCH_CAP`` and the row's chain populations
  (``POPULATION_KEYS``: walkers N, walkers moved N', buffer, chains per update) by the
  same factor, so every ratio between them is the paper's;
- sample counts: ``sample.n`` = ``SAMPLE_N``; ``evaluate.n_real`` = ``N_REAL``;
  ``evaluate.probe_max_train`` = ``PROBE_MAX_TRAIN``; the test split of MNIST and
  FashionMNIST to ``MAX_TEST`` images (``params.max_test``: the probe and the domain
  classifier's accuracy read it); AIS of ``model_modes`` at ``MODEL_MODES``;
- the domain classifier's training: ``classifier.epochs`` = ``CLASSIFIER_EPOCHS``;
- one seed, ``device: cpu``, ``threads`` per job (Snakemake runs ``--cores`` / threads
  jobs side by side);
- data: MNIST and FashionMNIST (and paper 003's biased MNIST 2/3/6, read from MNIST) from
  torchvision's raw files under ``--data-root`` (``MNIST/raw/*-ubyte``,
  ``FashionMNIST/raw/*-ubyte``; ``ebm-bench write-idx`` writes them from arrays),
  linked into ``OUT/data``; required, checked before anything runs. CIFAR-10, CelebA and
  Flowers-102, whose torchvision loaders check md5 sums (so no file of another content
  passes), run as ``type: image_folder`` of the same image shape: ``DATA_ROOT/<dataset>/
  image_folder`` if the data root has one (its entries linked into ``OUT/data``), else a
  synthetic folder generated in ``OUT/data`` (``FOLDER_SHAPES``: class count, images per
  class; the report says ``synthetic``). CelebA has no labels; as an image folder it gets
  two classes (so it gets a domain classifier, a probe and mode weights it would not have);
- features: with torch-fidelity's Inception weights present (``--inception-weights`` or
  torch hub's cache) ``evaluate.features: auto`` (Inception on the image datasets, as
  paper.yaml); without them (offline machines) ``evaluate.features: domain``: every
  dataset's small domain classifier (ebm_bench.nets.domain_classifier.DomainClassifier, the
  extractor also registered in torch-fidelity as ``ebm-bench-domain``) stands in for
  Inception through the same FeatureExtractor interface (``extract`` -> pool features for
  FID/KID, logits for IS), and the report says so (``extractor``).

Output: ``OUT/paper_smoke.json`` (``rows``: per row ``dataset``, ``variant``, ``ok``,
``s_per_update``, ``peak_mem_mb``, ``error``, and what else the run files say),
``OUT/paper_smoke.md`` (the table) and the pipeline's own files under ``OUT/results``
(Snakemake's output in ``OUT/snakemake.log``). A row is ok when training and sampling
ended ``ok`` and every metric family wrote ``status: ok``; otherwise ``error`` names the
first failing stage and its message. ``s_per_update``: training wall time / updates
(``train_status.json``; the first update includes lazy set-up, e.g. Jarzynski's burn-in);
``peak_mem_mb``: the largest resident set of the row's jobs (Snakemake's benchmark files,
sampled each second for 30 s then every 30 s) and of its training process (getrusage).
A progress line at least every ``PROGRESS_EVERY_S`` seconds.

Longer than 500 lines because it is one benchmark end to end: deriving a smoke row from every
paper.yaml row (every ratio kept), the offline data, and the Snakemake run with its report.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
PAPER_CONFIG = ROOT / "config" / "paper.yaml"
CONFIG_NAME = "paper_smoke_config.yaml"
REPORT_NAME = "paper_smoke.json"

STEPS = 2  # parameter updates per row
LOOP_STEPS = 2  # inner-loop length per update / generation (gpu_check.shrink_loops)
SAMPLE_N = 100  # generated samples per row (the config's floor: ebm_bench.pipeline.config.MIN_SAMPLES)
N_REAL = 256  # reference rows: >= 2 x the domain classifier's 128 features, so FID uses its pool layer
PROBE_MAX_TRAIN = 100  # the config's floor (MIN_PROBE_TRAIN)
MAX_TEST = 1000  # test images of MNIST / FashionMNIST (the probe's features of every test image)
CLASSIFIER_EPOCHS = 1
BURN_IN_STEPS = 1  # ULA over every chain / walker before training (paper 003: 2,000-20,000)
# Data batches above BATCH_CAP shrink to it, and the row's chain populations by the same
# factor (ratios kept: N / N', buffer / chains per update, batch / chains). Paper 003's
# CIFAR-10 rows otherwise pass 4,096 walkers of a 0.8 GFLOP network per update and hold
# ~9 GB of activations in the burn-in: alone longer than the whole smoke's budget.
BATCH_CAP = 64
POPULATION_KEYS = ("n_walkers", "n_moved", "buffer_size", "n_chains")
MODEL_MODES = {"n_chains": 20, "n_steps": LOOP_STEPS}
THREADS = 1  # torch threads per job: with --cores 2, two jobs side by side
PROGRESS_EVERY_S = 60.0

# paper.yaml dataset types read from torchvision's raw files under --data-root
RAW_TYPES = ("mnist", "fashion_mnist", "mnist_236")
# types whose torchvision loader checks md5 sums: run as an image folder of the same shape;
# (classes, train images per class, test images per class) of a generated folder
FOLDER_SHAPES = {"cifar10": (10, 30, 10), "celeba": (2, 150, 25), "flowers102": (102, 3, 1)}
STAGE_OUTPUTS = {"train": ("train_status.json",), "sample": ("samples.npz",), "evaluate": ("metrics",),
                 "run": ("train_status.json", "samples.npz", "metrics")}


# --------------------------------------------------------------------------- the config


def load_paper_config(path: str | Path = PAPER_CONFIG) -> dict[str, Any]:
    from ebm_bench.bench.gpu_check import load_config

    return load_config(path)


def rows(config: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (dataset, variant) row of a config, in its order."""
    from ebm_bench.pipeline.config import dataset_variants

    return [(d, v) for d in config["datasets"] for v in dataset_variants(config, d)]


def _short_train(block: dict | None) -> dict | None:
    if block is None:
        return None
    return {**block, "steps": STEPS, "log_every": 1, "checkpoint_every": STEPS}


def smoke_config(paper: dict[str, Any], data_root: str | Path, results_dir: str | Path,
                 threads: int = THREADS, inception_weights: str | None = None) -> dict[str, Any]:
    """The smoke config of ``paper`` (module docstring): a new dict, ``paper`` untouched.

    ``inception_weights``: a usable Inception weight file (Inception features, as
    paper.yaml), or None (every dataset's domain classifier stands in)."""
    from ebm_bench.pipeline.config import dataset_spec, run_spec
    from ebm_bench.bench.gpu_check import shrink_loops
    from ebm_bench.core.registry import DATASETS

    cfg = copy.deepcopy(paper)
    cfg.update(results_dir=str(results_dir), data_root=str(data_root), device="cpu", threads=int(threads), seeds=[0])
    cfg["train"] = _short_train(cfg.get("train") or {})
    for name in list(cfg["variants"]):
        v = dict(cfg["variants"][name] or {})
        if "train" in v:
            v["train"] = _short_train(v["train"])
        cfg["variants"][name] = v
    for d in list(cfg["datasets"]):
        # fresh dicts everywhere: YAML anchors make several rows share one mapping
        dc = dict(cfg["datasets"][d] or {})
        dc.pop("seeds", None)
        if "train" in dc:
            dc["train"] = _short_train(dc["train"])
        vp = {}
        for v, over in (dc.get("variant_params") or {}).items():
            over = dict(over or {})
            if "train" in over:
                over["train"] = _short_train(over["train"])
            vp[v] = over
        dc["variant_params"] = vp
        ds = dataset_spec(paper, d)
        params = dict(dc.get("params") or {})
        if ds["type"] in FOLDER_SHAPES:
            dc["type"] = "image_folder"
            dc["params"] = {"path": f"{d}/image_folder", "size": int(ds["params"]["size"]),
                            "channels": int(DATASETS.get(ds["type"]).channels)}
        elif ds["type"] in ("mnist", "fashion_mnist"):
            dc["params"] = {**params, "max_test": MAX_TEST}
        cfg["datasets"][d] = dc
    cfg["sample"] = {**(cfg.get("sample") or {}), "n": SAMPLE_N}
    ev = dict(cfg.get("evaluate") or {})
    ev.update(n_real=N_REAL, probe_max_train=PROBE_MAX_TRAIN,
              model_modes={**(ev.get("model_modes") or {}), **MODEL_MODES})
    if inception_weights:
        ev.update(features=ev.get("features", "auto"), inception_weights=str(inception_weights))
    else:
        ev.update(features="domain", inception_weights=None)
    cfg["evaluate"] = ev
    cfg["classifier"] = {**(cfg.get("classifier") or {}), "epochs": CLASSIFIER_EPOCHS}
    # loop lengths last: each row's resolved parameters (after every merge) shrunk, the
    # changed keys written where they win (datasets.X.variant_params.V)
    for d, v in rows(cfg):
        spec = run_spec(cfg, d, v, 0)
        full = spec["method_params"]
        short = shrink_loops(full, spec["method"], LOOP_STEPS, BURN_IN_STEPS)
        changed = {k: short[k] for k in short if short[k] != full.get(k)}
        vp = cfg["datasets"][d]["variant_params"]
        over = {**(vp.get(v) or {}), **changed}
        batch = int(spec["train"]["batch_size"])
        if batch > BATCH_CAP:
            over["train"] = {**(over.get("train") or {}), "batch_size": BATCH_CAP}
            for k in POPULATION_KEYS:
                if full.get(k):
                    over[k] = max(1, round(int(full[k]) * BATCH_CAP / batch))
        if over != (vp.get(v) or {}):
            vp[v] = over
    return cfg


def write_config(cfg: dict[str, Any], path: Path) -> None:
    import yaml

    class NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data):  # every mapping written out in full
            return True

    path.write_text("# written by ebm-bench bench paper_smoke from config/paper.yaml "
                    "(ebm_bench/bench/paper_smoke.py, smoke_config)\n"
                    + yaml.dump(cfg, Dumper=NoAliases, sort_keys=False, default_flow_style=None, width=120))


# --------------------------------------------------------------------------- the data


def write_image_folder(root: Path, classes: int, n_train: int, n_test: int, size: int, seed: int = 0) -> int:
    """A synthetic ImageFolder tree ``root/{train,test}/class_XXX/*.png`` (RGB, size x size):
    each class a smooth random colour pattern (a 4 x 4 grid upsampled) plus pixel noise, so
    a classifier can tell the classes apart. Returns the number of images written."""
    import numpy as np
    import torch
    from PIL import Image

    rng = np.random.default_rng(seed)
    written = 0
    for c in range(classes):
        grid = torch.from_numpy(rng.uniform(0.0, 255.0, size=(1, 3, 4, 4)).astype(np.float32))
        proto = torch.nn.functional.interpolate(grid, size=(size, size), mode="bilinear", align_corners=False)[0]
        proto = proto.permute(1, 2, 0).numpy()
        for split, n in (("train", n_train), ("test", n_test)):
            folder = root / split / f"class_{c:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = np.clip(proto + rng.normal(0.0, 20.0, size=proto.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img, "RGB").save(folder / f"{i:04d}.png")
                written += 1
    return written


def prepare_data(paper: dict[str, Any], source: Path, dest: Path, say: Callable[[str], None] = print) -> dict:
    """``dest``: the smoke's data root. Raw MNIST-format folders of ``source`` linked in
    (missing ones: one error naming them, before anything runs); image folders linked from
    ``source/<dataset>/image_folder`` or generated. Returns {dataset: where its data came from}."""
    from ebm_bench.pipeline.config import dataset_spec
    from ebm_bench.core.errors import ConfigError, DatasetMissing
    from ebm_bench.core.registry import DATASETS

    dest.mkdir(parents=True, exist_ok=True)
    where: dict[str, str] = {}
    missing = []
    for d in paper["datasets"]:
        ds = dataset_spec(paper, d)
        cls = DATASETS.get(ds["type"])
        if ds["embedded"]:
            where[d] = "embedded (generated by the package)"
        elif ds["type"] in RAW_TYPES:
            try:
                cls.check_available(ds["params"], source)
            except DatasetMissing as e:
                missing.append(f"{d}: {e}")
                continue
            link = dest / cls.folder
            if not link.exists():
                link.symlink_to((source / cls.folder).resolve(), target_is_directory=True)
            where[d] = f"torchvision raw files {(source / cls.folder / 'raw').resolve()}"
        elif ds["type"] in FOLDER_SHAPES:
            user = source / d / "image_folder"
            folder = dest / d / "image_folder"
            if user.is_dir():
                folder.mkdir(parents=True, exist_ok=True)
                for entry in sorted(user.iterdir()):  # the folder itself must lie inside data_root
                    if not (folder / entry.name).exists():
                        (folder / entry.name).symlink_to(entry.resolve())
                where[d] = f"image folder {user.resolve()}"
            else:
                k, n_tr, n_te = FOLDER_SHAPES[ds["type"]]
                size = int(ds["params"]["size"])
                if not (folder / "train").is_dir():
                    n = write_image_folder(folder, k, n_tr, n_te, size, seed=len(where))
                    say(f"paper smoke: {d}: no {user}; generated a SYNTHETIC image folder of {n} images "
                        f"({k} classes x {n_tr} train + {n_te} test, 3 x {size} x {size}) in {folder}")
                where[d] = f"synthetic image folder ({k} classes x {n_tr} + {n_te} images, 3 x {size} x {size})"
        else:
            missing.append(f"{d}: the smoke has no data plan for dataset type {ds['type']!r}")
    if missing:
        raise ConfigError("paper smoke: data missing under --data-root " + str(source) + ": " + "; ".join(missing)
                          + " (write MNIST / FashionMNIST raw files with ebm-bench write-idx)")
    return where


def inception_weights_or_none(path: str | None) -> tuple[str | None, str]:
    """(a usable Inception weight file or None, what the report says about it)."""
    from ebm_bench.core.errors import WeightsMissing
    from ebm_bench.metrics.extractors import resolve_inception_weights

    try:
        found = resolve_inception_weights(path)
    except WeightsMissing as e:
        return None, f"Inception weights absent ({' '.join(str(e).split())[:200]}...)"
    return str(found), f"Inception-v3 weights {found}"


# --------------------------------------------------------------------------- the records


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _last_line(path: Path) -> str:
    """The last line of a job's log that says what went wrong (its exception, or its
    one-line error), else its last non-empty line."""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    for ln in reversed(lines):
        if "error" in ln.lower() or "exception" in ln.lower() or ln.startswith(("Killed", "MemoryError")):
            return ln[:500]
    return lines[-1][:500] if lines else ""


def _bench_rss(path: Path) -> float | None:
    try:
        with open(path, newline="") as f:
            row = next(csv.DictReader(f, delimiter="\t"), None)
    except OSError:
        return None
    try:
        return float(row["max_rss"]) if row else None
    except (KeyError, TypeError, ValueError):
        return None  # "NA": the job ended before the first sample


def _dataset_error(results: Path, dataset: str) -> str | None:
    """A failed per-dataset job (download, classifier, reference) named with its message."""
    outputs = {"download": results / "data" / f"{dataset}.ready",
               "classifier": results / "classifiers" / f"{dataset}.pt",
               "reference": results / "reference" / f"{dataset}.npz"}
    for stage, output in outputs.items():
        log = results / "logs" / stage / f"{dataset}.log"
        if log.exists() and not output.exists():
            return f"{stage} job of {dataset}: {_last_line(log)}"
    return None


def row_record(results: Path, dataset: str, variant: str, seed: int = 0,
               stages: tuple[str, ...] = ("train", "sample", "evaluate")) -> dict[str, Any]:
    """One row's record from the run's files under ``results`` (the layout of
    workflow/rules/common.smk): ok, s_per_update, peak_mem_mb, error and details."""
    run = results / "runs" / dataset / variant / f"seed{seed}"
    rec: dict[str, Any] = {"dataset": dataset, "variant": variant, "ok": False, "s_per_update": None,
                           "peak_mem_mb": None, "error": None}
    status = _read_json(run / "train_status.json")
    if status:
        ms = status.get("time_per_update_ms")
        rec.update(s_per_update=None if ms is None else ms / 1000.0, train_status=status.get("status"),
                   steps=status.get("steps"), n_params=status.get("n_params"), train_wall_s=status.get("wall_time_s"))
    rss = [x for x in (_bench_rss(results / "benchmarks" / s / dataset / variant / f"seed{seed}.tsv")
                       for s in stages) if x is not None]
    if status and status.get("peak_rss_mb") is not None:
        rss.append(float(status["peak_rss_mb"]))
    rec["peak_mem_mb"] = max(rss) if rss else None
    job_s = [_bench_seconds(results / "benchmarks" / s / dataset / variant / f"seed{seed}.tsv") for s in stages]
    rec["jobs_wall_s"] = sum(x for x in job_s if x is not None) if any(x is not None for x in job_s) else None
    cpu = [_bench_field(results / "benchmarks" / s / dataset / variant / f"seed{seed}.tsv", "cpu_time") for s in stages]
    rec["jobs_cpu_s"] = sum(x for x in cpu if x is not None) if any(x is not None for x in cpu) else None
    families: dict[str, str] = {}
    errors: list[str] = []
    metrics = run / "metrics"
    if metrics.is_dir():
        for f in sorted(metrics.glob("*.json")):
            doc = _read_json(f) or {}
            families[f.stem] = str(doc.get("status"))
            if doc.get("status") != "ok":
                errors.append(f"metrics {f.stem}: {doc.get('status')}: {doc.get('error', '')}".rstrip(": "))
            if f.stem == "fid":
                ext = (doc.get("protocol") or {}).get("extractor") or {}
                rec["extractor"] = ext.get("name")
                rec["fid_features"] = (doc.get("protocol") or {}).get("feature_kind")
        rec["metric_families"] = families
    if status and status.get("status") != "ok":
        errors.insert(0, f"training {status.get('status')} at step {status.get('diverged_step')}")
    if not metrics.is_dir():  # the first stage whose outputs are missing, with its log's message
        upstream = _dataset_error(results, dataset)
        for s in stages:
            if all((run / o).exists() for o in STAGE_OUTPUTS[s]):
                continue
            log = results / "logs" / s / dataset / variant / f"seed{seed}.log"
            if log.exists():
                errors.append(f"{s}: {_last_line(log)}")
            else:
                errors.append(upstream or f"{s}: not run (an upstream job failed or the run was stopped)")
            break
    rec["ok"] = not errors and bool(families)
    rec["error"] = "; ".join(errors) if errors else None
    return rec


def _bench_field(path: Path, key: str) -> float | None:
    try:
        with open(path, newline="") as f:
            row = next(csv.DictReader(f, delimiter="\t"), None)
        return float(row[key]) if row else None
    except (OSError, KeyError, TypeError, ValueError):
        return None


def _bench_seconds(path: Path) -> float | None:
    return _bench_field(path, "s")


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table(records: list[dict[str, Any]]) -> str:
    lines = ["| dataset | variant | ok | s/update | peak MB | params | features | error |",
             "| --- | --- | --- | ---: | ---: | ---: | --- | --- |"]
    for r in records:
        err = (r.get("error") or "").replace("|", "/")
        lines.append(f"| {r['dataset']} | {r['variant']} | {'yes' if r['ok'] else 'NO'} | "
                     f"{_fmt(r.get('s_per_update'), '.2f')} | {_fmt(r.get('peak_mem_mb'), '.0f')} | "
                     f"{_fmt(r.get('n_params'), ',')} | {r.get('extractor') or '-'} | {err[:160]} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the run


def _snakemake(out: Path, config_path: Path, cores: int, log: Path, say, expected: list[tuple[str, str]],
               results: Path, stages: tuple[str, ...]) -> int:
    """The real DAG, one Snakemake process in ``out`` (its own .snakemake folder and lock),
    its output to ``log``; a progress line per finished row and at least every minute."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(out),
           "--configfile", str(config_path), "--cores", str(cores), "--keep-going", "--rerun-incomplete"]
    say(f"paper smoke: {' '.join(cmd)}  (output: {log})")
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=str(out))
        seen: set[tuple[str, str]] = set()
        said = 0.0
        while True:
            rc = proc.poll()
            for d, v in expected:
                # the last stage's benchmark file: Snakemake writes it when the job has ended
                # (the metrics folder exists while the evaluate job is still writing into it)
                if (d, v) not in seen and (results / "benchmarks" / stages[-1] / d / v / "seed0.tsv").is_file():
                    seen.add((d, v))
                    r = row_record(results, d, v, 0, stages)
                    say(f"paper smoke: [{len(seen)}/{len(expected)}] {d}/{v}: {'ok' if r['ok'] else 'FAILED'} "
                        f"{_fmt(r['s_per_update'], '.2f')} s/update, {_fmt(r['peak_mem_mb'], '.0f')} MB"
                        f"{'' if r['ok'] else ': ' + str(r['error'])[:200]} ({time.perf_counter() - t0:.0f} s)")
                    said = time.perf_counter()
            if rc is not None:
                return rc
            if time.perf_counter() - said >= PROGRESS_EVERY_S:
                said = time.perf_counter()
                say(f"paper smoke: {len(seen)}/{len(expected)} rows evaluated, {time.perf_counter() - t0:.0f} s; "
                    f"Snakemake: {_progress(log)}")
            time.sleep(2.0)


def _progress(path: Path) -> str:
    """Snakemake's last "k of n steps (x%) done" and the jobs started since, from its log."""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    done = next((ln for ln in reversed(lines) if " steps (" in ln and ln.endswith("done")), "0 steps done")
    started, failed = [], 0
    for i, ln in enumerate(lines):
        if ln.startswith(("rule ", "localrule ")):
            started.append(ln.split()[1].rstrip(":"))
        elif ln.startswith("wildcards:") and started:
            started[-1] += f" {ln.split(':', 1)[1].strip()}"
        elif ln.startswith("Error in rule"):
            failed += 1
    return f"{done}; {failed} failed; last started: {started[-1] if started else '-'}"


def run(out: str | Path, data_root: str | Path, cores: int = 2, threads: int = THREADS,
        inception_weights: str | None = None, config_path: str | Path = PAPER_CONFIG,
        only: list[str] | None = None, say=print) -> dict[str, Any]:
    """Derive the config, prepare the data, run the DAG, write the report; returns it.
    ``only``: datasets to run (default all rows; a subset for a partial run, said so)."""
    from ebm_bench.core.errors import ConfigError

    t0 = time.perf_counter()
    out = Path(out).resolve()
    source = Path(data_root).expanduser().resolve()
    if not source.is_dir():
        raise ConfigError(f"--data-root {data_root}: no such folder (it must hold MNIST/raw and FashionMNIST/raw)")
    if source == out or source in out.parents or out in source.parents:
        raise ConfigError(f"--out {out} and --data-root {source} overlap; keep them apart")
    paper = load_paper_config(config_path)
    if only:
        unknown = [d for d in only if d not in paper["datasets"]]
        if unknown:
            raise ConfigError(f"--datasets: no dataset {unknown[0]!r} in {config_path}; "
                              f"known: {', '.join(paper['datasets'])}")
        paper["datasets"] = {d: paper["datasets"][d] for d in only}
    out.mkdir(parents=True, exist_ok=True)
    weights, weights_note = inception_weights_or_none(inception_weights)
    where = prepare_data(paper, source, out / "data", say)
    cfg = smoke_config(paper, out / "data", out / "results", threads, weights)
    config_file = out / CONFIG_NAME
    write_config(cfg, config_file)
    expected = rows(cfg)
    stages = ("run",) if cfg.get("combine_stages") else ("train", "sample", "evaluate")
    features = ("Inception-v3 (torch-fidelity) on image datasets" if weights else
                "domain classifier (ebm-bench-domain, a small CNN / MLP trained per dataset) stands in for "
                "Inception: " + weights_note)
    say(f"paper smoke: {len(expected)} rows of {config_path}{' (datasets ' + ', '.join(only) + ')' if only else ''}, "
        f"{STEPS} updates each at the paper's network sizes, loops cut to {LOOP_STEPS} steps, {SAMPLE_N} samples; "
        f"--cores {cores}, {threads} thread(s) per job; features: {features}")
    rc = _snakemake(out, config_file, cores, out / "snakemake.log", say, expected, out / "results", stages)
    info = {"config": str(config_path), "datasets_run": list(paper["datasets"]), "partial": bool(only),
            "cores": int(cores), "threads_per_job": int(threads), "features": features,
            "inception_weights": weights, "data": where, "snakemake_rc": rc}
    return collect(out, info, time.perf_counter() - t0, say)


def cpu_seconds(results: Path) -> float:
    """CPU time of every job that wrote a Snakemake benchmark file (``cpu_time``)."""
    total = 0.0
    for f in results.glob("benchmarks/**/*.tsv"):
        try:
            with open(f, newline="") as fh:
                row = next(csv.DictReader(fh, delimiter="\t"), None)
            total += float(row["cpu_time"]) if row else 0.0
        except (OSError, KeyError, TypeError, ValueError):
            continue
    return total


def collect(out: str | Path, info: dict[str, Any] | None = None, wall: float | None = None,
            say=print) -> dict[str, Any]:
    """The report of the smoke in ``out`` from its files (OUT/paper_smoke_config.yaml and
    OUT/results; a stopped run gives the rows it reached): writes paper_smoke.json / .md."""
    import yaml

    out = Path(out)
    cfg = yaml.safe_load((out / CONFIG_NAME).read_text())
    stages = ("run",) if cfg.get("combine_stages") else ("train", "sample", "evaluate")
    results = Path(cfg["results_dir"])
    records = [row_record(results, d, v, 0, stages) for d, v in rows(cfg)]
    cpu = cpu_seconds(results)
    report = {
        **(info or {}), "smoke_config": str(out / CONFIG_NAME),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "settings": {"steps": STEPS, "loop_steps": LOOP_STEPS, "burn_in_steps": BURN_IN_STEPS,
                     "batch_cap": BATCH_CAP, "sample_n": SAMPLE_N, "n_real": N_REAL,
                     "probe_max_train": PROBE_MAX_TRAIN, "max_test_mnist": MAX_TEST,
                     "classifier_epochs": CLASSIFIER_EPOCHS, "model_modes": MODEL_MODES},
        "rows": records,
        # cpu_s / cores: the wall time on a machine whose cores run nothing else (jobs'
        # CPU time from the benchmark files; Snakemake's own process left out)
        "totals": {"rows": len(records), "rows_ok": sum(r["ok"] for r in records), "jobs_cpu_s": cpu},
        "wall_s": wall,
    }
    (out / REPORT_NAME).write_text(json.dumps(report, indent=1, default=str))
    ok = report["totals"]["rows_ok"]
    head = (f"# CPU paper smoke: {ok}/{len(records)} rows ok, wall {_fmt(wall, '.0f')} s, "
            f"jobs' CPU time {cpu:.0f} s\n\nFeatures: {report.get('features', '-')}\n\n")
    (out / "paper_smoke.md").write_text(head + table(records))
    say(table(records))
    say(f"paper smoke: {ok}/{len(records)} rows ok, wall {_fmt(wall, '.0f')} s, jobs' CPU time {cpu:.0f} s "
        f"(Snakemake exit {report.get('snakemake_rc')}); wrote {out / REPORT_NAME} and {out / 'paper_smoke.md'}")
    return report

