"""Config resolution and the checks that the JSON schema cannot express.

The workflow validates the config's *structure* against
``workflow/schemas/config.schema.yaml``; this module checks what depends on the
registries (dataset types, methods, their parameter names and types) and resolves one
run's fully specified, JSON-serialisable *run spec*, which is all a job receives.
"""

from __future__ import annotations

import copy
from typing import Any

from ebm_bench.core import validation as V
from ebm_bench.core.errors import ConfigError

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
    "kid_subsets": 100,  # KID / sample-MMD subsets (torch-fidelity's default 100)
    "probe_max_train": 5000,
    "inception_weights": None,
    "model_modes": {},  # AIS settings of the model_modes family (ebm_bench/evaluation/model_modes.py)
}
DATASET_KEYS = {"type", "params", "train", "seeds", "variants", "variant_params"}


# Sizes below which a metric is meaningless or fails: FID needs a covariance of the
# features of both sets, IS averages over 10 splits, the linear probe needs examples of
# every class to fit on.
MIN_SAMPLES = 100
MIN_REAL = 100
MIN_PROBE_TRAIN = 100


class Section:
    """A config section checked like a component: ``defaults`` (every key it takes, with
    its default) and ``checks`` (key -> :class:`ebm_bench.core.validation.Check`). These
    are the one source of the sections' defaults and ranges: the workflow's JSON schema
    repeats them for Snakemake, and tests/test_config_schema.py holds the two equal."""

    defaults: dict[str, Any] = {}
    checks: dict[str, V.Check] = {}


class Train(Section):
    defaults = TRAIN_DEFAULTS
    checks = {"steps": V.count(), "batch_size": V.count(), "checkpoint_every": V.count(),
              "log_every": V.count(), "diverge_above": V.positive()}


class Sample(Section):
    defaults = SAMPLE_DEFAULTS
    checks = {"n": V.count(MIN_SAMPLES)}


class Evaluate(Section):
    defaults = EVALUATE_DEFAULTS
    checks = {"features": V.choice("auto", "inception", "domain"), "real_split": V.choice("train", "test"),
              "n_real": V.count(MIN_REAL, nullable=True), "min_real_per_dim": V.nonnegative(),
              "min_classifier_accuracy": V.probability(), "kid_subsets": V.count(1),
              "probe_max_train": V.count(MIN_PROBE_TRAIN), "inception_weights": V.Check("str", nullable=True)}


def model_modes_section() -> type[Section]:
    """``evaluate.model_modes``: the model_modes family declares its settings itself
    (imported here, when a config is checked: the family imports torch)."""
    from ebm_bench.evaluation import model_modes

    class ModelModes(Section):
        defaults = model_modes.DEFAULTS
        checks = model_modes.CHECKS

    return ModelModes


# the sections of a config, by their key (evaluate.model_modes: model_modes_section)
SECTIONS: dict[str, type[Section]] = {"train": Train, "sample": Sample, "evaluate": Evaluate}


_SIZE_REASONS = {
    "sample.n": "FID needs a covariance of the generated features and IS averages over 10 splits",
    "evaluate.n_real": "FID needs a covariance of the real features",
    "evaluate.probe_max_train": "the linear probe needs training examples of every class",
}


def _check_section(cls, block: dict[str, Any], where: str) -> None:
    try:
        V.check_block(cls, block or {}, where)
    except ConfigError as e:
        reason = next((r for k, r in _SIZE_REASONS.items() if str(e).startswith(k + ":")), None)
        if reason and "out of range" in str(e):
            raise ConfigError(f"{e} ({reason})") from None
        raise


def _method_params(config: dict, dataset: str, variant: str) -> tuple[str, dict[str, Any]]:
    from ebm_bench.core.registry import METHODS

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


def _layers(config: dict, dataset: str, variant: str) -> list[tuple[str, dict[str, Any]]]:
    """The blocks a run's hyperparameters come from, lowest priority first, with their
    config paths: the dataset's "*" block, the variant, the dataset's block of the variant."""
    dcfg = config["datasets"][dataset] or {}
    over = dcfg.get("variant_params") or {}
    vcfg = {k: v for k, v in (config["variants"][variant] or {}).items() if k not in ("method", "train")}
    return [(f"datasets.{dataset}.variant_params.*", dict(over.get("*") or {})),
            (f"variants.{variant}", vcfg),
            (f"datasets.{dataset}.variant_params.{variant}",
             {k: v for k, v in (over.get(variant) or {}).items() if k != "train"})]


def _check_paths(config: dict) -> None:
    """results_dir and data_root are two separate trees (a run writes only under results_dir,
    reads datasets only from data_root)."""
    from pathlib import Path

    data = Path(str(config.get("data_root", "data"))).expanduser().resolve()
    results = Path(str(config.get("results_dir", "results"))).expanduser().resolve()
    if data == results or data in results.parents or results in data.parents:
        raise ConfigError(f"results_dir: {results} and data_root {data} overlap; runs write only under "
                          f"results_dir and read only from data_root, keep them apart")


def check_config(config: dict) -> None:
    """Registry-level checks; raises :class:`ConfigError` naming the bad key.

    Every value is checked against the rule its component declares
    (:mod:`ebm_bench.core.validation`): dataset params, variant hyperparameters (in
    ``variants``, in ``datasets.X.variant_params.V`` and in the ``"*"`` blocks), the
    network's constructor arguments, the train/sample/evaluate sections; then each run's
    merged parameters against the component's cross-key rules; paths a dataset reads
    must lie inside ``data_root``.
    """
    from ebm_bench.core.registry import DATASETS, METHODS, NETWORKS

    for section in ("datasets", "variants", "seeds"):
        if not config.get(section):
            raise ConfigError(f"config key {section!r} is missing or empty")
    _check_seeds(config["seeds"], "seeds")
    if config.get("device", "cpu") not in ("cpu", "cuda"):
        raise ConfigError(f"device = {config.get('device')!r}; expected 'cpu' or 'cuda'")
    _check_paths(config)
    data_root = str(config.get("data_root", "data"))
    for vname, vcfg in config["variants"].items():
        if vcfg is not None and not isinstance(vcfg, dict):
            raise ConfigError(f"variants.{vname}: expected a mapping of hyperparameters, got {vcfg!r}")
        METHODS.get((vcfg or {}).get("method", vname), key=f"variants.{vname}.method")
    for name, dcfg in config["datasets"].items():
        dcfg = dcfg or {}
        unknown = set(dcfg) - DATASET_KEYS
        if unknown:
            raise ConfigError(f"datasets.{name}.{sorted(unknown)[0]}: unknown key; known: {V.known_keys(DATASET_KEYS)}")
        dtype = dcfg.get("type", name)
        spec = DATASETS.get(dtype, key=f"datasets.{name}.type")
        merged = V.checked(spec, dcfg.get("params") or {}, f"datasets.{name}.params")
        for key in getattr(spec, "path_params", ()):
            if merged.get(key) is not None:
                V.inside(data_root, merged[key], f"datasets.{name}.params.{key}")
        _check_section(Train, dcfg.get("train") or {}, f"datasets.{name}.train")
        _check_seeds(dcfg.get("seeds"), f"datasets.{name}.seeds")
        for vname in dcfg.get("variants") or []:
            if vname not in config["variants"]:
                raise ConfigError(f"datasets.{name}.variants: no variant {vname!r} in 'variants'")
        for vname in dcfg.get("variant_params") or {}:
            if vname != "*" and vname not in config["variants"]:
                raise ConfigError(
                    f"datasets.{name}.variant_params.{vname}: no variant {vname!r} in 'variants'"
                )
        # "*": every key must be a hyperparameter of some method run on this dataset, with a
        # value that method accepts
        star = (dcfg.get("variant_params") or {}).get("*") or {}
        classes = {}
        for vname in dataset_variants(config, name):
            method = (config["variants"][vname] or {}).get("method", vname)
            classes[method] = METHODS.get(method)
        for key, value in star.items():
            path = f"datasets.{name}.variant_params.*.{key}"
            if key == "train":
                raise ConfigError(f"{path}: training settings for every variant go in datasets.{name}.train")
            declaring = {m: c for m, c in classes.items() if key in V.checks_of(c)}
            if not declaring:
                known = set().union(*(V.checks_of(c) for c in classes.values()))
                raise ConfigError(f"{path}: unknown key (no method run on {name!r} has it: "
                                  f"{', '.join(sorted(classes))}); known: {V.known_keys(known)}")
            for m, c in sorted(declaring.items()):
                why = V.checks_of(c)[key].problem(value)
                if why is not None:
                    raise ConfigError(f"{path}: {why} (method {m})")
    for vname, vcfg in config["variants"].items():
        vcfg = dict(vcfg or {})
        method = vcfg.pop("method", vname)
        cls = METHODS.get(method, key=f"variants.{vname}.method")
        _check_section(Train, vcfg.pop("train", None) or {}, f"variants.{vname}.train")
        V.check_block(cls, vcfg, f"variants.{vname}")
        for dname, dcfg in config["datasets"].items():
            over = dict(((dcfg or {}).get("variant_params") or {}).get(vname) or {})
            _check_section(Train, over.pop("train", None) or {}, f"datasets.{dname}.variant_params.{vname}.train")
            V.check_block(cls, over, f"datasets.{dname}.variant_params.{vname}")
    # every run that runs: its merged hyperparameters and its network
    for dname in config["datasets"]:
        ds = dataset_spec(config, dname)
        for vname in dataset_variants(config, dname):
            method, params = _method_params(config, dname, vname)
            cls = METHODS.get(method)
            V.check_cross(cls, {**copy.deepcopy(cls.defaults), **params}, f"variants.{vname} on datasets.{dname}")
            if "net" not in cls.defaults:
                continue
            layers = _layers(config, dname, vname)

            def net_of(upto: int) -> tuple[str, str]:
                """The network (and the key naming it) in force after ``layers[:upto]``."""
                for p, block in reversed(layers[:upto]):
                    if block.get("net") is not None:
                        return block["net"], f"{p}.net"
                if cls.defaults.get("net") is not None:
                    return cls.defaults["net"], f"variants.{vname}.net (method {method}'s default)"
                return ds["default_net"], f"datasets.{dname}.type ({ds['type']}'s default network)"

            net, net_path = net_of(len(layers))
            NETWORKS.get(net, key=net_path)
            # every block that sets net_params for this run, against the network in force
            # there (the last block wins, but none may be wrong)
            for i, (p, block) in enumerate(layers):
                if "net_params" not in block:
                    continue
                given, np_path = block["net_params"], f"{p}.net_params"
                net_i, key_i = net_of(i + 1)
                net_cls = NETWORKS.get(net_i, key=key_i)
                if not isinstance(given, dict):
                    raise ConfigError(f"{np_path}: {given!r} is not a mapping of {net_i}'s arguments")
                try:
                    V.check_block(net_cls, given, np_path)
                except ConfigError as e:
                    raise ConfigError(f"{e} (network {net_i} of variant {vname!r} on dataset {dname!r})") from None
    _check_section(Train, config.get("train") or {}, "train")
    _check_section(Sample, config.get("sample") or {}, "sample")
    _check_section(Evaluate, config.get("evaluate") or {}, "evaluate")
    _check_section(model_modes_section(), (config.get("evaluate") or {}).get("model_modes") or {},
                   "evaluate.model_modes")
    features = (config.get("evaluate") or {}).get("features", "auto")
    for dname, dcfg in config["datasets"].items():
        spec = DATASETS.get((dcfg or {}).get("type", dname))
        if features == "inception" and not getattr(spec, "images", False):
            raise ConfigError(f"evaluate.features: 'inception' needs images, and dataset {dname!r} "
                              f"(type {spec.name}) is not; use 'auto' or 'domain'")
        if features == "domain" and not spec.labelled:
            raise ConfigError(f"evaluate.features: 'domain' needs a labelled dataset to train the domain "
                              f"classifier on, and dataset {dname!r} (type {spec.name}) has no labels; use 'auto'")


def dataset_spec(config: dict, dataset: str) -> dict[str, Any]:
    """Resolved dataset entry: registered type and params merged over its defaults."""
    from ebm_bench.core.registry import DATASETS

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


def _check_seeds(seeds, key: str) -> None:
    """A seed list: null (the top-level seeds) or distinct non-negative integers."""
    if seeds is None:
        return
    if not isinstance(seeds, list) or not seeds:
        raise ConfigError(f"{key} = {seeds!r}; expected a non-empty list of seeds")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ConfigError(f"{key}: seed {s!r} is not a non-negative integer")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{key} = {seeds!r}: a seed is repeated")


def dataset_seeds(config: dict, dataset: str) -> list[int]:
    """The seeds of a dataset's runs: its ``seeds`` list, else the top-level ``seeds``."""
    return list((config["datasets"][dataset] or {}).get("seeds") or config["seeds"])


def dataset_variants(config: dict, dataset: str) -> list[str]:
    """The variants run on a dataset: its ``variants`` list, else every variant."""
    return list((config["datasets"][dataset] or {}).get("variants") or config["variants"])


def is_embedded(config: dict, dataset: str) -> bool:
    return dataset_spec(config, dataset)["embedded"]


def uses_classifier(config: dict, dataset: str) -> bool:
    """A domain classifier (FID features for non-natural data, mode reader) needs labels."""
    from ebm_bench.core.registry import DATASETS

    dcfg = config["datasets"][dataset] or {}
    return bool(DATASETS.get(dcfg.get("type", dataset)).labelled)


def uses_inception(config: dict, dataset: str) -> bool:
    """Natural images use Inception features; digits and vectors a domain classifier."""
    mode = (config.get("evaluate") or {}).get("features", "auto")
    if mode != "auto":
        return mode == "inception"
    return not is_embedded(config, dataset)


def run_spec(config: dict, dataset: str, variant: str, seed: int, config_file: str = "") -> dict[str, Any]:
    """The complete, JSON-serialisable description of one training run.

    ``config_file``: the config file the run is made for, as the workflow names it
    (relative to the workflow folder, e.g. ``config/claims_cpu.yaml``; "" where unknown).
    Provenance only: the evaluate stage writes it into every metrics file (so a claim can
    tell which design made a run), and neither :func:`ebm_bench.training.runs.config_id` nor the
    workflow's rerun decision reads it, so the same run named by two config files is one
    training run.
    """
    from ebm_bench.core.registry import METHODS

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
        "config_file": str(config_file or ""),
    }


def rerun_view(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` as the rerun decision sees it: the method's ``neutral`` options
    (:class:`ebm_bench.methods.base.Method`) are dropped where they sit at their default,
    which is the behaviour from before they existed; everything else is kept."""
    from ebm_bench.core.registry import METHODS

    method, params = spec.get("method"), spec.get("method_params")
    if not method or not isinstance(params, dict) or method not in METHODS:
        return spec
    cls = METHODS.get(method)
    drop = {k for k in cls.neutral if k in params and params[k] == cls.defaults.get(k)}
    if not drop:
        return spec
    return {**spec, "method_params": {k: v for k, v in params.items() if k not in drop}}
