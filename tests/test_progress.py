"""Progress lines of long jobs (ebm_bench/core/progress.py): one mechanism, every long loop.

The rule (README, "Logs"): a long job prints ``[label] stage: what i/n ... (rate, elapsed,
eta)`` on stderr at least every ~60 s, and no more often. Most tests here set the interval
to 0 (every tick prints) and drive one loop family at a tiny size, asserting the line that
loop prints with its i/n; removing the loop's tick fails its test. The first tests pin the
interval itself with a fake clock.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
import torch

from ebm_bench.core import progress
from ebm_bench.methods.base import DataInfo
from ebm_bench.core.registry import METHODS


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def every_tick(monkeypatch):
    """Interval 0: every tick prints (the loops' lines appear at tiny sizes)."""
    monkeypatch.setattr(progress.CLOCK, "every_s", 0.0)


def test_a_line_at_most_once_per_interval_and_at_least_once_it_has_passed(monkeypatch, capsys):
    clock = FakeClock()
    monkeypatch.setattr(progress.CLOCK, "now", clock)
    monkeypatch.setattr(progress.CLOCK, "last", clock.t)
    assert progress.CLOCK.every_s == 60.0  # the project's rule: at least one a minute
    printed = []
    with progress.scope("toy/pcd/seed0", "train"), progress.Task("step", 1000) as t:
        for i in range(1, 301):
            clock.t += 1.0  # one step a second
            if t.tick(i):
                printed.append(i)
    assert printed == [60, 120, 180, 240, 300]  # every 60 s, never more often
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 5
    assert err[0] == "[toy/pcd/seed0] train: step 60/1000 (1 step/s, elapsed 60s, eta 940s)"


def test_nested_tasks_share_one_line_and_a_forced_line_restarts_the_interval(monkeypatch, capsys):
    clock = FakeClock()
    monkeypatch.setattr(progress.CLOCK, "now", clock)
    monkeypatch.setattr(progress.CLOCK, "last", clock.t)
    with progress.Task("chains", 100) as outer:
        outer.tick(50, "batch 2")
        assert outer.tick(50, force=True)  # forced: printed at once, the interval restarts
        with progress.Task("ULA step", 1000) as inner:
            clock.t += 59.0
            assert not inner.tick(10)
            clock.t += 1.0
            assert inner.tick(20, lambda: "lazy detail")
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("[ebm-bench] chains 50/100 (")  # outside any scope
    assert err[1].startswith("[ebm-bench] chains 50/100 > ULA step 20/1000 lazy detail (")
    assert "elapsed 60s" in err[1]
    assert progress.TASKS == []  # closed tasks leave the nest


def test_heartbeat_prints_while_an_opaque_call_runs(every_tick, monkeypatch, capsys):
    """The probe's scikit-learn fit cannot tick: a heartbeat thread prints for it."""
    from sklearn.linear_model import LogisticRegression

    from ebm_bench.metrics.probe import linear_probe

    fit = LogisticRegression.fit

    def slow_fit(self, *a, **k):
        time.sleep(0.2)  # the heartbeat wakes every 10 ms at interval 0
        return fit(self, *a, **k)

    monkeypatch.setattr(LogisticRegression, "fit", slow_fit)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), np.arange(40) % 2
    linear_probe(x, y, x, y)
    err = capsys.readouterr().err
    assert "probe fit 0/1" in err  # printed by the heartbeat thread during the fit


def test_domain_classifier_prints_epoch_batch_and_loss(every_tick, capsys):
    """The user's report: 13 silent minutes per dataset. Now: a line at the start, then
    'epoch e/E > batch b/B loss=...' at least once a minute."""
    from ebm_bench.training.classifier import train_domain_classifier

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 3, generator=g), torch.arange(40) % 2
    with progress.scope("toyset", "classifier"):
        train_domain_classifier(x, y, x, y, epochs=2, batch_size=16, hidden=8)
    err = capsys.readouterr().err
    assert "[toyset] classifier: epoch 0/2 (40 rows, batch 16)" in err  # the start line
    assert re.search(r"\[toyset\] classifier: epoch 1/2 > batch 3/3 loss=[0-9.]+ \(", err)
    assert "epoch 2/2" in err and "elapsed" in err


def test_domain_classifier_prints_only_its_start_line_within_a_minute(capsys):
    from ebm_bench.training.classifier import train_domain_classifier

    x, y = torch.randn(40, 3), torch.arange(40) % 2
    train_domain_classifier(x, y, x, y, epochs=2, batch_size=16, hidden=8)
    assert len(capsys.readouterr().err.splitlines()) == 1  # logs stay small


def test_jarzynski_and_pcd_burn_in_print_their_ula_steps(every_tick, capsys):
    info = DataInfo((2,), False)
    jz = METHODS.get("jarzynski")
    m = jz({**jz.tiny_params(info), "burn_in_steps": 3}, info, "cpu", 0)
    m.init_walkers(torch.randn(16, 2))
    pcd = METHODS.get("pcd")
    p = pcd({**pcd.tiny_params(info), "burn_in_steps": 4}, info, "cpu", 0)
    p.seed_chains(torch.randn(16, 2))
    err = capsys.readouterr().err
    assert "burn-in ULA step 3/3" in err
    assert "burn-in ULA step 4/4" in err


def _tiny_rings_run(tmp_path):
    from ebm_bench.training import runs
    from ebm_bench.pipeline.config import run_spec
    from ebm_bench.training.loop import train

    cfg = {"datasets": {"rings": {"type": "toy2d", "params": {"density": "rings", "n_train": 300, "n_test": 200},
                                  "variant_params": {"*": {"step_size": 0.01, "temperature": 1.0, "n_steps": 3,
                                                           "sample_batch": 40}}}},
           "variants": {"short_run": {"method": "short_run", "net_params": {"hidden": 8, "depth": 1}}},
           "seeds": [0], "sample": {"n": 100}, "train": {"steps": 2, "log_every": 1},
           "evaluate": {"probe_max_train": 100}}
    spec = run_spec(cfg, "rings", "short_run", 0)
    run = tmp_path / "run"
    data = runs.load_data(spec)
    train(runs.build_method(spec, data), data.x_train, spec["train"], run, runs.config_id(spec), 0)
    return spec, run


def test_sample_stage_prints_chains_done_and_sampler_steps(tmp_path, every_tick, capsys):
    from ebm_bench.pipeline.stages import sample_stage

    spec, run = _tiny_rings_run(tmp_path)
    capsys.readouterr()
    sample_stage(spec, run)
    err = capsys.readouterr().err
    assert "[rings/short_run/seed0] sample: chains 40/100 > ULA step 3/3 (" in err


def test_evaluate_stage_prints_the_family_it_is_in(tmp_path, every_tick, capsys, monkeypatch):
    from ebm_bench.pipeline.stages import evaluate_stage, sample_stage

    spec, run = _tiny_rings_run(tmp_path)
    sample_stage(spec, run)
    fams = [("alpha", lambda ctx: None), ("beta", lambda ctx: None)]
    monkeypatch.setattr("ebm_bench.evaluation.families", lambda: fams)
    capsys.readouterr()
    evaluate_stage(spec, run, None)
    err = capsys.readouterr().err
    assert "[rings/short_run/seed0] evaluate: family 0/2 alpha (" in err
    assert "evaluate: family 1/2 beta (" in err


def test_feature_pass_prints_rows_done(every_tick, capsys):
    from ebm_bench.metrics.extractors import FeatureExtractor

    class Fake(FeatureExtractor):
        name = "fake"

        def _forward(self, batch):
            return batch.float(), batch.float()

    Fake(batch_size=4).extract(torch.zeros(10, 3))
    err = capsys.readouterr().err
    assert "feature rows 4/10" in err and "feature rows 8/10" in err


def test_fid_backends_print_between_them(every_tick, capsys):
    from ebm_bench.metrics.fid import fid_from_statistics, fid_statistics

    rng = np.random.default_rng(0)
    s = fid_statistics(rng.normal(size=(50, 4)))
    fid_from_statistics(s, s)
    assert "FID backend 1/2 pytorch-fid" in capsys.readouterr().err


def test_ais_prints_chains_and_levels(every_tick, capsys):
    from ebm_bench.samplers.ais import ais

    ais(lambda x: 0.5 * (x * x).sum(1), (2,), 6, 4, 1.0, 0.1, torch.Generator().manual_seed(0), batch=3)
    err = capsys.readouterr().err
    assert "AIS chains 3/6 > AIS level 3/4" in err


def test_gibbs_langevin_prints_its_gibbs_steps(every_tick, capsys):
    info = DataInfo((3,), False)
    grbm = METHODS.get("grbm")
    m = grbm({**grbm.tiny_params(info), "sample_batch": 2}, info, "cpu", 0)
    m.sample(4)
    err = capsys.readouterr().err
    assert "chains 0/4 > Gibbs step 1/2" in err and "chains 2/4 > Gibbs step 2/2" in err


def test_hee_eager_loop_prints_its_euler_steps(every_tick, capsys):
    from ebm_bench.methods.hee import HEE

    m = HEE({**HEE.tiny, "inner_loop": "eager", "sample_batch": 2}, DataInfo((2,), False), "cpu", 0)
    assert not m.fused
    m.sample(4, generation="joint")
    err = capsys.readouterr().err
    assert re.search(r"chains 2/4 > hee joint Euler step 1/\d+", err)


def test_hee_compiled_loop_prints_its_euler_steps(every_tick, capsys):
    """The C loop ticks the simulation's task between its calls into the kernel."""
    from ebm_bench.methods.hee import HEE
    from ebm_bench.samplers import hee_compiled

    if not hee_compiled.available()[0]:
        pytest.skip(f"C kernel unavailable: {hee_compiled.available()[1]}")
    m = HEE({**HEE.tiny, "inner_loop": "compiled", "sample_batch": 2}, DataInfo((2,), False), "cpu", 0)
    assert m.loop == "compiled"
    m.sample(4, generation="joint")
    err = capsys.readouterr().err
    assert re.search(r"chains 2/4 > hee joint Euler step \d+/\d+", err)


def test_benchmarks_print_under_their_name(every_tick, monkeypatch, capsys):
    """``ebm-bench bench`` runs each benchmark in a scope named after it: the loops inside
    (cost_claim's updates, gmm_run's steps, gpu_check's rows and their samplers) print
    ``[bench] name: ...``."""
    from ebm_bench.bench import suite as bench

    def fake(quick):
        with progress.Task("step", 2) as t:
            t.tick(1, "variant")

    monkeypatch.setattr(bench, "BENCHMARKS", {"fake": fake})
    bench.run_benchmarks(quick=True, only=["fake"])
    assert "[bench] fake: step 1/2 variant (" in capsys.readouterr().err


def test_gmm_teacher_experiment_prints_its_steps(every_tick, capsys):
    from ebm_bench.experiments import gmm_teacher as gt

    cfg = gt.pipeline_config("paper_text", {"gmm": {"dim": 4, "n_train": 100, "n_test": 100}}, [1],
                             ["cd"], n_walkers=100, steps=3)
    gt.run_one(cfg, "gmm", "cd", 1, eval_every=3, n_mc=100, n_mc_final=100, log=lambda m: None)
    assert "[gmm/cd/seed1] gmm_teacher: step 2/3 " in capsys.readouterr().err


@pytest.mark.parametrize("extra", [{}, {"n_minibatches": 2}, {"weights_scheme": "reference"}],
                         ids=["alg2", "minibatches", "reference"])
def test_jarzynski_update_prints_its_ula_steps(extra, every_tick, capsys):
    """One update at CIFAR size takes minutes on a CPU: its K ULA moves tick."""
    info = DataInfo((2,), False)
    jz = METHODS.get("jarzynski")
    m = jz({**jz.tiny_params(info), "burn_in_steps": 0, "n_steps": 3, **extra}, info, "cpu", 0)
    m.train_step(torch.randn(8, 2), 1)
    assert "ULA step 3/3" in capsys.readouterr().err
