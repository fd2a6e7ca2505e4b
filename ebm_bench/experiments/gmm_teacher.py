"""The GMM teacher-student experiment of paper 003 (Carbone et al. 2023, Sec. 4.1, App. B.1).

Teacher (Eq. 14): two unit-covariance Gaussians at a* = -10 e1 and b* = 6 e1 in d = 50,
mass p* = 1/4 on a* (z* = -log 3), n = 1e4 data points. Student (Eq. 15): the same family
with theta = (a, b, z) and the exact partition function Z_theta = (2 pi)^{d/2} (1 + e^{-z}),
so the learned mass p = 1/(1 + e^{-z}), the exact KL(rho* || rho_theta) and the exact
cross-entropy are known at every step. B.1 settings: N = 1e4 walkers, full batch (data and
walkers), h = 0.1, plain gradient descent with gamma_z = 0.125 and gamma_ab = 0.2 gamma_z
(both x10 for CD), P = 4 ULA steps per update for CD, a_0 = -0.1 e1 + 0.01 N(0, I),
b_0 = 0.1 e1 + 0.01 N(0, I), z_0 = 0, systematic resampling at ESS < 1/1.05 (Sec. 4.1).

Variants (the table rows): ``jarzynski`` (Alg. 1), ``pcd`` (Alg. 4: walkers start at the
data, one ULA step per update, no weights), ``cd`` (Alg. 3) and ``unweighted`` (walkers
from rho_theta_0 without weights, App. C.1.2).

The settings have one source, ``config/gmm.yaml`` (:func:`b1_config`): the workflow runs it
as it is (``snakemake --configfile config/gmm.yaml``) and this standalone run starts from
it (:func:`pipeline_config`), changing only what its options name: the teacher, the number
of walkers, the steps and the learning-rate convention (``--convention``):
- ``reference`` (the file): the authors' GMM script multiplies both rates by h (0.0125
  for z, 0.0025 for the means per step) and runs K = 8,000 steps (100 time units / gamma_z);
- ``paper_text``: the rates as printed in App. B.1, no factor h, 2,000 steps.
The student's second-mode z is the only z of Eq. 15, which is what the reference code's
"freeze the first mode's z" amounts to; no option is needed for it.

The standalone run trains each method through the one training loop
(:func:`ebm_bench.training.loop.train`, in memory: the same batches as the workflow's
runs) and evaluates the exact metrics along the way (a hook every ``--eval-every`` updates):

    ebm-bench gmm-teacher --out results/gmm_b1 --seeds 0 1 2
    ebm-bench gmm-teacher --out results/gmm_alt --seeds 0 1 2 --dim 10 --mass-a 0.4 --a -8 --b 5

Finite-N behaviour (measured, issue 5 report): in d = 50 the weights spread fast, so with
c = 1/1.05 the walkers are resampled about every 3 updates (~2,700 times in 8,000 steps);
the mode masses are then carried by walker counts through many resamplings and the learned
mass varies from seed to seed (sd ~0.05 at N = 1e4). The cross-entropy estimate drifts
low with training time, about -0.15 to -0.25 nats at the end: the same walkers give the
gradient (Eq. 11) and the weights, and the parameter update is correlated with them. A
shadow population moved under the same parameters but not used for the gradient shows no
such drift (it stays at the O(1/N) log-mean-exp bias), and the drift grows as N shrinks
(-0.54 nats at N = 2,500 against -0.15 to -0.25 at N = 1e4). In d = 10
(the second teacher) the weights stay healthy for ~300 updates between resamplings and
both effects are an order of magnitude smaller.

Outputs in ``--out``: ``curves.csv`` (variant, seed, step, mass_a, kl, cross-entropies,
Jarzynski estimates), ``final.csv``, ``summary.csv``, ``summary.md`` (with the acceptance
checks: the claims of ``config/claims.yaml`` about this experiment,
:func:`ebm_bench.experiments.gmm_acceptance.acceptance`)
and ``gmm_teacher.png``. :func:`run` is the CLI-free entry point.
"""

from __future__ import annotations

import copy
import csv
import math
import time
from pathlib import Path
from typing import Any, Iterable

import torch

from ebm_bench.core.errors import ConfigError
from ebm_bench.experiments.gmm_acceptance import CLAIMS_FILE, acceptance

ROOT = Path(__file__).resolve().parents[2]
GMM_CONFIG = ROOT / "config" / "gmm.yaml"
B1 = "gmm_b1"  # the App. B.1 teacher's dataset in config/gmm.yaml
# each convention as its change to config/gmm.yaml (which runs the reference convention)
CONVENTIONS: dict[str, dict[str, Any]] = {
    "reference": {},
    "paper_text": {"lr_times_h": False, "steps": 2000},
}
VARIANTS = ("jarzynski", "pcd", "cd", "unweighted")
EXTRA_VARIANTS = ("jarzynski_noresample",)
CHAIN_COUNTS = ("n_walkers", "buffer_size", "n_chains")  # a variant's walkers / chains: N of App. B.1


def b1_config(path: str | Path | None = None) -> dict[str, Any]:
    """``config/gmm.yaml`` (or ``path``), the experiment's settings (App. B.1)."""
    import yaml

    path = Path(path or GMM_CONFIG)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (the GMM experiment's settings)") from None


def b1_teacher() -> dict[str, Any]:
    """App. B.1's teacher (Eq. 14) and data sizes, as config/gmm.yaml states them."""
    return dict(b1_config()["datasets"][B1]["params"])


def variant_params(convention: str, n_walkers: int | None = None) -> dict[str, dict[str, Any]]:
    """``variants:`` entries (method + hyperparameters) of config/gmm.yaml in ``convention``,
    with ``n_walkers`` walkers / chains (default: the file's N = 1e4), plus
    ``jarzynski_noresample`` (Alg. 1 without resampling)."""
    if convention not in CONVENTIONS:
        raise ConfigError(f"convention = {convention!r}: expected one of {', '.join(CONVENTIONS)}")
    rates = {k: v for k, v in CONVENTIONS[convention].items() if k != "steps"}
    out = {}
    for name, params in b1_config()["variants"].items():
        params = {**copy.deepcopy(params), **rates}
        for key in CHAIN_COUNTS:
            if key in params and n_walkers is not None:
                params[key] = n_walkers
        out[name] = params
    never = {k: v for k, v in out["jarzynski"].items() if k != "resampler"}
    out["jarzynski_noresample"] = {**never, "resample_threshold": 0.0}  # an ESS below 0: never resample
    return out


def pipeline_config(convention: str = "reference", teachers: dict[str, dict[str, Any]] | None = None,
                    seeds: Iterable[int] = (0, 1, 2), variants: Iterable[str] = VARIANTS,
                    n_walkers: int | None = None, steps: int | None = None) -> dict[str, Any]:
    """A complete workflow config: config/gmm.yaml with ``teachers`` (name -> changes to
    App. B.1's teacher; default: App. B.1's alone), ``convention``, ``n_walkers``, ``steps``
    and ``variants`` (full batch: ``batch_size = n_train``)."""
    base = b1_config()
    b1 = base["datasets"][B1]
    allv = variant_params(convention, n_walkers)
    k = int(steps or CONVENTIONS[convention].get("steps", b1["train"]["steps"]))
    datasets = {}
    for name, t in (teachers or {B1: {}}).items():
        t = {**b1["params"], **t}
        datasets[name] = {"type": b1["type"], "params": t,
                          "train": {**b1["train"], "steps": k, "batch_size": int(t["n_train"]),
                                    "checkpoint_every": max(k // 8, 1)}}
    return {**base, "seeds": [int(s) for s in seeds], "datasets": datasets,
            "variants": {v: copy.deepcopy(allv[v]) for v in variants}}


# --- the standalone run ------------------------------------------------------------------


def _exact_ce_empirical(net, x: torch.Tensor) -> float:
    """Eq. 16: exact log Z_theta plus the data average of U_theta (the data term the
    Jarzynski estimate of Eq. 12 uses), float64."""
    with torch.no_grad():
        return float(net.log_partition().double()) + float(net(x).double().mean())


def run_one(cfg: dict[str, Any], dataset: str, variant: str, seed: int, eval_every: int,
            n_mc: int = 20000, n_mc_final: int = 100000, log=print) -> tuple[list[dict], dict]:
    """Train one (dataset, variant, seed) through the training loop (in memory) and
    evaluate the exact metrics before training and every ``eval_every`` updates (a hook)."""
    from ebm_bench.training import runs
    from ebm_bench.pipeline.config import run_spec
    from ebm_bench.metrics.exact import gmm_exact_kl
    from ebm_bench.training.loop import Hook, StepInfo, train

    spec = run_spec(cfg, dataset, variant, seed)
    data = runs.load_data(spec)
    method = runs.build_method(spec, data)
    teacher = data.truth["teacher"]
    x = data.x_train
    steps = int(spec["train"]["steps"])
    weighted_smc = spec["method"] == "jarzynski" and spec["method_params"].get("weighted", True)
    label = f"{dataset}/{variant}/seed{seed}"
    rows: list[dict] = []

    def evaluate(step: int, mc: int) -> dict:
        r = gmm_exact_kl(teacher, method.net.student(), n_mc=mc, seed=0)
        row = {"variant": variant, "seed": seed, "step": step, "mass_a": r["mass_a"], "kl": r["kl"],
               "kl_stderr": r["kl_stderr"], "cross_entropy_exact": r["cross_entropy"],
               "cross_entropy_exact_eq16": _exact_ce_empirical(method.net, x),
               "log_z_exact": float(method.net.log_partition().detach()),
               "cross_entropy_est": math.nan, "log_z_est": math.nan, "ess": math.nan, "n_resamples": math.nan,
               "wall_time_s": time.perf_counter() - t0}
        if weighted_smc and step > 0:
            est = method.estimates(x)  # Eq. 12 for the current parameters theta_step
            row.update(cross_entropy_est=est["cross_entropy_est"], log_z_est=est["log_z"], ess=est["ess"],
                       n_resamples=float(method.n_resamples))
        return row

    def along(now: StepInfo) -> None:
        rows.append(evaluate(now.step, n_mc_final if now.step == steps else n_mc))
        if now.step % (eval_every * 10) == 0 or now.step == steps:
            last = rows[-1]
            log(f"[{label}] step {now.step}/{steps} mass_a={last['mass_a']:.4f} "
                f"kl={last['kl']:.4f} ce_est={last['cross_entropy_est']:.4f} "
                f"ce_exact={last['cross_entropy_exact_eq16']:.4f} ({now.train_s / now.step * 1e3:.1f} ms/step)")

    t0 = time.perf_counter()
    rows.append(evaluate(0, n_mc))
    status = train(method, x, spec["train"], None, "", seed, label=label, stage="gmm_teacher",
                   hooks=[Hook(eval_every, along)])
    train_time = float(status["wall_time_s"])
    final = {**rows[-1], "train_time_s": train_time, "ms_per_step": 1e3 * train_time / max(rows[-1]["step"], 1),
             "teacher_mass_a": teacher["mass_a"]}
    return rows, final


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    fields = list(rows[0])
    for r in rows:
        fields += [k for k in r if k not in fields]
    import io

    from ebm_bench.core.io import atomic_write_bytes

    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fields)
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(Path(path), lambda f: f.write(buf.getvalue().encode()))


def _write_text(path: Path, text: str) -> None:
    from ebm_bench.core.io import atomic_write_bytes

    atomic_write_bytes(Path(path), lambda f: f.write(text.encode()))


def _mean_std(values: list[float]) -> tuple[float, float]:
    vals = [v for v in values if v == v]
    if not vals:
        return math.nan, math.nan
    m = sum(vals) / len(vals)
    s = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return m, s


def summarise(finals: list[dict], teacher_mass: float,
              claims_path: str | Path = CLAIMS_FILE) -> tuple[list[dict], list[str]]:
    """Mean/std over seeds per variant and the acceptance checks (the claims' own numbers)."""
    by: dict[str, list[dict]] = {}
    for f in finals:
        by.setdefault(f["variant"], []).append(f)
    table = []
    for v, fs in by.items():
        row = {"variant": v, "seeds": len(fs)}
        for key in ("mass_a", "kl", "cross_entropy_exact_eq16", "cross_entropy_est", "ess", "n_resamples",
                    "train_time_s", "ms_per_step"):
            m, s = _mean_std([float(f[key]) for f in fs])
            row[f"{key}_mean"], row[f"{key}_std"] = m, s
        row["abs_mass_error_mean"] = abs(row["mass_a_mean"] - teacher_mass)
        ce_err = [abs(float(f["cross_entropy_est"]) - float(f["cross_entropy_exact_eq16"])) for f in fs]
        row["ce_est_abs_error_max"] = max(ce_err) if all(e == e for e in ce_err) else math.nan
        table.append(row)
    return table, acceptance(finals, teacher_mass, claims_path)


def plot(curves: list[dict], teacher_mass: float, out_png: Path, title: str,
         kl_label: str = "KL(teacher || student), exact", kl_scale: str = "log") -> Path:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    by: dict[str, dict[int, list[dict]]] = {}
    for r in curves:
        r = {**r, "ce_est_error": float(r.get("cross_entropy_est", math.nan)) - float(r["cross_entropy_exact_eq16"])}
        by.setdefault(r["variant"], {}).setdefault(int(r["seed"]), []).append(r)
    fig, axes = plt.subplots(1, 5, figsize=(25, 4.2))
    colors = dict(zip(list(VARIANTS) + list(EXTRA_VARIANTS), ["C0", "C3", "C2", "C1", "C4"]))
    for i, v in enumerate(v for v in by if v not in colors):  # other rows (e.g. short_run)
        colors[v] = f"C{5 + i}"

    def band(ax, v, key, label=None, **kw):
        seeds = by[v]
        steps = [float(r["step"]) for r in next(iter(seeds.values()))]
        vals = [[float(r[key]) for r in rs] for rs in seeds.values()]
        k = min(len(x) for x in vals)
        steps = steps[:k]
        mean = [sum(x[i] for x in vals) / len(vals) for i in range(k)]
        lo = [min(x[i] for x in vals) for i in range(k)]
        hi = [max(x[i] for x in vals) for i in range(k)]
        ax.plot(steps, mean, label=label or v, color=kw.get("color", colors.get(v)), ls=kw.get("ls", "-"))
        ax.fill_between(steps, lo, hi, color=kw.get("color", colors.get(v)), alpha=0.15)

    for v in by:
        band(axes[0], v, "mass_a")
        band(axes[1], v, "kl")
    axes[0].axhline(teacher_mass, color="k", ls="--", lw=1, label="teacher")
    axes[0].set(xlabel="training step", ylabel="mass of mode a, p = 1/(1+e^-z)", ylim=(-0.02, 1.02))
    axes[1].set(xlabel="training step", ylabel=kl_label, yscale=kl_scale)
    for v in ("jarzynski", "jarzynski_noresample"):
        if v in by:
            band(axes[2], v, "cross_entropy_exact_eq16", label=f"{v}: exact (Eq. 16)", color=colors[v])
            band(axes[2], v, "cross_entropy_est", label=f"{v}: estimate (Eq. 12)", color=colors[v], ls="--")
            band(axes[3], v, "ce_est_error", label=f"{v}: estimate - exact", color=colors[v])
            band(axes[4], v, "ess", label=f"{v}: ESS (Eq. 13)", color=colors[v])
    axes[2].set(xlabel="training step", ylabel="cross-entropy (nats)")
    axes[3].axhline(0.0, color="k", lw=1)
    axes[3].set(xlabel="training step", ylabel="CE estimate - exact (nats)")
    axes[4].set(xlabel="training step", ylabel="ESS / N", ylim=(0, 1.02))
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    from ebm_bench.reports.plots import save_figure

    out_png = save_figure(fig, out_png)
    plt.close(fig)
    return out_png


def pipeline_figure(logs: Iterable[str | Path], dataset: dict[str, Any], out_png: str | Path,
                    out_md: str | Path) -> list[dict]:
    """The experiment's figure and table from the workflow's own runs (report figure of
    ``config/gmm.yaml``): mass of mode a, KL, Eq. 12 vs Eq. 16 and ESS against training
    steps, every variant (mean and min-max band over seeds), read from each run's
    ``train_log.csv`` (``results/runs/<dataset>/<variant>/seed<s>/train_log.csv``).

    The log holds the exact cross-entropy of the training batch (Eq. 16, logged by the
    method at the parameters of each update). Subtracting the teacher's exact log density
    averaged over the training data gives KL on the data, mean_x* [log rho*(x*) -
    log rho_theta(x*)]: with the full data as batch (App. B.1, config/gmm.yaml) an unbiased
    n-sample estimate of KL(rho* || rho_theta) whose data part is the same at every step;
    with mini-batches it is a batch estimate. The final exact (Monte Carlo over teacher
    draws) KL is in the evaluate stage's metrics/exact.json.
    """
    from ebm_bench.data.base import load_dataset
    from ebm_bench.metrics.exact import gmm_log_density

    data = load_dataset(dataset["type"], dataset["params"], dataset.get("data_root", "data"))
    t = data.truth["teacher"]
    data_term = float(gmm_log_density(data.x_train, t["a"], t["b"], t["z"]).mean())
    curves: list[dict] = []
    for path in logs:
        path = Path(path)
        variant, seed = path.parent.parent.name, int(path.parent.name.removeprefix("seed"))
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                if not r.get("cross_entropy_exact"):
                    continue
                ce = float(r["cross_entropy_exact"])
                curves.append({"variant": variant, "seed": seed, "step": int(r["step"]), "mass_a": float(r["mass_a"]),
                               "kl": ce + data_term, "cross_entropy_exact_eq16": ce,
                               "cross_entropy_est": float(r.get("cross_entropy_est") or math.nan),
                               "ess": float(r.get("ess") or math.nan)})
    if not curves:
        raise ValueError(f"no cross_entropy_exact column in the logs of {dataset['name']} (temperature must be 1)")
    title = (f"{dataset['name']}: teacher d={t['dim']}, p*={t['mass_a']}; n={len(data.x_train)}; "
             f"{len({(c['variant'], c['seed']) for c in curves})} runs from train_log.csv")
    plot(curves, float(t["mass_a"]), Path(out_png), title, kl_label="KL on the data (Eq. 16 - teacher)",
         kl_scale="symlog")
    last: dict[tuple[str, int], dict] = {}
    for c in curves:
        if c["step"] >= last.get((c["variant"], c["seed"]), {"step": -1})["step"]:
            last[c["variant"], c["seed"]] = c
    lines = [f"# {dataset['name']}: GMM teacher-student (paper 003 Sec. 4.1), final logged step\n",
             title + "\n",
             "| variant | seeds | step | mass_a | abs(mass_a - p*) | KL on the data | CE est (Eq. 12) - exact (Eq. 16) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for v in dict.fromkeys(c["variant"] for c in curves):
        fs = [f for (vv, _), f in sorted(last.items()) if vv == v]
        m, sd = _mean_std([f["mass_a"] for f in fs])
        kl, kl_sd = _mean_std([f["kl"] for f in fs])
        err, err_sd = _mean_std([f["cross_entropy_est"] - f["cross_entropy_exact_eq16"] for f in fs])
        est = "" if err != err else f"{err:+.3f} ± {err_sd:.3f}"
        lines.append(f"| {v} | {len(fs)} | {fs[0]['step']} | {m:.4f} ± {sd:.4f} | {abs(m - float(t['mass_a'])):.4f} | "
                     f"{kl:.4f} ± {kl_sd:.4f} | {est} |")
    _write_text(Path(out_md), "\n".join(lines) + "\n")
    return curves


def run(out: str | Path, seeds: Iterable[int] = (0, 1, 2), convention: str = "reference",
        steps: int | None = None, variants: Iterable[str] = VARIANTS, teacher: dict[str, Any] | None = None,
        n_walkers: int | None = None, eval_every: int = 50, threads: int = 1, log=print) -> dict[str, Any]:
    """CLI-free entry: run every (variant, seed), write the CSVs, the summary and the figure.
    ``teacher`` changes App. B.1's; ``n_walkers`` None keeps config/gmm.yaml's N."""
    torch.set_num_threads(int(threads))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    teacher = {**b1_teacher(), **(teacher or {})}
    cfg = pipeline_config(convention, {"gmm": teacher}, seeds, variants, n_walkers, steps)
    k = cfg["datasets"]["gmm"]["train"]["steps"]
    rates = variant_params(convention, n_walkers)
    j, cd = rates["jarzynski"], rates["cd"]
    curves, finals = [], []
    t0 = time.perf_counter()
    for v in variants:
        for s in seeds:
            rows, final = run_one(cfg, "gmm", v, int(s), eval_every, log=log)
            curves += rows
            finals.append(final)
            _write_csv(out / "curves.csv", curves)
            _write_csv(out / "final.csv", finals)
    table, checks = summarise(finals, float(teacher["mass_a"]))
    _write_csv(out / "summary.csv", table)
    desc = (f"teacher d={teacher['dim']}, a*={teacher['a']}, b*={teacher['b']}, p*={teacher['mass_a']}, "
            f"n={teacher['n_train']}; N={j['n_walkers']}, h={j['step_size']}, gamma_z={j['param_lr']['z']}, "
            f"gamma_ab={j['lr']} (x{cd['lr'] / j['lr']:g} CD), P={cd['n_steps']}; convention {convention} "
            f"(lr x h: {j['lr_times_h']}), {k} steps; seeds {list(seeds)}")
    plot(curves, float(teacher["mass_a"]), out / "gmm_teacher.png", desc)
    lines = ["# GMM teacher-student (paper 003 Sec. 4.1 / App. B.1)\n", desc + "\n",
             "| variant | seeds | final mass_a | KL | CE exact (Eq. 16) | CE estimate (Eq. 12) | ms/step |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in table:
        lines.append(f"| {r['variant']} | {r['seeds']} | {r['mass_a_mean']:.4f} ± {r['mass_a_std']:.4f} | "
                     f"{r['kl_mean']:.4f} ± {r['kl_std']:.4f} | {r['cross_entropy_exact_eq16_mean']:.4f} | "
                     f"{r['cross_entropy_est_mean']:.4f} | {r['ms_per_step_mean']:.1f} |")
    lines += ["", "Per seed:", "", "| variant | seed | mass_a | KL | CE exact | CE est | resamplings | train s |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for f in finals:
        lines.append(f"| {f['variant']} | {f['seed']} | {f['mass_a']:.4f} | {f['kl']:.4f} | "
                     f"{f['cross_entropy_exact_eq16']:.4f} | {f['cross_entropy_est']:.4f} | {f['n_resamples']} | "
                     f"{f['train_time_s']:.1f} |")
    lines += ["", "Acceptance (the claims of config/claims.yaml):", ""] + checks
    lines += ["", f"total wall time {time.perf_counter() - t0:.0f} s"]
    _write_text(out / "summary.md", "\n".join(lines) + "\n")
    log("\n".join(lines))
    return {"curves": curves, "finals": finals, "summary": table, "checks": checks}
