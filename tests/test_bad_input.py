"""Bad input, as a table: each row is a bad config (or file, or environment), the message
it must give and the point where it must stop.

A row is ``Case(id, input, expect, stop)``:

- ``input``: for ``stop="config"`` a function that edits a copy of config/config.yaml
  (``c`` the config, ``t`` a scratch folder); for the other stops, a function of the
  scratch folder that sets the case up and returns what the stop's runner needs;
- ``expect``: a regular expression the message must match (``re.search``);
- ``stop``: where it must stop, a key of ``STOPS``, whose runner returns the message:

  ``config``   ``ebm_bench.pipeline.config.check_config`` raises ConfigError: before any job
  ``dry_run``  ``snakemake -n`` on a tiny config fails: before any job
  ``load``     a dataset load raises (the job stops at its start, before any compute)
  ``train``    training goes on with a warning (corrupt checkpoint: restarts from step 0)
  ``cli``      an ``ebm-bench`` / ``python -m ebm_bench.cli`` process exits 2 with one
               line and no traceback (offline downloads, a job of another checkout)

Add a stage (say ``evaluate``: corrupt samples file, truncated metrics JSON, a metric
family that raises) by adding its runner to ``STOPS`` and its rows to ``CASES``.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
BASE = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


@dataclass(frozen=True)
class Case:
    id: str
    input: Callable[..., Any]
    expect: str
    stop: str


# --- helpers of the rows -------------------------------------------------------------


def _ds(c, name="rings"):
    return c["datasets"][name]


def _add_dataset(c, t, name, entry):
    c["data_root"] = str(t / "data")
    (t / "data").mkdir(exist_ok=True)
    c["datasets"][name] = {"variants": ["pcd"], **entry}


def _png_folder(root: Path, classes, n=4) -> None:
    import numpy as np
    from PIL import Image

    for c, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((12, 12, 3), 20 * i + 100 * c, dtype=np.uint8)).save(root / cls / f"{i}.png")


def _offline_env(t: Path) -> dict:
    """No internet, by the real code path: every URL goes through a proxy that refuses."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TORCH_HOME=str(t / "torch"), OMP_NUM_THREADS="1")
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env[var] = "http://127.0.0.1:9"
    env.pop("no_proxy", None)
    env.pop("NO_PROXY", None)
    env.pop("EBM_BENCH_WORKFLOW_DIR", None)
    return env


def _cli(*args, env=None):
    return lambda t: ([sys.executable, "-m", "ebm_bench.cli", *[a.format(t=t) for a in args]], env(t) if env else
                      _offline_env(t))


def _tiny_run(t: Path):
    """A tiny short_run on 2D vectors, its config id and run folder."""
    from conftest import _tiny_vector_data

    from ebm_bench.methods.base import DataInfo
    from ebm_bench.core.registry import METHODS

    data = _tiny_vector_data()
    cls = METHODS.get("short_run")
    info = DataInfo.of(data)
    return lambda: cls(cls.tiny_params(info), info, "cpu", 0), data, t / "run"


TRAIN = {"steps": 4, "batch_size": 16, "checkpoint_every": 2, "log_every": 1}


def _garbage_checkpoint(t: Path):
    make, data, run = _tiny_run(t)
    run.mkdir(parents=True)
    (run / "checkpoint.pt").write_bytes(b"this is not a torch file")
    return make, data, run


def _truncated_checkpoint(t: Path):
    from ebm_bench.training.loop import train

    make, data, run = _tiny_run(t)
    train(make(), data.x_train, {**TRAIN, "steps": 2}, run, "cid", 0)  # a real checkpoint at step 2
    blob = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(blob[: len(blob) // 2])
    for f in ("model.pt", "train_log.csv", "train_status.json"):
        (run / f).unlink()
    return make, data, run


def _foreign_state_checkpoint(t: Path):
    """Readable, same config id, but the state does not fit the method (other code)."""
    make, data, run = _tiny_run(t)
    run.mkdir(parents=True)
    torch.save({"config_id": "cid", "step": 2, "wall_time_s": 0.0, "status": {"status": "ok"},
                "method": {"net": {"nonsense": torch.zeros(3)}}, "batch_gen": torch.Generator().get_state()},
               run / "checkpoint.pt")
    return make, data, run


# --- the table -------------------------------------------------------------------------

CASES: list[Case] = [
    # "*" blocks of variant_params
    Case("star-typo", lambda c, t: _ds(c)["variant_params"]["*"].update(stpe_size=0.1),
         r"^datasets\.rings\.variant_params\.\*\.stpe_size: unknown key .*; known: .*step_size", "config"),
    Case("star-key-of-no-method-on-dataset", lambda c, t: _ds(c)["variant_params"]["*"].update(n_walkers=10),
         r"^datasets\.rings\.variant_params\.\*\.n_walkers: unknown key \(no method run on 'rings'", "config"),
    Case("star-wrong-type", lambda c, t: _ds(c)["variant_params"]["*"].update(step_size="big"),
         r"^datasets\.rings\.variant_params\.\*\.step_size: 'big' has type str; expected a number > 0", "config"),
    Case("star-out-of-range", lambda c, t: _ds(c, "digits")["variant_params"]["*"].update(n_steps=0),
         r"^datasets\.digits\.variant_params\.\*\.n_steps: 0 is out of range; expected >= 1", "config"),
    Case("star-train-block", lambda c, t: _ds(c)["variant_params"]["*"].update(train={"steps": 3}),
         r"^datasets\.rings\.variant_params\.\*\.train: training settings for every variant go in "
         r"datasets\.rings\.train", "config"),
    # the network's constructor arguments
    Case("net-params-typo", lambda c, t: c["variants"]["pcd"].update(net_params={"hiden": 16}),
         r"^variants\.pcd\.net_params\.hiden: unknown key; known: leak, nf \(network convnet", "config"),
    Case("net-params-typo-in-variant-params",
         lambda c, t: _ds(c, "digits")["variant_params"]["nnefh"]["net_params"].update(n_feature=8),
         r"^datasets\.digits\.variant_params\.nnefh\.net_params\.n_feature: unknown key; known: attn_max_res, layout, "
         r"leak, n_features, nf", "config"),
    Case("net-params-out-of-range", lambda c, t: c["variants"]["ebm_matched"].update(net_params={"nf": 0}),
         r"^variants\.ebm_matched\.net_params\.nf: 0 is out of range; expected >= 1", "config"),
    Case("unknown-network", lambda c, t: c["variants"]["pcd"].update(net="resnet"),
         r"^variants\.pcd\.net: unknown network 'resnet'; known: attention", "config"),
    # dataset params
    Case("test-fraction-1.5", lambda c, t: _ds(c, "digits").update(params={"test_fraction": 1.5}),
         r"^datasets\.digits\.params\.test_fraction: 1\.5 is out of range; expected > 0 and < 1", "config"),
    Case("density-spiral", lambda c, t: _ds(c)["params"].update(density="spiral"),
         r"^datasets\.rings\.params\.density: 'spiral' is not one of 'rings', 'gmm'", "config"),
    Case("dataset-unknown-param", lambda c, t: _ds(c, "digits").update(params={"n_train": 10}),
         r"^datasets\.digits\.params\.n_train: unknown key; known: split_seed, test_fraction", "config"),
    Case("toy-weights-length", lambda c, t: _ds(c)["params"].update(weights=[1.0, 2.0]),
         r"^datasets\.rings\.params: dataset param 'weights' must be 3 non-negative numbers", "config"),
    Case("teacher-mass-1", lambda c, t: _ds(c, "gmm_teacher")["params"].update(mass_a=1.0),
         r"^datasets\.gmm_teacher\.params\.mass_a: 1\.0 is out of range; expected > 0 and < 1", "config"),
    Case("digits-236-repeated-digit", lambda c, t: _ds(c, "digits_236").update(params={"digits": [2, 2, 6]}),
         r"^datasets\.digits_236\.params: dataset param 'digits' must be distinct digits", "config"),
    Case("dataset-seeds-repeated", lambda c, t: _ds(c, "digits").update(seeds=[1, 1]),
         r"^datasets\.digits\.seeds = \[1, 1\]: a seed is repeated", "config"),
    Case("dataset-seeds-not-int", lambda c, t: _ds(c, "digits").update(seeds=[0, "one"]),
         r"^datasets\.digits\.seeds: seed 'one' is not a non-negative integer", "config"),
    Case("unknown-dataset-type", lambda c, t: _ds(c).update(type="toy3d"),
         r"^datasets\.rings\.type: unknown dataset 'toy3d'; known: ", "config"),
    Case("vision-size-48", lambda c, t: _add_dataset(c, t, "cifar", {"type": "cifar10", "params": {"size": 48}}),
         r"^datasets\.cifar\.params\.size: 48 is not one of 32, 64", "config"),
    # method hyperparameters: types, ranges, choices, cross-key rules
    Case("step-size-negative", lambda c, t: c["variants"]["pcd"].update(step_size=-1),
         r"^variants\.pcd\.step_size: -1 is out of range; expected > 0", "config"),
    Case("n-steps-0", lambda c, t: c["variants"]["cd"].update(n_steps=0),
         r"^variants\.cd\.n_steps: 0 is out of range; expected >= 1", "config"),
    Case("lr-list", lambda c, t: c["variants"]["pcd"].update(lr=[0.1, 0.2]),
         r"^variants\.pcd\.lr: \[0\.1, 0\.2\] has type list; expected a number > 0", "config"),
    Case("temperature-string", lambda c, t: c["variants"]["short_run"].update(temperature="hot"),
         r"^variants\.short_run\.temperature: 'hot' has type str; expected a number > 0", "config"),
    Case("bool-for-int", lambda c, t: c["variants"]["pcd"].update(buffer_size=True),
         r"^variants\.pcd\.buffer_size: True has type bool; expected an integer >= 1", "config"),
    Case("unknown-optimizer", lambda c, t: c["variants"]["pcd"].update(optimizer="rmsprop"),
         r"^variants\.pcd\.optimizer: 'rmsprop' is not one of 'adam', 'sgd'", "config"),
    Case("probability-1.5", lambda c, t: c["variants"]["pcd"].update(reinit_prob=1.5),
         r"^variants\.pcd\.reinit_prob: 1\.5 is out of range; expected >= 0 and <= 1", "config"),
    Case("unknown-resampler", lambda c, t: c["variants"]["jarzynski"].update(resampler="bogus"),
         r"^variants\.jarzynski\.resampler: 'bogus' is not one of 'multinomial', 'stratified', 'systematic'",
         "config"),
    Case("hee-layer-0", lambda c, t: c["variants"]["hee_l"].update(layers=[10, 0]),
         r"^variants\.hee_l\.layers: entry 1: 0 is out of range; expected >= 1", "config"),
    Case("hee-tau-z-three", lambda c, t: c["variants"]["hee_l"].update(tau_z=[1.0, 2.0, 3.0]),
         r"^variants\.hee_l\.tau_z: \[1\.0, 2\.0, 3\.0\] is not a number > 0, or a list of length 2", "config"),
    Case("variant-params-wrong-type", lambda c, t: _ds(c)["variant_params"]["stanley"].update(stanley_threshold=-5),
         r"^datasets\.rings\.variant_params\.stanley\.stanley_threshold: -5 is out of range; expected > 0", "config"),
    Case("jarzynski-clamp", lambda c, t: c["variants"]["jarzynski"].update(clamp=True),
         r"^variants\.jarzynski on datasets\.digits_236: clamp: true projects the walkers", "config"),
    Case("schedule-without-decay", lambda c, t: c["variants"]["pcd"].update(lr_schedule="linear"),
         r"^variants\.pcd on datasets\.digits(_236)?: lr_schedule = 'linear' needs lr_decay_steps >= 1", "config"),
    Case("grbm-burn-in", lambda c, t: c["variants"]["grbm"].update(neg_burn_in=10),
         r"^variants\.grbm on datasets\.digits: neg_burn_in = 10; expected < gibbs_steps = 10", "config"),
    Case("unknown-method", lambda c, t: c["variants"]["pcd"].update(method="pcdd"),
         r"^variants\.pcd\.method: unknown method 'pcdd'; known: ", "config"),
    Case("unknown-variant-key", lambda c, t: c["variants"]["pcd"].update(stpe_size=1.0),
         r"^variants\.pcd\.stpe_size: unknown key; known: .*step_size", "config"),
    # sizes that make a metric meaningless
    Case("sample-n-5", lambda c, t: c["sample"].update(n=5),
         r"^sample\.n: 5 is out of range; expected >= 100 \(FID needs", "config"),
    Case("n-real-1", lambda c, t: c["evaluate"].update(n_real=1),
         r"^evaluate\.n_real: 1 is out of range; expected >= 100", "config"),
    Case("probe-max-train-1", lambda c, t: c["evaluate"].update(probe_max_train=1),
         r"^evaluate\.probe_max_train: 1 is out of range; expected >= 100 \(the linear probe", "config"),
    Case("train-steps-0", lambda c, t: c["train"].update(steps=0),
         r"^train\.steps: 0 is out of range; expected >= 1", "config"),
    # feature spaces
    Case("inception-on-toy", lambda c, t: c["evaluate"].update(features="inception"),
         r"^evaluate\.features: 'inception' needs images, and dataset 'rings' \(type toy2d\) is not", "config"),
    Case("domain-without-labels", lambda c, t: (c["evaluate"].update(features="domain"),
                                                _add_dataset(c, t, "faces", {"type": "celeba"})),
         r"^evaluate\.features: 'domain' needs a labelled dataset .* 'faces' \(type celeba\) has no labels", "config"),
    # paths: containment
    Case("image-folder-dotdot", lambda c, t: _add_dataset(c, t, "pets", {"type": "image_folder",
                                                                          "params": {"path": "../../../etc"}}),
         r"^datasets\.pets\.params\.path: '\.\./\.\./\.\./etc' resolves to /\S*etc, outside data_root /", "config"),
    Case("image-folder-absolute", lambda c, t: _add_dataset(c, t, "pets", {"type": "image_folder",
                                                                            "params": {"path": "/etc"}}),
         r"^datasets\.pets\.params\.path: '/etc' resolves to /etc, outside data_root", "config"),
    Case("image-folder-link-out", lambda c, t: (_add_dataset(c, t, "pets", {"type": "image_folder",
                                                                             "params": {"path": "pets"}}),
                                                (t / "data" / "pets").symlink_to("/etc")),
         r"^datasets\.pets\.params\.path: 'pets' resolves to /etc, outside data_root", "config"),
    Case("results-inside-data", lambda c, t: c.update(data_root=str(t), results_dir=str(t / "results")),
         r"^results_dir: .* and data_root .* overlap", "config"),
    # the same, as a user meets them: snakemake -n on a tiny config
    Case("dry-run-star-typo", lambda t: {"datasets": {"rings": {"type": "toy2d", "variant_params": {
        "*": {"stpe_size": 0.1}}}}, "variants": {"pcd": None}},
         r"Invalid config: datasets\.rings\.variant_params\.\*\.stpe_size: unknown key", "dry_run"),
    Case("dry-run-net-params", lambda t: {"datasets": {"rings": {"type": "toy2d"}},
                                          "variants": {"pcd": {"net_params": {"widht": 3}}}},
         r"Invalid config: variants\.pcd\.net_params\.widht: unknown key; known: depth, hidden", "dry_run"),
    Case("dry-run-path-outside", lambda t: {"data_root": str(t / "data"), "datasets": {"pets": {
        "type": "image_folder", "params": {"path": "/etc"}}}, "variants": {"pcd": None}},
         r"Invalid config: datasets\.pets\.params\.path: '/etc' resolves to /etc, outside data_root", "dry_run"),
    # at the start of a job: files
    Case("image-folder-one-class", lambda t: (_png_folder(t / "one", ["cat"]), ("image_folder", {"path": "one"}, t))[1],
         r"dataset param 'path': .*/one holds 1 class folder \('cat'\); .* need at least 2", "load"),
    Case("image-folder-link-out-at-load", lambda t: ((t / "pets").symlink_to("/etc"), ("image_folder",
                                                                                        {"path": "pets"}, t))[1],
         r"dataset param 'path': 'pets' resolves to /etc, outside data_root", "load"),
    Case("cifar-missing-files", lambda t: ("cifar10", {}, t),
         r"dataset 'cifar10' not found in .*cifar-10-batches-py \(no such directory\)\. .*"
         r"ebm-bench download --dataset cifar10", "load"),
    Case("mnist-missing-one-file", lambda t: ([(t / "MNIST" / "raw").mkdir(parents=True)] + [
        (t / "MNIST" / "raw" / f).write_bytes(b"") for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                                              "t10k-images-idx3-ubyte")], ("mnist", {}, t))[1],
         r"dataset 'mnist' not found .*missing t10k-labels-idx1-ubyte", "load"),
    # training: a checkpoint that cannot be used restarts from step 0 with a warning
    Case("corrupt-checkpoint", _garbage_checkpoint,
         r"warning: .*checkpoint\.pt is unreadable \(.*\); moved it to checkpoint\.pt\.corrupt, training restarts "
         r"from step 0", "train"),
    Case("truncated-checkpoint", _truncated_checkpoint, r"checkpoint\.pt is unreadable .*restarts from step 0", "train"),
    Case("checkpoint-of-other-code", _foreign_state_checkpoint,
         r"checkpoint\.pt is unreadable \(.*(KeyError|RuntimeError).*\); .*restarts from step 0", "train"),
    # processes: offline downloads, a job importing another checkout's package, bad --spec
    Case("offline-fetch-inception", _cli("fetch-inception", "--dest", "{t}/weights"),
         r"^ebm-bench fetch-inception: error: Inception-v3 weights weights-inception-2015-12-05-6726825d\.pth are "
         r"missing and could not be downloaded from https://github\.com/toshas/torch-fidelity/.*\.pth .*put the file "
         r"in .*/weights/", "cli"),
    Case("offline-fetch-inception-torch-home", _cli("fetch-inception"),
         r"could not be downloaded from https://.*put the file in .*/torch/hub/checkpoints/", "cli"),
    Case("offline-download-cifar10", _cli("download", "--dataset", "cifar10", "--data-root", "{t}/data"),
         r"^ebm-bench download: error: dataset 'cifar10' is missing and could not be downloaded .*fetch "
         r"https://www\.cs\.toronto\.edu/~kriz/cifar-10-python\.tar\.gz into .*/data/", "cli"),
    Case("offline-download-mnist", _cli("download", "--dataset", "mnist", "--data-root", "{t}/data"),
         r"dataset 'mnist' is missing and could not be downloaded .*fetch train-images-idx3-ubyte\.gz.* from "
         r"https://\S+ into .*/data/MNIST/raw/", "cli"),
    Case("job-of-another-checkout", _cli("list", env=lambda t: {**_offline_env(t), "EBM_BENCH_WORKFLOW_DIR": str(t)}),
         r"this job imported ebm_bench from " + re.escape(str(ROOT / "ebm_bench")) + r", but the workflow in .* runs "
         r"its own package .*/ebm_bench", "cli"),
    Case("spec-not-json", _cli("train", "--spec", "{{bad", "--run-dir", "{t}/run"),
         r"^ebm-bench train: error: --spec is not valid JSON", "cli"),
    # evaluation: a broken file or a raising metric is an `error` / `unreadable` cell with its
    # message, the run's other families and the tables go on
    Case("corrupt-samples-file", lambda t: _evaluated_run(t, corrupt="samples"),
         r"^run: error: .*(BadZipFile|zip|pickle|Error).*", "evaluate"),
    Case("sampler-raises", lambda t: _evaluated_run(t, corrupt="sampler"),
         r"^(exact|exact_samples|probe): error: sampling failed", "evaluate"),
    Case("family-raises", lambda t: _evaluated_run(t, corrupt="family"),
         r"^exact_samples: error: RuntimeError: failure injected", "evaluate"),
    Case("truncated-metrics-json", lambda t: _evaluated_run(t, corrupt="metrics_json"),
         r"^exact: unreadable: unreadable exact\.json: JSONDecodeError", "evaluate"),
]


def _evaluated_run(t: Path, corrupt: str):
    """A tiny trained and sampled rings run, broken as asked; returns (spec, run folder, the
    metric family to make raise or None, whether to truncate a metrics file)."""
    from ebm_bench.training import runs
    from ebm_bench.pipeline.config import run_spec
    from ebm_bench.pipeline.stages import sample_stage
    from ebm_bench.training.loop import train

    cfg = {"datasets": {"rings": {"type": "toy2d", "params": {"density": "rings", "n_train": 300, "n_test": 200},
                                  "variant_params": {"*": {"step_size": 0.01, "temperature": 1.0, "n_steps": 3}}}},
           "variants": {"short_run": {"method": "short_run", "net_params": {"hidden": 8, "depth": 1}}},
           "seeds": [0], "sample": {"n": 100}, "train": {"steps": 3, "log_every": 1},
           "evaluate": {"probe_max_train": 100}}
    spec = run_spec(cfg, "rings", "short_run", 0)
    run = t / "run"
    data = runs.load_data(spec)
    train(runs.build_method(spec, data), data.x_train, spec["train"], run, runs.config_id(spec), 0)
    if corrupt == "sampler":
        spec = {**spec, "method_params": {**spec["method_params"], "sample_batch": 0}}  # range() step 0 raises
    sample_stage(spec, run)
    if corrupt == "samples":
        (run / "samples.npz").write_bytes(b"PK\x03\x04 truncated")
    return spec, run, "exact_samples" if corrupt == "family" else None, corrupt == "metrics_json"


def _raising(name: str):
    def family(ctx):
        raise RuntimeError(f"failure injected into {name} by the test")

    return family


def _stop_evaluate(case: Case, t: Path) -> str:
    """evaluate_stage never raises; every family without values says why, one line each
    ("family: status: message"), as the tables read it back."""
    from ebm_bench.pipeline.stages import evaluate_stage
    from ebm_bench.reports.tables import build_tables

    from ebm_bench import evaluation

    spec, run, fail, truncate = case.input(t)
    registered = evaluation.families()
    with pytest.MonkeyPatch.context() as mp:  # the stage reads the families when it runs
        mp.setattr(evaluation, "families", lambda: [(n, _raising(n) if n == fail else fn) for n, fn in registered])
        evaluate_stage(spec, run, None)
    if truncate:
        path = run / "metrics" / "exact.json"
        path.write_text(path.read_text()[:40])
    res = t / "results"
    (res / "runs" / "rings" / "short_run").mkdir(parents=True)
    shutil.copytree(run, res / "runs" / "rings" / "short_run" / "seed0")
    build_tables(res, t / "tables", reported=None)  # the tables build whatever broke
    import pandas as pd

    tidy = pd.read_csv(t / "tables" / "runs.csv", keep_default_na=False)
    fams = {"kl_exact": "exact", "mmd_samples": "exact_samples", "kl_radius_samples": "exact_samples",
            "exact.*": "exact", "exact_samples.*": "exact_samples", "run.*": "run"}
    bad = tidy[tidy["status"].isin(["error", "unreadable"])]
    assert len(bad), "nothing was marked"
    lines = []
    for _, r in bad.iterrows():
        fam = fams.get(r["metric"], "probe" if r["metric"].startswith("probe") else r["metric"])
        lines.append(f"{fam}: {r['status']}: {r['note']}")
    doc = json.loads((run / "metrics" / "run.json").read_text()) if (run / "metrics" / "run.json").exists() else None
    if doc is not None:
        lines.insert(0, f"run: {doc['status']}: {doc['error']}")
    return "\n".join(lines)


# --- where each row must stop ---------------------------------------------------------


def _stop_config(case: Case, t: Path) -> str:
    from ebm_bench.pipeline.config import check_config
    from ebm_bench.core.errors import ConfigError

    c = copy.deepcopy(BASE)
    case.input(c, t)
    with pytest.raises(ConfigError) as e:
        check_config(c)
    return str(e.value)


def _snakemake() -> str:
    exe = Path(sys.executable).with_name("snakemake")
    found = str(exe) if exe.exists() else shutil.which("snakemake")
    if not found:
        pytest.skip("snakemake is not installed")
    return found


def _stop_dry_run(case: Case, t: Path) -> str:
    cfg = t / "config.yaml"
    cfg.write_text(yaml.safe_dump(case.input(t), sort_keys=False))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([_snakemake(), "-n", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(t / "wd"),
                           "--configfile", str(cfg), "--cores", "1"], capture_output=True, text=True, env=env,
                          timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Failed validating" not in out and "Traceback" not in out, out
    assert not (t / "wd" / "results").exists()  # stopped before any job
    return out


def _stop_load(case: Case, t: Path) -> str:
    from ebm_bench.data import load_dataset
    from ebm_bench.core.errors import ConfigError, DatasetMissing

    name, params, root = case.input(t)
    with pytest.raises((ConfigError, DatasetMissing)) as e:
        load_dataset(name, params, root)
    return str(e.value)


def _stop_train(case: Case, t: Path) -> str:
    from ebm_bench.core.io import read_json
    from ebm_bench.training.loop import train

    make, data, run = case.input(t)
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        result = train(make(), data.x_train, TRAIN, run, "cid", 0)
    # it went on: a full run from step 0, the unusable file kept aside for inspection
    assert result["status"] == "ok" and result["steps"] == TRAIN["steps"] and result["resumed_from"] is None
    assert read_json(run / "train_status.json")["steps"] == TRAIN["steps"]
    assert (run / "checkpoint.pt.corrupt").exists() and (run / "checkpoint.pt").exists()
    # and it ended exactly where a run without the bad file ends
    clean = t / "clean"
    with contextlib.redirect_stderr(io.StringIO()):
        train(make(), data.x_train, TRAIN, clean, "cid", 0)
    assert (run / "train_log.csv").read_text() .splitlines()[-1].split(",")[2:] == \
        (clean / "train_log.csv").read_text().splitlines()[-1].split(",")[2:]
    return err.getvalue()


def _stop_cli(case: Case, t: Path) -> str:
    cmd, env = case.input(t)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=t, timeout=300)
    out = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 2, out
    assert "Traceback" not in out, out
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, out  # one line
    return lines[0]


STOPS: dict[str, Callable[[Case, Path], str]] = {
    "config": _stop_config,
    "dry_run": _stop_dry_run,
    "load": _stop_load,
    "train": _stop_train,
    "cli": _stop_cli,
    "evaluate": _stop_evaluate,
}


def _marks(case: Case):
    return [pytest.mark.workflow] if case.stop == "dry_run" else []


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=_marks(c)) for c in CASES])
def test_bad_input(case: Case, tmp_path: Path) -> None:
    message = STOPS[case.stop](case, tmp_path)
    assert re.search(case.expect, message, flags=re.M), f"{case.expect!r} not in:\n{message}"
    if case.stop == "config":
        assert "\n" not in message  # one line


def test_the_table_is_large_and_unique() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.stop for c in CASES} <= set(STOPS)


# --- the mechanism itself ---------------------------------------------------------------


def _components():
    from ebm_bench.core.registry import DATASETS, METHODS, NETWORKS

    return [(reg.kind, name, cls) for reg in (DATASETS, NETWORKS, METHODS) for name, cls in reg.items()]


@pytest.mark.parametrize("kind, name, cls", _components(), ids=lambda v: v if isinstance(v, str) else "")
def test_declared_checks_fit_the_defaults(kind, name, cls) -> None:
    """Every declared check names a parameter, and every default passes its own check
    (and the class's cross-key rules): a wrong declaration fails here, not in a user's run."""
    from ebm_bench.core import validation as V

    defaults = V.defaults_of(cls)
    same_kind = set().union(*(V.defaults_of(c) for k, _, c in _components() if k == kind))
    for klass in cls.__mro__:
        typos = set(vars(klass).get("checks", {}) or {}) - same_kind
        assert not typos, f"{klass.__name__}.checks names no parameter of any {kind}: {sorted(typos)}"
    for key, check in V.checks_of(cls).items():
        assert check.problem(defaults[key]) is None, (name, key, check.problem(defaults[key]))
    if kind == "dataset" and name == "image_folder":
        defaults = {**defaults, "path": "x"}
    V.check_cross(cls, defaults, name)


def test_list_shows_a_docstring_for_every_component() -> None:
    from ebm_bench.cli import main

    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["list"]) == 0
    rows = [line for line in out.getvalue().splitlines() if line.startswith("  ")]
    assert len(rows) == len(_components())
    blank = [r.split()[0] for r in rows if len(r.split()) < 2]
    assert not blank, f"no docstring: {blank}"


@pytest.mark.parametrize("path", ["config/config.yaml", "config/paper.yaml", "config/gmm.yaml"])
def test_shipped_configs_pass(path) -> None:
    from ebm_bench.pipeline.config import check_config

    check_config(yaml.safe_load((ROOT / path).read_text()))


def test_thread_limits_are_set_before_numpy_is_imported(tmp_path) -> None:
    """The CLI sets OMP_NUM_THREADS & co. before anything imports numpy (a later setting
    no longer binds the OpenMP/BLAS pools scikit-learn and numpy use)."""
    script = (
        "import os, sys\n"
        "class Spy:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name in ('numpy', 'torch') and name not in seen:\n"
        "            seen[name] = os.environ.get('OMP_NUM_THREADS'), os.environ.get('OPENBLAS_NUM_THREADS')\n"
        "        return None\n"
        "seen = {}\n"
        "sys.meta_path.insert(0, Spy())\n"
        "from ebm_bench.cli import main\n"
        "rc = main(['train', '--spec', sys.argv[1], '--run-dir', sys.argv[2], '--threads', '3'])\n"
        "print(seen)\n"
    )
    spec = {"dataset": {"name": "x", "type": "nope", "params": {}}, "device": "cpu", "data_root": "data", "seed": 0}
    import json

    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="7", OPENBLAS_NUM_THREADS="7")
    env.pop("EBM_BENCH_WORKFLOW_DIR", None)
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(spec), str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, timeout=300)
    seen = eval(proc.stdout.strip().splitlines()[-1])  # noqa: S307 - our own output
    assert seen.get("numpy") == ("3", "3") and seen.get("torch") == ("3", "3"), proc.stdout + proc.stderr


# what runs, builds and tools leave in a checkout (anywhere), and the top-level folders a
# second checkout's workflow does not need
LEFT_BY_RUNS = {".git", ".venv", ".snakemake", "__pycache__", ".pytest_cache"}
NOT_NEEDED_AT_TOP = {"tests", "docs", "results", "data", "build", "dist"}


def checkout_files(root: Path) -> list[Path]:
    """The checkout's own files, found by walking the tree (an exported release has no
    ``.git`` to ask): everything but the tests, the docs and what runs leave behind."""
    out = []
    for folder, dirs, files in os.walk(root):
        rel = Path(folder).relative_to(root)
        dirs[:] = [d for d in dirs if d not in LEFT_BY_RUNS and not d.endswith(".egg-info")
                   and not (rel == Path(".") and d in NOT_NEEDED_AT_TOP)]
        out += [rel / f for f in files if f not in LEFT_BY_RUNS]  # a worktree's .git is a file
    return out


@pytest.mark.workflow
def test_jobs_import_the_workflows_own_package(tmp_path) -> None:
    """A second checkout, sharing this environment (whose editable install points
    elsewhere): its jobs import its own ebm_bench."""
    copy_root = tmp_path / "checkout2"
    for f in checkout_files(ROOT):
        (copy_root / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, copy_root / f)
    init = copy_root / "ebm_bench" / "__init__.py"
    init.write_text(init.read_text() + "\nimport sys as _s\nprint('ebm_bench imported from', __file__, "
                                       "file=_s.stderr)\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"datasets": {"rings": {"type": "toy2d", "params": {"n_train": 200, "n_test": 100}}},
                                   "variants": {"pcd": None}}))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    env.pop("EBM_BENCH_WORKFLOW_DIR", None)
    proc = subprocess.run([_snakemake(), "results/classifiers/rings.pt", "--cores", "1", "--snakefile",
                           str(copy_root / "Snakefile"), "--directory", str(tmp_path / "wd"), "--configfile", str(cfg)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = (tmp_path / "wd" / "results" / "logs" / "classifier" / "rings.log").read_text()
    assert f"ebm_bench imported from {copy_root / 'ebm_bench' / '__init__.py'}" in log, log


@pytest.mark.workflow
def test_every_output_lies_under_results_dir(tmp_path) -> None:
    """Runs write only under results_dir: every output of the paper suite's DAG (downloads,
    weights flag, classifiers, runs, tables, figures) lies under it."""
    cfg = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    cfg["results_dir"] = "out/res"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([_snakemake(), "--summary", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                           str(tmp_path / "wd"), "--configfile", str(tmp_path / "c.yaml"), "--cores", "1"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line.split("\t")[0] for line in proc.stdout.splitlines()[1:] if line.strip()]
    assert len(rows) > 50 and any("/data/" in r for r in rows), rows[:5]
    outside = [r for r in rows if not r.startswith("out/res/")]
    assert not outside, outside[:5]
