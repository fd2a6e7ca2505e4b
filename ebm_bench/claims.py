"""Claims (config/claims.yaml) + the runs' metric files -> verdicts (claims.csv / claims.md).

A pure reduction like the tables (it reads what :func:`ebm_bench.tables.collect` reads
and imports no torch), so the verdicts are rebuilt at any time without retraining:
``ebm-bench claims`` or ``python -m ebm_bench.claims``.

Each claim reduces to an *oriented effect* per seed, positive where the paper is right:

- ``compare``:   a vs b; ``less`` (the claim says a < b): effect = b - a; ``greater``:
  a - b (``relative: true``: b / a - 1, resp. a / b - 1);
- ``threshold``: a vs the number ``target``: target - a (``less``) or a - target;
- ``within``:    deviation = a - b - target (or a / b - 1 - target, or a - target);
  the claim is |deviation| <= ``tolerance``.

Seeds pair where both sides ran the same seeds (same dataset, same seed list): the
per-seed differences get a one-sample t interval and a paired t-test (scipy.stats
``ttest_1samp``); otherwise Welch's interval with an exact/Monte Carlo permutation test
of the difference of means (scipy.stats ``permutation_test``).

The verdict rule (docs/protocol.md, "Verdicts"), first match wins:

1. ``not run``            a side has no runs in these results (the claim's ``config`` runs it)
2. ``error``              a side has no usable value because its metric raised / is unreadable
3. ``diverged``           every run of a side diverged
4. ``protocol mismatch``  the values' protocol fingerprints differ (feature extractor and
                          weights, real split and size, number generated, versions, ...)
5. ``too few seeds``      fewer than ``MIN_SEEDS`` values (pairs) on a side
6. direction claims: ``holds`` if the 95% interval of the effect lies above
   ``min_effect``; ``contradicted`` if it lies below it; else ``inconclusive``.
   ``within`` claims: ``holds`` if the interval of the deviation lies inside
   [-tolerance, tolerance]; ``contradicted`` if it lies entirely outside; else
   ``inconclusive``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

MIN_SEEDS = 3
LEVEL = 0.95
DEFAULT_CLAIMS = Path("config/claims.yaml")
KINDS = ("compare", "threshold", "within")
DIRECTIONS = ("less", "greater")
SETTINGS = ("paper", "cpu_analogue")
VERDICTS = ("holds", "contradicted", "inconclusive", "too few seeds", "not run", "protocol mismatch",
            "diverged", "error")
COLUMNS = ["id", "paper", "source", "setting", "config", "dataset", "statement", "kind", "direction",
           "a", "a_mean", "a_sd", "a_n", "b", "b_mean", "b_sd", "b_n", "target", "tolerance", "min_effect",
           "paired", "n", "effect", "ci_low", "ci_high", "test", "p_value", "verdict", "paper_value", "note"]


class ClaimError(ValueError):
    """A malformed claims file; the message names the entry and the key."""


# --- reading ---------------------------------------------------------------------------


def _side(entry: dict, key: str, where: str) -> dict[str, str]:
    side = entry.get(key)
    if not isinstance(side, dict) or not side.get("variant") or not side.get("metric"):
        raise ClaimError(f"{where}.{key}: expected {{variant: ..., metric: ...}}, got {side!r}")
    unknown = set(side) - {"variant", "metric", "dataset"}
    if unknown:
        raise ClaimError(f"{where}.{key}.{sorted(unknown)[0]}: unknown key; known: dataset, metric, variant")
    return {"variant": str(side["variant"]), "metric": str(side["metric"]),
            "dataset": str(side.get("dataset") or entry["dataset"])}


def load_claims(path: str | Path) -> list[dict[str, Any]]:
    """Validated claim entries of a claims.yaml (its ``claims:`` list)."""
    import yaml  # safe_load: plain data only

    path = Path(path)
    doc = yaml.safe_load(path.read_text())
    entries = doc.get("claims") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ClaimError(f"{path}: expected a top-level 'claims:' list")
    out, seen = [], set()
    known = {"id", "paper", "source", "statement", "setting", "config", "dataset", "kind", "a", "b", "target",
             "tolerance", "direction", "min_effect", "relative", "paper_value"}
    for i, e in enumerate(entries):
        where = f"{path.name}: claims[{i}]"
        if not isinstance(e, dict):
            raise ClaimError(f"{where}: not a mapping")
        if e.get("id"):
            where = f"{path.name}: claim {e['id']}"
        for key in ("id", "paper", "source", "statement", "setting", "config", "dataset", "kind", "a"):
            if e.get(key) in (None, ""):
                raise ClaimError(f"{where}: missing key {key!r}")
        unknown = set(e) - known
        if unknown:
            raise ClaimError(f"{where}.{sorted(unknown)[0]}: unknown key; known: {', '.join(sorted(known))}")
        if e["id"] in seen:
            raise ClaimError(f"{where}: duplicate id")
        seen.add(e["id"])
        if e["kind"] not in KINDS:
            raise ClaimError(f"{where}.kind = {e['kind']!r}; expected one of {', '.join(KINDS)}")
        if e["setting"] not in SETTINGS:
            raise ClaimError(f"{where}.setting = {e['setting']!r}; expected one of {', '.join(SETTINGS)}")
        c = dict(e)
        c["paper"] = str(c["paper"])
        c["a"] = _side(e, "a", where)
        c["b"] = _side(e, "b", where) if e.get("b") is not None else None
        if c["kind"] == "compare" and c["b"] is None:
            raise ClaimError(f"{where}: kind compare needs a side 'b'")
        if c["kind"] == "threshold" and "target" not in e:
            raise ClaimError(f"{where}: kind threshold needs a number 'target'")
        if c["kind"] == "within":
            if "tolerance" not in e or not float(e["tolerance"]) > 0:
                raise ClaimError(f"{where}: kind within needs 'tolerance' > 0")
            if c["b"] is None and "target" not in e:
                raise ClaimError(f"{where}: kind within needs a side 'b' or a 'target'")
        else:
            if e.get("direction") not in DIRECTIONS:
                raise ClaimError(f"{where}.direction = {e.get('direction')!r}; expected less or greater")
            if float(e.get("min_effect", 0.0)) < 0:
                raise ClaimError(f"{where}.min_effect = {e['min_effect']}; must be >= 0")
        for key in ("target", "tolerance", "min_effect"):
            if key in e and not isinstance(e[key], (int, float)):
                raise ClaimError(f"{where}.{key} = {e[key]!r}; expected a number")
        out.append(c)
    return out


# --- one side's values ----------------------------------------------------------------


def _values(tidy: pd.DataFrame, runs: pd.DataFrame, side: dict[str, str]) -> dict[str, Any]:
    """{seed: value} of the finite ok values, and why the others are missing."""
    r = runs[(runs["dataset"] == side["dataset"]) & (runs["method"] == side["variant"])]
    t = tidy[(tidy["dataset"] == side["dataset"]) & (tidy["method"] == side["variant"])
             & (tidy["metric"] == side["metric"])] if not tidy.empty else tidy
    ok = t[(t["status"] == "ok") & np.isfinite(t["value"].astype(float))] if not t.empty else t
    vals = {int(s): float(v) for s, v in zip(ok["seed"], ok["value"])} if not ok.empty else {}
    fps = {int(s): str(f) for s, f in zip(ok["seed"], ok["fingerprint"])} if not ok.empty else {}
    notes = sorted({n for n in t["note"] if isinstance(n, str) and n}) if not t.empty else []
    return {
        "runs": len(r),
        "diverged": int((r["status"] == "diverged").sum()),
        "metric_seen": not t.empty,
        "errors": int(t["status"].isin(["error", "unreadable"]).sum()) if not t.empty else 0,
        "values": vals,
        "fingerprints": fps,
        "notes": notes,
    }


def _describe(vals: dict[int, float]) -> tuple[float, float, int]:
    x = np.array(list(vals.values()), dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, 0
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan, len(x)


# --- statistics -----------------------------------------------------------------------


def _one_sample(d: np.ndarray, alternative: str) -> tuple[float, float, float, float]:
    """mean, 95% t interval and a one-sample t-test p (``alternative`` about 0)."""
    from scipy import stats

    mean = float(d.mean())
    if len(d) < 2:
        return mean, math.nan, math.nan, math.nan
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        p = 0.0 if (mean > 0 if alternative == "greater" else mean != 0) else 1.0
        return mean, mean, mean, p
    half = float(stats.t.ppf(0.5 + LEVEL / 2, len(d) - 1)) * sd / math.sqrt(len(d))
    p = float(stats.ttest_1samp(d, 0.0, alternative=alternative).pvalue)
    return mean, mean - half, mean + half, p


def _two_sample(x: np.ndarray, y: np.ndarray, alternative: str) -> tuple[float, float, float, float]:
    """mean(x) - mean(y), Welch's 95% interval, and a permutation test p."""
    from scipy import stats

    diff = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return diff, math.nan, math.nan, math.nan
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(vx + vy)
    if se == 0.0:
        return diff, diff, diff, 0.0 if diff > 0 else 1.0
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    half = float(stats.t.ppf(0.5 + LEVEL / 2, df)) * se
    res = stats.permutation_test((x, y), lambda a, b: np.mean(a) - np.mean(b), permutation_type="independent",
                                 alternative=alternative, n_resamples=9999, random_state=0)
    return diff, diff - half, diff + half, float(res.pvalue)


# --- one claim ------------------------------------------------------------------------


def _label(side: dict | None) -> str:
    return "" if side is None else f"{side['variant']}.{side['metric']}"


def _same_file(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return a == b


def judge(claim: dict[str, Any], tidy: pd.DataFrame, runs: pd.DataFrame,
          configs: list[str] | None = None) -> dict[str, Any]:
    """One row of claims.csv: both sides' summaries, the effect, its interval, the
    test and the verdict (module docstring). ``configs``: the config files these results
    come from; a claim of another config reads "not run" (two configs may use the same
    dataset and variant names at different sizes)."""
    kind, a_side, b_side = claim["kind"], claim["a"], claim["b"]
    row: dict[str, Any] = {k: claim.get(k, "") for k in ("id", "paper", "source", "setting", "config", "dataset",
                                                          "statement", "kind", "direction", "paper_value")}
    row.update(a=_label(a_side), b=_label(b_side), target=claim.get("target", math.nan),
               tolerance=claim.get("tolerance", math.nan), min_effect=float(claim.get("min_effect", 0.0)),
               paired="", n=0, effect=math.nan, ci_low=math.nan, ci_high=math.nan, test="", p_value=math.nan)
    sides = [("a", a_side)] + ([("b", b_side)] if b_side is not None else [])
    got = {name: _values(tidy, runs, side) for name, side in sides}
    for name, _ in sides:
        m, sd, n = _describe(got[name]["values"])
        row.update({f"{name}_mean": m, f"{name}_sd": sd, f"{name}_n": n})
    if b_side is None:
        row.update(b_mean=math.nan, b_sd=math.nan, b_n=0)
    notes = sorted({n for g in got.values() for n in g["notes"]})

    def done(verdict: str, note: str = "") -> dict[str, Any]:
        row["verdict"] = verdict
        row["note"] = "; ".join(x for x in [note, *notes] if x)
        return row

    if configs and not any(_same_file(str(claim["config"]), c) for c in configs):
        for k in ("a", "b"):
            row.update({f"{k}_mean": math.nan, f"{k}_sd": math.nan, f"{k}_n": 0})
        here = ", ".join(os.path.relpath(c) for c in configs)  # relative: same text in any work folder
        return done("not run", f"decided by {claim['config']}, not by {here}")
    for name, side in sides:
        g = got[name]
        if g["runs"] == 0:
            return done("not run", f"no runs of {side['dataset']}/{side['variant']} here; run {claim['config']}")
    for name, side in sides:
        g = got[name]
        if not g["values"] and g["errors"]:
            return done("error", f"{_label(side)}: no usable value")
    for name, side in sides:
        g = got[name]
        if g["diverged"] == g["runs"]:
            return done("diverged", f"every run of {side['variant']} diverged")
        if not g["metric_seen"] and g["runs"]:
            return done("not run", f"{side['dataset']}/{side['variant']} has no metric {side['metric']!r}")
    fps = {f for g in got.values() for f in g["fingerprints"].values()}
    if len(fps) > 1:
        return done("protocol mismatch", "fingerprints differ: " + ", ".join(sorted(fps)))

    a = got["a"]["values"]
    b = got["b"]["values"] if b_side is not None else None
    relative = bool(claim.get("relative"))
    target = float(claim.get("target", 0.0) or 0.0)
    direction = claim.get("direction")
    paired = b is not None and set(a) == set(b) and a_side["dataset"] == b_side["dataset"]
    if b is None or paired:  # one value per seed (a number, or a paired difference): a one-sample test
        if b is None:
            d = np.array([a[s] for s in sorted(a)], dtype=float)
            d = ((target - d) if direction == "less" else (d - target)) if kind == "threshold" else d - target
            label, what, unit = "", "one-sample t-test", "value(s)"
        else:
            seeds = sorted(a)
            x = np.array([a[s] for s in seeds], dtype=float)
            y = np.array([b[s] for s in seeds], dtype=float)
            if kind == "within":
                d = (x / y - 1.0 - target) if relative else (x - y - target)
            elif relative:
                d = (y / x - 1.0) if direction == "less" else (x / y - 1.0)
            else:
                d = (y - x) if direction == "less" else (x - y)
            label, what, unit = "yes", "paired t-test", "paired seed(s)"
        n = len(d)
        row.update(paired=label, n=n)
        if n < MIN_SEEDS:
            return done("too few seeds", f"{n} {unit}, need {MIN_SEEDS}")
        alt = "greater" if kind != "within" else "two-sided"
        shift = float(claim.get("min_effect", 0.0)) if kind != "within" else 0.0
        eff, lo, hi, p = _one_sample(d - shift, alt)  # the test is of effect > min_effect
        eff, lo, hi = eff + shift, lo + shift, hi + shift
        test = what + (" (effect > min_effect)" if alt == "greater" else "")
    else:
        x = np.array(list(a.values()), dtype=float)
        y = np.array(list(b.values()), dtype=float)
        n = int(min(len(x), len(y)))
        row.update(paired="no", n=n)
        if n < MIN_SEEDS:
            return done("too few seeds", f"{len(x)} and {len(y)} values, need {MIN_SEEDS} each")
        if relative:
            return done("inconclusive", "a relative effect needs paired seeds")
        m = float(claim.get("min_effect", 0.0))
        if kind == "within":
            eff, lo, hi, p = _two_sample(x, y + target, "two-sided")
        else:  # the test is of effect > min_effect: shift one side by it
            eff, lo, hi, p = _two_sample(y, x + m, "greater") if direction == "less" else \
                _two_sample(x, y + m, "greater")
            eff, lo, hi = eff + m, lo + m, hi + m
        test = "Welch interval, permutation test"
    row.update(effect=eff, ci_low=lo, ci_high=hi, test=test, p_value=p)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return done("inconclusive", "no interval")
    if kind == "within":
        tol = float(claim["tolerance"])
        if -tol <= lo and hi <= tol:
            return done("holds")
        if lo > tol or hi < -tol:
            return done("contradicted")
        return done("inconclusive")
    m = float(claim.get("min_effect", 0.0))
    if lo > m:
        return done("holds")
    if hi < m:
        return done("contradicted")
    return done("inconclusive")


# --- writing ----------------------------------------------------------------------------


def claims_table(claims: list[dict[str, Any]], tidy: pd.DataFrame, runs: pd.DataFrame,
                 configs: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame([judge(c, tidy, runs, configs) for c in claims], columns=COLUMNS)


def _num(v: Any, digits: int = 3) -> str:
    if isinstance(v, str):
        return v
    if v is None or not np.isfinite(v):
        return ""
    return f"{v:.{digits}g}"


def _side_text(mean, sd, n) -> str:
    if not n:
        return ""
    return f"{_num(mean)}" + (f" ± {_num(sd, 2)}" if np.isfinite(sd) else "") + f" (n={int(n)})"


PAPERS = {"000": "paper 000 (HEE, Dong & Wu 2023)", "002": "paper 002 (STANLEY, Karimi et al.)",
          "003": "paper 003 (Jarzynski, Carbone et al. 2023)", "004": "paper 004 (NN-EFH, Abdulsalam & Makin 2025)"}


def claims_markdown(table: pd.DataFrame, source: str) -> str:
    counts = table["verdict"].value_counts()
    summary = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)
    lines = ["# Claims and verdicts", "",
             f"{len(table)} claims from `{source}`: {summary}. Effect: oriented so that positive "
             f"means the paper is right (`within`: deviation from the claimed value); interval: "
             f"{int(LEVEL * 100)}%; verdict rule: docs/protocol.md (\"Verdicts\"). Full columns: claims.csv.", ""]
    for paper in sorted(table["paper"].unique()):
        t = table[table["paper"] == paper]
        lines += [f"## {PAPERS.get(paper, 'paper ' + paper)}", ""]
        rows = []
        for _, r in t.iterrows():
            ours = _side_text(r["a_mean"], r["a_sd"], r["a_n"])
            if r["b"]:
                ours = f"{r['a']} {ours} vs {r['b']} {_side_text(r['b_mean'], r['b_sd'], r['b_n'])}"
            else:
                ours = f"{r['a']} {ours}"
            if r["kind"] == "within":
                ours += f"; claimed within ±{_num(r['tolerance'])}" + (
                    f" of {_num(r['target'])}" if np.isfinite(_f(r["target"])) else "")
            elif r["kind"] == "threshold":
                ours += f"; claimed {'<' if r['direction'] == 'less' else '>'} {_num(r['target'])}"
            eff = "" if not np.isfinite(_f(r["effect"])) else (
                f"{_num(r['effect'])} [{_num(r['ci_low'])}, {_num(r['ci_high'])}]")
            rows.append({"claim": f"`{r['id']}` {r['statement']} ({r['source']}; {r['setting']}, {r['dataset']})",
                         "ours": ours, "effect [95% CI]": eff,
                         "p": _num(r["p_value"], 2), "verdict": f"**{r['verdict']}**",
                         "paper": str(r["paper_value"] or ""), "note": str(r["note"] or "")})
        df = pd.DataFrame(rows)
        lines.append(df.to_markdown(index=False, disable_numparse=True) + "\n")
    return "\n".join(lines)


def _f(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def build_claims(
    results_dir: str | Path,
    out_dir: str | Path,
    claims: str | Path = DEFAULT_CLAIMS,
    datasets: Iterable[str] | None = None,
    methods: Iterable[str] | None = None,
    seeds: Iterable[int] | None = None,
    configs: list[str] | None = None,
) -> dict[str, Path]:
    """Write claims.csv and claims.md for the runs under ``results_dir`` (made by the
    config files ``configs``, when given: claims of other configs read "not run")."""
    from .tables import collect

    entries = load_claims(claims)
    tidy, runs, _ = collect(results_dir, datasets, methods, seeds)
    table = claims_table(entries, tidy, runs, configs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, text in (("claims.csv", table.to_csv(index=False, na_rep="")),
                       ("claims.md", claims_markdown(table, str(claims)))):
        path = out_dir / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        written[name] = path
    return written


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [t for t in text.split(",") if t]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ebm_bench.claims", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results-dir", default="results")
    p.add_argument("--out-dir", default=None, help="default: RESULTS_DIR/tables")
    p.add_argument("--claims", default=str(DEFAULT_CLAIMS))
    p.add_argument("--datasets", default=None)
    p.add_argument("--variants", default=None)
    p.add_argument("--seeds", default=None)
    p.add_argument("--configs", default=None, help="comma-separated config files the results come from")
    a = p.parse_args(argv)
    seeds = _split(a.seeds)
    try:
        written = build_claims(a.results_dir, a.out_dir or Path(a.results_dir) / "tables", a.claims,
                               _split(a.datasets), _split(a.variants),
                               None if seeds is None else [int(s) for s in seeds], _split(a.configs))
    except ClaimError as e:
        print(f"claims: error: {e}", file=sys.stderr)
        return 2
    for path in written.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
