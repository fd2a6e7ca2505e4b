"""The workflow's config checks, as a user meets them: `snakemake -n --configfile BAD`
must fail with a message that names the offending key or value. Plus a dry run of a
minimal valid config (the schema's defaults fill in the rest)."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG = ROOT / "config" / "config.yaml"


def _snakemake() -> str:
    exe = Path(sys.executable).with_name("snakemake")
    found = str(exe) if exe.exists() else shutil.which("snakemake")
    if not found:
        pytest.skip("snakemake is not installed")
    return found


def _dry_run(config: dict, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(
        [_snakemake(), "-n", "--snakefile", str(SNAKEFILE), "--directory", str(tmp_path / "wd"),
         "--configfile", str(cfg), "--cores", "1", *extra],
        capture_output=True, text=True, env=env, timeout=300,
    )


def _base() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG.read_text())


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c.update(lerning_rate=0.1), [r"\(top level\)", r"'lerning_rate' was unexpected"]),
        (lambda c: c["train"].update(stpes=10), [r"Invalid config: train:", r"'stpes' was unexpected",
                                                 r"allowed keys here: .*steps"]),
        (lambda c: c["train"].update(steps=-5), [r"train\.steps", r"-5 is less than the minimum of 1"]),
        (lambda c: c.update(device="tpu"), [r"Invalid config: device:", r"'tpu' is not one of \['cpu', 'cuda'\]"]),
    ],
    ids=["unknown-top-level-key", "unknown-train-key", "negative-steps", "bad-device"],
)
def test_bad_config_fails_naming_the_key(tmp_path: Path, mutate, expected) -> None:
    config = copy.deepcopy(_base())
    mutate(config)
    proc = _dry_run(config, tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    for pattern in expected:
        assert re.search(pattern, out), f"{pattern!r} not in snakemake's output:\n{out}"
    # one clear line, not a dump of the schema
    assert "Failed validating" not in out


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c["datasets"].update({"bad-name": {"type": "digits"}}), r"'bad-name' does not match"),
        (lambda c: c.update(seeds=[0, 0]), r"seeds: \[0, 0\] has non-unique elements"),
        (lambda c: c["datasets"]["digits"].update(seeds=[1, -1]), r"datasets\.digits\.seeds\.1: -1 is less than"),
        (lambda c: c["evaluate"].update(features="clip"), r"evaluate\.features: 'clip' is not one of"),
        (lambda c: c["datasets"]["digits"].update(typo=1), r"datasets\.digits: .*'typo' was unexpected"),
        (lambda c: c["variants"].update(x={"method": 3}), r"variants\.x\.method: 3 is not of type 'string'"),
        (lambda c: c["variants"].update(x=[1]), r"variants\.x: \[1\] is not of type 'object', 'null'"),
    ],
    ids=["dataset-name", "duplicate-seeds", "dataset-seeds", "features-enum", "dataset-key", "method-type", "variant-type"],
)
def test_schema_messages(mutate, expected) -> None:
    """The same checks straight through jsonschema (fast): each error has a path."""
    import jsonschema

    schema = yaml.safe_load(SCHEMA.read_text())
    config = copy.deepcopy(_base())
    mutate(config)
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    assert err is not None
    path = ".".join(str(p) for p in err.absolute_path)
    assert re.search(expected, f"{path}: {err.message}"), f"{path}: {err.message}"


def test_default_config_is_valid() -> None:
    import jsonschema

    schema = yaml.safe_load(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(_base())


@pytest.mark.workflow
def test_minimal_config_dry_run(tmp_path: Path) -> None:
    """Only datasets and variants given: defaults fill in the rest, the given config
    replaces config/config.yaml (no embedded datasets merged in), and the DAG has one
    job per stage for the single run."""
    config = {"datasets": {"digits": None}, "variants": {"pcd": None}}  # `digits:` / `pcd:`
    proc = _dry_run(config, tmp_path, "--quiet", "rules")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    counts = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", out, flags=re.M))
    assert counts.get("train") == "1" and counts.get("sample") == "1" and counts.get("evaluate") == "1", out
    assert counts.get("tables") == "1" and counts.get("training_curves") == "1", out
    assert "rings" not in out and "gmm2d" not in out


@pytest.mark.workflow
def test_dataset_seeds_override_the_top_level_seeds(tmp_path: Path) -> None:
    """datasets.X.seeds replaces the top-level seeds for X only (claims need 10 seeds on
    one design and 3 on another): the DAG trains each dataset's own seeds."""
    config = {"seeds": [0], "datasets": {"digits": {"seeds": [3, 4]}, "rings": {"type": "toy2d"}},
              "variants": {"pcd": None}}
    proc = _dry_run(config, tmp_path, "--quiet", "rules")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    counts = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", out, flags=re.M))
    assert counts.get("train") == "3", out  # digits seeds 3 and 4, rings seed 0
    proc = _dry_run(config, tmp_path)
    out = proc.stdout + proc.stderr
    trained = set(re.findall(r"--run-dir results/runs/(\w+)/pcd/seed(\d+)\b", out))
    assert {r for r in trained} >= {("digits", "3"), ("digits", "4"), ("rings", "0")}, out
    assert ("digits", "0") not in trained and ("rings", "3") not in trained, out
    assert "--seeds 0,3,4" in out, out  # the tables read every dataset's seeds


def test_variant_train_overrides_apply_in_order() -> None:
    """train < datasets.X.train < variants.V.train < datasets.X.variant_params.V.train;
    other variants and datasets keep their own settings."""
    from ebm_bench.pipeline.config import check_config, run_spec

    config = {
        "seeds": [0],
        "train": {"steps": 10, "log_every": 2},
        "datasets": {
            "a": {"type": "digits", "train": {"steps": 20, "batch_size": 8},
                  "variant_params": {"pcd": {"train": {"steps": 40}}}},
            "b": {"type": "digits"},
        },
        "variants": {"pcd": {"method": "pcd", "train": {"steps": 30, "checkpoint_every": 7}},
                     "short_run": {"method": "short_run"}},
    }
    check_config(config)
    t = {(d, v): run_spec(config, d, v, 0)["train"] for d in ("a", "b") for v in ("pcd", "short_run")}
    assert t["a", "pcd"]["steps"] == 40 and t["a", "pcd"]["checkpoint_every"] == 7
    assert t["a", "pcd"]["batch_size"] == 8 and t["a", "pcd"]["log_every"] == 2
    assert t["b", "pcd"]["steps"] == 30 and t["a", "short_run"]["steps"] == 20
    assert t["b", "short_run"]["steps"] == 10 and t["b", "short_run"]["checkpoint_every"] == 100
    # train keys never leak into the method's hyperparameters
    assert "train" not in run_spec(config, "a", "pcd", 0)["method_params"]


@pytest.mark.parametrize(
    "where, expected",
    [
        (lambda c: c["variants"]["pcd"].update(train={"stpes": 3}), r"variants\.pcd\.train\.stpes"),
        (lambda c: c["datasets"]["a"].update(variant_params={"pcd": {"train": {"steps": "x"}}}),
         r"datasets\.a\.variant_params\.pcd\.train\.steps: 'x' has type str"),
    ],
    ids=["variant-train-key", "variant-params-train-type"],
)
def test_variant_train_errors_name_the_key(where, expected) -> None:
    from ebm_bench.pipeline.config import check_config
    from ebm_bench.core.errors import ConfigError

    config = {"seeds": [0], "datasets": {"a": {"type": "digits"}}, "variants": {"pcd": {"method": "pcd"}}}
    where(config)
    with pytest.raises(ConfigError, match=expected):
        check_config(config)


def test_reported_numbers_name_rows_of_the_paper_config() -> None:
    """Every number in config/reported.yaml has a source and belongs to a dataset table of
    config/paper.yaml; its row is run there unless the source says the paper cites it."""
    from ebm_bench.pipeline.config import check_config, run_spec
    from ebm_bench.reports.collect import load_reported

    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    check_config(paper)
    entries = load_reported(ROOT / "config" / "reported.yaml")
    assert entries
    for e in entries:
        assert e["dataset"] in paper["datasets"], e
        assert e["source"].lower().startswith("paper"), e
        if "cited" not in e["source"]:
            assert e["method"] in paper["datasets"][e["dataset"]]["variants"], e
    # paper 004's settings: M = 5, L = 60, T * B = 5e-5 * 64, 50,000 Adam updates
    nnefh = run_spec(paper, "cifar10", "nnefh", 0)
    p = nnefh["method_params"]
    assert (p["gibbs_steps"], p["langevin_steps"], nnefh["train"]["steps"]) == (5, 60, 50000)
    # eps = 1, T = 5e-5 (paper) run as eps / B, T * B with B = train.batch_size = 64
    assert (p["step_size"], p["temperature"], p["sampler_batch_normalised"]) == (1.0, 5e-5, True)
    assert p["sampler_batch"] == nnefh["train"]["batch_size"] == 64 and p["net_params"]["n_features"] == 1024


def test_spec_names_its_config_file_without_changing_the_run() -> None:
    """run_spec(config_file=X) records X (provenance), and the training identity
    (runs.config_id) is the same whichever config file named the run."""
    from ebm_bench.pipeline.config import run_spec
    from ebm_bench.training.runs import config_id, provenance

    config = {"seeds": [0], "datasets": {"a": {"type": "digits"}}, "variants": {"pcd": {"method": "pcd"}}}
    a = run_spec(config, "a", "pcd", 0, config_file="config/claims_cpu.yaml")
    b = run_spec(config, "a", "pcd", 0)
    assert a["config_file"] == "config/claims_cpu.yaml" and b["config_file"] == ""
    assert provenance(a) == {"config": "config/claims_cpu.yaml"}
    assert config_id(a) == config_id(b)


@pytest.mark.workflow
def test_workflow_specs_carry_the_config_file(tmp_path: Path) -> None:
    """The workflow puts the --configfile it runs into every job's spec (a file outside
    the workflow folder by its absolute path); the rerun decision does not track it."""
    config = {"datasets": {"digits": None}, "variants": {"pcd": None}}
    proc = _dry_run(config, tmp_path, "-p")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    cfg = str((tmp_path / "config.yaml").resolve())
    assert f'"config_file": "{cfg}"' in out, out
    # inside the workflow folder: the path relative to it
    inside = ROOT / "config" / "config.yaml"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run(
        [_snakemake(), "-n", "-p", "--snakefile", str(SNAKEFILE), "--directory", str(tmp_path / "wd2"),
         "--configfile", str(inside), "--cores", "1", "--until", "run", "--config", "results_dir=r",
         "data_root=d"], capture_output=True, text=True, env=env, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert '"config_file": "config/config.yaml"' in out, out


def test_a_neutral_option_at_its_default_does_not_change_the_rerun_view() -> None:
    """Adding an option whose default is the old behaviour (a method's ``neutral`` keys)
    must not retrain finished runs: at that default the rerun view drops it, elsewhere
    it stays tracked. Every neutral key is one of its method's defaults."""
    from ebm_bench.pipeline.config import rerun_view, run_spec
    from ebm_bench.core.registry import METHODS

    for name in METHODS.names():
        cls = METHODS.get(name)
        assert set(cls.neutral) <= set(cls.defaults), name
    config = {"datasets": {"digits": None}, "variants": {"jarzynski": None}}
    base = run_spec(config, "digits", "jarzynski", 0)
    assert base["method_params"]["resample_every"] == 0
    view = rerun_view(base)
    assert "resample_every" not in view["method_params"]
    neutral = set(METHODS.get("jarzynski").neutral)
    assert {k: v for k, v in base["method_params"].items() if k not in neutral} == view["method_params"]
    lag = {**base, "method_params": {**base["method_params"], "resample_every": 10}}
    assert rerun_view(lag)["method_params"]["resample_every"] == 10
