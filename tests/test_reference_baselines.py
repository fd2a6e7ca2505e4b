"""``bench reference --method grbm | short_run`` (ebm_bench/bench/reference/grbm.py, short_run.py):
the options that make our GRBM update the reference's (github.com/DSL-Lab/GRBM, Liao et al.
2022), the recording of the references' draws, and, with a clone (EBM_BENCH_REFERENCE_DIR_GRBM,
EBM_BENCH_REFERENCE_DIR_SHORT_RUN: github.com/enijkamp/short_run), the update-level match."""

import os
from pathlib import Path

import pytest
import torch

from ebm_bench.methods.base import DataInfo
from ebm_bench.methods.grbm import GRBM
from ebm_bench.bench.reference.common import Tape, recording, replaying
from ebm_bench.samplers.gibbs_langevin import GibbsLangevin, sample_hidden

INFO = DataInfo((3,), False)


def make(**params):
    return GRBM({"n_hidden": 4, "gibbs_steps": 2, "langevin_steps": 3, "sample_gibbs_steps": 2, **params},
                INFO, "cpu", 0)


# --- lr_schedule_every (main.py: CosineAnnealingLR(T_max = epochs) stepped once per epoch) --------
def test_lr_schedule_every_holds_the_rate_for_an_epoch():
    m = make(lr=0.1, lr_decay_steps=10, lr_schedule_every=5)
    assert [m.lr_at(k) for k in range(1, 6)] == [0.1] * 5  # epoch 1: the initial rate
    assert all(m.lr_at(k) == pytest.approx(0.05) for k in range(6, 11))  # epoch 2: t = 5 / 10
    assert m.lr_at(11) == pytest.approx(0.0, abs=1e-12)
    # = PyTorch's CosineAnnealingLR(T_max = 2 epochs) stepped after every 5 updates
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 2)
    for k in range(1, 11):
        assert m.lr_at(k) == pytest.approx(opt.param_groups[0]["lr"], abs=1e-15)
        if k % 5 == 0:
            opt.step()
            sched.step()


def test_train_step_runs_at_the_scheduled_rate():
    m = make(lr=0.1, lr_decay_steps=4, lr_schedule_every=2)
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    for k in (1, 2, 3):
        m.train_step(x, k)
        assert m.opt.param_groups[0]["lr"] == pytest.approx(0.1 if k < 3 else 0.05)
    from ebm_bench.core.errors import ConfigError
    from ebm_bench.core.validation import check_value

    with pytest.raises(ConfigError, match="lr_schedule_every"):
        check_value(GRBM, "lr_schedule_every", 0, "variants.grbm_reference.lr_schedule_every")


# --- pixel_mean / pixel_std (main.py: Normalize(img_mean, img_std) of [0, 1] pixels) ----------------
def test_pixel_standardise_feeds_the_reference_pixels_and_maps_samples_back():
    img = DataInfo((2, 4, 4), True, 10)
    p = {"n_hidden": 4, "gibbs_steps": 2, "langevin_steps": 2, "sample_gibbs_steps": 2, "sample_batch": 3}
    m = GRBM({**p, "pixel_mean": [0.1, 0.3], "pixel_std": [0.5, 2.0]}, img, "cpu", 0)
    x = torch.rand(5, 2, 4, 4) * 2 - 1
    want = torch.stack([((x[:, c] + 1) / 2 - mu) / sd for c, (mu, sd) in enumerate([(0.1, 0.5), (0.3, 2.0)])], 1)
    seen = {}
    loss0 = m.contrastive_loss
    m.contrastive_loss = lambda xp, *a: seen.setdefault("x", xp) is None or loss0(xp, *a)
    m.train_step(x, 1)
    assert torch.allclose(seen["x"], want, atol=1e-6)  # the update sees the reference's pixels
    assert torch.allclose(m.from_visible(m.to_visible(x)), x, atol=1e-6)
    assert torch.allclose(m.energy(x), m.model.free_energy(want), atol=1e-5)
    torch.manual_seed(0)
    s = m.sample(3)
    plain = GRBM(p, img, "cpu", 0)
    plain.model.load_state_dict(m.model.state_dict())
    plain.gen.set_state(m.gen.get_state())
    m2 = GRBM({**p, "pixel_mean": [0.1, 0.3], "pixel_std": [0.5, 2.0]}, img, "cpu", 0)
    m2.model.load_state_dict(m.model.state_dict())
    m2.gen.set_state(plain.gen.get_state())
    assert torch.allclose(m2.sample(3), m2.from_visible(plain.sample(3)), atol=1e-5) and s.shape == (3, 2, 4, 4)


def test_pixel_standardise_checks():
    from ebm_bench.core.errors import ConfigError

    with pytest.raises(ConfigError, match="pixel_mean"):
        GRBM.check_params({**GRBM.defaults, "pixel_mean": [0.1], "pixel_std": None})
    with pytest.raises(ConfigError, match="pixel_mean"):
        GRBM.check_params({**GRBM.defaults, "pixel_mean": [0.1], "pixel_std": [0.3, 0.3]})
    with pytest.raises(ValueError, match="per channel"):
        GRBM({"n_hidden": 2, "pixel_mean": [0.1, 0.2, 0.3], "pixel_std": [1, 1, 1]}, DataInfo((2, 4, 4), True), "cpu", 0)


# --- the chains start in the run's dtype -----------------------------------------------------
def test_chains_start_in_the_default_dtype(float64):
    s = GibbsLangevin(gibbs_steps=1, langevin_steps=1, step_size=0.1)
    m = make()
    x, z = s.init_train(m.model, 4, (3,), torch.Generator().manual_seed(0), "cpu")
    assert x.dtype == torch.float64 and z.dtype == torch.float64


# --- recording: the reference's Bernoulli and randn_like draws fed to ours -------------------
def test_recorded_bernoulli_outcomes_are_fed_exactly(float64):
    # probabilities at the edges (0 and 1) and a few that a round-off could flip
    p = torch.tensor([[0.0, 1.0, 0.5, 1e-300, 1 - 1e-16, 0.3]] * 200)
    tape = Tape()
    torch.manual_seed(0)
    with recording(tape):
        h = torch.bernoulli(p)
    assert 0 < float(h[:, 2].mean()) < 1  # a real draw
    model = type("M", (), {"hidden_logits": lambda self, x: torch.logit(p)})()
    with replaying(tape):
        ours = sample_hidden(model, torch.zeros(200, 6), torch.Generator())
    assert torch.equal(ours, h) and tape.left()["rand"] == 0


def test_recorded_randn_like_is_fed_as_normal_draws(float64):
    tape = Tape()
    v = torch.zeros(5, 4)
    with recording(tape):
        a, b = torch.randn_like(v), torch.randn_like(v) * 3.0
    with replaying(tape):
        assert torch.equal(torch.randn(5, 4), a) and torch.equal(torch.randn((5, 4)) * 3.0, b)


# --- the side-by-side check -------------------------------------------------------------------
def test_bench_reference_grbm_skips_without_a_checkout(monkeypatch, capsys):
    from ebm_bench.bench import reference as R

    monkeypatch.delenv("EBM_BENCH_REFERENCE_DIR_GRBM", raising=False)
    assert R.run("grbm", None, 3, None) is None
    assert "skipped" in capsys.readouterr().out and "DSL-Lab/GRBM" in R.COMPARISONS["grbm"].repository


@pytest.mark.skipif(not os.environ.get("EBM_BENCH_REFERENCE_DIR_GRBM"),
                    reason="EBM_BENCH_REFERENCE_DIR_GRBM unset: no clone of github.com/DSL-Lab/GRBM to compare with")
def test_grbm_matches_the_reference(float64):
    from ebm_bench.bench.reference import TOL
    from ebm_bench.bench.reference.grbm import compare_grbm

    # the reference's structure (every Gibbs state averaged, 10 cosine Langevin steps each) at
    # reduced sizes; bench reference --method grbm runs 4096 hidden units and 100 Gibbs steps
    r = compare_grbm(Path(os.environ["EBM_BENCH_REFERENCE_DIR_GRBM"]), updates=3, batch_size=16, n_hidden=32,
                     gibbs_steps=4)
    row = r["rows"]["reference options"]
    assert row["draws_left_unused"] == {"rand": 0, "normal": 0, "subset": 0}
    for u in row["updates"]:
        assert u["max_rel_diff_params"] <= TOL and u["max_rel_diff_walkers"] <= TOL
    assert min(r["reference_grad_norms"]) > r["reference"]["clip_norm"]  # the clip acts in every update
    quirk = next(v for k, v in r["rows"].items() if k.startswith("step_size="))  # paper.yaml's grbm row
    assert quirk["updates"][0]["max_rel_diff_walkers"] > 1e-3


# --- short_run (github.com/enijkamp/short_run, train_cifar10_minimal.py) ------------------------
def test_recorded_uniform_and_random_draws(float64):
    tape = Tape()
    with recording(tape):
        x = torch.Tensor(4, 3).uniform_(-1, 1)
        idx = torch.LongTensor(5).random_(0, 10)
    assert torch.equal(tape.q["index"][0], idx)
    with replaying(tape):
        u = torch.rand((4, 3))
    assert torch.allclose(-1 + 2 * u, x, rtol=0, atol=1e-15)


def test_signed_copy_makes_the_scripts_f_the_negative_energy(float64):
    from ebm_bench.methods.short_run import ShortRun
    from ebm_bench.bench.reference.short_run import signed

    m = ShortRun({"net": "convnet", "net_params": {"nf": 2}}, DataInfo((3, 32, 32), True, 10), "cpu", 0)
    twin = ShortRun({"net": "convnet", "net_params": {"nf": 2}}, DataInfo((3, 32, 32), True, 10), "cpu", 1)
    with torch.no_grad():
        for p, q in zip(twin.net.parameters(), signed(list(m.net.parameters())), strict=True):
            p.copy_(q)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(twin.net(x), -m.net(x))


@pytest.mark.skipif(not os.environ.get("EBM_BENCH_REFERENCE_DIR_SHORT_RUN"),
                    reason="EBM_BENCH_REFERENCE_DIR_SHORT_RUN unset: no clone of github.com/enijkamp/short_run")
def test_short_run_matches_the_reference(float64):
    from ebm_bench.bench.reference import TOL
    from ebm_bench.bench.reference.short_run import compare_short_run

    r = compare_short_run(Path(os.environ["EBM_BENCH_REFERENCE_DIR_SHORT_RUN"]), updates=3, batch_size=2, n_steps=5,
                          n_data=16)
    row = r["rows"]["reference options"]
    assert row["draws_left_unused"] == {"rand": 0, "normal": 0, "subset": 0}
    for u in row["updates"]:
        assert u["max_rel_diff_params"] <= TOL and u["max_rel_diff_walkers"] <= TOL
