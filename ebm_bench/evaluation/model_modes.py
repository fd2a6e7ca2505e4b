"""``model_modes``: the trained model's own mode weights, estimated by an independent
sampler, beside the mode weights of the method's generated samples (``modes``).

Paper 003 Fig. 3 reads the digit weights of the *generated samples*. A wrong weight there
can come from the model (its density exp(-U/T) puts the wrong mass on a digit) or from
its sampler (the model is right but the chains that made the samples never equilibrated
between the digits). This family estimates the model's weights at the final parameters
with annealed importance sampling (:func:`ebm_bench.samplers.ais.ais`: Gaussian base ->
exp(-U/T) at the training temperature, MALA moves, exact weights), reads the end points
with the same domain classifier as ``modes``, and reports

- ``model_mode_rel_error_mean`` / ``_max`` and ``model_mode_weight_<class>``: the
  AIS-weighted class fractions (the model's weights) and their relative error against
  the data's weights (same definition as ``mode_rel_error_*``);
- ``model_mode_ess``: the effective sample size fraction of the AIS weights (how far to
  trust the line above: at 1 / n_chains it rests on one chain), and
  ``model_mode_ess_chains`` = model_mode_ess x n_chains, the effective number of chains.
  Below ``MIN_EFFECTIVE_CHAINS`` (30) the model-mode metrics (weights and their errors)
  are flagged unreliable: the weights then rest on a handful of chains (the smallest
  digit of digits_236, weight 1/7, on about 4 of them, where the binomial error of its
  weight alone is ~45%), so a small or large error there says nothing about the model;
- ``chains_mode_rel_error_mean``: the unweighted end points (annealed chains from noise);
- ``model_mode_accept``: MALA acceptance over the second half of the path.

So ``mode_rel_error_mean`` small and ``model_mode_rel_error_mean`` large says the sampler
compensates a wrong model (or the estimate is poor: see the ESS); both large with the
model's weights right says the sampler got them wrong.

Applies to Langevin-trained energies (methods with ``energy`` and a ``temperature``) on
datasets that declare mode weights (``truth["mode_weights"]``: the biased digits) and have
a domain classifier. Settings: ``evaluate.model_modes``
(``n_chains``, ``n_steps``, ``step_factor``: the MALA step on the scale of U/T is
step_factor x h x T, h and T the method's ULA step and temperature; ``base_std``; ``enabled``). The cost is evaluation cost (about n_chains x n_steps
gradient evaluations), not counted in the method's gradient evaluations.
"""

from __future__ import annotations

import numpy as np
import torch

from ebm_bench.core import validation as V
from ebm_bench.evaluation import register_family, unreliable

MIN_EFFECTIVE_CHAINS = 30  # fewer effective AIS chains: the model's mode weights are flagged
DEFAULTS = {"enabled": True, "n_chains": 500, "n_steps": 200, "step_factor": 1.0, "base_std": 0.5, "power": 4.0,
            "seed": 0}
# how evaluate.model_modes values are checked before any job (ebm_bench.pipeline.config);
# "enabled" by its default's type
CHECKS = {"n_chains": V.count(), "n_steps": V.count(), "step_factor": V.positive(), "base_std": V.positive(),
          "power": V.positive(), "seed": V.count(0)}


def settings(ev: dict) -> dict:
    return {**DEFAULTS, **(ev.get("model_modes") or {})}


@register_family("model_modes", order=45)
def model_modes(ctx):
    data, domain, method = ctx.data, ctx.domain, ctx.method
    weights = data.truth.get("mode_weights")  # imbalanced-mode datasets only (digits_236, mnist_236)
    energy = getattr(method, "energy", None)
    params = getattr(method, "params", {}) or {}
    cfg = settings(ctx.ev)
    if domain is None or weights is None or not callable(energy) or "temperature" not in params \
            or not cfg["enabled"]:
        return None
    from ebm_bench.metrics.modes import mode_weights
    from ebm_bench.samplers.ais import ais

    classes = data.class_names or [str(i) for i in range(len(weights))]
    weighted = ["model_mode_rel_error_mean", "model_mode_rel_error_max"] + [f"model_mode_weight_{c}" for c in classes]
    keys = weighted + ["model_mode_ess", "model_mode_ess_chains", "model_mode_accept", "chains_mode_rel_error_mean"]
    temperature = float(params["temperature"])
    step = float(cfg["step_factor"]) * float(params.get("step_size", 1.0)) * temperature
    reader = domain.protocol()
    fp = {"reader": reader.get("name"), "reader_sha256": reader.get("weights_sha256"), "sampler": "ais-mala",
          "n_chains": int(cfg["n_chains"]), "n_steps": int(cfg["n_steps"]), "step": step,
          "base_std": float(cfg["base_std"]), "power": float(cfg["power"]), "temperature": temperature}
    protocol = {"reader": reader, "data_weights": weights, "fingerprint": fp,
                "directions": {"model_mode_ess": "higher", "model_mode_ess_chains": "", "model_mode_accept": ""}}
    if not ctx.ok:
        return dict.fromkeys(keys), protocol
    gen = torch.Generator(device=method.device).manual_seed(int(cfg["seed"]) + 104_729 * int(ctx.spec["seed"]))
    res = ais(energy, tuple(data.shape), int(cfg["n_chains"]), int(cfg["n_steps"]), temperature, step, gen,
              base_std=float(cfg["base_std"]), power=float(cfg["power"]), device=method.device)
    x = res.x.detach().cpu()
    if data.is_image:
        x = x.clamp(-1.0, 1.0)  # the reader sees what the sample stage would store
    pred = torch.as_tensor(np.asarray(domain.extract(x)["logits"])).argmax(1)
    k = len(weights)
    p = torch.softmax(res.log_w, 0).cpu()
    w_model = torch.zeros(k, dtype=torch.float64).index_add_(0, pred.long(), p)
    w_data = torch.tensor(weights, dtype=torch.float64)
    rel = ((w_model - w_data).abs() / w_data).tolist()
    chains = mode_weights(pred, k, weights)
    metrics = {"model_mode_rel_error_mean": sum(rel) / k, "model_mode_rel_error_max": max(rel),
               "model_mode_ess": res.ess, "model_mode_ess_chains": res.ess * int(cfg["n_chains"]),
               "model_mode_accept": res.accept,
               "chains_mode_rel_error_mean": chains["mean_rel_error"],
               **{f"model_mode_weight_{c}": float(w) for c, w in zip(classes, w_model)}}
    protocol.update(rel_error=rel, chains_weights=chains["weights_gen"], log_z=res.log_z,
                    flags=ess_flags(metrics["model_mode_ess_chains"], weighted))
    return metrics, protocol


def ess_flags(ess_chains: float, keys: list[str]) -> dict[str, str]:
    """Flags of the AIS-weighted metrics ``keys`` where the effective number of chains is
    below ``MIN_EFFECTIVE_CHAINS`` (module docstring); {} otherwise."""
    if ess_chains is not None and ess_chains >= MIN_EFFECTIVE_CHAINS:
        return {}
    why = unreliable(f"AIS effective chains {ess_chains:.3g} < {MIN_EFFECTIVE_CHAINS}: "
                     f"the model's mode weights rest on a handful of chains")
    return dict.fromkeys(keys, why)
