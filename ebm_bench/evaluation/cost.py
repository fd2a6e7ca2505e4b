"""``cost``: what a run spent, as metrics a claim can compare ("at equal gradient
evaluations", "at equal size", "+6% per update").

From ``train_status.json`` (the training loop) and ``samples.npz`` (the sample stage):
``time_per_update_ms`` (training wall time / updates), ``train_time_s``,
``grad_evals_train`` and ``grad_evals_sample`` (grad_x U evaluations: chains x steps,
counted by :mod:`ebm_bench.samplers.counting`), ``n_params`` (trainable parameters).
Wall times depend on the machine and on what ran beside the job; the fingerprint holds
the device so times of different devices are never compared.
"""

from __future__ import annotations

from . import register_family


@register_family("cost", order=90)
def cost(ctx):
    from ..io import read_json
    from ..stages import load_sample_cost

    train = read_json(ctx.run_dir / "train_status.json")
    sample = load_sample_cost(ctx.run_dir / "samples.npz")
    metrics = {
        "time_per_update_ms": train.get("time_per_update_ms"),
        "train_time_s": train.get("wall_time_s"),
        "grad_evals_train": train.get("grad_evals_train"),
        "grad_evals_sample": sample.get("grad_evals_sample"),
        "n_params": train.get("n_params"),
    }
    directions = {k: "" for k in metrics}
    protocol = {"directions": directions, "steps": train.get("steps"), "device": train.get("device"),
                "resumed_from": train.get("resumed_from"), "n_sampled": sample.get("n"),
                "fingerprint": {"device": train.get("device"), "threads": ctx.spec.get("threads")}}
    return metrics, protocol
