"""``exact``: KL(data || model) of the learned energy where the data density is known
(2D toys: normalised on a grid; paper 003's GMM teacher: closed-form normalisers).

These score the *model* exp(-U/T), not its samples; ``exact_samples``
(:mod:`.exact_samples`) scores the generated samples against the same truth.
"""

from __future__ import annotations

import torch

from ebm_bench.evaluation import register_family


@register_family("exact", order=30)
def exact(ctx):
    data, method = ctx.data, ctx.method
    if data.log_density is None:
        return None
    from ebm_bench.metrics.exact import gmm_exact_kl, grid_kl

    temperature = float(method.params.get("temperature", 1.0))
    teacher = data.truth.get("teacher")
    net = getattr(method, "net", None)
    if teacher is not None and hasattr(net, "student") and temperature == 1.0:
        keys = ("kl_exact", "cross_entropy_exact", "mass_a", "mass_a_abs_error")
        if not ctx.ok:
            return dict.fromkeys(keys), {}
        r = gmm_exact_kl(teacher, net.student(), n_mc=100_000, seed=0)
        # |p - p*| per run: its mean over seeds is paper 003 Fig. 10's error of the mass (bias
        # and seed-to-seed spread together), which a comparison of resamplers reads
        return ({"kl_exact": r["kl"], "cross_entropy_exact": r["cross_entropy"], "mass_a": r["mass_a"],
                 "mass_a_abs_error": abs(r["mass_a"] - r["mass_a_teacher"])},
                {"kl": "KL(teacher || student), closed-form normalisers (paper 003 Eq. 14-15), "
                       "Monte Carlo expectation", "n_mc": r["n_mc"], "kl_stderr": r["kl_stderr"],
                 "mass_a_teacher": r["mass_a_teacher"],
                 "fingerprint": {"exact": "gmm closed form", "n_mc": r["n_mc"]}})
    grid = data.truth.get("grid")
    if grid is None or data.dim != 2 or not hasattr(method, "energy"):
        return None
    if not ctx.ok:
        return {"kl_exact": None}, {}

    def log_unnorm(x: torch.Tensor) -> torch.Tensor:
        # the chains sample exp(-U/T): that is the model's density
        with torch.no_grad():
            return -method.energy(x.float().to(method.device)).double().cpu() / temperature

    r = grid_kl(log_unnorm, data.log_density, grid["low"], grid["high"], n=200)
    return ({"kl_exact": r["kl"]},
            {"kl": "KL(data || exp(-U/T)/Z), model normalised on the grid", "grid_n": r["n"],
             "low": r["low"], "high": r["high"], "data_mass_inside": r["data_mass_inside"],
             "temperature": temperature,
             "fingerprint": {"exact": "grid", "grid_n": r["n"], "low": r["low"], "high": r["high"]}})
