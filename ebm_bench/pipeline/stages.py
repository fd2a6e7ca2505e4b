"""The sample, evaluate and classifier stages of one run (called by the CLI/rules).

Every stage reads the previous stage's files as data only and writes under the run
folder. A run whose training diverged still gets every output, marked ``diverged``, so
the DAG completes and the tables say what happened.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ebm_bench.core import progress
from ebm_bench.training import runs
from ebm_bench.data import to_uint8
from ebm_bench.core.errors import ConfigError
from ebm_bench.samplers.counting import grad_evals
from ebm_bench.core.artefacts import clean_metrics, fingerprint_id, load_samples, save_npz
from ebm_bench.core.io import load_torch, read_json, write_json


def load_trained(spec: dict[str, Any], run_dir: Path, data=None):
    """The trained method; ``data=None`` rebuilds it from the data facts saved in model.pt
    (sampling image models then needs no dataset, and no scikit-learn import)."""
    state = load_torch(run_dir / "model.pt")
    if data is None:
        from ebm_bench.methods.base import DataInfo

        i = state["data_info"]
        data = DataInfo(tuple(i["shape"]), bool(i["is_image"]), i["num_classes"])
    method = runs.build_method(spec, data)
    # loaded on the CPU: generator states must stay there; load_state_dict moves the rest
    method.load_state_dict(state["method"])
    return method


def sample_stage(spec: dict[str, Any], run_dir: Path, threads: int | None = None) -> str:
    """Write ``samples.npz`` (and ``samples.png``); returns its status.

    A sampler that raises does not stop the suite: ``samples.npz`` then holds no samples,
    ``status: error`` and the message, and every metric family of the run reads ``error``.
    """
    runs.set_threads(threads)
    label = runs.run_label(spec)
    status = read_json(run_dir / "train_status.json")["status"]
    method = load_trained(spec, run_dir)
    data = method.data
    samples = np.zeros((0, *data.shape), dtype=np.uint8 if data.is_image else np.float32)
    error = ""
    cost: dict[str, Any] = {}
    if status == "ok":
        method.gen.manual_seed(spec["seed"] + 7919)  # the sampling stage is reproducible alone
        n = int(spec["sample"]["n"])
        try:
            if hasattr(method, "bind_data"):  # the held-out data reference row
                method.bind_data(runs.load_data(spec), str(spec["evaluate"].get("real_split", "train")))
            print(f"[{label}] sampling {n} with {type(method).__name__}", flush=True)
            evals0, t0 = grad_evals(), time.perf_counter()
            with progress.scope(label, "sample"):  # the methods' chains / sampler steps tick inside
                x = method.sample(n).detach().cpu()
            cost = {"grad_evals_sample": grad_evals() - evals0, "sample_time_s": time.perf_counter() - t0, "n": n}
        except Exception as e:  # noqa: BLE001 - recorded as this run's error, the DAG goes on
            status, error = "error", f"{type(e).__name__}: {e}"
            print(f"[{label}] sampling failed: {error}", flush=True)
        else:
            if not torch.isfinite(x).all():
                status = "diverged"
                print(f"[{label}] samples are not finite: recorded as diverged", flush=True)
            else:
                samples = to_uint8(x).numpy() if data.is_image else x.float().numpy()
    save_npz(run_dir / "samples.npz", samples=samples, status=np.array(status), error=np.array(error),
              cost=np.array(json.dumps(cost)))
    try:
        from ebm_bench.reports.plots import sample_grid

        real = None if data.is_image else runs.load_data(spec).x_test[:2000].numpy()
        sample_grid(samples, run_dir / "samples.png", data.is_image, real=real)
    except Exception as e:  # noqa: BLE001 - a figure never fails the stage
        print(f"[{label}] no sample grid: {type(e).__name__}: {e}", flush=True)
        if not (run_dir / "samples.png").exists():
            (run_dir / "samples.png").write_bytes(b"")
    return status


# --- domain classifier ------------------------------------------------------------------

CLASSIFIER_SEED = 0  # one classifier per dataset, shared by every method and seed


def classifier_stage(spec: dict[str, Any], out: Path, threads: int | None = None) -> None:
    """Train the dataset's domain classifier (FID/IS features and mode reader)."""
    from ebm_bench.data import load_dataset
    from ebm_bench.nets.domain_classifier import save_classifier
    from ebm_bench.training.classifier import train_domain_classifier

    runs.set_threads(threads)
    ds = spec["dataset"] if "dataset" in spec else spec
    data = load_dataset(ds["type"], ds["params"], Path(ds.get("data_root", spec.get("data_root", "data"))))
    if data.y_train is None:
        raise SystemExit(f"dataset {ds['name']!r} has no labels: no domain classifier can be trained")
    # the config's `classifier` section (schema: epochs); absent keys keep the trainer's defaults
    options = {k: int(v) for k, v in (spec.get("classifier") or {}).items() if k in ("epochs",)}
    with progress.scope(ds["name"], "classifier"):
        ckpt, info = train_domain_classifier(data.x_train, data.y_train, data.x_test, data.y_test,
                                             seed=CLASSIFIER_SEED, num_classes=data.num_classes, **options)
    sha = save_classifier(out, ckpt)
    print(f"[{ds['name']}] domain classifier ({info['epochs']} epochs): test accuracy {info['test_accuracy']:.3f}, "
          f"sha256 {sha[:12]}")


# --- reference statistics ------------------------------------------------------------

REFERENCE_FORMAT = "ebm-bench/reference-statistics"
KID_MAX_REAL = 5000  # real feature rows kept for KID (torch-fidelity draws subsets of 1000)


def build_extractor(spec: dict[str, Any], classifier: Path | None, device="cpu"):
    """The dataset's feature extractor: Inception for natural images, else its domain
    classifier; ``(kind, extractor)`` with extractor None where there is none."""
    from ebm_bench.metrics.extractors import DomainExtractor, InceptionExtractor

    ev = spec["evaluate"]
    if ev.get("use_inception"):
        return "inception", InceptionExtractor(weights_path=ev.get("inception_weights"), device=device)
    if classifier is not None and Path(classifier).exists():
        return "domain", DomainExtractor(classifier, device=device)
    return "domain", None


def reference_stage(spec: dict[str, Any], classifier: Path | None, out: Path, threads: int | None = None) -> None:
    """FID/KID/IS reference of one dataset, computed once and reused by every run.

    The real set is ``evaluate.real_split`` (``train`` by default, as published FIDs use
    training-set statistics), its first ``evaluate.n_real`` items (``null``: all of
    them); asking for more than the split has is an error before any feature pass.
    Domain features use the penultimate layer only where the real set has at least
    ``evaluate.min_real_per_dim`` rows per feature dimension (a covariance of n < d rows
    is singular and FID is then biased by tens of units); else the logits layer, and the
    file says which. Writes ``out`` (.npz: mu, sigma, KID rows, the real set's IS) and
    ``out`` with suffix .json (the protocol and its fingerprint).
    """
    from ebm_bench.metrics.fid import fid_statistics, inception_score_from_logits
    from ebm_bench.metrics.fid import protocol as fid_protocol

    runs.set_threads(threads)
    ev = spec["evaluate"]
    data = runs.load_data(spec)
    split = str(ev.get("real_split", "train"))
    x = {"train": data.x_train, "test": data.x_test}[split]
    n_real = ev.get("n_real")
    if n_real is not None and int(n_real) > len(x):
        raise ConfigError(f"evaluate.n_real = {n_real} but the {split} split of {spec['dataset']['name']!r} "
                          f"has {len(x)} items; set n_real <= {len(x)} or null (all)")
    x = x[: int(n_real)] if n_real is not None else x
    kind, extractor = build_extractor(spec, classifier)
    if extractor is None:
        raise ConfigError(f"dataset {spec['dataset']['name']!r} has neither Inception features nor a domain classifier")
    if data.is_image:
        x = to_uint8(x)
    print(f"[{spec['dataset']['name']}] reference: {kind} features of {len(x)} {split} items", flush=True)
    with progress.scope(spec["dataset"]["name"], "reference"):
        feats = extractor.extract(x)
    eproto = extractor.protocol()
    dim = feats["pool"].shape[1]
    min_per_dim = float(ev.get("min_real_per_dim", 2.0))
    layer = "pool" if kind == "inception" or len(x) >= min_per_dim * dim else "logits"
    f = feats[layer]
    stats = fid_statistics(f)
    isc = inception_score_from_logits(feats["logits"], splits=min(10, len(x)))
    rng = np.random.default_rng(0)
    keep = np.sort(rng.choice(len(f), size=min(len(f), KID_MAX_REAL), replace=False))
    weights = data.class_weights()
    fingerprint = {
        "extractor": eproto.get("name"), "weights_sha256": eproto.get("weights_sha256"),
        "layer": eproto.get("feature_layer_fid") if layer == "pool" else eproto.get("feature_layer_is"),
        "feature_dim": int(f.shape[1]), "real_split": split, "n_real": int(len(x)),
        "torch_fidelity": fid_protocol()["torch_fidelity_version"],
    }
    meta = {
        "format": REFERENCE_FORMAT, "dataset": spec["dataset"]["name"], "feature_kind": kind,
        "layer": layer, "n_real": int(len(x)), "real_split": split, "min_real_per_dim": min_per_dim,
        "pool_dim": int(dim), "extractor": eproto, "is_real": isc["is_mean"], "is_real_std": isc["is_std"],
        "class_weights": None if weights is None else [float(w) for w in weights],
        "fingerprint": fingerprint, **fid_protocol(),
    }
    save_npz(Path(out), mu=stats["mu"], sigma=stats["sigma"], kid_features=f[keep].astype(np.float32),
             logits=feats["logits"][: min(len(x), KID_MAX_REAL)].astype(np.float32))
    write_json(meta, Path(out).with_suffix(".json"))
    print(f"[{spec['dataset']['name']}] reference: layer {layer} ({f.shape[1]} dims), IS of the real set "
          f"{isc['is_mean']:.3f}; written to {out}", flush=True)


# --- evaluation ---------------------------------------------------------------------------


def evaluate_stage(spec: dict[str, Any], run_dir: Path, classifier: Path | None, threads: int | None = None,
                   reference: Path | None = None) -> dict[str, str]:
    """Write ``metrics/{family}.json`` for every metric family (``ebm_bench.evaluation``)
    that applies to the run; returns {family: status}.

    Each family succeeds or fails on its own: an exception in one is written as
    ``status: error`` with its message into that family's file and the next family runs.
    A run whose training or sampling diverged gets every family's keys with null values
    and ``status: diverged``; unreadable samples give every family ``status: error``.
    """
    from ebm_bench.evaluation import EvalContext, families, unreliable

    runs.set_threads(threads)
    label = runs.run_label(spec)
    out_dir = run_dir / "metrics"
    out_dir.mkdir(parents=True, exist_ok=True)
    base = {"dataset": spec["dataset"]["name"], "variant": spec["variant"], "method": spec["method"],
            "seed": spec["seed"]}
    done: dict[str, str] = {}

    def write(family: str, status: str, metrics: dict, protocol: dict, error: str | None = None) -> None:
        if isinstance(protocol.get("flags"), dict):  # every flag reads "unreliable: <reason>"
            protocol = {**protocol, "flags": {k: unreliable(str(v)) for k, v in protocol["flags"].items()}}
        doc = {**base, "family": family, "status": status, "metrics": clean_metrics(metrics), "protocol": protocol,
               "fingerprint": fingerprint_id(protocol.get("fingerprint")), "provenance": runs.provenance(spec)}
        if error is not None:
            doc["error"] = error
        write_json(doc, out_dir / f"{family}.json")
        done[family] = status

    try:
        train_status = read_json(run_dir / "train_status.json")
        samples, sample_status = load_samples(run_dir / "samples.npz")
        data = runs.load_data(spec)
        method = load_trained(spec, run_dir, data)
    except Exception as e:  # noqa: BLE001 - recorded, never raised: the tables must build
        msg = f"{type(e).__name__}: {e}"
        print(f"[{label}] cannot evaluate: {msg}", flush=True)
        write("run", "error", {}, {}, error=msg)
        return done
    status = "ok" if train_status["status"] == "ok" and sample_status == "ok" else "diverged"
    if status != "ok":
        base["diverged_step"] = train_status.get("diverged_step")
    if sample_status == "error":
        status = "error"
    domain = None
    if classifier is not None and Path(classifier).exists():
        from ebm_bench.metrics.extractors import DomainExtractor

        domain = DomainExtractor(classifier)
    ctx = EvalContext(spec=spec, label=label, run_dir=run_dir, data=data, method=method, samples=samples,
                      status="ok" if status == "ok" else "diverged", domain=domain, reference=reference)
    fams = families()
    with progress.scope(label, "evaluate"), progress.Task("family", len(fams)) as task:
        for k, (name, fn) in enumerate(fams):
            task.tick(k, name)  # feature passes, AIS and samplers nested in a family tick inside
            try:
                result = fn(ctx)
            except Exception as e:  # noqa: BLE001 - one family's failure is that family's cell
                msg = f"{type(e).__name__}: {e}"
                print(f"[{label}] {name}: error: {msg}", flush=True)
                write(name, "error", {}, {}, error=msg)
                continue
            if result is None:
                continue
            metrics, protocol = result
            write(name, "error" if status == "error" else status, metrics, protocol,
                  error="sampling failed (samples.npz status error)" if status == "error" else None)
    print(f"[{label}] metrics written to {out_dir}", flush=True)
    return done
