"""HEE's fused inner loop (ebm_bench/samplers/hee_fused.py, ``inner_loop: fused``) runs the
same dynamics as the eager reference loop: on the same initial state and seed both consume
the identical random stream (same draws, same order), so after a few hundred Euler steps
the states, their time averages and the learned parameters agree to floating-point
rounding.

Tolerances: the two loops order their arithmetic differently (block matrix products,
tanh(x) = 2 sigmoid(2x) - 1, coefficients folded), each step adds O(eps) relative
rounding, and the dynamics are contracting, so the gap grows at most ~linearly:
``STEPS * eps`` with eps the unit roundoff (float32: 300 * 1.2e-7 = 3.6e-5; observed
<= 6e-6). In float64 the eager loop itself rounds one coefficient to float32
(``first_order_step`` takes sqrt(2 dt / tau_u) of a float32 scalar tensor: relative 6e-8
on the interneurons' noise), which bounds the float64 gap by ``STEPS * 6e-8`` times the
noise scale (observed ~1e-8; without interneurons ~1e-14)."""

import pytest
import torch

from ebm_bench.core.errors import ConfigError
from ebm_bench.methods.base import DataInfo
from ebm_bench.methods.hee import HEE
from ebm_bench.samplers.counting import grad_evals

STEPS = 300
INFO = DataInfo((2,), False)
TOL = {torch.float32: STEPS * torch.finfo(torch.float32).eps, torch.float64: STEPS * 6e-8 * 0.5}


def _model(loop, dtype, **params):
    m = HEE({"layers": [10] * 5, "inner_loop": loop, **params}, INFO, "cpu", 0)
    m.W = [w.to(dtype) for w in m.W]
    m.bias = (0.3 * torch.randn(m.N, generator=torch.Generator().manual_seed(5))).to(dtype)
    m.lam = m.lam.to(dtype)
    m.tau_vec = m.tau_vec.to(dtype)
    return m


def _run(loop, dtype, mode, **params):
    m = _model(loop, dtype, **params)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(64, 2, generator=g, dtype=dtype)
    init = torch.randn(64, m.N, generator=g, dtype=dtype)
    gen = torch.Generator().manual_seed(2)
    before = grad_evals()
    r = m.simulate(x0 if mode == "infer" else None, STEPS, gen, mode=mode,
                   learn_from=0 if mode == "infer" else None, avg_from=STEPS // 3, init=init)
    params_flat = torch.cat([w.flatten() for w in m.W] + [m.bias, m.lam])
    return {"X": r["X"], "mean": r["mean"], "params": params_flat, "evals": grad_evals() - before,
            "gen": gen.get_state(), "V": r["V"]}


CASES = {
    "hee_l": {"nonlinearity": "linear"},
    "tanh": {"nonlinearity": "tanh"},
    "tanh_driven": {"nonlinearity": "tanh", "adaptation": "driven"},
    "tanh_order1": {"nonlinearity": "tanh", "order": 1},
    "tanh_diag_exact": {"nonlinearity": "tanh", "quadratic": "diagonal", "interneuron_integrator": "exact"},
    "tanh_diag_closed_form": {"nonlinearity": "tanh", "quadratic": "diagonal", "interneurons": False,
                              "interneuron_precondition": True},
    "tanh_diag_precond_k3": {"nonlinearity": "tanh", "quadratic": "diagonal", "interneuron_precondition": True,
                             "n_interneurons": 3},
    "linear_sparse": {"nonlinearity": "linear", "connectivity": 0.5},
}


# marginal generation uses neither interneurons nor learning: the three base cases cover it
PAIRS = ([(c, m) for c in CASES for m in ("infer", "joint")]
         + [(c, "marginal") for c in ("hee_l", "tanh", "tanh_driven")])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case,mode", PAIRS)
def test_fused_loop_equals_eager_loop(case, mode, dtype):
    """Same initial state, same seed, 300 Euler steps (inference with learning from step 0,
    joint and marginal generation): fused and eager agree on the final state, its time
    average and the learned W, b, Lambda within STEPS * eps, count the same gradient
    evaluations and leave the generator in the same state (same number of draws)."""
    eager = _run("eager", dtype, mode, **CASES[case])
    fused = _run("fused", dtype, mode, **CASES[case])
    tol = TOL[dtype]
    for key in ("X", "mean", "params"):
        gap = float((eager[key] - fused[key]).abs().max())
        assert gap <= tol, (key, gap, tol)
    assert eager["X"].dtype == fused["X"].dtype == dtype
    assert eager["evals"] == fused["evals"] == 64 * STEPS
    assert torch.equal(eager["gen"], fused["gen"])


def test_fused_training_step_matches_eager_and_writes_parameters_back():
    """train_step (the method's contract) through either loop: same logged scalars and
    parameters, and the fused loop updates the model's own W tensors in place."""
    x = torch.randn(128, 2, generator=torch.Generator().manual_seed(3))
    out = {}
    for loop in ("eager", "fused"):
        m = HEE({"layers": [10] * 5, "nonlinearity": "tanh", "present_time": 2.0, "inner_loop": loop}, INFO, "cpu", 0)
        w0 = m.W[0]
        s = m.train_step(x, 1)
        assert m.W[0] is w0
        out[loop] = (s, torch.cat([w.flatten() for w in m.W] + [m.bias]))
    assert float((out["eager"][1] - out["fused"][1]).abs().max()) <= 200 * torch.finfo(torch.float32).eps
    for k, v in out["eager"][0].items():
        assert abs(v - out["fused"][0][k]) <= 1e-4 * max(1.0, abs(v)), k


def test_inner_loop_is_validated_and_auto_picks_fused_where_supported():
    with pytest.raises(ConfigError, match="inner_loop"):
        HEE({"layers": [3], "inner_loop": "jit"}, INFO, "cpu", 0)
    with pytest.raises(ConfigError, match="inner_loop"):
        HEE({"layers": [3], "inner_loop": "fused", "quadratic": "full"}, INFO, "cpu", 0)
    assert HEE({"layers": [3]}, INFO, "cpu", 0).fused  # auto: never the compiled loop (its own stream)
    assert HEE({"layers": [3], "inner_loop": "fused"}, INFO, "cpu", 0).fused
    assert not HEE({"layers": [3], "quadratic": "full"}, INFO, "cpu", 0).fused
    assert not HEE({"layers": [3], "inner_loop": "eager"}, INFO, "cpu", 0).fused


def test_long_jobs_print_progress_at_least_once_a_minute(tmp_path, monkeypatch, capsys):
    """The training loop prints 'step k/n ... elapsed' whenever the progress interval has
    passed since the last line, whatever log_every (here: 0 s, so every step; log_every
    1000), and HEE's simulation inside a step prints its Euler step (nested)."""
    from ebm_bench.core import progress
    from ebm_bench.training import loop as train_mod

    monkeypatch.setattr(progress.CLOCK, "every_s", 0.0)
    m = HEE({**HEE.tiny, "present_time": 0.05}, INFO, "cpu", 0)
    cfg = {"steps": 3, "batch_size": 16, "checkpoint_every": 1000, "log_every": 1000}
    train_mod.train(m, torch.randn(64, 2), cfg, tmp_path, "cfg", 0, label="toy/hee/seed0")
    err = capsys.readouterr().err
    for k in (1, 2, 3):
        assert f"[toy/hee/seed0] train: step {k}/3" in err
    assert "elapsed" in err
    n = m.sampler_steps_per_iter
    assert f"train: step 0/3 > hee infer Euler step {n}/{n}" in err  # the fused loop's tick
