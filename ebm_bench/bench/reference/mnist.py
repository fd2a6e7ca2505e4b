"""``jarzynski_mnist``: our paper-003 MNIST update against ``MNIST_code`` of
github.com/submissionx12/EBMs_Jarzynski (docs/reference-equivalence.md, rows 1-10).

``MNIST_code/CNNModel.py`` and ``Sampler.py`` are imported from the clone and the
``DeepEnergyModel`` cell of ``main.ipynb`` exec'd (located by its class line, checked
once); its ``training_step``, ``configure_optimizers``, ``Sampler.__init__`` and burn-in
line run unchanged. Row ``reference options`` runs every option the reference needs; each
further row puts one option back at what ``config/paper.yaml`` runs.
"""

from __future__ import annotations

import contextlib
import inspect
import types
from pathlib import Path
from typing import Any

import torch

from ebm_bench.bench.reference.common import Tape, ablation_configs, compare_rows, load_py, notebook_cell, paper_params, recording, replaying
from ebm_bench.bench.reference.lightning import LightningStub, gradient_clip_val, lightning_updates

# the reference's MNIST update (MNIST_code/main.ipynb) as options of our jarzynski method;
# the values config/paper.yaml runs instead are the ablation rows
MNIST_REFERENCE_OPTIONS: dict[str, Any] = {
    "n_minibatches": 6,              # num_batch = 6 walker mini-batches per update
    "grad_walkers": "subset",        # the loss over a fresh random subset of sampler_batch walkers
    "weights_scheme": "reference",   # work term at fixed X, kernels under theta_k, loss before the work term
    "weights_temperature": 1.0,      # quirk 2: kernels with 4 h (T = 1), energies U (not U / T)
    "burn_in_energy": "start",       # quirk 4: first work term from the energy before burn-in
    "clamp": True,                   # walkers kept in [-1, 1] ...
    "clamp_rule": "reject",          # ... by rejecting a coordinate's move, not projecting
    "weights_ignore_clamp": True,    # quirk 3: the weights ignore it
    "param_grad_clip": 1.0,          # Lightning gradient_clip_val = 1 (global L2 norm)
    "lr_schedule_every": 77,         # LambdaLR stepped once per epoch of 77 updates ...
    "lr_decay_steps": 38500,         # ... to 0 over n_iter = 500 epochs ...
    "lr_final_factor": 1.0e-10,      # ... floored at 1e-10 (a factor)
}


def _reference_mnist(ref: Path, ours0: list[torch.Tensor], batches: list[torch.Tensor], n_walkers: int,
                     n_moved: int, burn_in: int, seed: int) -> tuple[list[dict[str, torch.Tensor]], Tape, dict]:
    """K updates of the reference MNIST code; its draws recorded."""
    code = ref / "MNIST_code"
    cnn_mod = load_py(code / "CNNModel.py", "_ref_mnist_cnn")
    sampler_mod = load_py(code / "Sampler.py", "_ref_mnist_sampler")
    sampler_mod.device = torch.device("cpu")
    nb = code / "main.ipynb"
    cell = notebook_cell(nb, "class DeepEnergyModel(pl.LightningModule)")
    clip_val = gradient_clip_val(nb)
    ns: dict[str, Any] = {
        "pl": types.SimpleNamespace(LightningModule=LightningStub), "torch": torch, "nn": torch.nn,
        "F": torch.nn.functional, "optim": torch.optim, "data": torch.utils.data, "CNNModel": cnn_mod.CNNModel,
        "Sampler": sampler_mod.Sampler, "LightningMNISTClassifier": None, "device": torch.device("cpu"),
        "DATASET_PATH": None, "transforms": None, "MNIST": None,
    }
    exec(compile(cell, f"{nb}#DeepEnergyModel", "exec"), ns)
    DEM = ns["DeepEnergyModel"]
    hp = {k: v.default for k, v in inspect.signature(DEM.__init__).parameters.items()
          if v.default is not inspect.Parameter.empty}
    hp.update(img_shape=tuple(batches[0].shape[1:]), batch_size=len(batches[0]), sample_size=n_walkers,
              sampler_batch=n_moved)
    model = DEM.__new__(DEM)
    torch.nn.Module.__init__(model)
    model.hparams = types.SimpleNamespace(**hp)
    model.langevin_steps = 0
    model.cnn = cnn_mod.CNNModel()
    with torch.no_grad():
        for p, q in zip(model.cnn.parameters(), ours0, strict=True):
            p.copy_(q)
    tape = Tape()
    snaps = []
    torch.manual_seed(seed)
    with recording(tape):
        model.sampler = sampler_mod.Sampler(model.cnn, img_shape=hp["img_shape"], sample_size=n_walkers)
        # DeepEnergyModel.__init__'s burn-in line, at `burn_in` steps instead of 20,000
        model.sampler.examples = model.sampler.pure_generate_samples(
            model.cnn, model.sampler.examples, steps=burn_in, step_size=hp["step_size"],
            noise_level=hp["noise_level"])
        model.data = batches[0]
        model.sampler.normal_0 = torch.tensor(1.0)
        snaps += lightning_updates(model, batches, clip_val)
    info = {"hyperparameters": {k: hp[k] for k in ("alpha", "lr", "steps", "step_size", "num_batch", "noise_level",
                                                   "sample_size", "sampler_batch", "resample_std")},
            "gradient_clip_val": clip_val}
    return snaps, tape, info


def _ours_mnist(params: dict[str, Any], shape, batches, seed: int, tape: Tape | None):
    from ebm_bench.methods.base import DataInfo
    from ebm_bench.methods.jarzynski import Jarzynski

    m = Jarzynski(params, DataInfo(tuple(shape), True, 3), "cpu", seed)
    snaps = []
    ctx = replaying(tape) if tape is not None else contextlib.nullcontext()
    with ctx:
        for k, batch in enumerate(batches, start=1):
            m.train_step(batch, k)
            lw = m.completed_log_weights()[0] if m.pending else m.log_w
            snaps.append({"params": [p.detach().clone() for p in m.net.parameters()],
                          "walkers": m.walkers.detach().clone(), "log_w": lw.detach().clone()})
    return m, snaps


def _eq5_fix(alt: dict[str, Any]) -> None:
    """Eq. 5 with several mini-batches needs the loss over a subset (our option check)."""
    if alt["weights_scheme"] == "eq5" and alt["n_minibatches"] > 1 and alt["grad_walkers"] == "moved":
        alt["grad_walkers"] = "subset"


def compare_jarzynski_mnist(ref: Path, updates: int = 3, n_walkers: int = 48, n_moved: int = 16,
                            burn_in: int = 10, seed: int = 0, ablations: bool = True) -> dict[str, Any]:
    base = paper_params("mnist_236", "jarzynski_multinomial")
    sizes = {"n_walkers": n_walkers, "n_moved": n_moved, "burn_in_steps": burn_in, "resample_from_step": 10**9}
    shape = (1, 28, 28)
    gen = torch.Generator().manual_seed(seed + 1)
    batches = [torch.rand((128, *shape), generator=gen, dtype=torch.float64) * 2 - 1 for _ in range(updates)]
    full = {**base, **MNIST_REFERENCE_OPTIONS, **sizes}
    configs = ablation_configs(full, base, MNIST_REFERENCE_OPTIONS, fix=_eq5_fix) if ablations \
        else [("reference options", full)]
    # ours first (its constructor seeds the global generator for the network), then theirs
    probe = _ours_mnist(full, shape, [], seed, None)[0]
    init = [p.detach().clone() for p in probe.net.parameters()]
    ref_snaps, tape0, info = _reference_mnist(ref, init, batches, n_walkers, n_moved, burn_in, seed)
    rows = compare_rows(configs, lambda params, tape: _ours_mnist(params, shape, batches, seed, tape),
                        ref_snaps, tape0, MNIST_REFERENCE_OPTIONS)
    return {"method": "jarzynski_mnist", "updates": updates, "n_walkers": n_walkers, "n_moved": n_moved,
            "burn_in_steps": burn_in, "network": "cnn_silu hidden_features 32 (MNIST_code/CNNModel.py), 76,993 parameters",
            "reference": info, "reference_grad_norms": [s["grad_norm"] for s in ref_snaps],
            "data": f"{updates} batches of 128 uniform[-1, 1] images 1x28x28 (same tensors to both)",
            "rows": rows}
