# Helpers shared by the files of rules (paths, run lists, the per-stage spec passed
# to `ebm-bench`, resources). Included after the config was validated (validate.smk), so
# every key here exists. Plain Python run once per Snakemake invocation (and once per
# job on a cluster, where every job re-reads the Snakefile).

import json
import os
import shlex
import sys

# Jobs call `ebm-bench` and `python`: make them the ones of the environment Snakemake
# runs in (a virtualenv's bin is not on PATH unless activated). A conda env given with
# --sdm conda is activated inside the job and still comes first.
_bin = os.path.dirname(sys.executable)
if _bin not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")


# --- the package's view of the config (ebm_bench.pipeline.config; _pkg_config in validate.smk)


def _config_file():
    """The config file(s) this invocation runs (``--configfile`` replaces the default
    config/config.yaml), relative to the workflow folder where they lie inside it, else
    absolute; several are joined with ','. Provenance of every run (spec key
    ``config_file``, never tracked for reruns: see _NEVER_TRACKED)."""
    names = []
    for path in workflow.configfiles:
        full = os.path.abspath(str(path))
        rel = os.path.relpath(full, workflow.basedir)
        names.append(full if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel)
    return ",".join(names)


CONFIG_FILE = _config_file()


def run_spec(config, dataset, variant, seed):
    return _pkg_config().run_spec(config, dataset, variant, seed, config_file=CONFIG_FILE)


def dataset_spec(config, dataset):
    return _pkg_config().dataset_spec(config, dataset)


def is_embedded(config, dataset):
    return _pkg_config().is_embedded(config, dataset)


def uses_inception(config, dataset):
    return _pkg_config().uses_inception(config, dataset)


# --- paths ---------------------------------------------------------------------------

R = config["results_dir"]
# train + sample + evaluate of a run in one job (workflow/rules/run.smk), or one job each
COMBINED = bool(config.get("combine_stages", False))
STAGES = ("run",) if COMBINED else ("train", "sample", "evaluate")
RUN = f"{R}/runs/{{dataset}}/{{variant}}/seed{{seed}}"
BENCH = f"{R}/benchmarks/{{stage}}/{{dataset}}/{{variant}}/seed{{seed}}.tsv"
CLASSIFIER = f"{R}/classifiers/{{dataset}}.pt"
REFERENCE = f"{R}/reference/{{dataset}}.npz"  # FID/KID/IS reference statistics
DATA_FLAG = f"{R}/data/{{dataset}}.ready"
# a folder of its own, so that no dataset name can collide with it
INCEPTION_FLAG = f"{R}/data/weights/inception.ready"
TABLES = f"{R}/tables"
LOGS = f"{R}/logs"
REPORTED = "config/reported.yaml"  # numbers the papers report; optional
# the papers' claims as data (ebm_bench.claims): the working directory's, else the workflow's
CLAIMS = "config/claims.yaml" if os.path.exists("config/claims.yaml") else os.path.join(
    workflow.basedir, "config", "claims.yaml")


def bench(stage):
    """Path of the `benchmark:` file of one run's stage (wall time, peak memory)."""
    return BENCH.replace("{stage}", stage)


def run_file(name):
    """A file of one run: results/runs/{dataset}/{variant}/seed{seed}/NAME."""
    return f"{RUN}/{name}"


def run_log(stage):
    return f"{LOGS}/{stage}/{{dataset}}/{{variant}}/seed{{seed}}.log"


def parent_dir(key):
    """params function: the folder of the job's output `key` (the run folder)."""
    return lambda wildcards, output: os.path.dirname(output[key])


def dataset_seeds(dataset):
    """The seeds of one dataset's runs: datasets.X.seeds, else the top-level seeds."""
    return _pkg_config().dataset_seeds(config, dataset)


def all_seeds():
    """Every seed some dataset runs (the tables' --seeds filter), comma-separated."""
    return ",".join(str(s) for s in sorted({s for d in config["datasets"] for s in dataset_seeds(d)}))


def run_lists():
    """expand(..., zip, **run_lists()) gives one path per (dataset, variant, seed)."""
    runs = [
        (d, v, s)
        for d in config["datasets"]
        for v in (config["datasets"][d] or {}).get("variants") or config["variants"]
        for s in dataset_seeds(d)
    ]
    return {
        "dataset": [r[0] for r in runs],
        "variant": [r[1] for r in runs],
        "seed": [r[2] for r in runs],
    }


def reported_file():
    return [REPORTED] if os.path.exists(REPORTED) else []


def tables_input(wildcards):
    """Everything the tables read: each run's metrics, status and benchmark files."""
    runs = run_lists()
    return {
        "metrics": expand(run_file("metrics"), zip, **runs),
        "status": expand(run_file("train_status.json"), zip, **runs),
        "bench": [
            f
            for stage in STAGES
            for f in expand(bench(stage), zip, **runs)
        ],
        "reported": reported_file(),
    }


def reported_arg(wildcards, input):
    return f"--reported {shlex.quote(input.reported[0])}" if input.reported else ""


def table_files():
    files = [f"{TABLES}/runs.csv", f"{TABLES}/summary.md", f"{TABLES}/claims.csv", f"{TABLES}/claims.md"]
    for d in config["datasets"]:
        files += [f"{TABLES}/{d}.{ext}" for ext in ("csv", "md", "tex")]
    if reported_file():
        files.append(f"{TABLES}/reproduction.md")
    return files


# --- inputs that depend on the dataset ------------------------------------------------
# ancient(): a flag only has to exist. Re-creating it (a deleted results/data/, a
# re-run download) must not make every run of the dataset retrain.


def data_flag(wildcards):
    if is_embedded(config, wildcards.dataset):
        return []
    return [ancient(DATA_FLAG.format(dataset=wildcards.dataset))]


def inception_flag(wildcards):
    if uses_inception(config, wildcards.dataset):
        return [ancient(INCEPTION_FLAG)]
    return []


def uses_classifier(dataset):
    """Whether the dataset gets a domain classifier (FID/IS features, mode reader): one
    needs labels. ebm_bench.pipeline.config.uses_classifier decides where the package has it
    (CelebA has no labels); without it every dataset gets one."""
    fn = getattr(_pkg_config(), "uses_classifier", None)
    return True if fn is None else bool(fn(config, dataset))


def classifier_input(wildcards):
    return [CLASSIFIER.format(dataset=wildcards.dataset)] if uses_classifier(wildcards.dataset) else []


def classifier_arg(wildcards, input):
    """--classifier PATH for the evaluate command, or nothing."""
    paths = [input.classifier] if isinstance(input.classifier, str) else list(input.classifier)
    return f"--classifier {shlex.quote(paths[0])}" if paths else ""


def uses_reference(dataset):
    """Every dataset with a feature space (Inception or a domain classifier) gets one."""
    return uses_inception(config, dataset) or uses_classifier(dataset)


def reference_input(wildcards):
    return [REFERENCE.format(dataset=wildcards.dataset)] if uses_reference(wildcards.dataset) else []


def reference_arg(wildcards, input):
    paths = [input.reference] if isinstance(input.reference, str) else list(input.reference)
    return f"--reference {shlex.quote(paths[0])}" if paths else ""


def _reference_spec(wildcards):
    """A run spec of the dataset (first variant, seed 0): the reference reads only its
    dataset, data_root, device and evaluate sections."""
    variant = _pkg_config().dataset_variants(config, wildcards.dataset)[0]
    return run_spec(config, wildcards.dataset, variant, 0)


def reference_spec_param(wildcards):
    return Untracked(json.dumps(_reference_spec(wildcards), sort_keys=True))


def reference_tracked_param(wildcards):
    spec = _reference_spec(wildcards)
    view = {"dataset": spec["dataset"], "evaluate": {k: v for k, v in spec["evaluate"].items()
                                                      if k in ("real_split", "n_real", "min_real_per_dim",
                                                               "use_inception", "inception_weights")}}
    return json.dumps(_without(view, _NEVER_TRACKED), sort_keys=True)


def any_inception():
    return any(uses_inception(config, d) for d in config["datasets"])


def inception_dest_arg():
    """`--dest DIR` for ebm-bench fetch-inception: the folder evaluate will look in.
    evaluate.inception_weights may name the weights file (its folder is used) or a
    folder; unset, the weights go to torch hub's cache ($TORCH_HOME/hub/checkpoints),
    where evaluate looks by default."""
    path = config["evaluate"].get("inception_weights")
    if not path:
        return ""
    folder = os.path.dirname(path) if os.path.splitext(path)[1] in (".pth", ".pt") else path
    return f"--dest {shlex.quote(folder or '.')}"


# --- the spec passed to ebm-bench ---------------------------------------------------
#
# Every job gets the run's full resolved spec (ebm_bench.pipeline.config.run_spec) as JSON in
# `params.spec`, but the rerun decision looks at `params.tracked` only: the spec less
# the sections a stage does not read. Without that split, changing evaluate.n_real
# would retrain every model (Snakemake reruns a job whose params changed). The full
# spec is wrapped in `Untracked`, a non-builtin type, which Snakemake's params trigger
# skips by design (it only compares params it can represent); it still formats into
# the shell command as the JSON text.
#
# Spec keys a stage does not depend on (matched by name; keys not present are ignored,
# so a spec laid out differently just reruns more, never less). Where files live and
# how many threads a job gets change no number, nor which config file named the run (a
# provenance note: the same run named by two config files is one run):
_NEVER_TRACKED = ("data_root", "results_dir", "config_file")  # dropped at any depth
_NOT_READ_BY = {  # top-level sections, by stage
    "classifier": ("threads", "sample", "evaluate"),
    "train": ("threads", "sample", "evaluate"),
    "sample": ("threads", "evaluate"),
    "evaluate": ("threads",),
}


class Untracked:
    """A params value that formats as its text but is not compared for reruns."""

    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text

    def __str__(self):
        return self.text

    def __format__(self, spec):
        return format(self.text, spec)

    def __repr__(self):
        return f"Untracked({len(self.text)} chars)"


def _without(obj, keys):
    if isinstance(obj, dict):
        return {k: _without(v, keys) for k, v in obj.items() if k not in keys}
    if isinstance(obj, list):
        return [_without(v, keys) for v in obj]
    return obj


def _tracked(spec, stage):
    view = {k: v for k, v in _pkg_config().rerun_view(spec).items() if k not in _NOT_READ_BY[stage]}
    return json.dumps(_without(view, _NEVER_TRACKED), sort_keys=True)


def run_spec_of(wildcards):
    return run_spec(config, wildcards.dataset, wildcards.variant, int(wildcards.seed))


def spec_param(wildcards):
    """params: spec=spec_param (passed to ebm-bench), tracked=tracked_param("train")"""
    return Untracked(json.dumps(run_spec_of(wildcards), sort_keys=True))


def tracked_param(stage):
    return lambda wildcards: _tracked(run_spec_of(wildcards), stage)


def dataset_job_spec(dataset):
    """The spec of the per-dataset jobs (download, classifier): the resolved dataset
    (ebm_bench.pipeline.config.dataset_spec) with where its files live and the device, and the
    config's `classifier` section where it has one. Only then: the schema gives that
    section no default, so the tracked params of the classifier jobs of every existing
    results folder stay what they were (a new key would retrain every classifier, and
    with it rebuild every reference and evaluation)."""
    spec = {
        "dataset": dataset_spec(config, dataset),
        "data_root": config["data_root"],
        "device": config["device"],
    }
    if config.get("classifier"):
        spec["classifier"] = dict(config["classifier"])
    return spec


def dataset_spec_param(w):
    return Untracked(json.dumps(dataset_job_spec(w.dataset), sort_keys=True))


def dataset_tracked_param(w):
    return _tracked(dataset_job_spec(w.dataset), "classifier")


# --- resources -----------------------------------------------------------------------
# gpu=1 on cuda, so that `--resources gpu=N` caps concurrent GPU jobs locally and the
# SLURM executor requests a GPU (--gpus=1). 0 on cpu: CPU runs need no GPU anywhere.
GPU = 1 if config["device"] == "cuda" else 0
THREADS = config["threads"]
CONDA_ENV = "../../envs/ebm-bench.yaml"
