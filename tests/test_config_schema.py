"""One source of the config sections' defaults and ranges.

The train, sample and evaluate sections (and ``evaluate.model_modes``) declare their
keys, defaults and checks in Python (:data:`ebm_bench.pipeline.config.SECTIONS`,
:mod:`ebm_bench.evaluation.model_modes`); the workflow's JSON schema repeats them for
Snakemake, which validates and fills in defaults before the package's own check runs.
Here the schema is read against the declarations, key by key: the same keys, the same
default, the same type, bounds and choices. A change to one side only fails here.

Mutations tried (each failed this test, then restored): ``sample.n`` minimum 1 in the schema
(the old disagreement with MIN_SAMPLES = 100), ``train.steps`` default 301 in
TRAIN_DEFAULTS, ``min_classifier_accuracy`` maximum removed from the schema,
``model_modes.base_std`` exclusiveMinimum 0 -> minimum 0 in the schema, a key added to
EVALUATE_DEFAULTS only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ebm_bench.core import validation as V
from ebm_bench.pipeline.config import SECTIONS, model_modes_section

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())

JSON_TYPES = {"int": "integer", "number": "number", "str": "string", "bool": "boolean", "dict": "object",
              "list": "array"}
BOUNDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}
COMPARED = ("type", "enum", *BOUNDS.values())


def _as_schema(check: V.Check) -> dict[str, Any]:
    """The JSON-schema words that say what ``check`` says (type, enum, bounds)."""
    out: dict[str, Any] = {}
    kind = JSON_TYPES.get(check.kind)
    if kind is not None:
        out["type"] = [kind, "null"] if check.nullable else kind
    if check.choices is not None:
        out["enum"] = list(check.choices)
    for attr, word in BOUNDS.items():
        if getattr(check, attr) is not None:
            out[word] = getattr(check, attr)
    return out


def _schema_sections() -> dict[str, tuple[dict, dict]]:
    """section key -> (properties holding the types and ranges, properties holding the defaults)."""
    props = SCHEMA["properties"]
    evaluate = props["evaluate"]["properties"]
    return {
        # ranges in $defs.train_section (shared with the per-dataset overrides), defaults
        # in the top-level train section only, so that overrides stay partial
        "train": (SCHEMA["$defs"]["train_section"]["properties"], props["train"]["properties"]),
        "sample": (props["sample"]["properties"], props["sample"]["properties"]),
        "evaluate": (evaluate, evaluate),
        "evaluate.model_modes": (evaluate["model_modes"]["properties"], evaluate["model_modes"]["properties"]),
    }


def _declared() -> dict[str, type]:
    return {**SECTIONS, "evaluate.model_modes": model_modes_section()}


def test_every_section_is_compared() -> None:
    assert set(_declared()) == set(_schema_sections())


@pytest.mark.parametrize("section", sorted(_schema_sections()))
def test_schema_repeats_the_declared_defaults_and_checks(section: str) -> None:
    cls = _declared()[section]
    ranges, defaults = _schema_sections()[section]
    declared = V.defaults_of(cls)
    assert set(ranges) == set(declared), f"{section}: schema keys {sorted(ranges)} != declared {sorted(declared)}"
    assert set(defaults) == set(declared)
    for key, check in V.checks_of(cls).items():
        assert defaults[key].get("default") == declared[key], (
            f"{section}.{key}: schema default {defaults[key].get('default')!r} != declared {declared[key]!r}")
        if check.kind == "dict":  # evaluate.model_modes: compared as its own section
            continue
        said = {w: ranges[key][w] for w in COMPARED if w in ranges[key]}
        assert said == _as_schema(check), f"{section}.{key}: schema says {said}, the declaration {_as_schema(check)}"
