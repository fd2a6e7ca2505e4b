"""HEE (paper 000) families: the two claims about HEE's dynamics, measured on each run's
own trained parameters.

``hee_mixing`` (HEE-L runs: the posterior p(z | x_0) is Gaussian, so everything is exact,
no Monte Carlo). For each reading of the inference dynamics -- ``first`` (first-order
Langevin), ``literal`` (supp. Eq. 5-7 as printed) and ``driven`` (v driven by z; both
second-order readings with v0 from its stationary law, the method's default) -- from the
exact mean and covariance of the EM recursion (:func:`ebm_bench.evaluation.hee_moments.hee_mixing`, the
same code as ``ebm-bench hee-mixing``), z0 ~ N(0, I):

- ``hee_t_mean_<reading>``: time (tau_x) until the RMS error of E z_t stays below 0.1
  posterior sd (mean over the first 4 test points as x_0);
- ``hee_t_cov_<reading>``: time until Cov z_t stays within 5% (relative Frobenius) of the
  recursion's stationary covariance;
- ``hee_iact_<reading>``: the integrated autocorrelation time (tau_x) of the slowest
  posterior direction at stationarity.

The adaptation claim ("second-order dynamics speed up inference") then compares, within
one run, ``driven`` or ``literal`` against ``first``.

``hee_generation`` (HEE runs with reference statistics, e.g. digits): marginal vs joint
generation at EQUAL windows, both from the same trained model and the same number of
samples: total time ``joint_time`` and average over the last ``joint_average`` for both
(``fid_<kind>_joint_avg``, ``fid_<kind>_marginal_avg``), and the last state instead of the
average (``fid_<kind>_joint_last``, ``fid_<kind>_marginal_last``), against the dataset's
reference statistics (the ``fid`` family's protocol).

On 2D toys with a known density (no reference statistics) the same comparison is scored
by the ``exact_samples`` family's MMD^2 against exact draws (:mod:`ebm_bench.metrics.mmd`,
median bandwidth of the real split): ``mmd_samples_{joint,marginal}_{avg,last}`` at equal
windows as above, and ``mmd_samples_marginal_printed``, marginal generation at the
method's own ``marginal_time`` / ``marginal_average`` (supp. Sec. 3 as printed: 100 / 50
tau_x, against joint's 300 / 100 = ``mmd_samples_joint_avg``); each also as
``mmd_samples_multiscale_<generation>_<output>``, the summed kernel at 0.1, 0.3, 1 x that
bandwidth (:func:`ebm_bench.metrics.mmd.mmd2_rbf_multiscale`: the median bandwidth alone
barely tells gmm2d from a Gaussian with its moments).
"""

from __future__ import annotations

import copy

import numpy as np

from ebm_bench.evaluation import kid_subsets, register_family

READINGS = {"first": (1, "literal", False), "literal": (2, "literal", True), "driven": (2, "driven", True)}


def _is_hee(method) -> bool:
    return type(method).__name__ == "HEE" and hasattr(method, "simulate")


@register_family("hee_mixing", order=60)
def hee_mixing(ctx):
    method = ctx.method
    if not _is_hee(method) or method.params.get("nonlinearity") != "linear" or method.full:
        return None
    from ebm_bench.evaluation.hee_moments import hee_linear_posterior, hee_mixing as mixing

    keys = [f"hee_{q}_{r}" for q in ("t_mean", "t_cov", "iact") for r in READINGS]
    p = method.params
    protocol = {"readings": {k: {"order": o, "adaptation": a, "v0": "stationary" if v else "0"}
                             for k, (o, a, v) in READINGS.items()},
                "dt": float(p["dt"]), "m": float(p["m"]), "tau_v_factor": float(p["tau_v_factor"]),
                "tol": {"mean": "0.1 posterior sd (RMS)", "cov": "5% relative Frobenius"},
                "configured": {"order": int(p["order"]), "adaptation": p["adaptation"]},
                "directions": {k: "lower" for k in keys}}
    if not ctx.ok:
        return dict.fromkeys(keys), protocol
    m = copy.copy(method)  # float64 view of the trained parameters (closed-form A')
    m.W = [w.double().cpu() for w in method.W]
    m.bias = method.bias.double().cpu()
    m.lam = method.lam.double().cpu()
    x0s = ctx.data.x_test[:4].reshape(4, -1).double()
    tau = method.tau_vec[method.sizes[0]:].double().cpu()
    out = {}
    for i, x0 in enumerate(x0s):
        H, c = hee_linear_posterior(m, x0[None])
        res = mixing(H, c, tau, method.dt, float(p["m"]), float(p["tau_v_factor"]), readings=READINGS)
        for r, v in res.items():
            out.setdefault(f"hee_t_mean_{r}", []).append(v["t_mean_0.1"])
            if i == 0:  # covariance and autocorrelation do not depend on x_0
                out[f"hee_t_cov_{r}"] = [v["t_cov_5%"]]
                out[f"hee_iact_{r}"] = [v["iact_slow"]]
                protocol.setdefault("cov_bias", {})[r] = v["cov_bias"]
    metrics = {k: float(sum(v) / len(v)) for k, v in out.items()}
    protocol["fingerprint"] = {"hee_mixing": "exact EM moments", "dt": float(p["dt"]), "m": float(p["m"]),
                               "tau_v_factor": float(p["tau_v_factor"]), "n_x0": 4}
    return metrics, protocol


def _generation_exact_2d(ctx):
    """``hee_generation`` on a known 2D density: MMD^2 of joint and marginal generation."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN

    from ebm_bench.metrics.mmd import MMD_SCALES, median_bandwidth, mmd2_rbf_multiscale

    method, data, p = ctx.method, ctx.data, ctx.method.params
    names = [f"{g}_{o}" for o in ("avg", "last") for g in ("joint", "marginal")] + ["marginal_printed"]
    keys = [f"mmd_samples_{t}" for t in names] + [f"mmd_samples_multiscale_{t}" for t in names]
    split = str(ctx.ev.get("real_split", "train"))
    real = {"train": data.x_train, "test": data.x_test}[split].double().numpy()
    sigma = median_bandwidth(real)
    total, avg = float(p["joint_time"]), float(p["joint_average"])
    printed = (float(p["marginal_time"]), float(p["marginal_average"]))
    protocol = {"mmd": "unbiased MMD^2, Gaussian kernel at the real split's median distance (exact_samples)",
                "sigma": sigma, "real_split": split, "n_real": int(len(real)),
                "windows": {"total_tau_x": total, "average_tau_x": avg},
                "printed_marginal_windows": {"total_tau_x": printed[0], "average_tau_x": printed[1]}}
    if not ctx.ok:
        return dict.fromkeys(keys), protocol
    n = int(len(ctx.samples))
    metrics = {}
    saved = {k: p[k] for k in ("marginal_time", "marginal_average")}
    state = method.gen.get_state()
    try:
        equal = {"average": "avg", "last": "last"}
        for g, windows, tags in (("joint", (total, avg), equal), ("marginal", (total, avg), equal),
                                 ("marginal", printed, {"average": "printed"})):
            p.update(marginal_time=windows[0], marginal_average=windows[1])
            method.gen.manual_seed(int(method.seed) + 7)  # same starting activity for every mode
            outs = method.sample_outputs(n, generation=g)
            for out, tag in tags.items():
                fake = outs[out].double().reshape(n, -1).numpy()
                if not np.isfinite(fake).all():
                    metrics[f"mmd_samples_{g}_{tag}"] = metrics[f"mmd_samples_multiscale_{g}_{tag}"] = None
                    continue
                multiscale, per_scale = mmd2_rbf_multiscale(real, fake, sigma, kid_subsets(ctx.ev))
                metrics[f"mmd_samples_{g}_{tag}"] = float(per_scale[1.0][KEY_METRIC_KID_MEAN])
                metrics[f"mmd_samples_multiscale_{g}_{tag}"] = multiscale
    finally:
        p.update(saved)
        method.gen.set_state(state)
    protocol.update(n_generated=n, mmd_scales=list(MMD_SCALES))
    protocol["fingerprint"] = {"mmd": "rbf median heuristic", "real_split": split, "n_real": int(len(real)),
                               "n_generated": n, "windows": f"{total:g}/{avg:g}",
                               "printed_marginal": f"{printed[0]:g}/{printed[1]:g}"}
    return metrics, protocol


@register_family("hee_generation", order=61)
def hee_generation(ctx):
    """Marginal vs joint generation of one trained HEE: on a 2D dataset with a known density
    the exact-samples MMD^2 (:func:`_generation_exact_2d`, what the 2D claims read), and
    wherever the run has reference statistics FID / KID in their feature space; a 2D
    dataset with a reference gets both (protocols under ``exact_2d`` and ``features``)."""
    if not _is_hee(ctx.method):
        return None
    data = ctx.data
    exact_2d = getattr(data, "log_density", None) is not None and not data.is_image and data.dim == 2
    parts = {}
    if exact_2d:
        parts["exact_2d"] = _generation_exact_2d(ctx)
    if ctx.reference is not None:
        feats = _generation_features(ctx)
        if feats is not None:
            parts["features"] = feats
    if len(parts) <= 1:
        return next(iter(parts.values()), None)
    metrics = {k: v for m, _ in parts.values() for k, v in m.items()}
    protocol = {name: pr for name, (_, pr) in parts.items()}
    protocol["fingerprint"] = {name: pr.get("fingerprint") for name, (_, pr) in parts.items()}
    return metrics, protocol


def _generation_features(ctx):
    """``hee_generation`` in the reference's feature space: FID / KID of joint and marginal
    generation at equal windows; None where the features are Inception's."""
    method = ctx.method
    from ebm_bench.metrics.fid import fid_from_statistics, fid_statistics, kid_from_features
    from ebm_bench.core.artefacts import load_reference
    from ebm_bench.data import to_uint8

    ref = load_reference(ctx.reference)
    meta = ref["meta"]
    kind = meta["feature_kind"]
    modes = [(g, o) for o in ("avg", "last") for g in ("joint", "marginal")]
    keys = [f"{s}_{kind}_{g}_{o}" for s in ("fid", "kid") for g, o in modes]
    p = method.params
    total, avg = float(p["joint_time"]), float(p["joint_average"])
    protocol = {"windows": {"total_tau_x": total, "average_tau_x": avg}, "feature_kind": kind,
                "layer": meta["layer"], "real_split": meta["real_split"], "n_real": meta["n_real"]}
    if not ctx.ok:
        return dict.fromkeys(keys), protocol
    extractor = ctx.domain if kind == "domain" else None
    if extractor is None:
        return None  # Inception-scale runs: the fid family's protocol only
    n = int(len(ctx.samples))
    metrics = {}
    saved = {k: p[k] for k in ("marginal_time", "marginal_average")}  # the equal windows set below
    state = method.gen.get_state()
    try:
        p.update(marginal_time=total, marginal_average=avg)
        for g in dict.fromkeys(g for g, _ in modes):
            method.gen.manual_seed(int(method.seed) + 7)  # same starting activity for every mode
            outs = method.sample_outputs(n, generation=g)  # average and last state of the same chains
            for o in (o for g2, o in modes if g2 == g):
                x = outs["average" if o == "avg" else "last"].clamp(-1, 1)
                f = extractor.extract(to_uint8(x))[meta["layer"]]
                metrics[f"fid_{kind}_{g}_{o}"] = fid_from_statistics({"mu": ref["mu"], "sigma": ref["sigma"]},
                                                                     fid_statistics(f))["fid"]
                metrics[f"kid_{kind}_{g}_{o}"] = kid_from_features(ref["kid_features"], f,
                                                                   subsets=kid_subsets(ctx.ev))["kid"]
    finally:
        p.update(saved)
        method.gen.set_state(state)
    protocol["n_generated"] = n
    protocol["fingerprint"] = {**meta["fingerprint"], "n_generated": n, "windows": f"{total:g}/{avg:g}"}
    return metrics, protocol
