"""The sample, evaluate and classifier stages of one run (called by the CLI/rules).

Every stage reads the previous stage's files as data only and writes under the run
folder. A run whose training diverged still gets every output, marked ``diverged``, so
the DAG completes and the tables say what happened.
"""

from __future__ import annotations

import io as _io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import runs
from .data import to_uint8
from .io import atomic_write_bytes, load_torch, read_json, write_json


def _save_npz(path: Path, **arrays: Any) -> None:
    buf = _io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, lambda f: f.write(buf.getvalue()))


def load_samples(path: Path) -> tuple[np.ndarray, str]:
    with np.load(path, allow_pickle=False) as z:
        return z["samples"], str(z["status"])


def load_trained(spec: dict[str, Any], run_dir: Path, data=None):
    """The trained method; ``data=None`` rebuilds it from the data facts saved in model.pt
    (sampling image models then needs no dataset, and no scikit-learn import)."""
    state = load_torch(run_dir / "model.pt")
    if data is None:
        from .methods.base import DataInfo

        i = state["data_info"]
        data = DataInfo(tuple(i["shape"]), bool(i["is_image"]), i["num_classes"])
    method = runs.build_method(spec, data)
    # loaded on the CPU: generator states must stay there; load_state_dict moves the rest
    method.load_state_dict(state["method"])
    return method


def sample_stage(spec: dict[str, Any], run_dir: Path, threads: int | None = None) -> str:
    from .plots import sample_grid

    runs.set_threads(threads)
    label = runs.run_label(spec)
    status = read_json(run_dir / "train_status.json")["status"]
    method = load_trained(spec, run_dir)
    data = method.data
    samples = np.zeros((0, *data.shape), dtype=np.uint8 if data.is_image else np.float32)
    if status == "ok":
        method.gen.manual_seed(spec["seed"] + 7919)  # the sampling stage is reproducible alone
        n = int(spec["sample"]["n"])
        print(f"[{label}] sampling {n} with {type(method).__name__}", flush=True)
        x = method.sample(n).detach().cpu()
        if not torch.isfinite(x).all():
            status = "diverged"
            print(f"[{label}] samples are not finite: recorded as diverged", flush=True)
        else:
            samples = to_uint8(x).numpy() if data.is_image else x.float().numpy()
    _save_npz(run_dir / "samples.npz", samples=samples, status=np.array(status))
    real = None if data.is_image else runs.load_data(spec).x_test[:2000].numpy()
    sample_grid(samples, run_dir / "samples.png", data.is_image, real=real)
    return status


# --- domain classifier ------------------------------------------------------------------

CLASSIFIER_SEED = 0  # one classifier per dataset, shared by every method and seed


def classifier_stage(spec: dict[str, Any], out: Path, threads: int | None = None) -> None:
    """Train the dataset's domain classifier (FID/IS features and mode reader)."""
    from .data import load_dataset
    from .metrics.extractors import save_classifier, train_domain_classifier

    runs.set_threads(threads)
    ds = spec["dataset"] if "dataset" in spec else spec
    data = load_dataset(ds["type"], ds["params"], Path(ds.get("data_root", spec.get("data_root", "data"))))
    if data.y_train is None:
        raise SystemExit(f"dataset {ds['name']!r} has no labels: no domain classifier can be trained")
    ckpt, info = train_domain_classifier(data.x_train, data.y_train, data.x_test, data.y_test,
                                         seed=CLASSIFIER_SEED, num_classes=data.num_classes)
    sha = save_classifier(out, ckpt)
    print(f"[{ds['name']}] domain classifier: test accuracy {info['test_accuracy']:.3f}, sha256 {sha[:12]}")


# --- evaluation ---------------------------------------------------------------------------


def _batched(fn, x: torch.Tensor, bs: int = 512) -> dict[str, torch.Tensor]:
    parts: dict[str, list[torch.Tensor]] = {}
    for i in range(0, len(x), bs):
        for k, v in fn(x[i : i + bs]).items():
            parts.setdefault(k, []).append(v.detach().cpu().double())
    return {k: torch.cat(v) for k, v in parts.items()}


def _family(out_dir: Path, base: dict, family: str, status: str, metrics: dict, protocol: dict) -> None:
    clean = {k: (None if v is None or (isinstance(v, float) and not np.isfinite(v)) else float(v))
             for k, v in metrics.items()}
    write_json({**base, "family": family, "status": status, "metrics": clean, "protocol": protocol},
               out_dir / f"{family}.json")


def evaluate_stage(spec: dict[str, Any], run_dir: Path, classifier: Path | None, threads: int | None = None) -> None:
    """Write ``metrics/{family}.json`` for every metric family that applies to the data.

    Families: ``fid`` (FID and IS with Inception or the domain classifier, named
    ``fid_inception``/``fid_domain``), ``probe`` (linear-probe accuracy per named feature),
    ``exact`` (KL against the known density: grid KL for 2D data, closed-form
    normalisers for the GMM teacher/student of paper 003) and ``modes`` (mode weights
    of generated samples read by the domain classifier, paper 003 Fig. 3).
    """
    from .metrics.extractors import DomainExtractor, InceptionExtractor

    runs.set_threads(threads)
    label = runs.run_label(spec)
    out_dir = run_dir / "metrics"
    out_dir.mkdir(parents=True, exist_ok=True)
    base = {"dataset": spec["dataset"]["name"], "variant": spec["variant"], "method": spec["method"],
            "seed": spec["seed"]}
    train_status = read_json(run_dir / "train_status.json")
    samples, sample_status = load_samples(run_dir / "samples.npz")
    status = "ok" if train_status["status"] == "ok" and sample_status == "ok" else "diverged"
    if status != "ok":
        base["diverged_step"] = train_status.get("diverged_step")
    data = runs.load_data(spec)
    method = load_trained(spec, run_dir, data)
    ev = spec["evaluate"]
    n_real = min(int(ev["n_real"]), len(data.x_test))
    real = data.x_test[:n_real]
    fake = torch.from_numpy(samples)
    if data.is_image:
        real = to_uint8(real)
    kind = "inception" if ev.get("use_inception") else "domain"
    domain = DomainExtractor(classifier) if classifier is not None and classifier.exists() else None

    # FID / IS
    names = (f"fid_{kind}", f"is_{kind}")
    extractor = InceptionExtractor(weights_path=ev.get("inception_weights"), device=method.device) \
        if kind == "inception" else domain
    if extractor is not None:
        if status == "ok":
            from .metrics.fid import fid_is_with_extractor

            print(f"[{label}] FID/IS with {kind} features: {n_real} real vs {len(fake)} generated", flush=True)
            r = fid_is_with_extractor(extractor, real, fake)
            metrics = {names[0]: r["fid"], names[1]: r["is_mean"], f"is_{kind}_std": r["is_std"],
                       "fid_pytorch_fid_rel_diff": r["fid_rel_diff"]}
            protocol = {**r["protocol"], "n_real": n_real, "n_generated": len(fake),
                        "real_split": "test", "feature_kind": kind}
        else:
            metrics, protocol = dict.fromkeys(names), {"feature_kind": kind}
        _family(out_dir, base, "fid", status, metrics, protocol)

    # linear probe on the method's frozen features
    if data.y_train is not None:
        from .metrics.probe import linear_probe

        max_train = int(ev["probe_max_train"])
        f_test = _batched(method.features, data.x_test.to(method.device))
        metrics, protocol = {}, {"splits": "fit on train, score on test", "n_test": len(data.x_test)}
        if status == "ok":
            f_train = _batched(method.features, data.x_train.to(method.device))
            for fname in f_train:
                r = linear_probe(f_train[fname].numpy(), data.y_train.numpy(), f_test[fname].numpy(),
                                 data.y_test.numpy(), seed=0, max_train=max_train)
                metrics[f"probe_acc_{fname}"] = r["accuracy"]
                protocol[fname] = r["protocol"]
                print(f"[{label}] probe {fname}: {r['accuracy']:.3f}", flush=True)
        else:
            metrics = dict.fromkeys(f"probe_acc_{k}" for k in f_test)
        _family(out_dir, base, "probe", status, metrics, protocol)

    # exact metrics against the known density
    exact = _exact_metrics(spec, data, method, status)
    if exact is not None:
        _family(out_dir, base, "exact", status, *exact)

    # mode weights read by the domain classifier
    weights = data.truth.get("mode_weights")
    if weights is None and data.class_weights() is not None:
        weights = data.class_weights().tolist()
    if domain is not None and weights is not None:
        from .metrics.modes import mode_weights

        classes = data.class_names or [str(i) for i in range(len(weights))]
        keys = (["mode_rel_error_mean", "mode_rel_error_max"] + [f"mode_weight_{c}" for c in classes]
                + [f"mode_rel_error_{c}" for c in classes])
        metrics, protocol = dict.fromkeys(keys), {"reader": domain.protocol(), "data_weights": weights}
        if status == "ok":
            pred = domain.extract(fake)["logits"].argmax(1)
            r = mode_weights(pred, len(weights), weights)
            metrics = {"mode_rel_error_mean": r["mean_rel_error"], "mode_rel_error_max": r["max_rel_error"],
                       **{f"mode_weight_{c}": w for c, w in zip(classes, r["weights_gen"])},
                       **{f"mode_rel_error_{c}": e for c, e in zip(classes, r["rel_error"])}}  # paper 003 Fig. 3
            protocol.update(rel_error=r["rel_error"], n_generated=r["n"])
        _family(out_dir, base, "modes", status, metrics, protocol)
    print(f"[{label}] metrics written to {out_dir}", flush=True)


def _exact_metrics(spec, data, method, status):
    """KL(data || model) where the data density is known; None where it is not."""
    if data.log_density is None:
        return None
    from .metrics.exact import gmm_exact_kl, grid_kl

    temperature = float(method.params.get("temperature", 1.0))
    teacher = data.truth.get("teacher")
    net = getattr(method, "net", None)
    if teacher is not None and hasattr(net, "student") and temperature == 1.0:
        keys = ("kl_exact", "cross_entropy_exact", "mass_a")
        if status != "ok":
            return dict.fromkeys(keys), {}
        r = gmm_exact_kl(teacher, net.student(), n_mc=100_000, seed=0)
        return ({"kl_exact": r["kl"], "cross_entropy_exact": r["cross_entropy"], "mass_a": r["mass_a"]},
                {"kl": "KL(teacher || student), closed-form normalisers (paper 003 Eq. 14-15), "
                       "Monte Carlo expectation", "n_mc": r["n_mc"], "kl_stderr": r["kl_stderr"],
                 "mass_a_teacher": r["mass_a_teacher"]})
    grid = data.truth.get("grid")
    if grid is None or data.dim != 2 or not hasattr(method, "energy"):
        return None
    if status != "ok":
        return {"kl_exact": None}, {}

    def log_unnorm(x: torch.Tensor) -> torch.Tensor:
        # the chains sample exp(-U/T): that is the model's density
        with torch.no_grad():
            return -method.energy(x.float().to(method.device)).double().cpu() / temperature

    r = grid_kl(log_unnorm, data.log_density, grid["low"], grid["high"], n=200)
    return ({"kl_exact": r["kl"]},
            {"kl": "KL(data || exp(-U/T)/Z), model normalised on the grid", "grid_n": r["n"],
             "low": r["low"], "high": r["high"], "data_mass_inside": r["data_mass_inside"],
             "temperature": temperature})
