"""``jarzynski_cifar10`` / ``pcd_cifar10``: our paper-003 CIFAR-10 updates against
``CIFAR-10_code`` of github.com/submissionx12/EBMs_Jarzynski (docs/reference-equivalence.md,
rows 11-20).

The ``DeepEnergyModel`` cell of ``CIFAR-10_code/main_CIFAR_{Jarzynski,PCD}.ipynb`` (its
``Paper_net`` at the paper's n_f = 128) runs with ``CIFAR-10_code/Sampler.py``; the sampler
lines of its ``__init__`` (which otherwise loads CIFAR-10 and the FID network) run here,
each checked to be in the cell once.
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

# the reference's CIFAR-10 updates (CIFAR-10_code/main_CIFAR_{Jarzynski,PCD}.ipynb) as options of
# our methods; the values config/paper.yaml runs instead are the ablation rows
CIFAR_JARZYNSKI_OPTIONS: dict[str, Any] = {
    "grad_walkers": "previous",      # the loss over the walkers (and log weights) the previous update moved
    "weights_scheme": "reference",   # work term at fixed X, kernels under theta_k (as MNIST)
    "weights_temperature": 1.0,      # quirk 2: kernels with 4 h (T = 1), energies U
    "burn_in_energy": "start",       # quirk 4: old_energy computed before the 8,000 burn-in steps
    "clamp": True,                   # walkers kept in [-1, 1] by rejecting a coordinate's move,
    "clamp_rule": "reject",          # which the weights ignore (quirk 3)
    "weights_ignore_clamp": True,
    "param_grad_clip": 1000.0,       # Lightning gradient_clip_val = 1000
    "lr_schedule_every": 98,         # LambdaLR stepped once per epoch of 98 updates (50,000 / 512) ...
    "lr_decay_steps": 58800,         # ... to 0 over n_iter = 600 epochs ...
    "lr_final_factor": 1.0e-10,      # ... floored at 1e-10
}
CIFAR_PCD_OPTIONS: dict[str, Any] = {
    "loss_chains": "previous",       # the loss over the chains the previous update moved
    "clamp": True,
    "clamp_rule": "reject",          # Sampler.py rejects a coordinate's move that leaves [-1, 1]
    "param_grad_clip": 1000.0,       # Lightning gradient_clip_val = 1000
    "lr_schedule_every": 98,
    "lr_decay_steps": 58800,
    "lr_final_factor": 1.0e-10,
}
def _reference_cifar(ref: Path, notebook: str, ours0: list[torch.Tensor], nf: int, batches: list[torch.Tensor],
                     n_walkers: int, n_moved: int, n_steps: int, burn_in: int,
                     seed: int) -> tuple[list[dict[str, torch.Tensor]], Tape, dict]:
    """K updates of a reference CIFAR-10 notebook's DeepEnergyModel; its draws recorded.

    Its ``__init__`` loads CIFAR-10 and the FID network, so it is not run: the lines of it
    that set up the sampler run here, each checked to be in the cell once (burn-in at
    ``burn_in`` steps instead of 8,000 / 2,000); ``training_step`` runs unchanged."""
    import io

    code = ref / "CIFAR-10_code"
    sampler_mod = load_py(code / "Sampler.py", "_ref_cifar_sampler")
    sampler_mod.device = torch.device("cpu")
    nb = code / notebook
    cell = notebook_cell(nb, "class DeepEnergyModel(pl.LightningModule)")
    for line in ("self.sampler = Sampler(self.cnn, img_shape=img_shape,sample_size = self.hparams.sample_size)",
                 "self.sampler.examples = self.sampler.pure_generate_samples(self.cnn,self.sampler.examples,",
                 "index = torch.multinomial(torch.ones((self.hparams.sample_size,)),self.hparams.sampler_batch,"
                 "replacement = False).to(device)",
                 "self.fake_imgs = self.sampler.examples[index]"):
        if cell.count(line) != 1:
            raise ValueError(f"{nb.name}: expected the line {line!r} once in DeepEnergyModel; the reference changed")
    jarzynski = "self.fake_imgs_weights = self.sampler.log_weights[index]" in cell
    clip_val = gradient_clip_val(nb)
    ns: dict[str, Any] = {
        "pl": types.SimpleNamespace(LightningModule=LightningStub), "torch": torch, "nn": torch.nn,
        "F": torch.nn.functional, "optim": torch.optim, "data": torch.utils.data, "Sampler": sampler_mod.Sampler,
        "device": torch.device("cpu"), "transforms": None, "torchvision": None, "trainset": None, "fid": None,
        "IS": None,
    }
    exec(compile(cell, f"{nb}#DeepEnergyModel", "exec"), ns)
    DEM = ns["DeepEnergyModel"]
    hp = {k: v.default for k, v in inspect.signature(DEM.__init__).parameters.items()
          if v.default is not inspect.Parameter.empty}
    hp.update(img_shape=tuple(batches[0].shape[1:]), batch_size=len(batches[0]), sample_size=n_walkers,
              sampler_batch=n_moved, steps=n_steps)
    model = DEM.__new__(DEM)
    torch.nn.Module.__init__(model)
    model.hparams = types.SimpleNamespace(**hp)
    model.langevin_steps = 0
    model.cnn = ns["Paper_net"](n_f=nf)  # the paper's n_f (the notebook's default is 64)
    with torch.no_grad():
        for p, q in zip(model.cnn.parameters(), ours0, strict=True):
            if p.shape != q.shape:
                raise ValueError(f"Paper_net parameter {tuple(p.shape)} where ours has {tuple(q.shape)}")
            p.copy_(q)
    tape = Tape()
    snaps = []
    torch.manual_seed(seed)
    with recording(tape), contextlib.redirect_stdout(io.StringIO()):
        # DeepEnergyModel.__init__'s sampler lines (its data, FID and cross-entropy lines skipped)
        model.sampler = sampler_mod.Sampler(model.cnn, img_shape=hp["img_shape"], sample_size=n_walkers)
        model.data = batches[0]  # what training_step's cross-entropy line reads (a log only)
        model.sampler.normal_0 = torch.tensor(1.0)
        model.sampler.examples = model.sampler.pure_generate_samples(
            model.cnn, model.sampler.examples, steps=burn_in, step_size=hp["step_size"],
            noise_level=hp["noise_level"])
        index = torch.multinomial(torch.ones((n_walkers,)), n_moved, replacement=False)
        model.fake_imgs = model.sampler.examples[index]
        if jarzynski:
            model.fake_imgs_weights = model.sampler.log_weights[index]
        snaps += lightning_updates(model, batches, clip_val)
    info = {"notebook": notebook,
            "hyperparameters": {k: hp[k] for k in hp if k not in ("img_shape",)},
            "gradient_clip_val": clip_val, "Paper_net_n_f": nf}
    return snaps, tape, info


def _ours_cifar(method: str, params: dict[str, Any], shape, batches, seed: int, tape: Tape | None):
    from ebm_bench.methods.base import DataInfo
    from ebm_bench.methods.jarzynski import Jarzynski
    from ebm_bench.methods.pcd import PCD

    ctx = replaying(tape, passthrough=("rand",) if method == "pcd" else ()) if tape is not None \
        else contextlib.nullcontext()
    snaps = []
    with ctx:
        # the reference sets its walkers up (uniform start, burn-in, first loss subset) before
        # its first data batch draws noise: ours is asked to do the same before the first update
        if method == "jarzynski":
            m = Jarzynski(params, DataInfo(tuple(shape), True, 10), "cpu", seed)
            if batches:
                m.init_walkers(batches[0])
        else:
            m = PCD(params, DataInfo(tuple(shape), True, 10), "cpu", seed)
            if batches:
                m.seed_chains(batches[0])
                m.chains_seeded = True
                m.loss_negatives(int(params["n_chains"]))
        for k, batch in enumerate(batches, start=1):
            m.train_step(batch, k)
            if method == "jarzynski":
                lw = m.completed_log_weights()[0] if m.pending else m.log_w
                walkers = m.walkers
            else:
                lw, walkers = None, m.buffer
            snaps.append({"params": [p.detach().clone() for p in m.net.parameters()],
                          "walkers": walkers.detach().clone(), "log_w": None if lw is None else lw.detach().clone()})
    return m, snaps


def compare_cifar(ref: Path, method: str, updates: int = 3, n_walkers: int = 8, n_moved: int = 4, n_steps: int = 3,
                  burn_in: int = 2, batch_size: int = 8, seed: int = 0, ablations: bool = True) -> dict[str, Any]:
    """``jarzynski_cifar10`` / ``pcd_cifar10``: our update at config/paper.yaml's CIFAR-10 row
    (paper network: convnet n_f = 128, 11,031,809 parameters) against the notebook's."""
    jar = method == "jarzynski"
    variant = "jarzynski_multinomial" if jar else "pcd_minibatch"
    options = CIFAR_JARZYNSKI_OPTIONS if jar else CIFAR_PCD_OPTIONS
    from ebm_bench.methods.jarzynski import Jarzynski
    from ebm_bench.methods.pcd import PCD

    base = {**(Jarzynski if jar else PCD).defaults, **paper_params("cifar10", variant)}
    if jar:
        sizes = {"n_walkers": n_walkers, "n_moved": n_moved, "n_steps": n_steps, "burn_in_steps": burn_in,
                 "resample_from_step": 10**9}
    else:
        sizes = {"buffer_size": n_walkers, "n_chains": n_moved, "n_steps": n_steps, "burn_in_steps": burn_in}
    shape = (3, 32, 32)
    nf = int(base["net_params"]["nf"])
    gen = torch.Generator().manual_seed(seed + 1)
    batches = [torch.rand((batch_size, *shape), generator=gen, dtype=torch.float64) * 2 - 1 for _ in range(updates)]
    full = {**base, **options, **sizes}
    configs = ablation_configs(full, base, options) if ablations else [("reference options", full)]
    kind = "jarzynski" if jar else "pcd"
    # ours first (its constructor seeds the global generator for the network), then theirs
    probe = _ours_cifar(kind, full, shape, [], seed, None)[0]
    init = [p.detach().clone() for p in probe.net.parameters()]
    n_params = sum(p.numel() for p in init)
    notebook = "main_CIFAR_Jarzynski.ipynb" if jar else "main_CIFAR_PCD.ipynb"
    ref_snaps, tape0, info = _reference_cifar(ref, notebook, init, nf, batches, n_walkers, n_moved, n_steps,
                                              burn_in, seed)
    if not jar:
        for s_ in ref_snaps:
            s_["log_w"] = None
    rows = compare_rows(configs, lambda params, tape: _ours_cifar(kind, params, shape, batches, seed, tape),
                         ref_snaps, tape0, options)
    return {"method": f"{method}_cifar10", "updates": updates, "n_walkers": n_walkers, "n_moved": n_moved,
            "n_steps": n_steps, "burn_in_steps": burn_in,
            "network": f"convnet n_f {nf} = CIFAR-10_code Paper_net(n_f={nf}), {n_params:,} parameters",
            "reference": info, "reference_grad_norms": [s_["grad_norm"] for s_ in ref_snaps],
            "data": f"{updates} batches of {batch_size} uniform[-1, 1] images 3x32x32 (same tensors to both)",
            "rows": rows}


def compare_jarzynski_cifar10(ref: Path, **kw) -> dict[str, Any]:
    return compare_cifar(ref, "jarzynski", **kw)


def compare_pcd_cifar10(ref: Path, **kw) -> dict[str, Any]:
    return compare_cifar(ref, "pcd", **kw)
