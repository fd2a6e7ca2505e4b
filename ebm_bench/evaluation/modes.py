"""``modes``: mode weights of the generated samples read by the dataset's domain
classifier, and their relative error per class (paper 003, Fig. 3)."""

from __future__ import annotations

from ebm_bench.evaluation import register_family, unreliable


@register_family("modes", order=40)
def modes(ctx):
    data, domain = ctx.data, ctx.domain
    weights = data.truth.get("mode_weights")
    if weights is None and data.class_weights() is not None:
        weights = data.class_weights().tolist()
    if domain is None or weights is None:
        return None
    from ebm_bench.metrics.modes import mode_weights

    classes = data.class_names or [str(i) for i in range(len(weights))]
    keys = (["mode_rel_error_mean", "mode_rel_error_max"] + [f"mode_weight_{c}" for c in classes]
            + [f"mode_rel_error_{c}" for c in classes])
    reader = domain.protocol()
    protocol = {"reader": reader, "data_weights": weights}
    if not ctx.ok:
        return dict.fromkeys(keys), protocol
    pred = domain.extract(ctx.fake)["logits"].argmax(1)
    r = mode_weights(pred, len(weights), weights)
    metrics = {"mode_rel_error_mean": r["mean_rel_error"], "mode_rel_error_max": r["max_rel_error"],
               **{f"mode_weight_{c}": w for c, w in zip(classes, r["weights_gen"])},
               **{f"mode_rel_error_{c}": e for c, e in zip(classes, r["rel_error"])}}
    protocol.update(rel_error=r["rel_error"], n_generated=r["n"])
    acc, least = reader.get("test_accuracy"), float(ctx.ev.get("min_classifier_accuracy", 0.9))
    if acc is None or acc < least:  # the weights are read by a classifier that cannot read them
        protocol["flags"] = {k: unreliable(f"domain classifier test accuracy {acc} < {least:g}") for k in keys}
    protocol["fingerprint"] = {"reader": reader.get("name"), "reader_sha256": reader.get("weights_sha256"),
                               "n_generated": r["n"]}
    return metrics, protocol
