"""``ebm-bench bench reference --method NAME --reference-dir DIR``: our update against the
authors' code, side by side, update by update (issue 20; docs/reference-equivalence.md).

The reference is github.com/submissionx12/EBMs_Jarzynski (paper 003); nothing of it is
copied here. At run time its files are imported from ``--reference-dir`` (``.py``) or their
code cells exec'd (``.ipynb``, only the cells named below, each checked to be there once),
and run unchanged; only their Lightning scaffolding is replaced by the few lines of its
loop they need (zero_grad, ``training_step``, backward, ``gradient_clip_val`` read from the
notebook, optimiser step), and their module-level ``device`` is the CPU.

Both run on CPU in float64 (``torch.set_default_dtype``), at the paper's network, from the
same initial parameters (ours are copied into theirs), on the same data batches. Noise: the
reference draws from torch's global generator exactly as it always does (its own calls, in
its own order); every draw it makes is recorded (``torch.rand``: initial walkers,
``torch.multinomial``: the walker mini-batches, ``Tensor.normal_``: the ULA noise) and our
update is fed the same draws in the same roles, by replacing ``torch.rand`` /
``torch.randn`` / ``torch.randperm`` while our update runs (a ``randperm`` gets the
recorded mini-batch first). The reference is not changed at all; a run reports whether our
update consumed exactly the recorded draws.

Reported after each update: the largest relative difference of the parameters and of the
walkers (max |ours - theirs| / max |theirs| per tensor, the largest over tensors), and the
largest absolute difference of the log weights. ``jarzynski_mnist`` is run with every
option the reference needs set (row ``reference options``) and, for each such option, with
that option back at the value ``config/paper.yaml`` runs (the other rows): a row that stays
at ~1e-12 says that option does not act within the compared updates.

``jarzynski_cifar10`` / ``pcd_cifar10``: the ``DeepEnergyModel`` cell of
``CIFAR-10_code/main_CIFAR_{Jarzynski,PCD}.ipynb`` (its ``Paper_net`` at the paper's
n_f = 128) with ``CIFAR-10_code/Sampler.py``; the sampler lines of its ``__init__`` (which
otherwise loads CIFAR-10 and the FID network) run here, each checked to be in the cell once.
``gmm``: ``GMM_code/GMM.py``, trimmed as ``bench gmm_reference`` trims it plus two hooks
(checked once each) that report its state; its ULA noise is read from its ``noise`` buffer.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import re
import subprocess
import sys
import types
from collections import deque
from pathlib import Path
from typing import Any, Callable

import torch

METHODS = ("jarzynski_mnist", "jarzynski_cifar10", "pcd_cifar10", "gmm")
TOL = 1e-6

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


# --- loading the reference ---------------------------------------------------------------
def reference_commit(ref_dir: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ref_dir), "rev-parse", "HEAD"], capture_output=True, text=True)
        return out.stdout.strip() or None
    except OSError:
        return None


def find_reference(reference_dir: str | Path | None, sub: str) -> Path | None:
    """The clone (folder holding ``sub``), from ``reference_dir`` or EBM_BENCH_REFERENCE_DIR."""
    import os

    d = reference_dir or os.environ.get("EBM_BENCH_REFERENCE_DIR")
    if not d:
        return None
    d = Path(d)
    for cand in (d, d.parent):
        if (cand / sub).is_dir():
            return cand
    return None


def load_py(path: Path, name: str) -> types.ModuleType:
    """Import one reference file under a private name (its folder first on sys.path, so its
    own sibling imports resolve)."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(path.parent))
    return mod


def notebook_cell(path: Path, marker: str) -> str:
    """The one code cell of a notebook that contains ``marker`` (checked: exactly one)."""
    cells = [("".join(c["source"])) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    hits = [c for c in cells if marker in c]
    if len(hits) != 1:
        raise ValueError(f"{path.name}: expected one code cell containing {marker!r}, found {len(hits)}; "
                         f"the reference changed")
    return hits[0]


class _LightningStub(torch.nn.Module):
    """What the reference's LightningModule subclass uses of Lightning in training_step."""

    current_epoch = 0

    def save_hyperparameters(self, *a, **k) -> None:  # pragma: no cover - __init__ is not run
        pass

    def log(self, *a, **k) -> None:
        pass


# --- noise: recorded from the reference, replayed to ours ----------------------------------
class Tape:
    """Draws recorded by kind: 'rand' (uniform), 'normal' (standard normal), 'subset'."""

    def __init__(self) -> None:
        self.q: dict[str, deque] = {"rand": deque(), "normal": deque(), "subset": deque()}
        self.extra: dict[str, int] = {}  # draws of ours the reference does not make (replaying passthrough)

    def left(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.q.items()}

    def pop(self, kind: str, shape=None) -> torch.Tensor:
        if not self.q[kind]:
            raise RuntimeError(f"our update asked for more {kind!r} draws than the reference made")
        t = self.q[kind].popleft()
        if shape is not None and tuple(t.shape) != tuple(shape):
            raise RuntimeError(f"{kind!r} draw of shape {tuple(shape)} where the reference drew {tuple(t.shape)}")
        return t.clone()


@contextlib.contextmanager
def recording(tape: Tape):
    """Record the reference's draws from the global generator (its calls run unchanged)."""
    rand, multinomial, normal_ = torch.rand, torch.multinomial, torch.Tensor.normal_

    def rec_rand(*a, **k):
        out = rand(*a, **k)
        tape.q["rand"].append(out.detach().clone())
        return out

    def rec_multinomial(inp, num_samples, replacement=False, **k):
        out = multinomial(inp, num_samples, replacement, **k)
        tape.q["subset"].append(out.detach().clone())
        return out

    def rec_normal_(self, mean=0.0, std=1.0, **k):
        out = normal_(self, mean, std, **k)
        tape.q["normal"].append(((self.detach() - mean) / std).clone())
        return out

    torch.rand, torch.multinomial, torch.Tensor.normal_ = rec_rand, rec_multinomial, rec_normal_
    try:
        yield tape
    finally:
        torch.rand, torch.multinomial, torch.Tensor.normal_ = rand, multinomial, normal_


@contextlib.contextmanager
def replaying(tape: Tape, passthrough: tuple[str, ...] = ()):
    """Feed the recorded draws to our code (its generator arguments are ignored). A kind in
    ``passthrough`` whose recorded draws are used up is drawn for real and counted in
    ``tape.extra`` (our PCD's restart coins and restart chains, which reinit_prob = 0 discards)."""
    rand, randn, randperm = torch.rand, torch.randn, torch.randperm

    def shape_of(a):
        return tuple(a[0]) if len(a) == 1 and isinstance(a[0], (tuple, list, torch.Size)) else tuple(a)

    def rp_rand(*a, **k):
        if "rand" in passthrough and not tape.q["rand"]:
            tape.extra["rand"] = tape.extra.get("rand", 0) + 1
            return rand(*a, **k)
        return tape.pop("rand", shape_of(a)).to(k.get("dtype") or torch.get_default_dtype())

    def rp_randn(*a, **k):
        return tape.pop("normal", shape_of(a)).to(k.get("dtype") or torch.get_default_dtype())

    def rp_randperm(n, **k):
        sub = tape.pop("subset")
        rest = torch.ones(n, dtype=torch.bool)
        rest[sub] = False
        return torch.cat([sub, torch.arange(n)[rest]])

    torch.rand, torch.randn, torch.randperm = rp_rand, rp_randn, rp_randperm
    try:
        yield tape
    finally:
        torch.rand, torch.randn, torch.randperm = rand, randn, randperm


# --- comparison ------------------------------------------------------------------------
def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    scale = float(b.abs().max())
    return float((a - b).abs().max()) / (scale if scale > 0 else 1.0)


def params_rel_diff(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> float:
    return max(rel_diff(a, b) for a, b in zip(ours, theirs, strict=True))


# --- jarzynski_mnist ---------------------------------------------------------------------
def paper_params(dataset: str, variant: str) -> dict[str, Any]:
    """The method parameters config/paper.yaml runs for (dataset, variant)."""
    from .config import run_spec

    text = (Path(__file__).resolve().parents[1] / "config" / "paper.yaml").read_text()
    try:
        import yaml

        cfg = yaml.safe_load(text)
    except ImportError:  # pragma: no cover
        from . import mini_yaml

        cfg = mini_yaml.load(text)
    return dict(run_spec(cfg, dataset, variant, 0)["method_params"])


def _lightning_updates(model, batches, clip_val: float) -> list[dict]:
    """The reference's training steps as PyTorch Lightning runs them (zero_grad,
    training_step, backward, clip_grad_norm_, step), with a snapshot after each."""
    snaps = []
    (opt,), _ = model.configure_optimizers()
    for k, batch in enumerate(batches):
        opt.zero_grad()
        loss = model.training_step((batch, None), k)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(model.parameters()), clip_val)
        opt.step()
        snaps.append({"params": [p.detach().clone() for p in model.cnn.parameters()],
                      "walkers": model.sampler.examples.detach().clone(),
                      "log_w": model.sampler.log_weights.detach().clone(),
                      "grad_norm": float(torch.sqrt(sum((p.grad ** 2).sum() for p in model.cnn.parameters())))})
    return snaps


def _reference_mnist(ref: Path, ours0: list[torch.Tensor], batches: list[torch.Tensor], n_walkers: int,
                     n_moved: int, burn_in: int, seed: int) -> tuple[list[dict[str, torch.Tensor]], Tape, dict]:
    """K updates of the reference MNIST code; its draws recorded."""
    code = ref / "MNIST_code"
    cnn_mod = load_py(code / "CNNModel.py", "_ref_mnist_cnn")
    sampler_mod = load_py(code / "Sampler.py", "_ref_mnist_sampler")
    sampler_mod.device = torch.device("cpu")
    nb = code / "main.ipynb"
    cell = notebook_cell(nb, "class DeepEnergyModel(pl.LightningModule)")
    trainer = notebook_cell(nb, "def train_model(")
    m = re.findall(r"gradient_clip_val\s*=\s*([0-9.eE+-]+)", trainer)
    if len(m) != 1:
        raise ValueError("main.ipynb: expected one gradient_clip_val in train_model")
    clip_val = float(m[0])
    ns: dict[str, Any] = {
        "pl": types.SimpleNamespace(LightningModule=_LightningStub), "torch": torch, "nn": torch.nn,
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
        snaps += _lightning_updates(model, batches, clip_val)
    info = {"hyperparameters": {k: hp[k] for k in ("alpha", "lr", "steps", "step_size", "num_batch", "noise_level",
                                                   "sample_size", "sampler_batch", "resample_std")},
            "gradient_clip_val": clip_val}
    return snaps, tape, info


def _ours_mnist(params: dict[str, Any], shape, batches, seed: int, tape: Tape | None):
    from .methods.base import DataInfo
    from .methods.jarzynski import Jarzynski

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


def compare_jarzynski_mnist(ref: Path, updates: int = 3, n_walkers: int = 48, n_moved: int = 16,
                            burn_in: int = 10, seed: int = 0, ablations: bool = True) -> dict[str, Any]:
    base = paper_params("mnist_236", "jarzynski_multinomial")
    sizes = {"n_walkers": n_walkers, "n_moved": n_moved, "burn_in_steps": burn_in, "resample_from_step": 10**9}
    shape = (1, 28, 28)
    gen = torch.Generator().manual_seed(seed + 1)
    batches = [torch.rand((128, *shape), generator=gen, dtype=torch.float64) * 2 - 1 for _ in range(updates)]
    full = {**base, **MNIST_REFERENCE_OPTIONS, **sizes}
    rows: dict[str, Any] = {}
    configs = [("reference options", full)]
    if ablations:
        for key in MNIST_REFERENCE_OPTIONS:
            if key in ("clamp", "weights_ignore_clamp", "lr_decay_steps", "lr_final_factor"):
                continue  # travel with clamp_rule / lr_schedule_every
            alt = dict(full)
            if key == "clamp_rule":
                alt.update(clamp=base["clamp"], clamp_rule=base["clamp_rule"],
                           weights_ignore_clamp=base["weights_ignore_clamp"])
            elif key == "lr_schedule_every":
                for k2 in ("lr_schedule_every", "lr_decay_steps", "lr_final_factor"):
                    alt[k2] = base[k2]
            else:
                alt[key] = base[key]
            if alt == full:
                continue
            if alt["weights_scheme"] == "eq5" and alt["n_minibatches"] > 1 and alt["grad_walkers"] == "moved":
                alt["grad_walkers"] = "subset"
            changed = ", ".join(f"{k}={alt[k]}" for k in MNIST_REFERENCE_OPTIONS if alt[k] != full[k])
            configs.append((changed, alt))
    ref_snaps = info = None
    for label, params in configs:
        # ours first (its constructor seeds the global generator for the network), then theirs
        probe = _ours_mnist(params, shape, [], seed, None)[0]
        init = [p.detach().clone() for p in probe.net.parameters()]
        if ref_snaps is None:
            ref_snaps, tape0, info = _reference_mnist(ref, init, batches, n_walkers, n_moved, burn_in, seed)
        tape = Tape()
        tape.q = {k: deque(v) for k, v in tape0.q.items()}
        try:
            _, snaps = _ours_mnist(params, shape, batches, seed, tape)
        except RuntimeError as e:
            rows[label] = {"error": str(e)}
            continue
        per = []
        for k, (o, r) in enumerate(zip(snaps, ref_snaps), start=1):
            per.append({"update": k,
                        "max_rel_diff_params": params_rel_diff(o["params"], r["params"]),
                        "max_rel_diff_walkers": rel_diff(o["walkers"], r["walkers"]),
                        "max_abs_diff_log_weights": float((o["log_w"].double() - r["log_w"].double()).abs().max())})
        rows[label] = {"updates": per, "draws_left_unused": tape.left(),
                       "options": {k: params[k] for k in MNIST_REFERENCE_OPTIONS}}
    return {"method": "jarzynski_mnist", "updates": updates, "n_walkers": n_walkers, "n_moved": n_moved,
            "burn_in_steps": burn_in, "network": "cnn_silu hidden_features 32 (MNIST_code/CNNModel.py), 76,993 parameters",
            "reference": info, "reference_grad_norms": [s["grad_norm"] for s in ref_snaps],
            "data": f"{updates} batches of 128 uniform[-1, 1] images 1x28x28 (same tensors to both)",
            "rows": rows}


# --- CIFAR-10: jarzynski_cifar10, pcd_cifar10 ----------------------------------------------
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
# options that travel together in one ablation row (the first names the row)
_TOGETHER = {"clamp_rule": ("clamp", "clamp_rule", "weights_ignore_clamp"),
             "lr_schedule_every": ("lr_schedule_every", "lr_decay_steps", "lr_final_factor")}
_FOLLOWERS = {"clamp", "weights_ignore_clamp", "lr_decay_steps", "lr_final_factor"}


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
    trainer = notebook_cell(nb, "def train_model(")
    m = re.findall(r"gradient_clip_val\s*=\s*([0-9.eE+-]+)", trainer)
    if len(m) != 1:
        raise ValueError(f"{nb.name}: expected one gradient_clip_val in train_model")
    clip_val = float(m[0])
    ns: dict[str, Any] = {
        "pl": types.SimpleNamespace(LightningModule=_LightningStub), "torch": torch, "nn": torch.nn,
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
        snaps += _lightning_updates(model, batches, clip_val)
    info = {"notebook": notebook,
            "hyperparameters": {k: hp[k] for k in hp if k not in ("img_shape",)},
            "gradient_clip_val": clip_val, "Paper_net_n_f": nf}
    return snaps, tape, info


def _ours_cifar(method: str, params: dict[str, Any], shape, batches, seed: int, tape: Tape | None):
    from .methods.base import DataInfo
    from .methods.jarzynski import Jarzynski
    from .methods.pcd import PCD

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


def _ablation_configs(full: dict[str, Any], base: dict[str, Any], options: dict[str, Any]) -> list[tuple[str, dict]]:
    """Row 1 every option at the reference's value; then each option (group) back at paper.yaml's."""
    configs = [("reference options", full)]
    for key in options:
        if key in _FOLLOWERS:
            continue
        alt = dict(full)
        for k2 in _TOGETHER.get(key, (key,)):
            if k2 in options:
                alt[k2] = base[k2]
        if alt == full:
            continue
        changed = ", ".join(f"{k}={alt[k]}" for k in options if alt[k] != full[k])
        configs.append((changed, alt))
    return configs


def _compare_rows(configs, run_ours, ref_snaps, tape0, options) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for label, params in configs:
        tape = Tape()
        tape.q = {k: deque(v) for k, v in tape0.q.items()}
        try:
            _, snaps = run_ours(params, tape)
        except RuntimeError as e:
            rows[label] = {"error": str(e)}
            continue
        per = []
        for k, (o, r) in enumerate(zip(snaps, ref_snaps), start=1):
            per.append({"update": k,
                        "max_rel_diff_params": params_rel_diff(o["params"], r["params"]),
                        "max_rel_diff_walkers": rel_diff(o["walkers"], r["walkers"]),
                        "max_abs_diff_log_weights": (None if o["log_w"] is None else
                                                     float((o["log_w"].double() - r["log_w"].double()).abs().max()))})
        rows[label] = {"updates": per, "draws_left_unused": tape.left(), "draws_not_in_reference": dict(tape.extra),
                       "options": {k: params[k] for k in options}}
    return rows


def compare_cifar(ref: Path, method: str, updates: int = 3, n_walkers: int = 8, n_moved: int = 4, n_steps: int = 3,
                  burn_in: int = 2, batch_size: int = 8, seed: int = 0, ablations: bool = True) -> dict[str, Any]:
    """``jarzynski_cifar10`` / ``pcd_cifar10``: our update at config/paper.yaml's CIFAR-10 row
    (paper network: convnet n_f = 128, 11,031,809 parameters) against the notebook's."""
    jar = method == "jarzynski"
    variant = "jarzynski_multinomial" if jar else "pcd_minibatch"
    options = CIFAR_JARZYNSKI_OPTIONS if jar else CIFAR_PCD_OPTIONS
    from .methods.jarzynski import Jarzynski
    from .methods.pcd import PCD

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
    configs = _ablation_configs(full, base, options) if ablations else [("reference options", full)]
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
    rows = _compare_rows(configs, lambda params, tape: _ours_cifar(kind, params, shape, batches, seed, tape),
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


# --- gmm: GMM_code/GMM.py against App. B.1 -------------------------------------------------
def _gmm_hooks() -> list[tuple[str, str]]:
    """Literal substitutions (each checked to occur once) that let the script report its state:
    the initial walkers and parameters, and after each update the parameters, walkers, log
    weights and the noise it drew (its ``noise`` buffer after ``noise.normal_``)."""
    return [
        ("        #counter for number of resampling occurred in Jarzynski algo\n        count=0\n",
         "        #counter for number of resampling occurred in Jarzynski algo\n        count=0\n"
         "        _bench_init(x, a[0], z[0])\n"),
        ("            #store analytical log Z\n            CEte[i+1] =",
         "            _bench_snap(i, x, logw, a[i+1], z[i+1], noise, varian[i], count)\n"
         "            #store analytical log Z\n            CEte[i+1] ="),
    ]


def _reference_gmm(ref: Path, updates: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run GMM_code/GMM.py (trimmed as ``bench gmm_reference`` trims it, plus the two hooks)."""
    import io
    import os
    import tempfile

    from .gmm_reference import trimmed_reference

    text = trimmed_reference((ref / "GMM_code" / "GMM.py").read_text(), updates)
    for old, new in _gmm_hooks():
        if text.count(old) != 1:
            raise ValueError(f"GMM.py changed: expected {old!r} exactly once")
        text = text.replace(old, new)
    init: dict[str, Any] = {}
    snaps: list[dict[str, Any]] = []

    def _bench_init(x, a0, z0):
        init.update(walkers=x.detach().clone(), a=a0.detach().clone(), z=z0.detach().clone())

    def _bench_snap(i, x, logw, a, z, noise, varian, count):
        snaps.append({"walkers": x.detach().clone(), "log_w": logw.detach().clone(), "a": a.detach().clone(),
                      "z": z.detach().clone(), "noise": noise.detach().clone(), "cv2_before": float(varian),
                      "resamplings": int(count)})

    ns: dict[str, Any] = {"__name__": "_ref_gmm", "_bench_init": _bench_init, "_bench_snap": _bench_snap}
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="ebm-bench-gmm-") as tmp:
        os.chdir(tmp)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(text, str(ref / "GMM_code" / "GMM.py"), "exec"), ns)
        finally:
            os.chdir(cwd)
    init["data"] = ns["x0"].detach().clone()
    init["dt"] = float(ns["dt"])
    return init, snaps


def compare_gmm(ref: Path, updates: int = 3, seed: int = 0, ablations: bool = True) -> dict[str, Any]:
    """``gmm``: our App. B.1 Jarzynski update (Alg. 1, full batch, N = n = 1e4, d = 50, the
    pipeline's ``reference`` convention) against GMM_code/GMM.py, from the script's own
    initial parameters, walkers and data; its ULA noise fed to ours."""
    from .experiments.gmm_teacher import variant_params
    from .methods.jarzynski import Jarzynski

    init, ref_snaps = _reference_gmm(ref, updates)
    base = dict(variant_params("reference")["jarzynski"])
    n, d = init["walkers"].shape
    base["n_walkers"] = n
    full = {**base, **GMM_REFERENCE_OPTIONS}
    configs = [("reference options", full)] + ([(f"{k}={Jarzynski.defaults[k]}", {**full, k: Jarzynski.defaults[k]})
                                                for k in GMM_REFERENCE_OPTIONS] if ablations else [])
    rows = {}
    for label, params in configs:
        rows[label] = _ours_gmm(params, init, ref_snaps, d, seed)
    return {"method": "gmm", "updates": updates, "n_walkers": n, "n_moved": n, "burn_in_steps": 0,
            "network": f"gmm_energy d = {d} (Eq. 15; the script's U with z of mode a frozen at 0)",
            "reference": {"dt": init["dt"], "n_data": len(init["data"])},
            "data": f"the script's own {len(init['data'])} teacher points (fed to ours)", "rows": rows}


GMM_REFERENCE_OPTIONS: dict[str, Any] = {
    "weights_aliased_positions": True,  # quirk 5: `xo = x` aliases the walkers: both kernels at X'
}


def _ours_gmm(params: dict[str, Any], init: dict[str, Any], ref_snaps: list[dict[str, Any]], d: int,
              seed: int) -> dict[str, Any]:
    from .methods.base import DataInfo
    from .methods.jarzynski import Jarzynski

    tape = Tape()
    tape.q["normal"] = deque(s_["noise"] for s_ in ref_snaps)
    m = Jarzynski(params, DataInfo((d,), False, None), "cpu", seed)
    x0 = init["data"]
    with torch.no_grad():
        m.net.a.copy_(init["a"][0])
        m.net.b.copy_(init["a"][1])
        m.net.z.copy_(init["z"][1] - init["z"][0])  # the script's z_0 of mode a is 0 and frozen
    m.init_walkers(x0)
    m.walkers = init["walkers"].clone()  # the script's start: N/2 walkers from each mode
    per = []
    with replaying(tape):
        for k, r in enumerate(ref_snaps, start=1):
            m.train_step(x0, k)
            lw = m.completed_log_weights()[0]
            per.append({"update": k,
                        "max_rel_diff_params": max(rel_diff(m.net.a, r["a"][0]), rel_diff(m.net.b, r["a"][1]),
                                                   rel_diff(m.net.z.reshape(1), (r["z"][1] - r["z"][0]).reshape(1))),
                        "max_rel_diff_walkers": rel_diff(m.walkers, r["walkers"]),
                        "max_abs_diff_log_weights": float((lw.double() - r["log_w"].double()).abs().max()),
                        "reference_cv2_before": r["cv2_before"], "reference_resamplings": r["resamplings"],
                        "our_resamplings": m.n_resamples})
    return {"updates": per, "draws_left_unused": tape.left(),
            "options": {k: params[k] for k in ("lr_times_h", "resampler", "resample_threshold",
                                               *GMM_REFERENCE_OPTIONS)}}


COMPARISONS: dict[str, tuple[str, Callable[..., dict[str, Any]]]] = {
    "gmm": ("GMM_code", compare_gmm),
    "jarzynski_mnist": ("MNIST_code", compare_jarzynski_mnist),
    "jarzynski_cifar10": ("CIFAR-10_code", compare_jarzynski_cifar10),
    "pcd_cifar10": ("CIFAR-10_code", compare_pcd_cifar10),
}


def run(method: str | None, reference_dir: str | None, updates: int | None, out: str | None,
        quick: bool = False) -> dict[str, Any] | None:
    names = [method] if method else list(COMPARISONS)
    unknown = [n for n in names if n not in COMPARISONS]
    if unknown:
        from .errors import ConfigError

        raise ConfigError(f"bench reference: unknown --method {unknown[0]!r}; known: {', '.join(COMPARISONS)}")
    old_dtype, old_threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    result: dict[str, Any] = {"tolerance": TOL, "methods": {}}
    try:
        for name in names:
            sub, fn = COMPARISONS[name]
            ref = find_reference(reference_dir, sub)
            if ref is None:
                print(f"  {name}: skipped: no reference checkout (pass --reference-dir to a clone of "
                      f"github.com/submissionx12/EBMs_Jarzynski, or set EBM_BENCH_REFERENCE_DIR)")
                continue
            result["reference_commit"] = reference_commit(ref)
            r = fn(ref, updates=int(updates or 3), ablations=not quick)
            result["methods"][name] = r
            print_table(r)
    finally:
        torch.set_default_dtype(old_dtype)
        torch.set_num_threads(old_threads)
    if not result["methods"]:
        return None
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "reference_equivalence.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        print(f"  wrote {Path(out) / 'reference_equivalence.json'}")
    return result


def print_table(r: dict[str, Any]) -> None:
    print(f"  {r['method']}: {r['updates']} updates, float64, CPU, N = {r.get('n_walkers')} walkers, "
          f"N' = {r.get('n_moved')}, burn-in {r.get('burn_in_steps')} steps; {r['network']}")
    print(f"  {'configuration (paper.yaml value)':45s} {'update':>6s} {'params (rel)':>13s} {'walkers (rel)':>13s} {'log w (abs)':>12s}")
    for label, row in r["rows"].items():
        if "error" in row:
            print(f"  {label:45s} error: {row['error']}")
            continue
        for u in row["updates"]:
            lw = u["max_abs_diff_log_weights"]
            print(f"  {label:45s} {u['update']:6d} {u['max_rel_diff_params']:13.2e} {u['max_rel_diff_walkers']:13.2e} "
                  f"{'n/a' if lw is None else format(lw, '.2e'):>12s}")
