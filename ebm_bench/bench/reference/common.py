"""What every comparison of ``bench reference`` shares (docs/reference-equivalence.md):
loading the reference from a clone at run time, recording the reference's random draws and
replaying them to our update, and the per-update differences."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import subprocess
import sys
import types
from collections import deque
from pathlib import Path
from typing import Any, Callable

import torch

TOL = 1e-6  # acceptance: largest relative difference after each update


# --- loading the reference ---------------------------------------------------------------
def reference_commit(ref_dir: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ref_dir), "rev-parse", "HEAD"], capture_output=True, text=True)
        return out.stdout.strip() or None
    except OSError:
        return None


def find_reference(reference_dir: str | Path | None, sub: str, env: str = "EBM_BENCH_REFERENCE_DIR") -> Path | None:
    """The clone (folder holding ``sub``, a folder or file of it), from ``reference_dir`` or
    the environment variable ``env``."""
    import os

    d = reference_dir or os.environ.get(env)
    if not d:
        return None
    d = Path(d)
    for cand in (d, d.parent):
        if (cand / sub).exists():
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


# --- noise: recorded from the reference, replayed to ours ----------------------------------
class Tape:
    """Draws recorded by kind: 'rand' (uniform), 'normal' (standard normal), 'subset'
    (multinomial picks), 'index' (integers of ``Tensor.random_``: data indices)."""

    def __init__(self) -> None:
        # 'index' is added by the first recorded Tensor.random_ (the paper-003 tapes have none)
        self.q: dict[str, deque] = {"rand": deque(), "normal": deque(), "subset": deque()}
        self.extra: dict[str, int] = {}  # draws of ours the reference does not make (replaying passthrough)

    def copy(self) -> "Tape":
        """A fresh tape holding the same recorded draws (each comparison row consumes its own)."""
        t = Tape()
        t.q = {k: deque(v) for k, v in self.q.items()}
        return t

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
    """Record the reference's draws from the global generator (its calls run unchanged):
    ``torch.rand`` and ``Tensor.uniform_`` (standardised to [0, 1)) as 'rand';
    ``torch.multinomial`` as 'subset'; ``Tensor.random_`` as 'index'; ``Tensor.normal_`` and
    ``torch.randn_like`` as 'normal' (standardised); ``torch.bernoulli(p)`` as the uniform
    u = 1 - h of its outcome h, which our ``h = (u < p)`` turns into the same h for any p
    (h = 1 needs p > 0 = u; h = 0 needs p < 1 = u), so a Bernoulli outcome is fed, never
    re-decided from a probability that differs from the reference's by round-off."""
    rand, multinomial, normal_ = torch.rand, torch.multinomial, torch.Tensor.normal_
    randn_like, bernoulli = torch.randn_like, torch.bernoulli
    uniform_, random_ = torch.Tensor.uniform_, torch.Tensor.random_

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

    def rec_randn_like(inp, **k):
        out = randn_like(inp, **k)
        tape.q["normal"].append(out.detach().clone())
        return out

    def rec_bernoulli(inp, *a, **k):
        out = bernoulli(inp, *a, **k)
        tape.q["rand"].append(out.detach() == 0)  # u = 1 - h, kept as bool (replayed in the run's dtype)
        return out

    def rec_uniform_(self, a=0.0, b=1.0, **k):
        out = uniform_(self, a, b, **k)
        tape.q["rand"].append(((self.detach() - a) / (b - a)).clone())
        return out

    def rec_random_(self, *a, **k):
        out = random_(self, *a, **k)
        tape.q.setdefault("index", deque()).append(self.detach().clone())
        return out

    torch.rand, torch.multinomial, torch.Tensor.normal_ = rec_rand, rec_multinomial, rec_normal_
    torch.randn_like, torch.bernoulli = rec_randn_like, rec_bernoulli
    torch.Tensor.uniform_, torch.Tensor.random_ = rec_uniform_, rec_random_
    try:
        yield tape
    finally:
        torch.rand, torch.multinomial, torch.Tensor.normal_ = rand, multinomial, normal_
        torch.randn_like, torch.bernoulli = randn_like, bernoulli
        torch.Tensor.uniform_, torch.Tensor.random_ = uniform_, random_


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


# --- what config/paper.yaml runs ------------------------------------------------------------
def paper_params(dataset: str, variant: str) -> dict[str, Any]:
    """The method parameters config/paper.yaml runs for (dataset, variant)."""
    from ebm_bench.pipeline.config import run_spec

    text = (Path(__file__).resolve().parents[3] / "config" / "paper.yaml").read_text()
    import yaml

    cfg = yaml.safe_load(text)
    return dict(run_spec(cfg, dataset, variant, 0)["method_params"])


# --- ablation rows ----------------------------------------------------------------------
# options that travel together in one ablation row (the first names the row)
TOGETHER = {"clamp_rule": ("clamp", "clamp_rule", "weights_ignore_clamp"),
            "lr_schedule_every": ("lr_schedule_every", "lr_decay_steps", "lr_final_factor")}


def ablation_configs(full: dict[str, Any], base: dict[str, Any], options: dict[str, Any],
                     fix: Callable[[dict[str, Any]], None] | None = None,
                     together: dict[str, tuple[str, ...]] | None = None) -> list[tuple[str, dict]]:
    """Row 1 every option at the reference's value; then each option (group) back at paper.yaml's
    (the options of a ``together`` group, TOGETHER by default, travel with its first; ``fix`` may
    adjust a row before it is labelled)."""
    together = TOGETHER if together is None else together
    followers = {k for head, group in together.items() for k in group if k != head}
    configs = [("reference options", full)]
    for key in options:
        if key in followers:
            continue
        alt = dict(full)
        for k2 in together.get(key, (key,)):
            if k2 in options:
                alt[k2] = base[k2]
        if alt == full:
            continue
        if fix is not None:
            fix(alt)
        changed = ", ".join(f"{k}={alt[k]}" for k in options if alt[k] != full[k])
        configs.append((changed, alt))
    return configs


def diff_rows(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-update differences of two runs' snapshots (each: ``params``, a list of tensors;
    ``walkers``; ``log_w``, None where a method keeps no weights): the largest relative
    difference of the parameters (over tensors) and of the walkers, and the largest absolute
    difference of the log weights."""
    per = []
    for k, (o, r) in enumerate(zip(ours, theirs), start=1):
        lw = None if o.get("log_w") is None else float((o["log_w"].double() - r["log_w"].double()).abs().max())
        per.append({"update": k,
                    "max_rel_diff_params": params_rel_diff(o["params"], r["params"]),
                    "max_rel_diff_walkers": rel_diff(o["walkers"], r["walkers"]),
                    "max_abs_diff_log_weights": lw})
    return per


def compare_rows(configs, run_ours, ref_snaps, tape0: Tape, options) -> dict[str, Any]:
    """One row per (label, params) of ``configs``: ``run_ours(params, tape)`` fed a fresh copy
    of the reference's draws ``tape0``, its snapshots against ``ref_snaps``."""
    rows: dict[str, Any] = {}
    for label, params in configs:
        tape = tape0.copy()
        try:
            _, snaps = run_ours(params, tape)
        except RuntimeError as e:
            rows[label] = {"error": str(e)}
            continue
        rows[label] = {"updates": diff_rows(snaps, ref_snaps), "draws_left_unused": tape.left(),
                       "draws_not_in_reference": dict(tape.extra), "options": {k: params[k] for k in options}}
    return rows
