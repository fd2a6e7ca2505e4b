"""The options that make our update the authors' (docs/reference-equivalence.md), each
checked without the reference checkout; the side-by-side check with it runs when
EBM_BENCH_REFERENCE_DIR points at a clone of submissionx12/EBMs_Jarzynski."""

from __future__ import annotations

import os

import pytest
import torch

from ebm_bench.core.errors import ConfigError
from ebm_bench.methods.base import DataInfo
from ebm_bench.methods.jarzynski import Jarzynski
from ebm_bench.methods.pcd import PCD
from ebm_bench.samplers.ula import ULA

torch.set_num_threads(1)
IMG = DataInfo((1, 8, 8), True, None)
BASE = {"net": "cnn_silu", "net_params": {"hidden_features": 4}, "n_walkers": 12, "n_moved": 4, "n_steps": 3,
        "step_size": 1e-2, "temperature": 1e-2, "walker_init": "noise", "burn_in_steps": 2, "data_noise": 0.0,
        "resample_threshold": 0.0, "lr": 1e-3, "energy_reg": 0.01}


def _method(**kw) -> Jarzynski:
    return Jarzynski({**BASE, **kw}, IMG, "cpu", 0)


def _data(seed=1):
    return torch.rand((6, 1, 8, 8), generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _frozen(m):
    """The parameters never move (opt.step a no-op): both weight schemes then weight the same
    moves under one theta, and Crooks' identity makes their log weights equal."""
    m.opt.step = lambda *a, **k: None
    return m


# --- clamp_rule ---------------------------------------------------------------------------
def test_clamp_reject_keeps_old_coordinates():
    x = torch.tensor([[0.75, -0.5, 0.0]])
    g = torch.tensor([[-200.0, 200.0, 0.0]])  # drift pushes coordinate 0 above 1, coordinate 1 below -1
    gen = torch.Generator().manual_seed(0)
    s = ULA(step_size=0.01, temperature=1e-12, clamp=(-1.0, 1.0), clamp_rule="reject")
    y = s.move(x, g, gen)
    assert y[0, 0] == 0.75 and y[0, 1] == -0.5  # rejected: old values kept
    p = ULA(step_size=0.01, temperature=1e-12, clamp=(-1.0, 1.0))
    z = p.move(x, g, torch.Generator().manual_seed(0))
    assert z[0, 0] == 1.0 and z[0, 1] == -1.0  # projected (default)


def test_clamp_rule_reaches_the_sampler():
    assert PCD({"clamp": True, "clamp_rule": "reject", "net": "cnn_silu", "net_params": {"hidden_features": 4}},
               IMG, "cpu", 0).sampler.clamp_rule == "reject"


# --- param_grad_clip ------------------------------------------------------------------------
def test_param_grad_clip_bounds_the_global_norm():
    m = _method(param_grad_clip=1e-6)
    for p in m.net.parameters():
        p.grad = torch.ones_like(p)
    m.clip_param_grads()
    norm = torch.sqrt(sum((p.grad ** 2).sum() for p in m.net.parameters()))
    assert abs(float(norm) - 1e-6) < 1e-9
    m2 = _method()  # default: no clipping
    for p in m2.net.parameters():
        p.grad = torch.ones_like(p)
    m2.clip_param_grads()
    assert all(bool((p.grad == 1).all()) for p in m2.net.parameters())


def test_param_grad_clip_acts_in_train_step():
    a, b = _method(), _method(param_grad_clip=1e-9)
    x = _data()
    a.train_step(x, 1)
    b.train_step(x, 1)
    # Adam's first step is ~lr * sign(g) whatever the scale, so compare the clipped gradients
    assert float(torch.sqrt(sum((p.grad ** 2).sum() for p in b.net.parameters()))) <= 1e-9 * (1 + 1e-6)
    assert float(torch.sqrt(sum((p.grad ** 2).sum() for p in a.net.parameters()))) > 1e-6


# --- lr_schedule_every ----------------------------------------------------------------------
def test_lr_schedule_every_holds_the_rate_for_an_epoch():
    m = _method(lr_schedule="linear", lr_decay_steps=100, lr_schedule_every=10)
    rates = []
    for k in (1, 10, 11, 20, 21):
        m.schedule_lr(k)
        rates.append(m.opt.param_groups[0]["lr"])
    assert rates[0] == rates[1] == 1e-3 and rates[2] == rates[3] == pytest.approx(0.9e-3) and rates[4] == pytest.approx(0.8e-3)
    m1 = _method(lr_schedule="linear", lr_decay_steps=100)
    m1.schedule_lr(10)
    assert m1.opt.param_groups[0]["lr"] == pytest.approx(0.91e-3)


# --- n_minibatches, grad_walkers: subset -------------------------------------------------------
@pytest.mark.parametrize("scheme", ["eq5", "reference"])
def test_n_minibatches_moves_more_walkers_and_draws_more_noise(scheme):
    one = _method(weights_scheme=scheme, grad_walkers="subset")
    six = _method(weights_scheme=scheme, grad_walkers="subset", n_minibatches=6)
    x = _data()
    one.train_step(x, 1)
    six.train_step(x, 1)
    # with 6 mini-batches of 4 out of 12 walkers (almost surely) more walkers moved than 4
    start = _method(weights_scheme=scheme, grad_walkers="subset")
    start.init_walkers(x)
    changed_one = int((one.walkers != start.walkers).flatten(1).any(1).sum())
    changed_six = int((six.walkers != start.walkers).flatten(1).any(1).sum())
    assert changed_one == 4 and changed_six > 4


def test_grad_walkers_subset_is_not_the_moved_set():
    """subset draws its own walkers for the gradient (first), then the moved ones."""
    calls = []
    m = _method(grad_walkers="subset")
    orig = m.draw_subset
    m.draw_subset = lambda: calls.append(1) or orig()
    m.train_step(_data(), 1)
    assert len(calls) == 2
    calls.clear()
    m2 = _method(grad_walkers="moved")
    orig2 = m2.draw_subset
    m2.draw_subset = lambda: calls.append(1) or orig2()
    m2.train_step(_data(), 1)
    assert len(calls) == 1


def test_option_checks():
    with pytest.raises(ConfigError):
        _method(n_minibatches=2, n_moved=0)
    with pytest.raises(ConfigError):
        _method(weights_scheme="paper")
    with pytest.raises(ConfigError):
        _method(burn_in_energy="middle")
    with pytest.raises(ConfigError):
        _method(n_minibatches=2, grad_walkers="moved")


# --- weights_scheme -------------------------------------------------------------------------
@pytest.mark.parametrize("n_mb", [1, 3])
def test_weight_schemes_agree_when_the_parameters_do_not_move(n_mb, float64):
    """At fixed theta both schemes are Crooks' weights of the same moves: equal log weights
    (eq5 completed at the next update's theta, which is the same). float64: the work terms
    are differences of U / T ~ 1e4 (float32 would leave ~1e-3 of rounding)."""
    x = _data().double()
    big = {"step_size": 0.5, "temperature": 1e-4}  # large steps: ULA's bias, and so the weights, are O(1)
    a = _frozen(_method(weights_scheme="eq5", grad_walkers="subset", n_minibatches=n_mb, **big))
    b = _frozen(_method(weights_scheme="reference", grad_walkers="subset", n_minibatches=n_mb, **big))
    for k in (1, 2, 3):
        a.train_step(x, k)
        b.train_step(x, k)
    assert torch.equal(a.walkers, b.walkers)
    wa, _ = a.completed_log_weights()
    scale = float(wa.abs().max())
    assert scale > 1e-7  # the weights are not trivially zero (1e-6 here; agreement below is to 1e-12)
    assert torch.allclose(wa, b.log_w, rtol=0, atol=1e-12), ((wa - b.log_w).abs().max(), scale)


def test_weight_schemes_differ_when_the_parameters_move():
    """With training, the reference scheme's gradient uses the weights before the work term
    and evaluates the reverse kernels under theta_k: the weights differ from Eq. 5's."""
    x = _data()
    a = _method(weights_scheme="eq5", grad_walkers="subset", lr=1e-2)
    b = _method(weights_scheme="reference", grad_walkers="subset", lr=1e-2)
    for k in (1, 2, 3):
        a.train_step(x, k)
        b.train_step(x, k)
    wa, _ = a.completed_log_weights()
    assert float((wa - b.log_w).abs().max()) > 1e-6


def test_reference_scheme_gradient_uses_the_weights_before_the_work_term():
    """Update 1's loss under the reference scheme weights the walkers equally (A = 0 at the
    start; the first work term arrives after the gradient), whatever the energies."""
    b = _method(weights_scheme="reference", grad_walkers="subset")
    b.train_step(_data(), 1)
    assert b.log_w.abs().max() > 0  # weights moved after the gradient ...
    out = b.train_step(_data(), 2)
    assert out["ess"] < 1.0  # ... and the second update sees them


# --- burn_in_energy -------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["eq5", "reference"])
def test_burn_in_energy_start_offsets_the_weights(scheme):
    x = _data()
    end = _method(weights_scheme=scheme, burn_in_steps=20)
    start = _method(weights_scheme=scheme, burn_in_steps=20, burn_in_energy="start")
    for m in (end, start):
        m.init_walkers(x)
    assert torch.equal(end.walkers, start.walkers)
    # the offset (U_0(X_init) - U_0(X_0)) / T, as A_0 (eq5) or as the first work term's start (reference)
    probe = _method(weights_scheme=scheme, burn_in_steps=0)
    probe.init_walkers(x)
    x_init = probe.walkers
    with torch.no_grad():
        offset = (start.net(x_init) - start.net(start.walkers)).double() / start.temperature
    if scheme == "eq5":
        assert torch.allclose(start.log_w, offset) and end.log_w.abs().max() == 0
    else:
        assert torch.allclose(start.ref_energy - end.ref_energy, offset * start.temperature)
    assert float(offset.abs().max()) > 0


# --- the side-by-side check -------------------------------------------------------------------
def test_bench_reference_skips_without_a_checkout(monkeypatch, capsys):
    from ebm_bench.bench import reference as R

    monkeypatch.delenv("EBM_BENCH_REFERENCE_DIR", raising=False)
    assert R.run("jarzynski_mnist", None, 3, None) is None
    assert "skipped" in capsys.readouterr().out


@pytest.mark.skipif(not os.environ.get("EBM_BENCH_REFERENCE_DIR"),
                    reason="EBM_BENCH_REFERENCE_DIR unset: no clone of github.com/submissionx12/EBMs_Jarzynski to compare with")
def test_jarzynski_mnist_matches_the_reference(tmp_path):
    from ebm_bench.bench import reference as R

    r = R.run("jarzynski_mnist", os.environ["EBM_BENCH_REFERENCE_DIR"], 3, str(tmp_path), quick=True)
    rows = r["methods"]["jarzynski_mnist"]["rows"]["reference options"]
    assert rows["draws_left_unused"] == {"rand": 0, "normal": 0, "subset": 0}
    for u in rows["updates"]:
        assert u["max_rel_diff_params"] <= R.TOL and u["max_rel_diff_walkers"] <= R.TOL
        assert u["max_abs_diff_log_weights"] <= R.TOL
    assert (tmp_path / "reference_equivalence.json").is_file()


# --- grad_walkers: previous (reference CIFAR code: the loss lags one move) ------------------
def _changed_rows(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    return torch.nonzero((before != after).flatten(1).any(1)).flatten()


@pytest.mark.parametrize("scheme", ["reference", "eq5"])
def test_grad_walkers_previous_uses_the_walkers_moved_last_update(scheme, float64):
    m = _frozen(_method(grad_walkers="previous", weights_scheme=scheme))
    data = _data()
    m.init_walkers(data)
    assert len(m.prev_idx) == 4  # the first gradient: a random N' after burn-in
    before = m.walkers.clone()
    m.train_step(data, 1)
    moved = _changed_rows(before, m.walkers)
    assert sorted(moved.tolist()) == sorted(m.prev_idx.tolist())
    # the gradient of update 2 from those walkers, their log weights as update 2 starts
    x_prev = m.walkers[moved].clone()
    a = m.completed_log_weights()[0] if m.pending else m.log_w
    w = torch.softmax(a[moved].double(), 0)
    e_pos, e_neg = m.net(data), m.net(x_prev)
    loss = e_pos.mean() - (w * e_neg).sum() + 0.01 * ((e_pos ** 2).mean() + (w * e_neg ** 2).sum())
    want = torch.autograd.grad(loss, list(m.net.parameters()))
    m.train_step(data, 2)
    for g, p in zip(want, m.net.parameters()):
        assert torch.allclose(p.grad, g, rtol=1e-9, atol=1e-12)


def test_grad_walkers_previous_checks():
    with pytest.raises(ConfigError):
        _method(grad_walkers="previous", n_moved=0)  # Alg. 1: no mini-batch to lag
    with pytest.raises(ConfigError):
        _method(grad_walkers="previous", n_minibatches=2)  # eq5: ambiguous
    _method(grad_walkers="previous", n_minibatches=2, weights_scheme="reference")


# --- pcd: loss_chains, burn_in_steps -------------------------------------------------------------
PCD_BASE = {"net": "cnn_silu", "net_params": {"hidden_features": 4}, "buffer_size": 10, "n_chains": 4, "n_steps": 2,
            "step_size": 1e-2, "temperature": 1e-2, "data_noise": 0.0, "reinit_prob": 0.0, "energy_reg": 0.01}


def _pcd_recording(**kw):
    m = PCD({**PCD_BASE, **kw}, IMG, "cpu", 0)
    negs, idxs = [], []
    neg0, di0 = m.negatives, m.draw_indices
    m.negatives = lambda b: negs.append(neg0(b)) or negs[-1]
    m.draw_indices = lambda n: idxs.append(di0(n)) or idxs[-1]
    return m, negs, idxs


def test_pcd_loss_chains_previous_lags_one_update():
    data = _data()
    m, negs, idxs = _pcd_recording(loss_chains="previous")
    m.train_step(data, 1)
    after1 = m.buffer.clone()
    m.train_step(data, 2)
    assert len(idxs) == 3  # the first loss subset, then one moved set per update
    assert torch.equal(negs[1], after1[idxs[1]])  # update 2's loss: the chains update 1 moved
    assert not torch.equal(negs[1], m.buffer[idxs[2]])
    d, negs_d, idxs_d = _pcd_recording()  # default: the chains moved in this update
    d.train_step(data, 1)
    assert torch.equal(negs_d[0], d.buffer[idxs_d[0]])
    with pytest.raises(ConfigError):
        PCD({**PCD_BASE, "loss_chains": "next"}, IMG, "cpu", 0)


def test_pcd_burn_in_steps_runs_ula_on_the_whole_buffer():
    m = PCD({**PCD_BASE, "burn_in_steps": 3}, IMG, "cpu", 0)
    twin = PCD({**PCD_BASE, "burn_in_steps": 3}, IMG, "cpu", 0)
    start = m.buffer.clone()
    m.seed_chains(_data())
    want = twin.sampler.run(twin.energy, twin.buffer, 3, twin.gen)
    assert torch.allclose(m.buffer, want) and not torch.allclose(m.buffer, start)
    plain = PCD(PCD_BASE, IMG, "cpu", 0)
    b0 = plain.buffer.clone()
    plain.seed_chains(_data())
    assert torch.equal(plain.buffer, b0)  # default 0: no burn-in


# --- weights_aliased_positions (GMM_code/GMM.py quirk 5) ---------------------------------------
def test_weights_aliased_positions_evaluates_both_kernels_at_the_new_position(float64):
    import copy

    from ebm_bench.samplers import energy_and_grad

    p = {"net": "gmm_energy", "net_params": {}, "optimizer": "sgd", "lr": 0.5, "step_size": 0.1, "temperature": 1.0,
         "energy_reg": 0.0, "n_walkers": 64, "n_moved": 0, "n_steps": 1, "walker_init": "model",
         "resample_threshold": 0.0, "weights_aliased_positions": True}
    gmm = DataInfo((3,), False, None)
    data = torch.randn((32, 3), generator=torch.Generator().manual_seed(2)) + 2.0
    m = Jarzynski(p, gmm, "cpu", 0)
    net0 = copy.deepcopy(m.net)  # theta_0
    m.train_step(data, 1)  # A_0 = 0; X_0 -> X_1 under theta_0; theta_0 -> theta_1
    x = m.walkers
    u0, g0 = energy_and_grad(net0, x)
    u1, g1 = energy_and_grad(m.net, x)
    want = (u0 - u1 + 0.025 * ((g0 ** 2).sum(1) - (g1 ** 2).sum(1))).double()
    assert torch.allclose(m.completed_log_weights()[0], want, rtol=1e-10, atol=1e-12)
    eq5 = Jarzynski({**p, "weights_aliased_positions": False}, gmm, "cpu", 0)
    eq5.train_step(data, 1)
    assert torch.allclose(eq5.walkers, x)  # the same chain ...
    assert not torch.allclose(eq5.completed_log_weights()[0], want)  # ... other weights (Eq. 5)
    for bad in ({"n_moved": 8}, {"n_steps": 2}, {"weights_scheme": "reference"}):
        with pytest.raises(ConfigError):
            Jarzynski({**p, **bad}, gmm, "cpu", 0)


@pytest.mark.skipif(not os.environ.get("EBM_BENCH_REFERENCE_DIR"),
                    reason="EBM_BENCH_REFERENCE_DIR unset: no clone of github.com/submissionx12/EBMs_Jarzynski to compare with")
@pytest.mark.parametrize("method", ["gmm", "jarzynski_cifar10", "pcd_cifar10"])
def test_method_matches_the_reference(method, tmp_path):
    from ebm_bench.bench import reference as R

    r = R.run(method, os.environ["EBM_BENCH_REFERENCE_DIR"], 3, str(tmp_path), quick=True)
    rows = r["methods"][method]["rows"]["reference options"]
    assert rows["draws_left_unused"] == {"rand": 0, "normal": 0, "subset": 0}
    for u in rows["updates"]:
        assert u["max_rel_diff_params"] <= R.TOL and u["max_rel_diff_walkers"] <= R.TOL
        assert u["max_abs_diff_log_weights"] is None or u["max_abs_diff_log_weights"] <= R.TOL
