"""Reading ``config/claims.yaml``: papers, scales, gate sets and claims with their designs.

A **claim** is one statement of a paper with one id (``p003_gmm_pcd_collapse``). A
**design** is where it is tested: a config file, a dataset of that config, the two sides
(``a``, ``b``: variant + metric) and the design's **scale** (``paper``: the paper's own
setting; ``cpu_claims``: the CPU claims configuration; ``embedded``: the minutes-long
analogue; the file lists them most faithful first). Each design declares its **gates**,
the diagnostics that must hold for its runs to speak to the claim (the paper's regime).

The structure is checked against ``workflow/schemas/claims.schema.yaml`` (jsonschema);
the checks a schema cannot say (unique ids, known papers / scales / gate sets, the keys
each kind needs) follow. Every error is one line naming the claim and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "claims.schema.yaml"
DEFAULT_CLAIMS = Path("config/claims.yaml")
OPS = (">=", ">", "<=", "<", "abs<=")


class ClaimError(ValueError):
    """A malformed claims file; the message names the claim and the key."""


@dataclass(frozen=True)
class Gate:
    """One diagnostic a design's runs must pass: ``agg`` (min, max, mean, maxabs) over the seeds of ``variant``'s
    ``metric`` (minus the mean of ``minus``, when given) ``op`` ``threshold``."""

    name: str
    variant: str
    metric: str
    op: str
    threshold: float
    agg: str
    minus_variant: str | None = None
    minus_metric: str | None = None
    why: str = ""

    def text(self, value: float | None) -> str:
        """``name value op threshold``, the form of claims.csv's ``gates`` column."""
        v = "missing" if value is None else f"{value:.4g}"
        return f"{self.name} {v} {self.op} {self.threshold:.4g}"


@dataclass
class Design:
    """One place a claim is tested; ``claim`` holds the claim-level keys."""

    claim: dict[str, Any]
    scale: str
    config: str
    dataset: str
    a: dict[str, str]
    b: dict[str, str] | None
    target: float | None
    gates: list[Gate] = field(default_factory=list)
    note: str = ""

    @property
    def id(self) -> str:
        return str(self.claim["id"])


@dataclass
class ClaimsFile:
    path: Path
    papers: dict[str, dict[str, str]]      # id -> {title, citation}, in file order
    scales: dict[str, str]                 # id -> title, most faithful first
    claims: list[dict[str, Any]]
    designs: list[Design]
    min_seeds: int = 3


def _load_yaml(path: Path) -> Any:
    import yaml  # safe_load: plain data only

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClaimError(f"{path}: no such claims file") from None
    except yaml.YAMLError as e:
        raise ClaimError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None


def _schema_check(doc: Any, name: str) -> None:
    import jsonschema
    import yaml

    schema = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    if not errors:
        return
    err = errors[0]
    path = list(err.absolute_path)
    where = name
    if len(path) >= 2 and path[0] == "claims" and isinstance(path[1], int):
        entry = doc["claims"][path[1]]
        cid = entry.get("id") if isinstance(entry, dict) else None
        where += f": claim {cid}" if cid else f": claims[{path[1]}]"
        path = path[2:]
    rest = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    message = err.message if len(err.message) < 200 else err.message[:200] + "..."
    if err.validator == "oneOf":
        message = "expected a gate-set name or a gate {name, metric, op, threshold, ...}"
    raise ClaimError(f"{where}{rest}: {message}")


def _side(entry: dict, design: dict, key: str) -> dict[str, str] | None:
    side = design.get(key) or entry.get(key)
    if side is None:
        return None
    return {"variant": str(side["variant"]), "metric": str(side["metric"]),
            "dataset": str(side.get("dataset") or design["dataset"])}


def _gates(items: list, gate_sets: dict, claim: dict, a: dict, b: dict | None, where: str) -> list[Gate]:
    out: list[Gate] = []
    for item in items:
        if isinstance(item, str):
            if item not in gate_sets:
                raise ClaimError(f"{where}.gates: unknown gate set {item!r}; known: {', '.join(sorted(gate_sets))}")
            out += _gates(gate_sets[item], gate_sets, claim, a, b, f"{where}.gates[{item}]")
            continue
        sides = ["a", "b"] if item.get("side") == "both" else [item.get("side", "a")]
        for s in sides:
            side = a if s == "a" else b
            if side is None:
                raise ClaimError(f"{where}.gates.{item['name']}: side {s!r} but the design has no side {s}")

            def sub(text: str, own: dict = side) -> str:
                """"$a..." / "$b..." / "$m...": side a's, side b's or this gate's side's metric."""
                if not text.startswith("$"):
                    return text
                ref = {"$a": a, "$b": b, "$m": own}.get(text[:2])
                if ref is None:
                    raise ClaimError(f"{where}.gates.{item['name']}: metric {text!r}: expected $a, $b or $m "
                                     "(+ suffix) for a side's metric, or a metric name")
                return ref["metric"] + text[2:]

            threshold = item["threshold"]
            if isinstance(threshold, str):
                if threshold != "$min_effect":
                    raise ClaimError(f"{where}.gates.{item['name']}.threshold = {threshold!r}; "
                                     "expected a number or '$min_effect'")
                threshold = float(claim.get("min_effect", 0.0))
            op = item["op"]
            # default: the worst seed (the largest |value| for abs<=)
            agg = item.get("agg") or ("min" if op in (">=", ">") else "maxabs" if op == "abs<=" else "max")
            minus = item.get("minus")
            name = item["name"] + (f".{s}" if len(sides) > 1 else "")
            out.append(Gate(name=name, variant=str(item.get("variant") or side["variant"]),
                            metric=sub(item["metric"]), op=op, threshold=float(threshold), agg=agg,
                            minus_variant=None if minus is None else str(minus.get("variant") or side["variant"]),
                            minus_metric=None if minus is None else sub(minus["metric"]),
                            why=str(item.get("why", ""))))
    names = [g.name for g in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ClaimError(f"{where}.gates: gate {dup[0]!r} declared twice")
    return out


def load_claims(path: str | Path = DEFAULT_CLAIMS) -> ClaimsFile:
    """The validated claims file, its claims expanded into designs."""
    path = Path(path)
    doc = _load_yaml(path)
    _schema_check(doc, path.name)
    papers = {str(p["id"]): {"title": p["title"], "citation": p["citation"]} for p in doc["papers"]}
    scales = {str(s["id"]): str(s["title"]) for s in doc["scales"]}
    gate_sets = doc.get("gate_sets") or {}
    seen: set[str] = set()
    designs: list[Design] = []
    for entry in doc["claims"]:
        where = f"{path.name}: claim {entry['id']}"
        if entry["id"] in seen:
            raise ClaimError(f"{where}: duplicate id")
        seen.add(entry["id"])
        if str(entry["paper"]) not in papers:
            raise ClaimError(f"{where}.paper = {entry['paper']!r}: not in papers; known: {', '.join(papers)}")
        kind = entry["kind"]
        if kind in ("compare", "threshold"):
            if entry.get("direction") not in ("less", "greater"):
                raise ClaimError(f"{where}.direction: kind {kind} needs direction less or greater")
            if "min_effect" not in entry:
                raise ClaimError(f"{where}.min_effect: missing; every {kind} claim states the smallest effect "
                                 "that counts")
            if kind == "compare" and not float(entry["min_effect"]) > 0:
                raise ClaimError(f"{where}.min_effect = {entry['min_effect']}: a compare claim needs a smallest "
                                 "effect that counts > 0 (else a precisely null effect can only read inconclusive)")
        if kind == "within" and "tolerance" not in entry:
            raise ClaimError(f"{where}.tolerance: kind within needs a tolerance > 0")
        if entry.get("relative") and kind == "threshold":
            raise ClaimError(f"{where}.relative: a threshold claim compares with a number, not a ratio")
        for j, d in enumerate(entry["designs"]):
            dwhere = f"{where}.designs[{j}]"
            if d["scale"] not in scales:
                raise ClaimError(f"{dwhere}.scale = {d['scale']!r}: unknown scale; known: {', '.join(scales)}")
            a = _side(entry, d, "a")
            b = _side(entry, d, "b")
            if a is None:
                raise ClaimError(f"{dwhere}.a: missing side a (variant + metric), here or on the claim")
            if kind == "compare" and b is None:
                raise ClaimError(f"{dwhere}.b: kind compare needs a side b")
            target = d.get("target", entry.get("target"))
            if kind == "threshold" and target is None:
                raise ClaimError(f"{dwhere}.target: kind threshold needs a number target")
            if kind == "within" and b is None and target is None:
                raise ClaimError(f"{dwhere}: kind within needs a side b or a target")
            if entry.get("relative") and b is None:
                raise ClaimError(f"{dwhere}.b: a relative claim needs a side b")
            gates = _gates(list(entry.get("gates") or []) + list(d.get("gates") or []), gate_sets, entry, a, b,
                           dwhere)
            designs.append(Design(claim=entry, scale=d["scale"], config=str(d["config"]), dataset=str(d["dataset"]),
                                  a=a, b=b, target=None if target is None else float(target), gates=gates,
                                  note=str(d.get("note", ""))))
    return ClaimsFile(path=path, papers=papers, scales=scales, claims=list(doc["claims"]), designs=designs,
                      min_seeds=int(doc.get("min_seeds", 3)))
