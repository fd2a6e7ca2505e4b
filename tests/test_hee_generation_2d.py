"""hee_generation on 2D toys (ebm_bench/evaluation/hee.py): marginal vs joint generation of
the same trained model scored by the exact_samples MMD^2, at equal windows (joint's total
time and average for both) and with marginal at its own printed windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ebm_bench.data import load_dataset
from ebm_bench.evaluation import EvalContext
from ebm_bench.evaluation.hee import hee_generation
from ebm_bench.methods.base import DataInfo
from ebm_bench.methods.hee import HEE
from ebm_bench.metrics.mmd import MMD_SCALES, median_bandwidth, mmd2_rbf

WINDOWS = {"joint_time": 0.4, "joint_average": 0.2, "marginal_time": 0.3, "marginal_average": 0.1}


def test_windows_and_scores_of_the_2d_generation_family(tmp_path: Path, monkeypatch) -> None:
    d = load_dataset("toy2d", {"density": "gmm"}, "data", 0)
    m = HEE({**HEE.tiny, **WINDOWS}, DataInfo((2,), False), "cpu", 0)
    calls, outs = [], {}
    real_sample_outputs = m.sample_outputs

    def spy(n, generation=None):
        g = "joint" if generation == "joint" else "marginal"  # the windows that generation reads
        calls.append((generation, m.params[f"{g}_time"], m.params[f"{g}_average"]))
        out = real_sample_outputs(n, generation)
        outs[len(calls)] = out
        return out

    monkeypatch.setattr(m, "sample_outputs", spy)
    spec = {"seed": 0, "evaluate": {"real_split": "train", "kid_subsets": 3}}
    gen_state = m.gen.get_state()
    ctx = EvalContext(spec=spec, label="t", run_dir=tmp_path, data=d, method=m,
                      samples=np.zeros((200, 2), np.float32), status="ok")
    metrics, protocol = hee_generation(ctx)
    # joint at its windows; marginal at joint's (equal) windows, then at its own (printed) ones
    assert calls == [("joint", 0.4, 0.2), ("marginal", 0.4, 0.2), ("marginal", 0.3, 0.1)]
    assert {k: m.params[k] for k in WINDOWS} == WINDOWS and torch.equal(m.gen.get_state(), gen_state)
    real = d.x_train.double().numpy()
    sigma = median_bandwidth(real)
    for key, (call, out) in {"mmd_samples_joint_avg": (1, "average"), "mmd_samples_joint_last": (1, "last"),
                             "mmd_samples_marginal_avg": (2, "average"), "mmd_samples_marginal_last": (2, "last"),
                             "mmd_samples_marginal_printed": (3, "average")}.items():
        fake = outs[call][out].double().reshape(200, -1).numpy()
        want = mmd2_rbf(real, fake, sigma, 3)["kernel_inception_distance_mean"]
        assert abs(metrics[key] - want) < 1e-12, key
        # the summed kernel at 0.1, 0.3, 1 x sigma, scored on the same generation's output
        summed = sum(mmd2_rbf(real, fake, sigma * s, 3)["kernel_inception_distance_mean"] for s in MMD_SCALES)
        multiscale_key = key.replace("mmd_samples_", "mmd_samples_multiscale_")
        assert abs(metrics[multiscale_key] - summed) < 1e-9, multiscale_key
    assert protocol["windows"] == {"total_tau_x": 0.4, "average_tau_x": 0.2}
    # a diverged run reports the keys without values
    ctx.status = "diverged"
    assert set(hee_generation(ctx)[0]) == set(metrics) and all(v is None for v in hee_generation(ctx)[0].values())


def test_a_2d_run_with_reference_statistics_gets_the_exact_scores_too(tmp_path: Path, monkeypatch) -> None:
    """config/paper_cpu.yaml's 2D rows have domain-feature references (FID/KID); the 2D
    claims read the exact-samples MMD^2, so both must be there, the exact ones equal to a
    run without a reference. Mutation: the exact part only when there is no reference
    (the old rule) -> the MMD keys are missing."""
    from ebm_bench.evaluation import hee as hee_family

    d = load_dataset("toy2d", {"density": "gmm"}, "data", 0)
    m = HEE({**HEE.tiny, **WINDOWS}, DataInfo((2,), False), "cpu", 0)
    spec = {"seed": 0, "evaluate": {"real_split": "train", "kid_subsets": 3}}
    ctx = EvalContext(spec=spec, label="t", run_dir=tmp_path, data=d, method=m,
                      samples=np.zeros((200, 2), np.float32), status="ok")
    alone, _ = hee_generation(ctx)
    feature_part = ({"fid_domain_joint_avg": 1.0}, {"fingerprint": {"kind": "domain"}, "windows": {}})
    monkeypatch.setattr(hee_family, "_generation_features", lambda c: feature_part)
    ctx.reference = tmp_path / "reference.npz"
    metrics, protocol = hee_generation(ctx)
    assert {k: metrics[k] for k in alone} == alone and metrics["fid_domain_joint_avg"] == 1.0
    assert protocol["fingerprint"]["features"] == {"kind": "domain"} and "exact_2d" in protocol
