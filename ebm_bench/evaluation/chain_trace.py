"""``chain_trace``: a sample-based divergence against gradient evaluations, for samplers on
a fixed exact target (:mod:`ebm_bench.methods.exact_energy`, paper 002's rings).

For a run whose method has ``trace_steps`` (chain lengths K_1 < K_2 < ...), the same
n chains (n = the run's number of samples, fresh from the method's initial law with a
generator seeded by the run seed) are scored after each K:

- ``kl_radius_at_<K>``: the radial KL of :func:`.exact_samples.radial_kl`;
- ``grad_evals_at_<K>``: gradient evaluations per chain spent to get there (K for ULA and
  STANLEY; K + 1 with the Metropolis correction, whose proposal energies come with their
  gradients from the same autograd pass and whose accepted point's values are reused);
- ``accept_rate``: the MH acceptance rate over the whole trace (with ``metropolis``).

The method's own target must be the dataset's density (checked; a mismatch is an error).
"""

from __future__ import annotations

import torch

from ebm_bench.evaluation import register_family
from ebm_bench.evaluation.exact_samples import RADIAL_BINS, radial_kl, radial_masses


@register_family("chain_trace", order=36)
def chain_trace(ctx):
    method, data = ctx.method, ctx.data
    steps = list(getattr(method, "params", {}).get("trace_steps") or [])
    if not steps or not hasattr(method, "sample_trace") or data.log_density is None:
        return None
    steps = sorted(set(int(k) for k in steps))
    mh = bool(method.params.get("metropolis"))
    keys = [f"kl_radius_at_{k}" for k in steps] + [f"grad_evals_at_{k}" for k in steps] + (["accept_rate"] if mh else [])
    r_max = float(data.truth["grid"]["high"])
    protocol = {"trace_steps": steps, "radial_bins": RADIAL_BINS, "r_max": r_max,
                "sampler": {k: method.params.get(k) for k in ("step_size", "stanley_threshold", "stanley_mode",
                                                               "metropolis", "init_scale")},
                "directions": {**{f"grad_evals_at_{k}": "" for k in steps}, "accept_rate": ""}}
    if not ctx.ok:
        return dict.fromkeys(keys), protocol
    gap = method.check_target(data.log_density)
    if not gap < 1e-6:
        raise RuntimeError(f"the method's target differs from the dataset's density (max |d ln p| = {gap:.3g}): "
                           "set its `target` to the dataset's params")
    n = int(len(ctx.samples))
    gen = torch.Generator(device=method.device).manual_seed(int(method.seed) + 104729)
    trace, rate = method.sample_trace(n, steps, gen)
    masses = radial_masses(data.log_density, r_max)
    metrics = {}
    for k in steps:
        metrics[f"kl_radius_at_{k}"] = radial_kl(trace[k].double().numpy(), masses, r_max)
        metrics[f"grad_evals_at_{k}"] = float(k + (1 if mh and k > 0 else 0))
    if mh:
        metrics["accept_rate"] = rate
    protocol["n_chains"] = n
    protocol["fingerprint"] = {"chain_trace": "radial KL", "bins": RADIAL_BINS, "r_max": r_max, "n_chains": n}
    return metrics, protocol
