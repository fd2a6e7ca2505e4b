# Config checks, run by the Snakefile before anything reads the config: the JSON
# schema (structure, types, ranges, defaults) first, then the package's own check
# (registered datasets, methods and hyperparameter names).

import json
import os

import jsonschema
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate


def _json_path(parts):
    """('train', 'steps') -> 'train.steps'; () -> '(top level)'."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def validate_config(config, schema):
    """snakemake.utils.validate, with the error reduced to the path of the bad key and
    the reason (Snakemake's own message dumps the whole schema and config after it)."""
    schema = os.path.join(workflow.basedir, schema)
    # `digits:` / `pcd:` (null) mean "that name, with its defaults": an empty entry
    for section in ("datasets", "variants"):
        entries = config.get(section)
        if isinstance(entries, dict):
            for name, entry in entries.items():
                if entry is None:
                    entries[name] = {}
    try:
        validate(config, schema=schema)
    except WorkflowError as e:
        err = e.__context__
        if not isinstance(err, jsonschema.ValidationError):
            raise
        message = err.message
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            # with patternProperties jsonschema says "does not match any of the regexes";
            # name the unexpected key the same way everywhere
            import re

            known = set(err.schema.get("properties", {}))
            patterns = list(err.schema.get("patternProperties", {}))
            extra = [k for k in err.instance if k not in known and not any(re.search(q, k) for q in patterns)]
            if extra:
                message = f"Additional properties are not allowed ({extra[0]!r} was unexpected)"
        msg = f"Invalid config: {_json_path(err.absolute_path)}: {message}"
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            if allowed:
                msg += f"; allowed keys here: {', '.join(allowed)}"
        raise WorkflowError(msg) from None
    # A default taken from the schema is one shared object (for example the same {} in
    # every dataset's `params`); a JSON round trip gives each place its own copy.
    fresh = json.loads(json.dumps(config))
    config.clear()
    config.update(fresh)


# The workflow runs the package of its own folder, never another checkout's (a shared
# virtual environment's editable install may point elsewhere): this process imports it
# from workflow.basedir, and every job does too (PYTHONPATH and EBM_BENCH_WORKFLOW_DIR,
# set in common.smk; ebm_bench/__init__.py refuses to run from another folder).
import sys

if sys.path[:1] != [workflow.basedir]:
    sys.path.insert(0, workflow.basedir)
os.environ["EBM_BENCH_WORKFLOW_DIR"] = workflow.basedir
os.environ["PYTHONPATH"] = os.pathsep.join(
    [workflow.basedir] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != workflow.basedir]
)


def _pkg_config():
    """ebm_bench.pipeline.config, imported on first use: after the schema check, so that a
    malformed config fails at once (importing it imports torch, ~3 s)."""
    import ebm_bench

    here = os.path.realpath(os.path.join(workflow.basedir, "ebm_bench"))
    if os.path.realpath(os.path.dirname(ebm_bench.__file__)) != here:
        raise WorkflowError(f"the workflow at {workflow.basedir} imported ebm_bench from "
                            f"{os.path.dirname(ebm_bench.__file__)}, not its own {here}")
    import ebm_bench.pipeline.config

    return ebm_bench.pipeline.config


def check_config_or_fail(config):
    """ebm_bench.pipeline.config.check_config: registered datasets, methods, hyperparameter names
    and types, variant_params naming configured variants."""
    from ebm_bench.core.errors import ConfigError

    try:
        _pkg_config().check_config(config)
    except ConfigError as e:
        raise WorkflowError(f"Invalid config: {e}") from None
