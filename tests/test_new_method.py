"""Adding a method stays one file (docs/adding-a-method.md), tried as a new user would.

The method below is denoising score matching (Vincent 2011, Eq. 4 with a Gaussian
corruption): no chains in training, Langevin chains only to generate. Written in one file,
imported from a scratch folder and registered only for the test, it must pass the config
check without declaring (or being handed) an ``n_steps``, train through the one training
loop, and have its gradient evaluations counted where it takes grad_x U, so the cost
columns do not read 0.

Mutations tried (each failed these tests, then restored): ``LangevinEBM.__init__`` reading
``p["n_steps"]`` unconditionally (KeyError at construction); the count removed from
``samplers.counting.energy_and_grad`` (grad_evals_train 0); a raw ``torch.autograd.grad``
added to ``ebm_bench/methods/short_run.py`` (the repository scan names the file); the
sampler built from every sampler key, declared or not (KeyError), or built for a method
declaring none (a sampler where there should be none).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from ebm_bench.core.errors import ConfigError
from ebm_bench.core.registry import METHODS

ROOT = Path(__file__).resolve().parents[1]

DSM_FILE = '''
"""Denoising score matching (Vincent 2011), the one file of a new method."""

from ebm_bench.core import validation as V
from ebm_bench.methods.base import register_method
from ebm_bench.methods.langevin import EBM_DEFAULTS, LangevinEBM
from ebm_bench.samplers.counting import energy_and_grad


@register_method("dsm_probe")
class DenoisingScoreMatching(LangevinEBM):
    """Denoising score matching (Vincent 2011, Eq. 4): -grad U fits the score of noised data."""

    defaults = {**EBM_DEFAULTS, "temperature": 1.0, "step_size": 0.01, "sigma": 0.1, "sample_steps": 100}
    checks = {"sigma": V.positive(), "sample_steps": V.count()}
    tiny = {"sample_steps": 3}

    def train_step(self, batch, step):
        x = batch.to(self.device)
        noise = self.noise_like(x)
        _, g = energy_and_grad(self.energy, x + self.params["sigma"] * noise, create_graph=True)
        # the noised point's score given x is -noise / sigma; the model's is -grad U (T = 1)
        loss = 0.5 * (g - noise / self.params["sigma"]).pow(2).flatten(1).sum(1).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": float(loss.detach())}

    def sample_chains(self, n):
        return self.sampler.run(self.energy, self.init_chains(n), self.params["sample_steps"], self.gen)
'''

STEPS, BATCH, N_SAMPLES, SAMPLE_STEPS = 5, 32, 100, 3


@pytest.fixture
def dsm(tmp_path: Path, monkeypatch):
    """The method file, imported from a scratch folder; registered until the test ends."""
    path = tmp_path / "dsm_probe.py"
    path.write_text(DSM_FILE)
    METHODS.names()  # the registry's own modules first
    monkeypatch.setattr(METHODS, "_items", dict(METHODS._items))  # the registration is undone after the test
    spec = importlib.util.spec_from_file_location("dsm_probe_method", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "dsm_probe_method", module)
    spec.loader.exec_module(module)
    return METHODS.get("dsm_probe")


def _config(**variant) -> dict:
    return {"seeds": [0], "datasets": {"rings": {"type": "toy2d", "params": {"n_train": 256, "n_test": 128}}},
            "variants": {"dsm": {"method": "dsm_probe", "net_params": {"hidden": 16, "depth": 2},
                                 "sample_steps": SAMPLE_STEPS, **variant}},
            "train": {"steps": STEPS, "batch_size": BATCH, "log_every": 1}, "sample": {"n": N_SAMPLES}}


def test_a_one_file_method_without_n_steps_trains_and_is_counted(dsm, tmp_path: Path) -> None:
    from ebm_bench.core.artefacts import load_sample_cost
    from ebm_bench.evaluation.cost import cost
    from ebm_bench.pipeline.config import check_config, run_spec
    from ebm_bench.pipeline.stages import sample_stage
    from ebm_bench.training import runs
    from ebm_bench.training.loop import train

    assert "n_steps" not in dsm.defaults
    config = _config()
    check_config(config)
    spec = run_spec(config, "rings", "dsm", 0)
    assert "n_steps" not in spec["method_params"]
    data = runs.load_data(spec)
    method = runs.build_method(spec, data)
    run = tmp_path / "run"
    status = train(method, data.x_train, spec["train"], run, runs.config_id(spec), 0)
    assert status["status"] == "ok"
    # one gradient evaluation per noised point per update, counted by energy_and_grad itself
    assert status["grad_evals_train"] == STEPS * BATCH
    assert status["sampler_steps_per_iter"] == 0  # no chains in training
    sample_stage(spec, run)
    assert load_sample_cost(run / "samples.npz")["grad_evals_sample"] == N_SAMPLES * SAMPLE_STEPS
    metrics, _ = cost(SimpleNamespace(run_dir=run, method=method, spec=spec))
    assert metrics["grad_evals_train"] == STEPS * BATCH and metrics["grad_evals_sample"] == N_SAMPLES * SAMPLE_STEPS
    assert metrics["sampler_steps_per_update"] is None and metrics["walkers_per_moved"] is None


def test_an_undeclared_n_steps_is_refused(dsm) -> None:
    from ebm_bench.pipeline.config import check_config

    with pytest.raises(ConfigError, match=r"^variants\.dsm\.n_steps: unknown key; known: "):
        check_config(_config(n_steps=10))


def test_methods_take_grad_x_u_only_through_the_counting_function() -> None:
    """A method that took grad_x U itself would spend gradient evaluations the cost
    columns never see; ``samplers.counting.energy_and_grad`` counts them."""
    raw = re.compile(r"autograd\.grad\(|torch\.func\.(grad|vjp|jacrev)|functorch")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in sorted((ROOT / "ebm_bench" / "methods").glob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1) if raw.search(line)]
    assert hits == [], f"grad_x U taken outside samplers.counting.energy_and_grad (uncounted): {hits}"


def test_only_declared_sampler_keys_are_read() -> None:
    """A LangevinEBM subclass declaring some sampler keys gets a sampler with the others at
    their defaults; one declaring none has no sampler (it generates otherwise)."""
    from ebm_bench.methods.base import DataInfo
    from ebm_bench.methods.langevin import EBM_DEFAULTS, SAMPLER_KEYS, LangevinEBM

    info = DataInfo((2,), False, 2)
    net = {"net": "mlp", "net_params": {"hidden": 8, "depth": 1}}
    trainer = {k: v for k, v in EBM_DEFAULTS.items() if k not in SAMPLER_KEYS}

    class StepAndTemperatureOnly(LangevinEBM):
        defaults = {**trainer, "step_size": 0.2, "temperature": 0.5}

    class NoSampler(LangevinEBM):
        defaults = trainer

    m = StepAndTemperatureOnly(net, info, "cpu", 0)
    assert (m.sampler.step_size, m.sampler.temperature) == (0.2, 0.5)
    assert m.sampler.grad_clip is None and not m.sampler.metropolis and m.sampler.clamp is None
    assert m.sampler_steps_per_iter == 0
    assert NoSampler(net, info, "cpu", 0).sampler is None
