"""``probe``: linear-probe accuracy of every representation a method exposes (paper 004,
Table 3), with the one fixed protocol of :mod:`ebm_bench.metrics.probe`, and its controls.

Per feature ``f`` of ``method.features``:

- ``probe_acc_{f}``: standardised features (StandardScaler + logistic regression, C = 1);
- ``probe_raw_acc_{f}``: the same logistic regression on the raw features (paper 004
  states no protocol; an untrained network's U scores ~0.82 on FashionMNIST standardised
  and ~0.68 raw, so the two differ by more than the paper's own gaps), for the methods
  with the untrained control and for the raw pixels (other rows: standardised only);
- ``probe_acc_{f}_untrained`` / ``probe_raw_acc_{f}_untrained``: the same two probes on the
  same network *at its initialisation* (same spec, same seed, not trained: built with
  :func:`ebm_bench.training.runs.build_method`), for methods that declare
  ``probe_untrained_control`` (the NN-EFH, the matched EBMs, the GRBM). A learned
  representation means something only above this control.

The raw-pixel control is the ``data`` reference row (feature ``pixels``:
``probe_acc_pixels``, ``probe_raw_acc_pixels``). The protocol is in docs/protocol.md.
"""

from __future__ import annotations

import torch

from ebm_bench.core.progress import Task
from ebm_bench.evaluation import register_family


def batched(fn, x: torch.Tensor, bs: int = 512) -> dict[str, torch.Tensor]:
    """``fn`` (a method's ``features``) over ``x`` in batches, float64 on the CPU."""
    parts: dict[str, list[torch.Tensor]] = {}
    with Task("feature rows", len(x), unit="rows") as task:  # HEE's features are long simulations
        for i in range(0, len(x), bs):
            task.tick(i)
            for k, v in fn(x[i : i + bs]).items():
                parts.setdefault(k, []).append(v.detach().cpu().double())
    return {k: torch.cat(v) for k, v in parts.items()}


PROBES = (("probe_acc", True), ("probe_raw_acc", False))  # (metric prefix, standardise)


def probes_for(fname: str, control: bool) -> tuple:
    """Both probes where a control is asked for (the paper-004 rows) and for the raw-pixel
    row; the standardised one only elsewhere (keeps the embedded suite's evaluate cheap)."""
    return PROBES if control or fname == "pixels" else PROBES[:1]


def metric_names(features, untrained: bool) -> list[str]:
    names = [f"{prefix}_{f}" for f in features for prefix, _ in probes_for(f, untrained)]
    if untrained:
        names += [f"{n}_untrained" for n in names]
    return names


@register_family("probe", order=20)
def probe(ctx):
    data, method = ctx.data, ctx.method
    if data.y_train is None:
        return None
    from ebm_bench.metrics.probe import linear_probe, probe_subset

    max_train = int(ctx.ev["probe_max_train"])
    control = bool(getattr(method, "probe_untrained_control", False))
    f_test = batched(method.features, data.x_test.to(method.device))
    protocol = {"splits": "fit on train, score on test", "n_test": len(data.x_test),
                "probes": {"probe_acc": "StandardScaler + LogisticRegression",
                           "probe_raw_acc": "LogisticRegression on the raw features"},
                "untrained_control": "same spec and seed, not trained (runs.build_method)" if control else None}
    if not ctx.ok:
        return dict.fromkeys(metric_names(f_test, control)), protocol
    sets = [("", method)]
    if control:
        from ebm_bench.training.runs import build_method

        untrained = build_method(ctx.spec, data)
        for net in (getattr(untrained, "model", None), getattr(untrained, "net", None)):
            if isinstance(net, torch.nn.Module):
                net.eval()
        sets.append(("_untrained", untrained))
    metrics: dict[str, float] = {}
    r = None
    # features of the rows the probe fits on only (linear_probe draws the same rows from
    # the same seed, so the fit is the one on all rows' features, at max_train / N the cost)
    rows = torch.from_numpy(probe_subset(len(data.x_train), max_train, 0))
    x_fit, y_fit = data.x_train[rows], data.y_train[rows]
    for suffix, m in sets:
        f_train = batched(m.features, x_fit.to(m.device))
        f_te = f_test if not suffix else batched(m.features, data.x_test.to(m.device))
        for fname in f_train:
            for prefix, standardise in probes_for(fname, control):
                r = linear_probe(f_train[fname].numpy(), y_fit.numpy(), f_te[fname].numpy(),
                                 data.y_test.numpy(), seed=0, max_train=max_train, standardise=standardise)
                name = f"{prefix}_{fname}{suffix}"
                metrics[name] = r["accuracy"]
                protocol[name] = r["protocol"]
                ctx.log(f"probe {name}: {r['accuracy']:.3f}")
    p = r["protocol"] if r is not None else {}
    protocol["fingerprint"] = {"probe": "LogisticRegression (StandardScaler for probe_acc_*)", "C": p.get("C"),
                               "n_train": p.get("n_train"), "n_test": p.get("n_test"),
                               "sklearn": p.get("sklearn_version")}
    return metrics, protocol
