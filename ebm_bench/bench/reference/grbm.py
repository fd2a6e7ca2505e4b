"""``grbm``: our GRBM update (methods/grbm.py with samplers/gibbs_langevin.py) against the
authors' code of Liao et al. (2022), "Gaussian-Bernoulli RBMs without tears",
github.com/DSL-Lab/GRBM (paper 004's GRBM baseline; docs/reference-equivalence.md, rows
25-36).

Nothing of it is copied. At run time, from the clone:

- ``grbm.py`` is imported and its ``GRBM`` runs unchanged. Its one import of the clone's
  ``utils.py`` (``from utils import cosine_schedule``, checked once) is served by that one
  function of ``utils.py``, exec'd alone (located by AST, checked once): ``utils.py`` itself
  imports seaborn and matplotlib for its plots.
- ``config/mnist.json`` gives every hyperparameter (sizes may be reduced by the caller).
- ``main.py`` is not imported (it loads MNIST and fixes the default dtype to float32); its
  statements that build the update are exec'd, each located by AST and checked to be there
  once: in ``train_model`` the ``model = GRBM(...)`` line, the optimiser and scheduler lines
  (``param_wd, param_no_wd = [], []`` to ``scheduler = ...``: SGD, no momentum, weight decay
  on W only, CosineAnnealingLR over the epochs) and the epoch loop's
  ``set_Langevin_adjust_step`` statement (at epoch 1); and the ``train`` function (zero_grad,
  ``CD_grad``, ``clip_grad_norm_``, step), run on the comparison's batches with ``tqdm``
  the identity and ``config['cuda']`` false.

Noise: the reference draws from torch's global generator exactly as it always does; its
draws are recorded (:func:`~.common.recording`: ``torch.randn_like``, the chains' start and
every Langevin step's noise; ``torch.bernoulli``, every hidden draw, as the uniform that
gives the same outcome under our ``h = (u < p)``) and fed to our update in the same roles.
Observed without changing the reference: its chains (``Gibbs_Langevin_sampling_vh``'s return
value, wrapped on the instance) and its parameters after each optimiser step (``step``
wrapped on the instance).
"""

from __future__ import annotations

import ast
import contextlib
import json
import math
import sys
import textwrap
import time
import types
from pathlib import Path
from typing import Any

import torch

from ebm_bench.bench.reference.common import Tape, ablation_configs, compare_rows, load_py, paper_params, recording, replaying

MNIST_TRAIN_SIZE = 60000  # torchvision's MNIST training split (main.py: datasets.MNIST(train=True))
# option groups that travel together in one ablation row (the first names the row)
TOGETHER = {"reference_temperature_quirk": ("reference_temperature_quirk", "step_size"),
            "lr_schedule_every": ("lr_schedule_every", "lr_decay_steps"),
            "pixel_mean": ("pixel_mean", "pixel_std")}


def source_of(path: Path, text: str, node: ast.AST) -> str:
    return textwrap.dedent(ast.get_source_segment(text, node, padded=True))


def one(nodes: list, what: str, path: Path):
    if len(nodes) != 1:
        raise ValueError(f"{path.name}: expected {what} exactly once, found {len(nodes)}; the reference changed")
    return nodes[0]


def utils_module(ref: Path) -> types.ModuleType:
    """A ``utils`` module holding only the clone's ``cosine_schedule`` (what grbm.py imports)."""
    path = ref / "utils.py"
    text = path.read_text()
    tree = ast.parse(text)
    fn = one([n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "cosine_schedule"],
             "def cosine_schedule", path)
    mod = types.ModuleType("utils")
    mod.math = math
    exec(compile(source_of(path, text, fn), str(path), "exec"), mod.__dict__)
    return mod


def load_grbm(ref: Path) -> types.ModuleType:
    path = ref / "grbm.py"
    imports = [ln for ln in path.read_text().splitlines() if "utils" in ln and "import" in ln]
    if imports != ["from utils import cosine_schedule"]:
        raise ValueError(f"{path.name}: expected its one utils import to be 'from utils import cosine_schedule', "
                         f"found {imports}; the reference changed")
    saved = sys.modules.get("utils")
    sys.modules["utils"] = utils_module(ref)
    try:
        return load_py(path, "_ref_grbm")
    finally:
        if saved is None:
            sys.modules.pop("utils", None)
        else:
            sys.modules["utils"] = saved


def main_pieces(ref: Path) -> dict[str, str]:
    """The statements of main.py that build and run the update (each checked once)."""
    path = ref / "main.py"
    text = path.read_text()
    tree = ast.parse(text)
    fns = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    for name in ("train", "train_model"):
        if name not in fns:
            raise ValueError(f"{path.name}: expected a function {name}(); the reference changed")
    body = fns["train_model"].body

    def assigns(name: str) -> list[int]:
        return [i for i, s in enumerate(body) if isinstance(s, ast.Assign)
                and any(ast.unparse(t) == name for t in s.targets)]

    i_model = one(assigns("model"), "model = GRBM(...) in train_model", path)
    i_from = one(assigns("(param_wd, param_no_wd)"), "param_wd, param_no_wd = [], [] in train_model", path)
    i_to = one(assigns("scheduler"), "scheduler = ... in train_model", path)
    loop = one([s for s in body if isinstance(s, ast.For) and ast.unparse(s.target) == "epoch"
                and "set_Langevin_adjust_step" in ast.unparse(s)], "the training epoch loop of train_model", path)
    adjust = one([s for s in loop.body if isinstance(s, ast.If) and "set_Langevin_adjust_step" in ast.unparse(s)],
                 "the set_Langevin_adjust_step statement of the epoch loop", path)
    model_src = source_of(path, text, body[i_model])
    for literal in ("is_anneal_Langevin=True",):
        if model_src.count(literal) != 1:
            raise ValueError(f"{path.name}: expected {literal!r} in the GRBM(...) line; the reference changed")
    opt_src = "\n".join(source_of(path, text, s) for s in body[i_from:i_to + 1])
    for literal in ("optim.SGD(", "momentum=0.0", "CosineAnnealingLR("):
        if opt_src.count(literal) != 1:
            raise ValueError(f"{path.name}: expected {literal!r} once in the optimiser lines; the reference changed")
    return {"model": model_src, "optimizer": opt_src, "adjust": source_of(path, text, adjust),
            "train": source_of(path, text, fns["train"])}


def reference_config(ref: Path, n_hidden: int | None, gibbs_steps: int | None) -> dict[str, Any]:
    path = ref / "config" / "mnist.json"
    cfg = json.loads(path.read_text())
    if cfg["inference_method"] != "Gibbs-Langevin":
        raise ValueError(f"{path}: inference_method {cfg['inference_method']!r}; the comparison is of Gibbs-Langevin")
    if float(cfg["wd"]) != 0.0:
        raise ValueError(f"{path}: wd = {cfg['wd']}; our GRBM has no weight decay (the reference's is on W only)")
    cfg["visible_size"] = cfg["height"] * cfg["width"] * cfg["channel"]  # as train_model sets it
    cfg["cuda"] = False
    cfg["paper_hidden_size"], cfg["paper_CD_step"] = cfg["hidden_size"], cfg["CD_step"]
    if n_hidden:
        cfg["hidden_size"] = int(n_hidden)
    if gibbs_steps:
        cfg["CD_step"] = int(gibbs_steps)
    return cfg


def reference_options(cfg: dict[str, Any], batch_size: int) -> dict[str, Any]:
    """The reference's update as options of our ``grbm`` (values read from config/mnist.json;
    SGD without momentum, the cosine Langevin schedule and the N(0, I) start from main.py /
    grbm.py, checked in :func:`main_pieces`)."""
    per_epoch = math.ceil(MNIST_TRAIN_SIZE / batch_size)  # DataLoader(shuffle=True), drop_last False
    return {
        "step_size": float(cfg["Langevin_eta"]),  # eta = Langevin_eta * mean(sigma^2) ...
        "reference_temperature_quirk": True,      # ... with dE/dv / B and noise sqrt(2 eta): T = B
        "step_schedule": "cosine",                # is_anneal_Langevin=True
        "langevin_steps": int(cfg["Langevin_step"]),
        "neg_burn_in": int(cfg["CD_burnin"]),     # negatives: every Gibbs state from CD_burnin on
        "init_var": float(cfg["init_var"]),
        "init_std": 1.0,                          # v_neg = torch.randn_like(v)
        "optimizer": "sgd",
        "momentum": 0.0,
        "lr": float(cfg["lr"]),
        "grad_clip_norm": float(cfg["clip_norm"]),
        "lr_schedule_every": per_epoch,           # CosineAnnealingLR(T_max = epochs) stepped per epoch
        "lr_decay_steps": per_epoch * int(cfg["epochs"]),
        "pixel_mean": [float(v) for v in cfg["img_mean"]],  # Normalize(img_mean, img_std) of [0, 1] pixels
        "pixel_std": [float(v) for v in cfg["img_std"]],
    }


def reference_grbm(ref: Path, cfg: dict[str, Any], ours0: list[torch.Tensor], batches: list[torch.Tensor],
                   seed: int) -> tuple[list[dict[str, Any]], Tape, dict[str, Any]]:
    """len(batches) updates of the reference's ``train``; its draws recorded."""
    mod = load_grbm(ref)
    pieces = main_pieces(ref)
    ns: dict[str, Any] = {"GRBM": mod.GRBM, "config": cfg, "optim": torch.optim, "torch": torch, "nn": torch.nn,
                          "tqdm": lambda it: it, "epoch": 1}
    exec(compile(pieces["model"], "main.py#train_model: model = GRBM(...)", "exec"), ns)
    model = ns["model"]
    with torch.no_grad():
        for p, q in zip((model.W, model.b, model.mu, model.log_var), ours0, strict=True):
            if p.shape != q.shape:
                raise ValueError(f"GRBM parameter {tuple(p.shape)} where ours has {tuple(q.shape)}")
            p.copy_(q)
    exec(compile(pieces["optimizer"], "main.py#train_model: optimiser, scheduler", "exec"), ns)
    exec(compile(pieces["adjust"], "main.py#train_model: set_Langevin_adjust_step", "exec"), ns)  # epoch 1
    exec(compile(pieces["train"], "main.py#train", "exec"), ns)
    opt = ns["optimizer"]
    chains: list[list] = []
    norms: list[float] = []
    snaps: list[dict[str, Any]] = []
    sampling, cd_grad, step = model.Gibbs_Langevin_sampling_vh, model.CD_grad, opt.step

    def observed_sampling(*a, **k):
        out = sampling(*a, **k)
        chains[:] = [out]  # this update's chains only (memory: 100 Gibbs states of B x 4096 h each)
        return out

    def observed_cd_grad(*a, **k):  # the gradient norm before train's clip_grad_norm_
        out = cd_grad(*a, **k)
        norms.append(float(torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters()))))
        return out

    def observed_step(*a, **k):
        out = step(*a, **k)
        snaps.append({"params": [p.detach().clone() for p in (model.W, model.b, model.mu, model.log_var)],
                      "walkers": torch.cat([v for v, _ in chains[-1]]).detach().clone(), "log_w": None,
                      "lr": float(opt.param_groups[0]["lr"]), "grad_norm": norms[-1]})
        print(f"    grbm: reference update {len(snaps)}/{len(batches)} done ({time.time() - t0:.0f} s)", flush=True)
        return out

    model.Gibbs_Langevin_sampling_vh, model.CD_grad, opt.step = observed_sampling, observed_cd_grad, observed_step
    tape = Tape()
    torch.manual_seed(seed)
    t0 = time.time()
    with recording(tape):
        ns["train"](model, [(b, None) for b in batches], opt, cfg)
    metropolis = max(0, int(cfg["CD_step"]) - int(model.Langevin_adjust_step))
    info = {"config": "config/mnist.json", "hidden_size": cfg["hidden_size"], "CD_step": cfg["CD_step"],
            "paper_hidden_size": cfg["paper_hidden_size"], "paper_CD_step": cfg["paper_CD_step"],
            "Langevin_step": cfg["Langevin_step"], "Langevin_eta": cfg["Langevin_eta"], "lr": cfg["lr"],
            "clip_norm": cfg["clip_norm"], "epochs": cfg["epochs"], "init_var": cfg["init_var"],
            "Langevin_adjust_step": int(model.Langevin_adjust_step),
            "metropolis_adjusted_gibbs_steps": metropolis, "lr_per_update": [s_["lr"] for s_ in snaps]}
    return snaps, tape, info


def ours_grbm(params: dict[str, Any], shape, batches, seed: int, tape: Tape | None):
    from ebm_bench.methods.base import DataInfo
    from ebm_bench.methods.grbm import GRBM

    m = GRBM(params, DataInfo(tuple(shape), True, 10), "cpu", seed)
    chains: list = []
    train_chains = m.sampler.train_chains

    def observed(*a, **k):
        out = train_chains(*a, **k)
        chains[:] = [out]  # this update's chains only
        return out

    m.sampler.train_chains = observed
    snaps = []
    t0 = time.time()
    with replaying(tape) if tape is not None else contextlib.nullcontext():
        for k, batch in enumerate(batches, start=1):
            m.train_step(batch, k)
            print(f"    grbm: our update {k}/{len(batches)} done ({time.time() - t0:.0f} s)", flush=True)
            xs, _ = chains[-1]
            snaps.append({"params": [p.detach().clone() for p in (m.model.W, m.model.b, m.model.mu, m.model.log_var)],
                          "walkers": torch.cat([x.flatten(1) for x in xs]).detach().clone(), "log_w": None})
    return m, snaps


def compare_grbm(ref: Path, updates: int = 3, batch_size: int = 64, n_hidden: int | None = None,
                 gibbs_steps: int | None = None, seed: int = 0, ablations: bool = True) -> dict[str, Any]:
    """``grbm``: our update at config/paper.yaml's MNIST ``grbm`` row with the reference's
    options against the reference's ``train`` at config/mnist.json (sizes as given: hidden
    units and Gibbs steps default to the json's 4096 and 100; B = ``batch_size``)."""
    from ebm_bench.methods.grbm import GRBM

    cfg = reference_config(ref, n_hidden, gibbs_steps)
    shape = (int(cfg["channel"]), int(cfg["height"]), int(cfg["width"]))
    base = {**GRBM.defaults, **paper_params("mnist", "grbm")}
    sizes = {"n_hidden": int(cfg["hidden_size"]), "gibbs_steps": int(cfg["CD_step"])}
    options = reference_options(cfg, batch_size)
    full = {**base, **options, **sizes}
    configs = ablation_configs(full, base, options, together=TOGETHER) if ablations \
        else [("reference options", full)]
    # MNIST-like batches of uniform [0, 1] pixels p: the reference gets them as main.py's
    # transform gives them, (p - img_mean) / img_std; ours as the suite's loaders give them,
    # x = 2 p - 1 in [-1, 1] (pixel_mean / pixel_std map them to the reference's inside ours)
    mean, std = float(cfg["img_mean"][0]), float(cfg["img_std"][0])
    gen = torch.Generator().manual_seed(seed + 1)
    pixels = [torch.rand((batch_size, *shape), generator=gen, dtype=torch.float64) for _ in range(updates)]
    ref_batches = [(p - mean) / std for p in pixels]
    batches = [2.0 * p - 1.0 for p in pixels]
    probe = ours_grbm(full, shape, [], seed, None)[0]
    init = [p.detach().clone() for p in (probe.model.W, probe.model.b, probe.model.mu, probe.model.log_var)]
    ref_snaps, tape0, info = reference_grbm(ref, cfg, init, ref_batches, seed)
    # the reference draws its visible noise for v = x flattened (B, 784), ours for x (B, 1, 28, 28):
    # v is x.flatten(1), so the same draw in the same role is the reshaped one
    tape0.q["normal"] = type(tape0.q["normal"])(t.reshape(len(t), *shape) for t in tape0.q["normal"])
    rows = compare_rows(configs, lambda params, tape: ours_grbm(params, shape, batches, seed, tape),
                        ref_snaps, tape0, options)
    d, h = math.prod(shape), sizes["n_hidden"]
    return {"method": "grbm", "updates": updates, "n_walkers": batch_size, "n_moved": batch_size,
            "burn_in_steps": 0,
            "network": f"GRBM {d} visible x {h} hidden ({d * h + h + 2 * d:,} parameters), "
                       f"{sizes['gibbs_steps']} Gibbs x {options['langevin_steps']} Langevin steps per update",
            "reference": info, "reference_grad_norms": [s_["grad_norm"] for s_ in ref_snaps],
            "data": f"{updates} batches of {batch_size} uniform [0, 1] pixel images {'x'.join(map(str, shape))}: "
                    f"(p - img_mean) / img_std to the reference (mnist.json), 2 p - 1 to ours",
            "walkers": "the negative chains: every Gibbs state of the update's chains, concatenated",
            "rows": rows}
