"""``fid``: FID, KID and IS of the generated samples against the dataset's reference
statistics (computed once per dataset by the ``reference`` rule from the configured real
split; :func:`ebm_bench.pipeline.stages.reference_stage`).

Names carry the feature space: ``fid_inception``/``kid_inception``/``is_inception`` with
torch-fidelity's Inception-v3, ``fid_domain``/... with the dataset's domain classifier
(on the layer the reference chose: penultimate, or the logits where the real set is too
small for a covariance of the penultimate layer; ``protocol.layer`` says which).

Judging rules recorded with the numbers (docs/protocol.md):

- IS has no "better" direction where the data's class weights are not uniform: a perfect
  generator of 4/7, 2/7, 1/7 data scores exp(H) = 2.60 while one with equal thirds scores
  3.0. ``is_*_gap`` = |IS(generated) - IS(real split)| (lower is better) is given everywhere.
- ``domain_classifier_acc``: the test accuracy of the classifier that defines the domain
  features; below ``evaluate.min_classifier_accuracy`` every domain metric is flagged
  unreliable.
- FID is cross-checked with pytorch-fid on the same statistics; a relative disagreement
  above ``FID_CROSSCHECK_RTOL`` flags the value.
- FID/KID in a logits layer of fewer than ``MIN_LOGIT_DIMS`` dimensions (the reference's
  fallback where the real set is too small for the penultimate layer: digits_236 has 3)
  are flagged: a few class scores carry the class balance and little of what an image
  looks like, and KID's cubic kernel (x.y / d + 1)^3 on unnormalised logits is dominated
  by their scale (the held-out data's KID there is -173, far from its floor of ~0).

Every flag begins with "unreliable: " (``ebm_bench.evaluation.unreliable``).
"""

from __future__ import annotations

from ebm_bench.evaluation import kid_subsets, register_family, unreliable

FID_CROSSCHECK_RTOL = 1e-3  # torch-fidelity vs pytorch-fid on identical statistics
MIN_LOGIT_DIMS = 10         # FID/KID in a logits layer narrower than this are flagged
UNIFORM_TOL = 0.1           # class weights within 10% of 1/K count as uniform (IS gets a direction)


def _uniform(weights) -> bool:
    if not weights:
        return True
    k = len(weights)
    return max(abs(w * k - 1.0) for w in weights) <= UNIFORM_TOL


@register_family("fid", order=10)
def fid(ctx):
    if ctx.reference is None:
        return None
    from ebm_bench.core.artefacts import load_reference
    from ebm_bench.metrics.fid import fid_from_statistics, fid_statistics, inception_score_from_logits, kid_from_features

    ref = load_reference(ctx.reference)
    meta = ref["meta"]
    kind = meta["feature_kind"]
    names = {m: f"{m}_{kind}" for m in ("fid", "kid", "is", "is_gap")}
    keys = list(names.values()) + ["fid_pytorch_fid_rel_diff"]
    if kind == "domain":
        keys.append("domain_classifier_acc")
    uniform = _uniform(meta.get("class_weights"))
    protocol = {
        "feature_kind": kind, "layer": meta["layer"], "real_split": meta["real_split"], "n_real": meta["n_real"],
        "extractor": meta["extractor"], "is_real": meta["is_real"],
        "directions": {names["is"]: "higher" if uniform else "",
                       "domain_classifier_acc": "", "fid_pytorch_fid_rel_diff": ""},
        "class_weights_uniform": uniform,
    }
    if not ctx.ok:
        return dict.fromkeys(keys), protocol
    if kind == "inception":
        from ebm_bench.metrics.extractors import InceptionExtractor

        extractor = InceptionExtractor(weights_path=ctx.ev.get("inception_weights"), device=ctx.method.device)
    else:
        extractor = ctx.domain
        if extractor is None:
            raise RuntimeError("the reference uses domain features but this run has no domain classifier")
    eproto = extractor.protocol()
    if eproto.get("weights_sha256") != meta["extractor"].get("weights_sha256"):
        raise RuntimeError(f"feature extractor weights {eproto.get('weights_sha256')} differ from the "
                           f"reference's {meta['extractor'].get('weights_sha256')}: rebuild the reference")
    fake = ctx.fake
    ctx.log(f"FID/KID/IS with {kind} features ({meta['layer']}): {meta['n_real']} {meta['real_split']} "
            f"vs {len(fake)} generated")
    ff = extractor.extract(fake)
    f = ff[meta["layer"]]
    r = fid_from_statistics({"mu": ref["mu"], "sigma": ref["sigma"]}, fid_statistics(f))
    k = kid_from_features(ref["kid_features"], f, subsets=kid_subsets(ctx.ev))
    isc = inception_score_from_logits(ff["logits"], splits=min(10, len(fake)))
    metrics = {names["fid"]: r["fid"], names["kid"]: k["kid"], names["is"]: isc["is_mean"],
               names["is_gap"]: abs(isc["is_mean"] - meta["is_real"]),
               "fid_pytorch_fid_rel_diff": r["fid_rel_diff"]}
    flags = {}
    if not r["fid_rel_diff"] <= FID_CROSSCHECK_RTOL:
        flags[names["fid"]] = unreliable(f"torch-fidelity and pytorch-fid disagree by {r['fid_rel_diff']:.2g} "
                                         f"(> {FID_CROSSCHECK_RTOL:g} relative)")
    dim = int(f.shape[1])
    if meta["layer"] == "logits" and dim < MIN_LOGIT_DIMS:
        for m in (names["fid"], names["kid"]):
            flags.setdefault(m, unreliable(f"FID/KID on {dim} logits: a layer that cannot carry them "
                                           f"(KID's cubic kernel on unnormalised logits)"))
    if kind == "domain":
        acc = eproto.get("test_accuracy")
        metrics["domain_classifier_acc"] = acc
        least = float(ctx.ev.get("min_classifier_accuracy", 0.9))
        if acc is None or acc < least:
            for m in (names["fid"], names["kid"], names["is"], names["is_gap"]):
                flags.setdefault(m, unreliable(f"domain classifier test accuracy {acc} < {least:g}"))
    protocol.update(
        kid={k2: v for k2, v in k.items() if k2 != "kid"}, is_splits=isc["splits"], n_generated=int(len(fake)),
        fid_pytorch_fid=r["fid_pytorch_fid"], flags=flags,
        fingerprint={**meta["fingerprint"], "n_generated": int(len(fake)), "kid_subset_size": k["subset_size"]},
    )
    return metrics, protocol
