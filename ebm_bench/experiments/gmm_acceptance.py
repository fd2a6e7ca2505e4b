"""The acceptance checks of the GMM teacher-student experiment (paper 003 Sec. 4.1, Fig. 1;
:mod:`ebm_bench.experiments.gmm_teacher`): the claims of ``config/claims.yaml`` about it,
judged on a standalone run's final values with each claim's own numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ebm_bench.core.errors import ConfigError

CLAIMS_FILE = Path(__file__).resolve().parents[2] / "config" / "claims.yaml"

# the claims of config/claims.yaml this experiment speaks to (paper 003 Sec. 4.1, Fig. 1),
# and the columns of final.csv holding their metrics (the workflow's train_final metrics
# are the last logged scalars: the batch of App. B.1 is the data, as in Eq. 16)
ACCEPTANCE = ("p003_gmm_mass", "p003_gmm_ce_estimate", "p003_gmm_pcd_collapse", "p003_gmm_cd_bias")
FINAL_COLUMNS = {"mass_a": "mass_a", "final_cross_entropy_est": "cross_entropy_est",
                 "final_cross_entropy_exact": "cross_entropy_exact_eq16"}


def acceptance(finals: list[dict], teacher_mass: float, claims_path: str | Path = CLAIMS_FILE) -> list[str]:
    """One line per claim of :data:`ACCEPTANCE` whose variant ran, ``- [x]`` where it holds.

    Every number (target, tolerance, direction, smallest effect) is the claim's own, at its
    most faithful design (App. B.1), applied to the mean over seeds, the effect the claims
    report judges (without its interval: a standalone run has few seeds). The claims about
    the mass of mode a are stated for App. B.1's p* (the target of ``p003_gmm_mass``); for
    a teacher with another p* they are listed as not judged."""
    from ebm_bench.claims.spec import load_claims

    claims = load_claims(claims_path)
    rank = {s: i for i, s in enumerate(claims.scales)}
    designs: dict[str, Any] = {}
    for d in sorted(claims.designs, key=lambda d: rank[d.scale]):
        designs.setdefault(d.id, d)
    missing = [c for c in ACCEPTANCE if c not in designs]
    if missing:
        raise ConfigError(f"{claims_path}: no claim {missing[0]!r} (an acceptance check of the GMM experiment)")
    p_star = designs["p003_gmm_mass"].target
    lines = []
    for cid in ACCEPTANCE:
        design = designs[cid]
        if design.a["metric"] == "mass_a" and teacher_mass != p_star:
            lines.append(f"- not judged: {cid} is stated for p* = {p_star:g} (App. B.1), this teacher's p* is "
                         f"{teacher_mass:g}")
            continue
        line = _claim_check(design, finals, claims_path)
        if line:
            lines.append(line)
    return lines


def _claim_check(design, finals: list[dict], claims_path: str | Path) -> str | None:
    """The check line of one claim design on the final rows (None: its variant did not run)."""
    claim = design.claim
    where = f"{claims_path}: claim {design.id}"

    def values(side: dict[str, str]) -> dict[int, float]:
        column = FINAL_COLUMNS.get(side["metric"])
        if column is None:
            raise ConfigError(f"{where}: metric {side['metric']!r} is not one of the experiment's "
                              f"({', '.join(FINAL_COLUMNS)})")
        return {int(f["seed"]): float(f[column]) for f in finals if f["variant"] == side["variant"]}

    a = values(design.a)
    b = values(design.b) if design.b else None
    seeds = sorted(a if b is None else set(a) & set(b))
    if not seeds:
        return None
    x = [a[s] - (b[s] if b is not None else 0.0) for s in seeds]
    mean = sum(x) / len(x)
    target = design.target if design.target is not None else 0.0
    if claim["kind"] == "within" and not claim.get("relative"):
        tol = float(claim["tolerance"])
        ok = abs(mean - target) <= tol
        detail = f"mean {mean:.4f}, |mean - {target:g}| = {abs(mean - target):.4f} <= {tol:g}"
    elif claim["kind"] == "threshold":
        less = claim["direction"] == "less"
        effect = (target - mean) if less else (mean - target)
        ok = effect > float(claim["min_effect"])
        detail = f"mean {mean:.4f} {'<' if less else '>'} {target:g}"
    else:
        raise ConfigError(f"{where}: kind {claim['kind']}{' (relative)' if claim.get('relative') else ''}; "
                          "the GMM experiment checks within and threshold claims")
    what = design.a["metric"] + (f" - {design.b['metric']}" if b is not None else "")
    per_seed = ", ".join(f"{v:.4f}" for v in x)
    return (f"- [{'x' if ok else ' '}] {design.id}: {claim['statement']}: {design.a['variant']} {what}, {detail} "
            f"(seeds: {per_seed})")
