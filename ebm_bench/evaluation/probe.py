"""``probe``: linear-probe accuracy of every representation a method exposes (paper 004,
Table 3), with the one fixed protocol of :mod:`ebm_bench.metrics.probe`."""

from __future__ import annotations

import torch

from . import register_family


def batched(fn, x: torch.Tensor, bs: int = 512) -> dict[str, torch.Tensor]:
    """``fn`` (a method's ``features``) over ``x`` in batches, float64 on the CPU."""
    parts: dict[str, list[torch.Tensor]] = {}
    for i in range(0, len(x), bs):
        for k, v in fn(x[i : i + bs]).items():
            parts.setdefault(k, []).append(v.detach().cpu().double())
    return {k: torch.cat(v) for k, v in parts.items()}


@register_family("probe", order=20)
def probe(ctx):
    data, method = ctx.data, ctx.method
    if data.y_train is None:
        return None
    from ..metrics.probe import linear_probe

    max_train = int(ctx.ev["probe_max_train"])
    f_test = batched(method.features, data.x_test.to(method.device))
    protocol = {"splits": "fit on train, score on test", "n_test": len(data.x_test)}
    if not ctx.ok:
        return dict.fromkeys(f"probe_acc_{k}" for k in f_test), protocol
    metrics = {}
    f_train = batched(method.features, data.x_train.to(method.device))
    for fname in f_train:
        r = linear_probe(f_train[fname].numpy(), data.y_train.numpy(), f_test[fname].numpy(),
                         data.y_test.numpy(), seed=0, max_train=max_train)
        metrics[f"probe_acc_{fname}"] = r["accuracy"]
        protocol[fname] = r["protocol"]
        ctx.log(f"probe {fname}: {r['accuracy']:.3f}")
    p = r["protocol"] if f_train else {}
    protocol["fingerprint"] = {"probe": "StandardScaler + LogisticRegression", "C": p.get("C"),
                               "n_train": p.get("n_train"), "n_test": p.get("n_test"),
                               "sklearn": p.get("sklearn_version")}
    return metrics, protocol
