"""Speed work that must not change results: the analytic GMM student, ULA's move without
temporaries, the precision policy (ebm_bench/core/precision.py) and sampler_compile's default."""

import pytest
import torch

from ebm_bench.core import precision
from ebm_bench.core.errors import ConfigError
from ebm_bench.methods.base import DataInfo
from ebm_bench.core.registry import METHODS
from ebm_bench.samplers import ULA
from ebm_bench.samplers import compiled


def test_gmm_energy_matches_the_textbook_formula_and_its_gradients():
    from ebm_bench.nets.gmm_energy import GMMEnergy, _GMMEnergyFn

    torch.manual_seed(0)
    a, b = (torch.randn(7, dtype=torch.float64, requires_grad=True) for _ in range(2))
    z = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    x = (3 * torch.randn(11, 7, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(_GMMEnergyFn.apply, (x, a, b, z))
    net = GMMEnergy((7,))
    xs = 4 * torch.randn(50, 7)
    la = -0.5 * ((xs - net.a) ** 2).sum(-1)
    lb = -0.5 * ((xs - net.b) ** 2).sum(-1) - net.z
    ref = -torch.logsumexp(torch.stack([la, lb], -1), -1)
    assert torch.allclose(net(xs), ref, atol=1e-4, rtol=1e-6)


def test_ula_move_is_bit_identical_to_the_formula():
    g = torch.Generator().manual_seed(3)
    x, d = torch.randn(64, 5, generator=g), torch.randn(64, 5, generator=g)
    ula = ULA(step_size=0.1, temperature=0.7)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    got = ula.move(x, d, g1)
    xi = torch.randn(x.shape, generator=g2)
    assert torch.equal(got, x - 0.1 * d + ula.noise_std * xi)


def test_default_path_is_unchanged():
    info = DataInfo((2,), False)
    for name in ("short_run", "pcd", "cd", "jarzynski"):
        cls = METHODS.get(name)
        m = cls(cls.tiny_params(info), info, "cpu", 0)
        assert type(m.sampler) is ULA  # not CompiledULA
        assert "forward" not in vars(m.net)  # the network's own forward, not a precision wrapper
    cls = METHODS.get("short_run")
    m1 = cls(cls.tiny_params(info), info, "cpu", 0)
    m2 = cls({**cls.tiny_params(info), "sampler_compile": "none", "train_precision": "fp32"}, info, "cpu", 0)
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    for step in (1, 2):
        assert m1.train_step(x, step) == m2.train_step(x, step)


def test_compiled_sampler_follows_the_eager_chain(monkeypatch):
    """torch.compile replaced by the identity (compiling takes minutes on CPU): the compiled
    step's arithmetic and random stream match ULA's."""
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: fn)
    info = DataInfo((2,), False)
    cls = METHODS.get("short_run")
    p = cls.tiny_params(info)
    eager = cls(p, info, "cpu", 0)
    comp = cls({**p, "sampler_compile": "torch_compile"}, info, "cpu", 0)
    comp.net.load_state_dict(eager.net.state_dict())
    assert isinstance(comp.sampler, compiled.CompiledULA)
    x0 = torch.randn(16, 2)
    a = eager.sampler.run(eager.energy, x0, 5, torch.Generator().manual_seed(1))
    b = comp.sampler.run(comp.energy, x0, 5, torch.Generator().manual_seed(1))
    assert torch.allclose(a, b, atol=1e-6)


def test_compile_modes_are_checked():
    with pytest.raises(ConfigError, match="cuda_graph"):
        compiled.check_compile_mode("cuda_graph", torch.device("cpu"))
    with pytest.raises(ConfigError, match="sampler_compile"):
        compiled.check_compile_mode("jit", torch.device("cpu"))


def test_tf32_context_sets_and_restores_flags():
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    precision.set_default_policy()
    with precision.training_step("tf32"):
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        with precision.exact():
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    with precision.training_step("fp32"):
        assert not torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    with pytest.raises(ConfigError, match="train_precision"):
        precision.check_mode("fp16")


BF16_UNIT = 2.0**-8  # bfloat16 keeps 8 significant bits: relative rounding up to 2^-8


def test_bf16_changes_the_network_forward_but_not_guarded_code():
    """bf16 autocast around the network's forward, float32 energies out; from the same
    initialisation and random stream the energies agree with float32 to 4 bf16 units of
    the largest energy (this convnet rounds its input and three hidden activations), one
    update's loss and mean energies to 8 (differences and means of such energies), and
    the two paths are not bit-equal (the reduced path is taken). Guarded code stays float32.

    Mutations seen to fail it (ebm_bench/core/precision.py, ``network_forward``): the
    forward's output rounded to float8 (e4m3, 3 mantissa bits) before the float32 cast;
    autocast disabled (bit-equal energies); the energies returned detached (no update)."""
    info = DataInfo((1, 8, 8), True, 10)
    cls = METHODS.get("short_run")
    p = cls.tiny_params(info)
    full = cls(p, info, "cpu", 0)
    half = cls({**p, "train_precision": "bf16"}, info, "cpu", 0)
    assert set(half.net.state_dict()) == set(full.net.state_dict())
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        e_full, e_half = full.energy(x), half.energy(x)
    scale = float(e_full.abs().max())
    assert e_half.dtype == torch.float32 and not torch.equal(e_full, e_half)
    assert float((e_full - e_half).abs().max()) <= 4 * BF16_UNIT * scale
    w = torch.randn(64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (w @ w).dtype == torch.bfloat16
        with precision.exact():  # guarded computations (metrics, weights) stay float32
            assert torch.equal(w @ w, torch.mm(w, w)) and (w @ w).dtype == torch.float32
    out_full, out_half = full.train_step(x[:8], 1), half.train_step(x[:8], 1)
    for key in ("loss", "energy_data", "energy_model"):
        assert abs(out_half[key] - out_full[key]) <= 8 * BF16_UNIT * scale, (key, out_half[key], out_full[key])
    assert any(not torch.equal(a, b) for a, b in zip(full.net.parameters(), half.net.parameters()))


def test_weighted_jarzynski_refuses_reduced_precision():
    info = DataInfo((2,), False)
    cls = METHODS.get("jarzynski")
    with pytest.raises(ConfigError, match="fp32"):
        cls({**cls.tiny_params(info), "train_precision": "bf16"}, info, "cpu", 0)
    cls({**cls.tiny_params(info), "train_precision": "bf16", "weighted": False}, info, "cpu", 0)


def test_energy_reg_with_fewer_chains_than_the_batch():
    """Paper 003's PCD with mini-batches (N' = 256 chains, batch 512, alpha = 0.01) crashed
    before the GPU check ran it: the penalty added (512,) and (256,) energies. With N'
    chains the penalty must be the one of the paired batch in which every chain appears
    equally often: 4 chains against a batch of 8 give the loss that the same 4 chains, each
    twice (8 chains), give; and the penalty is there (alpha > 0 raises the loss).

    Mutations seen to fail it (ebm_bench/methods/langevin.py, ``train_step``): the chains'
    squared energies dropped from the unpaired penalty; their sum instead of their mean;
    the unpaired penalty skipped."""
    info = DataInfo((2,), False)
    cls = METHODS.get("pcd")
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(1))

    def update(n_chains: int, energy_reg: float, chains=None):
        m = cls({**cls.tiny_params(info), "n_chains": n_chains, "energy_reg": energy_reg}, info, "cpu", 0)
        if chains is not None:
            m.negatives = lambda pos: chains
        seen = {}
        run = m.negatives
        m.negatives = lambda pos: seen.setdefault("chains", run(pos))
        return m.train_step(x, 1)["loss"], seen["chains"]

    loss4, chains = update(4, 0.01)
    assert chains.shape == (4, 2)
    loss8, _ = update(8, 0.01, chains.repeat(2, 1))
    assert loss8 == pytest.approx(loss4, rel=1e-6, abs=1e-7)
    loss0, _ = update(4, 0.0, chains)
    assert loss4 > loss0


def test_gmm_reference_trimming_checks_every_substitution(tmp_path):
    from ebm_bench.bench import gmm_reference as gr

    with pytest.raises(ValueError, match="reference script changed"):
        gr.trimmed_reference("print('not the script')\n", 10)
    assert gr.bench_gmm_reference(reference_dir=tmp_path) is None  # absent: a clear skip line


def test_every_run_starts_from_the_full_float32_policy():
    """PyTorch leaves TF32 on for cuDNN convolutions; a run's stages build their method
    through ``training.runs.build_method``, which switches it off (the documented default).
    Mutation: the ``set_default_policy()`` call removed -> fails."""
    from ebm_bench.training.runs import build_method

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        spec = {"method": "gaussian", "variant": "gaussian", "method_params": {}, "device": "cpu", "seed": 0}
        build_method(spec, DataInfo((2,), False))
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
