"""``ebm-bench``: the commands the Snakemake rules call (and users can call directly).

    ebm-bench list                          registered datasets, networks and methods
    ebm-bench train    --spec JSON --run-dir DIR
    ebm-bench sample   --spec JSON --run-dir DIR
    ebm-bench evaluate --spec JSON --run-dir DIR --classifier PATH --reference PATH
    ebm-bench classifier --spec JSON --out PATH
    ebm-bench reference  --spec JSON --classifier PATH --out PATH   FID/KID/IS reference of a dataset
    ebm-bench run      --spec JSON --run-dir DIR [--classifier PATH] [--reference PATH]   train+sample+evaluate
    ebm-bench download (--spec JSON | --dataset NAME) --data-root DIR [--flag FILE]
    ebm-bench fetch-inception --dest DIR [--flag FILE]
    ebm-bench tables   --results-dir results [--out-dir DIR] [--claims config/claims.yaml | --claims-md FILE]
                       [--datasets a,b --variants x,y --seeds 0,1] [--reported config/reported.yaml]
    ebm-bench claims   [--results-dir DIR ...] [--out-dir DIR] [--claims config/claims.yaml]
                       one report of every claim at every scale that ran (all results folders)
    ebm-bench plot curves (--run-dir DIR | --logs LOG ... --out PNG ...)
    ebm-bench plot grid SAMPLES.npz OUT.png
    ebm-bench gpu {hold --gpus N [--until FILE] | show}       claim / show GPU cards (ebm_bench.pipeline.gpu)
    ebm-bench gpu-check --out DIR [--quick] [--config FILE] [--budget-s S] [--device D]
                       every paper.yaml row timed on one GPU (needs only torch, numpy, PyYAML:
                       ``PYTHONPATH=. python3 -m ebm_bench.cli gpu-check ...`` without installing)
    ebm-bench gmm-teacher --out DIR [--seeds 0 1 2] [--convention reference|paper_text] [...]
                       paper 003's GMM teacher-student experiment outside the DAG (App. B.1)
    ebm-bench hee-mixing [--quick]   how fast HEE's inference readings reach the posterior (paper 000)
    ebm-bench write-idx --npz FILE --dataset {mnist,fashion_mnist} --data-root DIR
                       MNIST-format arrays as torchvision's raw idx files (offline machines)
    ebm-bench bench    [--quick] [NAME ...] [--out DIR] [--reference-dir DIR]   (gpu: the GPU check)
    ebm-bench bench reference --method NAME --reference-dir DIR [--updates K] --out OUT
                      (NAME: jarzynski_mnist, jarzynski_cifar10, pcd_cifar10, gmm)
    ebm-bench bench cost_claim [--quick] --out RESULTS_DIR [--repeats R --warmup W --updates U --first-seed S]
    ebm-bench bench paper_smoke --data-root DIR --out OUT [--cores 2] [--datasets a,b] [--threads 1]

train, sample, evaluate and classifier claim their GPU before CUDA starts
(``ebm_bench.pipeline.gpu``): one card on ``device: cuda``, none on cpu, or ``--gpus N``. A job
that SLURM placed on a card keeps that card. The card is printed to the job's log.

``--spec`` is the JSON run spec made by ``ebm_bench.pipeline.config.run_spec`` (the rules pass it);
``--spec @file.json`` reads it from a file. ``--threads N`` limits OpenMP/BLAS and torch
to N threads; it is applied before numpy or torch is imported.

Errors meant for the user (bad config, missing dataset or weights, a failed download)
print one line and exit with status 2.

This is the project's one command line: every subcommand imports what it needs when it
runs, so ``ebm-bench tables`` / ``claims`` / ``plot`` never start torch and ``gpu-check``
imports nothing beyond torch, numpy and PyYAML.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ebm_bench.core.errors import ConfigError, DatasetMissing, WeightsMissing


def _spec(text: str) -> dict:
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--spec is not valid JSON: {e}") from None


def cmd_list(args) -> None:
    from ebm_bench.core.registry import DATASETS, METHODS, NETWORKS

    for reg in (DATASETS, NETWORKS, METHODS):
        print(f"{reg.kind}s:")
        for name, obj in reg.items():
            doc = (obj.__doc__ or "").strip().splitlines()
            print(f"  {name:16s} {doc[0] if doc else ''}")


def cmd_train(args) -> None:
    from ebm_bench.training import runs
    from ebm_bench.training.loop import train

    spec = _spec(args.spec)
    runs.set_threads(args.threads)
    data = runs.load_data(spec)
    method = runs.build_method(spec, data)
    train(method, data.x_train, spec["train"], Path(args.run_dir), runs.config_id(spec),
          spec["seed"], runs.run_label(spec), stop_after=args.stop_after,
          status_extra={**(_gpu_status(args) or {}), "provenance": runs.provenance(spec)})


def _gpu_status(args) -> dict | None:
    claim = getattr(args, "gpu_claim", None)
    return {"gpu": claim.as_dict()} if claim is not None and claim.source != "none" else None


def cmd_sample(args) -> None:
    from ebm_bench.pipeline.stages import sample_stage

    sample_stage(_spec(args.spec), Path(args.run_dir), args.threads)


def cmd_evaluate(args) -> None:
    from ebm_bench.pipeline.stages import evaluate_stage

    evaluate_stage(_spec(args.spec), Path(args.run_dir), Path(args.classifier) if args.classifier else None,
                   args.threads, reference=Path(args.reference) if args.reference else None)


def cmd_run(args) -> None:
    """train + sample + evaluate of one run in one process (combine_stages: true)."""
    import time

    from ebm_bench.core.io import write_json
    from ebm_bench.pipeline.stages import evaluate_stage, sample_stage

    t0 = time.perf_counter()
    cmd_train(args)
    if getattr(args, "stop_after", None) is not None:
        return
    t1 = time.perf_counter()
    run_dir = Path(args.run_dir)
    spec = _spec(args.spec)
    sample_stage(spec, run_dir, args.threads)
    t2 = time.perf_counter()
    evaluate_stage(spec, run_dir, Path(args.classifier) if args.classifier else None, args.threads,
                   reference=Path(args.reference) if args.reference else None)
    t3 = time.perf_counter()
    # in-process seconds per stage, against the job's wall time in its benchmark file
    write_json({"train_s": t1 - t0, "sample_s": t2 - t1, "evaluate_s": t3 - t2}, run_dir / "stage_times.json")


def cmd_reference(args) -> None:
    from ebm_bench.pipeline.stages import reference_stage

    reference_stage(_spec(args.spec), Path(args.classifier) if args.classifier else None, Path(args.out),
                    args.threads)


def cmd_classifier(args) -> None:
    from ebm_bench.pipeline.stages import classifier_stage

    classifier_stage(_spec(args.spec), Path(args.out), args.threads)


def _write_flag(path: str, text: str) -> None:
    from ebm_bench.core.io import atomic_write_bytes

    atomic_write_bytes(Path(path), lambda f: f.write(text.encode()))


def cmd_download(args) -> None:
    from ebm_bench.core.registry import DATASETS

    if args.spec:
        spec = _spec(args.spec)
        ds = spec["dataset"] if "dataset" in spec else spec
    elif args.dataset:
        cls = DATASETS.get(args.dataset, key="--dataset")
        ds = {"type": args.dataset, "params": dict(cls.defaults)}
    else:
        raise ConfigError("download needs --spec JSON or --dataset NAME")
    cls = DATASETS.get(ds["type"])
    cls.download({**cls.defaults, **ds["params"]}, Path(args.data_root))
    if args.flag:
        _write_flag(args.flag, f"{ds['type']} ready under {args.data_root}\n")


def cmd_fetch_inception(args) -> None:
    from ebm_bench.metrics.extractors import fetch_inception_weights

    path = fetch_inception_weights(Path(args.dest) if args.dest else None)
    print(path)
    if args.flag:
        _write_flag(args.flag, f"{path}\n")


def _csv_list(text: str | None) -> list[str] | None:
    return None if text is None else [t for t in text.split(",") if t]


def _judge_claims(results, out_dir: Path, claims: Path) -> dict:
    """The verdicts (claims.csv / claims.md); a bad claims file is one line, as a config error."""
    from ebm_bench.claims import ClaimError, build_claims

    try:
        return build_claims(results, out_dir, claims)
    except ClaimError as e:
        raise ConfigError(str(e)) from None


def cmd_tables(args) -> None:
    """Verdicts first (claims.md opens summary.md), then every table. With ``--claims-md``
    (the workflow, whose claims rule wrote it) the verdicts are not judged again."""
    from ebm_bench.reports.tables import DEFAULT_REPORTED, build_tables

    results = Path(args.results_dir)
    out_dir = Path(args.out_dir) if args.out_dir else results / "tables"
    written: dict = {}
    claims_md = Path(args.claims_md) if args.claims_md else None
    if claims_md is None:
        from ebm_bench.claims import DEFAULT_CLAIMS

        claims = Path(args.claims) if args.claims else DEFAULT_CLAIMS
        if claims.is_file():
            written.update(_judge_claims(results, out_dir, claims))
        claims_md = written.get("claims.md")
    seeds = _csv_list(args.seeds)
    written.update(build_tables(results, out_dir, reported=Path(args.reported) if args.reported else DEFAULT_REPORTED,
                                datasets=_csv_list(args.datasets), methods=_csv_list(args.variants),
                                seeds=None if seeds is None else [int(x) for x in seeds], claims_md=claims_md))
    for p in written.values():
        print(p)


def cmd_claims(args) -> None:
    """The verdicts alone, from every results folder the claims' designs name."""
    from ebm_bench.claims import DEFAULT_CLAIMS

    dirs = args.results_dir or ["results"]
    written = _judge_claims(dirs, Path(args.out_dir) if args.out_dir else Path(dirs[0]) / "tables",
                            Path(args.claims) if args.claims else DEFAULT_CLAIMS)
    for p in written.values():
        print(p)


def cmd_plot(args) -> None:
    from ebm_bench.reports import plots

    if args.what == "grid":
        import numpy as np

        with np.load(args.npz, allow_pickle=False) as z:
            s = z["samples"]
        plots.sample_grid(s, args.out_png, is_image=s.ndim >= 3, title=None)
        print(args.out_png)
        return
    if args.run_dir:
        logs, outs = [Path(args.run_dir) / "train_log.csv"], [Path(args.run_dir) / "train_curves.png"]
    else:
        logs, outs = [Path(x) for x in args.logs or []], [Path(x) for x in args.out or []]
        if not logs or len(logs) != len(outs):
            raise ConfigError(f"plot curves: {len(logs)} --logs but {len(outs)} --out (or give --run-dir)")
    for log, out in zip(logs, outs):
        plots.training_curves(log, out, title=plots.run_title(log))
        print(out)


def cmd_gpu(args) -> None:
    from ebm_bench.pipeline import gpu

    if args.what == "show":
        gpu.show()
    else:
        gpu.hold(args.gpus, args.until)


def cmd_gpu_check(args) -> None:
    from ebm_bench.bench.gpu_check import DEFAULT_CONFIG, run

    try:
        run(args.out, args.quick, args.config or str(DEFAULT_CONFIG), args.budget_s, args.device)
    except RuntimeError as e:
        raise ConfigError(str(e)) from None


def cmd_gmm_teacher(args) -> None:
    """Paper 003's GMM teacher-student experiment outside the DAG (exit 1 if an acceptance
    check from config/claims.yaml fails), or the workflow's figure of its runs."""
    from ebm_bench.experiments import gmm_teacher as gt

    if args.figure:
        if not (args.spec and args.logs and args.png and args.md):
            raise ConfigError("gmm-teacher --figure needs --spec, --logs, --png and --md")
        spec = _spec(args.spec)
        gt.pipeline_figure(args.logs, {**spec["dataset"], "data_root": spec["data_root"]}, args.png, args.md)
        return
    if not args.out:
        raise ConfigError("gmm-teacher needs --out DIR (or --figure)")
    known = list(gt.VARIANTS) + list(gt.EXTRA_VARIANTS)
    variants = args.variants or list(gt.VARIANTS)
    bad = [v for v in variants if v not in known]
    if bad:
        raise ConfigError(f"gmm-teacher --variants {bad[0]!r}: expected some of {', '.join(known)}")
    given = {"dim": args.dim, "mass_a": args.mass_a, "a": args.a, "b": args.b, "n_train": args.n_data}
    res = gt.run(args.out, args.seeds, args.convention, args.steps, variants,
                 {k: v for k, v in given.items() if v is not None}, args.n_walkers, args.eval_every,
                 args.threads or 1, log=lambda m: print(m, file=sys.stderr, flush=True))
    if any(c.startswith("- [ ]") for c in res["checks"]):
        raise SystemExit(1)


def cmd_hee_mixing(args) -> None:
    from ebm_bench.experiments.hee_mixing import run

    run(quick=args.quick)


def cmd_write_idx(args) -> None:
    from ebm_bench.data.idx import write_raw

    try:
        raw = write_raw(args.npz, args.dataset, args.data_root)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    print(f"wrote {raw}/ (train-*, t10k-* idx-ubyte)")


def cmd_bench(args) -> None:
    from ebm_bench.bench.suite import run_benchmarks

    run_benchmarks(quick=args.quick, threads=args.threads, only=args.names or None, out=args.out,
                   reference_dir=args.reference_dir, method=args.method, updates=args.updates,
                   repeats=args.repeats, warmup=args.warmup, first_seed=args.first_seed,
                   data_root=args.data_root, cores=args.cores,
                   datasets=args.datasets.split(",") if args.datasets else None,
                   inception_weights=args.inception_weights)


GPU_STAGES = ("train", "sample", "evaluate", "classifier", "reference", "run")


def _claim_gpus(args):
    """Claim the job's cards before torch starts CUDA, and say which in the job's log."""
    from ebm_bench.pipeline import gpu

    n = args.gpus
    if n is None:
        n = 1 if str(_spec(args.spec).get("device", "cpu")).startswith("cuda") else 0
    try:
        claim = gpu.claim(n, say=lambda msg: print(f"ebm-bench {args.cmd}: gpu: {msg}", file=sys.stderr, flush=True))
    except (RuntimeError, TimeoutError) as e:  # too few cards, or none freed in EBM_BENCH_GPU_WAIT
        raise ConfigError(f"--gpus {n}: {e}") from None
    if claim.source != "none" or n:
        print(f"ebm-bench {args.cmd}: gpu: {claim.describe()}", file=sys.stderr, flush=True)
    return claim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ebm-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)

    def add(name, fn, *opts):
        p = sub.add_parser(name)
        p.set_defaults(fn=fn)
        for opt in opts:
            p.add_argument(f"--{opt}", required=opt in ("run-dir", "out", "data-root", "npz") or (opt == "spec" and name not in ("download", "gmm-teacher")))
        p.add_argument("--threads", type=int, default=None)
        return p

    add("list", cmd_list)
    add("train", cmd_train, "spec", "run-dir").add_argument("--stop-after", type=int, default=None,
                                                            help="exit after N steps without finishing (tests)")
    add("sample", cmd_sample, "spec", "run-dir")
    add("evaluate", cmd_evaluate, "spec", "run-dir", "classifier", "reference")
    add("reference", cmd_reference, "spec", "classifier", "out")
    add("run", cmd_run, "spec", "run-dir", "classifier", "reference").add_argument(
        "--stop-after", type=int, default=None, help="exit after N training steps without finishing (tests)")
    add("classifier", cmd_classifier, "spec", "out")
    add("download", cmd_download, "spec", "dataset", "data-root", "flag")
    add("fetch-inception", cmd_fetch_inception, "dest", "flag")
    t = add("tables", cmd_tables, "out-dir", "reported", "claims", "claims-md", "datasets", "variants", "seeds")
    t.add_argument("--results-dir", default="results")
    c = add("claims", cmd_claims, "out-dir", "claims")
    c.add_argument("--results-dir", action="append", default=None,
                   help="a results folder (repeatable; default results); the designs' configs' folders are read too")
    pl = add("plot", cmd_plot)
    what = pl.add_subparsers(dest="what", required=True)
    cv = what.add_parser("curves", help="training curves, one PNG per train_log.csv")
    cv.add_argument("--run-dir", default=None)
    cv.add_argument("--logs", nargs="+", default=None)
    cv.add_argument("--out", nargs="+", default=None)
    gr = what.add_parser("grid", help="picture of a samples.npz")
    gr.add_argument("npz")
    gr.add_argument("out_png")
    g = add("gpu", cmd_gpu)
    gw = g.add_subparsers(dest="what", required=True)
    h = gw.add_parser("hold", help="claim cards, print their ids, hold them")
    h.add_argument("--gpus", type=int, default=1)
    h.add_argument("--until", default=None, help="release when this file exists (default: when stdin closes)")
    gw.add_parser("show", help="the pool, the lock dir and who holds which card")
    gc = add("gpu-check", cmd_gpu_check, "out", "config", "device")
    gc.add_argument("--quick", action="store_true", help="CPU, tiny sizes, same code (under 2 minutes)")
    gc.add_argument("--budget-s", type=float, default=None)
    gt = add("gmm-teacher", cmd_gmm_teacher, "spec", "png", "md")
    gt.add_argument("--figure", action="store_true", help="the workflow's figure of the runs' train_log.csv files")
    gt.add_argument("--logs", nargs="+", default=None)
    gt.add_argument("--out", default=None)
    gt.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    gt.add_argument("--convention", default="reference", help="reference | paper_text (checked by the experiment)")
    gt.add_argument("--steps", type=int, default=None, help="default: 8000 (reference) / 2000 (paper_text)")
    gt.add_argument("--variants", nargs="+", default=None, help="default: jarzynski pcd cd unweighted (also: jarzynski_noresample)")
    gt.add_argument("--n-walkers", type=int, default=None, help="default: N of config/gmm.yaml (1e4)")
    gt.add_argument("--n-data", type=int, default=None, help="default: n of config/gmm.yaml (1e4)")
    gt.add_argument("--dim", type=int, default=None, help="default: App. B.1's (config/gmm.yaml)")
    gt.add_argument("--mass-a", type=float, default=None, help="default: App. B.1's (config/gmm.yaml)")
    gt.add_argument("--a", type=float, default=None, help="first coordinate of the centre a* (default: App. B.1's)")
    gt.add_argument("--b", type=float, default=None, help="first coordinate of the centre b* (default: App. B.1's)")
    gt.add_argument("--eval-every", type=int, default=50)
    add("hee-mixing", cmd_hee_mixing).add_argument("--quick", action="store_true", help="shorter horizons, fewer chains")
    w = add("write-idx", cmd_write_idx, "npz", "data-root")
    w.add_argument("--dataset", required=True, choices=["fashion_mnist", "mnist"])
    b = add("bench", cmd_bench)
    b.add_argument("--quick", action="store_true", help="fewer repeats and cases")
    b.add_argument("names", nargs="*", help="benchmarks to run (default: all; see ebm_bench.bench.suite.BENCHMARKS)")
    b.add_argument("--out", default=None, help="gpu: folder for gpu_check.json / .md; cost_claim: results folder "
                                                "for its run records (runs/cifar10_cost/...)")
    b.add_argument("--reference-dir", default=None,
                   help="gmm_reference, reference: clone of the authors' code: submissionx12/EBMs_Jarzynski (gmm, "
                        "jarzynski_mnist, jarzynski_cifar10, pcd_cifar10), DSL-Lab/GRBM (grbm), enijkamp/short_run "
                        "(short_run)")
    b.add_argument("--method", default=None,
                   help="reference: which comparison (jarzynski_mnist, jarzynski_cifar10, pcd_cifar10, gmm, grbm, "
                        "short_run; default: all); first_epochs: the paper.yaml variant (default "
                        "jarzynski_multinomial)")
    b.add_argument("--updates", type=int, default=None,
                   help="reference: parameter updates compared (default 3); cost_claim: timed updates per method "
                        "per repeat (default 2); first_epochs: updates trained (default 2 epochs)")
    b.add_argument("--repeats", type=int, default=None, help="cost_claim: repeats (= seeds; default 5, --quick 2)")
    b.add_argument("--warmup", type=int, default=None, help="cost_claim: warm-up updates per repeat (default 1); "
                                                               "first_epochs: burn-in ULA steps (default 200)")
    b.add_argument("--first-seed", type=int, default=0,
                   help="cost_claim: seed of the first repeat (default 0; adds repeats to earlier records)")
    b.add_argument("--data-root", default=None, help="paper_smoke, first_epochs: folder holding MNIST/raw and "
                                                     "FashionMNIST/raw (torchvision's files), optionally "
                                                     "<dataset>/image_folder")
    b.add_argument("--cores", type=int, default=None, help="paper_smoke: Snakemake --cores (default 2)")
    b.add_argument("--datasets", default=None, help="paper_smoke: comma-separated paper.yaml datasets (default: all); "
                                                    "first_epochs: one dataset (default mnist_236)")
    b.add_argument("--inception-weights", default=None,
                   help="paper_smoke: Inception weights file (default: torch hub's cache; absent: domain features)")
    for name in GPU_STAGES:
        sub.choices[name].add_argument("--gpus", type=int, default=None,
                                       help="cards to claim (default: 1 on device cuda, else 0)")
    args = parser.parse_args(argv)
    from ebm_bench.core.threads import limit_threads

    limit_threads(args.threads)  # before anything imports numpy or torch
    try:
        if args.cmd in GPU_STAGES:
            args.gpu_claim = _claim_gpus(args)
        args.fn(args)
    except (ConfigError, DatasetMissing, WeightsMissing) as e:
        print(f"ebm-bench {args.cmd}: error: {' '.join(str(e).split())}", file=sys.stderr)  # one line
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
