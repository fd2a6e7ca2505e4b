"""HEE's compiled inner loop (ebm_bench/samplers/hee_compiled.py + hee_kernel.c,
``inner_loop: compiled``).

1. Same dynamics: fed the eager loop's own Gaussian draws (``noise``: the draws the
   eager loop takes from the same generator, in its order), the C loop reproduces the
   eager trajectory, its time average and the learned W, b, Lambda after STEPS Euler
   steps, to float32 rounding. Tolerance as tests/test_hee_fused.py (the same argument:
   O(eps) relative rounding per step, contracting dynamics, so ~STEPS * eps; here x4 for
   the kernel's vectorised tanh (libmvec, <= 4 ulp) and its reassociated batch sums).
2. Same law of the noise: the kernel's generator is xoshiro128++ seeded by SplitMix64
   (checked against scalar implementations written here from the papers), its Gaussians
   are Box-Muller of those outputs to float32 rounding, and they are N(0, 1) (moments,
   tails, Kolmogorov-Smirnov) without correlation
   between successive numbers, the lanes of one call, or two keys.
3. The method contract: auto picks compiled where supported and falls back to the fused
   loop with one message when the kernel cannot be built; runs are deterministic per seed.
"""

import numpy as np
import pytest
import torch
from scipy import stats

from ebm_bench.core.errors import ConfigError
from ebm_bench.methods import hee as hee_mod
from ebm_bench.methods.base import DataInfo
from ebm_bench.methods.hee import HEE
from ebm_bench.samplers import hee_compiled
from ebm_bench.samplers.counting import grad_evals

pytestmark = pytest.mark.skipif(not hee_compiled.available()[0],
                                reason=f"C kernel unavailable: {hee_compiled.available()[1]}")

STEPS = 300
B = 64
INFO = DataInfo((2,), False)
TOL = 4 * STEPS * torch.finfo(torch.float32).eps


def _model(loop, **params):
    m = HEE({"layers": [10] * 5, "inner_loop": loop, **params}, INFO, "cpu", 0)
    m.bias = 0.3 * torch.randn(m.N, generator=torch.Generator().manual_seed(5))
    return m


def _with_eager_noise(monkeypatch):
    """Make HEE.simulate's compiled branch consume the eager loop's draws from ``gen``."""
    real = hee_compiled.run_compiled

    def run(model, X, V, U, n_steps, gen, **kw):
        p = model.params
        driven = int(p["order"]) == 2 and p["adaptation"] == "driven"
        bp = -(-X.shape[0] // hee_compiled.CHUNK) * hee_compiled.CHUNK
        slots = []
        noise = torch.zeros(n_steps, 1 + int(driven) + int(U is not None), X.shape[1], bp)
        for s in range(n_steps):  # the eager loop's order: x, v (driven), interneurons
            slots = [torch.randn(X.shape, generator=gen)]
            if driven:
                slots.append(torch.randn(X.shape, generator=gen))
            if U is not None:
                slots.append(torch.randn(U.shape, generator=gen)[0])
            for k, n in enumerate(slots):
                noise[s, k, :, :X.shape[0]] = n.t()
        return real(model, X, V, U, n_steps, gen, noise=noise, **kw)

    monkeypatch.setattr(hee_mod, "run_compiled", run)


def _run(loop, mode, **params):
    m = _model(loop, **params)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(B, 2, generator=g)
    init = torch.randn(B, m.N, generator=g)
    gen = torch.Generator().manual_seed(2)
    before = grad_evals()
    r = m.simulate(x0 if mode == "infer" else None, STEPS, gen, mode=mode,
                   learn_from=0 if mode == "infer" else None, avg_from=STEPS // 3, init=init)
    params_flat = torch.cat([w.flatten() for w in m.W] + [m.bias, m.lam])
    return {"X": r["X"], "mean": r["mean"], "params": params_flat, "evals": grad_evals() - before,
            "gen": gen.get_state()}


CASES = {
    "hee_l": {"nonlinearity": "linear"},
    "tanh": {"nonlinearity": "tanh"},
    "tanh_driven": {"nonlinearity": "tanh", "adaptation": "driven"},
    "tanh_order1": {"nonlinearity": "tanh", "order": 1},
    "tanh_diag_exact": {"nonlinearity": "tanh", "quadratic": "diagonal", "interneuron_integrator": "exact"},
    "tanh_diag_closed_form": {"nonlinearity": "tanh", "quadratic": "diagonal", "interneurons": False,
                              "interneuron_precondition": True},
    "linear_diag_precond": {"nonlinearity": "linear", "quadratic": "diagonal", "interneuron_precondition": True},
    "linear_sparse": {"nonlinearity": "linear", "connectivity": 0.5},
}
PAIRS = ([(c, m) for c in CASES for m in ("infer", "joint")]
         + [(c, "marginal") for c in ("hee_l", "tanh", "tanh_driven")])


@pytest.mark.parametrize("case,mode", PAIRS)
def test_compiled_loop_equals_eager_loop_on_the_same_noise(case, mode, monkeypatch):
    """Same initial state, same draws, 300 Euler steps (inference with learning from step
    0, joint and marginal generation): the C loop and the eager loop agree on the final
    state, its time average and the learned W, b, Lambda within 4 STEPS eps, count the
    same gradient evaluations and take the same number of draws."""
    eager = _run("eager", mode, **CASES[case])
    _with_eager_noise(monkeypatch)
    comp = _run("compiled", mode, **CASES[case])
    for key in ("X", "mean", "params"):
        gap = float((eager[key] - comp[key]).abs().max())
        assert gap <= TOL, (key, gap, TOL)
    assert eager["evals"] == comp["evals"] == B * STEPS
    assert torch.equal(eager["gen"], comp["gen"])


def test_padded_chains_do_not_enter_the_learning_signal(monkeypatch):
    """B = 50 (not a multiple of the kernel's 64-chain chunk): the zero-padded chains must
    not contribute to the batch means of the learning rule."""
    global B
    old, B = B, 50
    try:
        eager = _run("eager", "infer", nonlinearity="tanh", quadratic="diagonal", interneuron_integrator="exact")
        _with_eager_noise(monkeypatch)
        comp = _run("compiled", "infer", nonlinearity="tanh", quadratic="diagonal", interneuron_integrator="exact")
    finally:
        B = old
    assert float((eager["params"] - comp["params"]).abs().max()) <= TOL


M32, M64 = 2 ** 32 - 1, 2 ** 64 - 1


def _splitmix64(x):
    """Steele, Lea & Flood 2014, written from the paper: (new x, output)."""
    x = (x + 0x9E3779B97F4A7C15) & M64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return x, z ^ (z >> 31)


def _xoshiro128pp(s, n):
    """Blackman & Vigna's xoshiro128++ on one 4-word state, written from the paper."""
    rotl = lambda x, k: ((x << k) | (x >> (32 - k))) & M32  # noqa: E731
    out = []
    s = list(s)
    for _ in range(n):
        out.append((rotl((s[0] + s[3]) & M32, 7) + s[0]) & M32)
        t = (s[1] << 9) & M32
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t  # noqa: E702
        s[3] = rotl(s[3], 11)
    return out


def test_generator_is_xoshiro128pp_seeded_by_splitmix64():
    """The kernel's 16 lanes of its first state vector reproduce a scalar xoshiro128++ whose
    state is two SplitMix64 outputs of key ^ (lane << 48), output for output."""
    key, n = 0x0123_4567_89AB_CDEF, 50
    raw = hee_compiled.raw_outputs(key, n)
    for lane in (0, 5, 15):
        x = key ^ (lane << 48)
        x, a = _splitmix64(x)
        x, b = _splitmix64(x)
        want = _xoshiro128pp([a & M32, a >> 32, b & M32, b >> 32], n)
        assert [raw[i][lane] for i in range(n)] == want, lane


def test_kernel_normals_are_box_muller_of_its_uniforms_to_float32_rounding():
    """Each Gaussian is Box-Muller of the generator's outputs, computed in float64 from the
    scalar xoshiro128++ above: z = r cos / sin(theta), r = sqrt(-2 ln u) from 24 bits of
    state vector 2h (u = (k + 1/2) 2^-24 as the kernel rounds it in float32), theta = the
    quadrant (top 2 bits of vector 2h + 1) plus phi from its next 24 bits; out[64 c + 16 j
    + q] = lane q of call c, j = cos / sin of pair 0, cos / sin of pair 1. Within 4 float32
    eps of r: the vectorised logf (libmvec, a few ulp) halved by the sqrt, the Taylor cos / sin
    (< 3e-8) and a few roundings. Guards the transform under the build's flags (vector
    width, fast-math), which the law tests see only statistically. Mutations caught: the
    last Taylor term of cos dropped, the quadrant sign (k & 2) dropped, the radius taken
    from the angle's state vector."""
    key, calls = 0x0BAD_5EED_1234_5678, 300
    w = np.empty((4, calls, 16), dtype=np.uint64)
    for k in range(4):
        for lane in range(16):
            x = key ^ ((k * 16 + lane) << 48)
            x, a = _splitmix64(x)
            x, b = _splitmix64(x)
            w[k, :, lane] = _xoshiro128pp([a & M32, a >> 32, b & M32, b >> 32], calls)
    f32 = np.float32
    u = ((w[0::2] >> 8).astype(f32) + f32(0.5)) * f32(2.0 ** -24)
    r = np.sqrt(-2 * np.log(u.astype(np.float64)))
    phi = (((w[1::2] >> 6) & 0xFFFFFF).astype(f32) - f32(2 ** 23)) * f32(2.0 ** -23 * np.pi / 4)
    theta = (w[1::2] >> 30).astype(np.float64) * np.pi / 2 + phi.astype(np.float64)
    want = np.stack([r[0] * np.cos(theta[0]), r[0] * np.sin(theta[0]),
                     r[1] * np.cos(theta[1]), r[1] * np.sin(theta[1])], 1).reshape(-1)
    radius = np.stack([r[0], r[0], r[1], r[1]], 1).reshape(-1)
    got = hee_compiled.normals(key, calls * 64).double().numpy()
    eps = float(np.finfo(np.float32).eps)
    assert np.all(np.abs(got - want) <= 4 * eps * radius), float(np.max(np.abs(got - want) / radius) / eps)


def test_kernel_normals_are_standard_normal_and_uncorrelated():
    """The first 2^17 Gaussians the loop would consume: mean 0, variance 1, no skew or
    excess kurtosis beyond sampling error, KS p > 1e-3, tails as N(0, 1) (P(|z| > 3));
    no correlation between successive numbers, numbers 16 / 64 apart (the lanes of one
    call, successive calls) or two keys; deterministic in the key."""
    key = 0x1234_5678_9ABC_DEF0
    a = hee_compiled.normals(key, 2 ** 17)
    n = a.numel()
    z = a.double().numpy()
    assert abs(z.mean()) < 5 / n ** 0.5
    assert abs(z.var() - 1) < 5 * (2 / n) ** 0.5
    assert abs(stats.skew(z)) < 5 * (6 / n) ** 0.5
    assert abs(stats.kurtosis(z)) < 5 * (24 / n) ** 0.5
    assert stats.kstest(z, "norm").pvalue > 1e-3
    tail = 2 * stats.norm.sf(3)
    assert abs((np.abs(z) > 3).mean() - tail) < 5 * (tail / n) ** 0.5
    b = hee_compiled.normals(key + 1, 2 ** 17).double().numpy()
    for name, (u, v) in {"lag 1": (z[:-1], z[1:]), "lag 16": (z[:-16], z[16:]), "lag 32": (z[:-32], z[32:]),
                         "lag 64": (z[:-64], z[64:]), "other key": (z, b)}.items():
        r = float(np.corrcoef(u, v)[0, 1])
        assert abs(r) < 5 / n ** 0.5, (name, r)
    assert torch.equal(a, hee_compiled.normals(key, 2 ** 17))


def test_auto_is_fused_and_compiled_is_asked_for_by_name(monkeypatch):
    """auto never depends on the compiler (fused: the eager loop's random stream);
    inner_loop: compiled runs the kernel, and is a ConfigError where it cannot run
    (unsupported configuration, or no compiler)."""
    assert HEE({"layers": [3]}, INFO, "cpu", 0).loop == "fused"
    assert HEE({"layers": [3], "quadratic": "full"}, INFO, "cpu", 0).loop == "eager"
    assert HEE({"layers": [3], "inner_loop": "compiled"}, INFO, "cpu", 0).loop == "compiled"
    with pytest.raises(ConfigError, match="inner_loop"):
        HEE({"layers": [3], "inner_loop": "compiled", "quadratic": "full"}, INFO, "cpu", 0)
    hee_compiled.forget()
    monkeypatch.setenv("CC", "/nonexistent/cc")
    monkeypatch.setenv("EBM_BENCH_KERNEL_CACHE", "/nonexistent_cache_dir_for_test")
    try:
        assert HEE({"layers": [3]}, INFO, "cpu", 0).loop == "fused"
        with pytest.raises(ConfigError, match="inner_loop = 'compiled'"):
            HEE({"layers": [3], "inner_loop": "compiled"}, INFO, "cpu", 0)
    finally:
        hee_compiled.forget()


def test_compiled_training_is_deterministic_per_seed_and_writes_parameters_back():
    """train_step twice from the same seed: identical parameters; another seed differs;
    the model's own W tensors are updated in place; sampling works after training."""
    x = torch.randn(96, 2, generator=torch.Generator().manual_seed(3))
    out = []
    for seed in (0, 0, 1):
        m = HEE({"layers": [10] * 5, "present_time": 1.0, "inner_loop": "compiled", "joint_time": 1.0,
                 "joint_average": 0.5}, INFO, "cpu", seed)
        w0 = m.W[0]
        s = m.train_step(x, 1)
        assert m.W[0] is w0 and all(np.isfinite(v) for v in s.values())
        assert m.sample(10).shape == (10, 2)
        out.append(torch.cat([w.flatten() for w in m.W] + [m.bias]))
    assert torch.equal(out[0], out[1])
    assert not torch.equal(out[0], out[2])
