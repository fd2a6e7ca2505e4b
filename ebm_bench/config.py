"""Config resolution and the checks that the JSON schema cannot express.

The workflow validates the config's *structure* against
``workflow/schemas/config.schema.yaml``; this module checks what depends on the
registries (dataset types, methods, their parameter names and types) and resolves one
run's fully specified, JSON-serialisable *run spec*, which is all a job receives.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ConfigError

TRAIN_DEFAULTS: dict[str, Any] = {
    "steps": 300,
    "batch_size": 64,
    "checkpoint_every": 100,
    "log_every": 10,
    "diverge_above": 1e10,  # a logged scalar beyond this (or non-finite) ends the run as diverged
}
SAMPLE_DEFAULTS: dict[str, Any] = {"n": 1000}
EVALUATE_DEFAULTS: dict[str, Any] = {
    "features": "auto",
    "real_split": "train",
    "n_real": None,
    "min_real_per_dim": 2.0,
    "min_classifier_accuracy": 0.9,
    "probe_max_train": 5000,
    "inception_weights": None,
}
DATASET_KEYS = {"type", "params", "train", "variants", "variant_params"}


def _check_params(given: dict[str, Any], defaults: dict[str, Any], where: str) -> None:
    """Reject keys a component does not declare, and values of the wrong type."""
    for key, value in given.items():
        if key not in defaults:
            known = ", ".join(sorted(defaults)) or "(none)"
            raise ConfigError(f"unknown key {where}.{key}; known keys: {known}")
        ref = defaults[key]
        if ref is None or value is None:
            continue
        ok = isinstance(value, type(ref))
        if isinstance(ref, (int, float)) and not isinstance(ref, bool) and isinstance(value, list):
            ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if isinstance(ref, float) and isinstance(value, int) and not isinstance(value, bool):
            ok = True  # YAML writes 1.0 as 1
        if isinstance(ref, bool) != isinstance(value, bool):
            ok = False
        if not ok:
            raise ConfigError(
                f"{where}.{key} = {value!r} has type {type(value).__name__}, expected {type(ref).__name__}"
            )


def _method_params(config: dict, dataset: str, variant: str) -> tuple[str, dict[str, Any]]:
    from .registry import METHODS

    vcfg = dict(config["variants"][variant] or {})
    method = vcfg.pop("method", variant)
    vcfg.pop("train", None)
    cls = METHODS.get(method, key=f"variants.{variant}.method")
    dcfg = config["datasets"][dataset] or {}
    overrides = dcfg.get("variant_params", {}) or {}
    params: dict[str, Any] = {}
    # the dataset's "*" block tunes every variant to the data (step sizes, scales); only
    # the hyperparameters a method declares are taken from it
    for key, value in (overrides.get("*") or {}).items():
        if key in cls.defaults:
            params[key] = value
    params.update(vcfg)
    params.update({k: v for k, v in (overrides.get(variant) or {}).items() if k != "train"})
    return method, params


def _train_settings(config: dict, dataset: str, variant: str) -> dict[str, Any]:
    """Training-loop settings of one run, later entries winning: defaults, ``train``,
    ``datasets.X.train``, ``variants.V.train``, ``datasets.X.variant_params.V.train``
    (papers train their methods for different lengths on the same dataset)."""
    dcfg = config["datasets"][dataset] or {}
    vcfg = config["variants"][variant] or {}
    over = ((dcfg.get("variant_params") or {}).get(variant) or {})
    return {**TRAIN_DEFAULTS, **(config.get("train") or {}), **(dcfg.get("train") or {}),
            **(vcfg.get("train") or {}), **(over.get("train") or {})}


def check_config(config: dict) -> None:
    """Registry-level checks; raises :class:`ConfigError` naming the bad key."""
    from .registry import DATASETS, METHODS, NETWORKS

    for section in ("datasets", "variants", "seeds"):
        if not config.get(section):
            raise ConfigError(f"config key {section!r} is missing or empty")
    for name, dcfg in config["datasets"].items():
        dcfg = dcfg or {}
        unknown = set(dcfg) - DATASET_KEYS
        if unknown:
            raise ConfigError(f"unknown key datasets.{name}.{sorted(unknown)[0]}; known: {sorted(DATASET_KEYS)}")
        dtype = dcfg.get("type", name)
        spec = DATASETS.get(dtype, key=f"datasets.{name}.type")
        _check_params(dcfg.get("params") or {}, spec.defaults, f"datasets.{name}.params")
        _check_params(dcfg.get("train") or {}, TRAIN_DEFAULTS, f"datasets.{name}.train")
        for vname in dcfg.get("variants") or []:
            if vname not in config["variants"]:
                raise ConfigError(f"datasets.{name}.variants: no variant {vname!r} in 'variants'")
        for vname in dcfg.get("variant_params") or {}:
            if vname != "*" and vname not in config["variants"]:
                raise ConfigError(
                    f"datasets.{name}.variant_params.{vname}: no variant {vname!r} in 'variants'"
                )
    for vname, vcfg in config["variants"].items():
        vcfg = dict(vcfg or {})
        method = vcfg.pop("method", vname)
        cls = METHODS.get(method, key=f"variants.{vname}.method")
        _check_params(vcfg.pop("train", None) or {}, TRAIN_DEFAULTS, f"variants.{vname}.train")
        _check_params(vcfg, cls.defaults, f"variants.{vname}")
        for dname, dcfg in config["datasets"].items():
            over = dict(((dcfg or {}).get("variant_params") or {}).get(vname) or {})
            _check_params(over.pop("train", None) or {}, TRAIN_DEFAULTS,
                          f"datasets.{dname}.variant_params.{vname}.train")
            _check_params(over, cls.defaults, f"datasets.{dname}.variant_params.{vname}")
            _, params = _method_params(config, dname, vname)
            net = params.get("net")
            if net:
                NETWORKS.get(net, key=f"variants.{vname}.net")
    _check_params(config.get("train") or {}, TRAIN_DEFAULTS, "train")
    _check_params(config.get("sample") or {}, SAMPLE_DEFAULTS, "sample")
    _check_params(config.get("evaluate") or {}, EVALUATE_DEFAULTS, "evaluate")
    if config.get("device", "cpu") not in ("cpu", "cuda"):
        raise ConfigError(f"device = {config.get('device')!r}; expected 'cpu' or 'cuda'")


def dataset_spec(config: dict, dataset: str) -> dict[str, Any]:
    """Resolved dataset entry: registered type and params merged over its defaults."""
    from .registry import DATASETS

    if dataset not in config["datasets"]:
        raise ConfigError(f"unknown dataset {dataset!r}; configured: {', '.join(config['datasets'])}")
    dcfg = config["datasets"][dataset] or {}
    dtype = dcfg.get("type", dataset)
    spec = DATASETS.get(dtype, key=f"datasets.{dataset}.type")
    return {
        "name": dataset,
        "type": dtype,
        "data_root": str(config.get("data_root", "data")),
        "params": {**copy.deepcopy(spec.defaults), **(dcfg.get("params") or {})},
        "embedded": bool(spec.embedded),
        "default_net": spec.default_net,
        "default_net_params": dict(spec.default_net_params),
    }


def dataset_variants(config: dict, dataset: str) -> list[str]:
    """The variants run on a dataset: its ``variants`` list, else every variant."""
    return list((config["datasets"][dataset] or {}).get("variants") or config["variants"])


def is_embedded(config: dict, dataset: str) -> bool:
    return dataset_spec(config, dataset)["embedded"]


def uses_classifier(config: dict, dataset: str) -> bool:
    """A domain classifier (FID features for non-natural data, mode reader) needs labels."""
    from .registry import DATASETS

    dcfg = config["datasets"][dataset] or {}
    return bool(DATASETS.get(dcfg.get("type", dataset)).labelled)


def uses_inception(config: dict, dataset: str) -> bool:
    """Natural images use Inception features; digits and vectors a domain classifier."""
    mode = (config.get("evaluate") or {}).get("features", "auto")
    if mode != "auto":
        return mode == "inception"
    return not is_embedded(config, dataset)


def run_spec(config: dict, dataset: str, variant: str, seed: int) -> dict[str, Any]:
    """The complete, JSON-serialisable description of one training run."""
    from .registry import METHODS

    if variant not in config["variants"]:
        raise ConfigError(f"unknown variant {variant!r}; configured: {', '.join(config['variants'])}")
    ds = dataset_spec(config, dataset)
    method, overrides = _method_params(config, dataset, variant)
    params = {**copy.deepcopy(METHODS.get(method).defaults), **overrides}
    if params.get("net", "missing") is None or "net" not in params:
        params["net"] = ds["default_net"]
        params["net_params"] = {**ds["default_net_params"], **(params.get("net_params") or {})}
    train = _train_settings(config, dataset, variant)
    params = METHODS.get(method).resolve_params(params, train)
    dcfg = config["datasets"][dataset] or {}
    evaluate = {**EVALUATE_DEFAULTS, **(config.get("evaluate") or {})}
    evaluate["use_inception"] = uses_inception(config, dataset)
    return {
        "dataset": ds,
        "variant": variant,
        "method": method,
        "method_params": params,
        "seed": int(seed),
        "device": config.get("device", "cpu"),
        "data_root": str(config.get("data_root", "data")),
        "train": train,
        "sample": {**SAMPLE_DEFAULTS, **(config.get("sample") or {})},
        "evaluate": evaluate,
    }
