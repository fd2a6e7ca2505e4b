"""``short_run``: our short-run update (methods/short_run.py) against Nijkamp et al.'s
(2019) public minimal script, github.com/enijkamp/short_run, ``train_cifar10_minimal.py``
(docs/reference-equivalence.md, rows 37-41).

Nothing of it is copied. The script is read from the clone and exec'd with these literal
substitutions, each checked to occur exactly once (:data:`SUBSTITUTIONS`): the CIFAR-10
download is replaced by the comparison's images (``p_d``), the number of updates, the
batch ``m`` and (where asked) ``K`` by the comparison's, its png ``plot`` by a no-op,
``t.FloatTensor`` (float32 whatever the default dtype) by ``t.Tensor`` (the default dtype,
float64 here), and two hooks are added: one after ``f = F()`` that copies our initial
parameters in, one after ``optim.step()`` that hands its state to the bench. Everything
else (its network ``F``, ``sample_p_d``, ``sample_q``, the loss, Adam) runs as written.

Sign: the script's ``f`` is the negative energy (``x += f'(x) + 0.01 xi``, loss
``-(f(data) - f(q))``); ours is U = ``convnet`` (the same layout). Our parameters are copied
into ``f`` with the last convolution negated, so f = -U exactly, and compared with that
layer's sign flipped back (Adam is odd in the gradient, so the negation is exact after
every update too).

Noise: the script's draws from torch's global generator are recorded (``Tensor.random_``:
the data indices of ``sample_p_d``; ``randn_like``: the data noise and every Langevin step's
noise; ``uniform_``: the chains' U[-1, 1] start) and fed to ours in the same roles; our
update is given the batch ``p_d[indices]`` the script drew.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from ebm_bench.bench.reference.common import Tape, ablation_configs, compare_rows, paper_params, recording, replaying

SCRIPT = "train_cifar10_minimal.py"


def substitutions(updates: int, m: int, k: int | None) -> list[tuple[str, str]]:
    subs = [
        ("p_d = t.stack([x[0] for x in tv.datasets.CIFAR10(root='data/cifar10', download=True, "
         "transform=transform)]).to(device)", "p_d = _bench_data"),
        ("n_i = 10**5", f"n_i = {int(updates)}"),
        ("m = 8**2", f"m = {int(m)}"),
        ("plot = lambda p, x: tv.utils.save_image(t.clamp(x, -1., 1.), p, normalize=True, nrow=sqrt(m))",
         "plot = lambda p, x: None"),
        ("t.FloatTensor(m, n_ch, im_sz, im_sz)", "t.Tensor(m, n_ch, im_sz, im_sz)"),
        ("f = F().to(device)\n", "f = F().to(device)\n_bench_init(f)\n"),
        ("    optim.step()\n", "    optim.step()\n    _bench_snap(f, x_q)\n"),
    ]
    if k is not None:
        subs.append(("K = 100\n", f"K = {int(k)}\n"))
    return subs


def script_settings(text: str) -> dict[str, Any]:
    """The script's own constants (sigma, K, n_f, Adam's rate and betas), each checked once."""
    want = {"sigma": "sigma = 3e-2", "K": "K = 100\n", "n_f": "n_f = 64", "lr": "lr=1e-4", "betas": "betas=[.9, .999]",
            "noise": "x_k.data += f_prime + 1e-2 * t.randn_like(x_k)", "init": ".uniform_(-1, 1)"}
    for key, literal in want.items():
        if text.count(literal) != 1:
            raise ValueError(f"{SCRIPT}: expected {literal!r} once ({key}); the reference changed")
    return {"sigma": 3e-2, "K": 100, "n_f": 64, "lr": 1e-4, "adam_beta1": 0.9, "noise_std": 1e-2, "init": "U[-1, 1]"}


def reference_options(settings: dict[str, Any]) -> dict[str, Any]:
    """The script's update as options of our short_run (x += f' + 0.01 xi: step 1, T = 5e-5)."""
    return {"step_size": 1.0, "temperature": settings["noise_std"] ** 2 / 2.0, "data_noise": settings["sigma"],
            "init_scale": 1.0, "optimizer": "adam", "lr": settings["lr"], "adam_beta1": settings["adam_beta1"],
            "energy_reg": 0.0, "param_grad_clip": None, "clamp": False, "lr_schedule": "constant"}


def signed(params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Our convnet's parameters with the last convolution (weight, bias) negated: f = -U."""
    return [p if i < len(params) - 2 else -p for i, p in enumerate(params)]


def reference_short_run(ref: Path, ours0: list[torch.Tensor], data: torch.Tensor, updates: int, m: int,
                        k: int | None) -> tuple[list[dict[str, Any]], Tape, dict[str, Any]]:
    path = ref / SCRIPT
    text = path.read_text()
    settings = script_settings(text)
    for old, new in substitutions(updates, m, k):
        if text.count(old) != 1:
            raise ValueError(f"{SCRIPT}: expected {old!r} exactly once; the reference changed")
        text = text.replace(old, new)
    snaps: list[dict[str, Any]] = []
    tape = Tape()

    def bench_init(f):
        # F()'s own initialisation drew from the generator (uniform_): those draws are not of
        # the update (its parameters are overwritten with ours here), so they leave the tape
        for q in tape.q.values():
            q.clear()
        with torch.no_grad():
            for p, q in zip(f.parameters(), signed(ours0), strict=True):
                if p.shape != q.shape:
                    raise ValueError(f"{SCRIPT}: F parameter {tuple(p.shape)} where ours has {tuple(q.shape)}")
                p.copy_(q)

    def bench_snap(f, x_q):
        snaps.append({"params": signed([p.detach().clone() for p in f.parameters()]), "walkers": x_q.detach().clone(),
                      "log_w": None})
        # progress on stderr: the script's stdout is captured into the report
        print(f"    short_run: reference update {len(snaps)}/{updates} done", file=sys.stderr, flush=True)

    ns: dict[str, Any] = {"__name__": "_ref_short_run", "_bench_data": data, "_bench_init": bench_init,
                          "_bench_snap": bench_snap}
    cwd = os.getcwd()
    out = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="ebm-bench-short-run-") as tmp:
        os.chdir(tmp)
        try:
            with recording(tape), contextlib.redirect_stdout(out):
                exec(compile(text, str(path), "exec"), ns)
        finally:
            os.chdir(cwd)
    info = {"script": SCRIPT, **settings, "m": m, "K_run": int(ns["K"]), "log": out.getvalue().strip().splitlines()}
    return snaps, tape, info


def ours_short_run(params: dict[str, Any], shape, batches, seed: int, tape: Tape | None):
    from ebm_bench.methods.base import DataInfo
    from ebm_bench.methods.short_run import ShortRun

    m = ShortRun(params, DataInfo(tuple(shape), True, 10), "cpu", seed)
    negs: list[torch.Tensor] = []
    negatives = m.negatives
    m.negatives = lambda b: negs.append(negatives(b)) or negs[-1]
    snaps = []
    with replaying(tape) if tape is not None else contextlib.nullcontext():
        for k, batch in enumerate(batches, start=1):
            m.train_step(batch, k)
            snaps.append({"params": [p.detach().clone() for p in m.net.parameters()],
                          "walkers": negs[-1].detach().clone(), "log_w": None})
            print(f"    short_run: our update {k}/{len(batches)} done", file=sys.stderr, flush=True)
    return m, snaps


def compare_short_run(ref: Path, updates: int = 3, batch_size: int = 8, n_steps: int | None = None,
                      n_data: int = 256, seed: int = 0, ablations: bool = True) -> dict[str, Any]:
    """Our ``short_run`` at config/paper.yaml's CIFAR-10 row (convnet n_f = 64, K = 100) against
    the script, at batch ``batch_size`` (script: m = 64) and K = ``n_steps`` (None: its 100)."""
    from ebm_bench.methods.short_run import ShortRun

    shape = (3, 32, 32)
    base = {**ShortRun.defaults, **paper_params("cifar10", "short_run")}
    text = (ref / SCRIPT).read_text()
    options = reference_options(script_settings(text))
    sizes = {"n_steps": int(n_steps or 100)}
    full = {**base, **options, **sizes}
    configs = ablation_configs(full, base, options) if ablations else [("reference options", full)]
    gen = torch.Generator().manual_seed(seed + 1)
    data = torch.rand((n_data, *shape), generator=gen, dtype=torch.float64) * 2 - 1  # images in [-1, 1]
    probe = ours_short_run(full, shape, [], seed, None)[0]
    init = [p.detach().clone() for p in probe.net.parameters()]
    ref_snaps, tape0, info = reference_short_run(ref, init, data, updates, batch_size, n_steps)
    # the batches the script drew (sample_p_d: m indices with replacement) are ours
    idx = list(tape0.q.pop("index"))
    batches = [data[i.long()] for i in idx]
    rows = compare_rows(configs, lambda params, tape: ours_short_run(params, shape, batches, seed, tape),
                        ref_snaps, tape0, options)
    n_params = sum(p.numel() for p in init)
    return {"method": "short_run", "updates": updates, "n_walkers": batch_size, "n_moved": batch_size,
            "burn_in_steps": 0, "network": f"convnet n_f {base['net_params']['nf']} = the script's F(n_f=64), "
                                           f"{n_params:,} parameters; K = {sizes['n_steps']}",
            "reference": info, "data": f"{n_data} uniform [-1, 1] images 3x32x32 as the script's p_d; its "
                                       f"sample_p_d draws each batch of {batch_size} (fed to ours)",
            "rows": rows}
