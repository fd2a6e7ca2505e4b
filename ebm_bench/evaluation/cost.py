"""``cost``: what a run spent, as metrics a claim can compare ("at equal gradient
evaluations", "at equal size", "+6% per update").

From ``train_status.json`` (the training loop) and ``samples.npz`` (the sample stage):
``time_per_update_ms`` (training wall time / updates), ``train_time_s``,
``grad_evals_train`` and ``grad_evals_sample`` (grad_x U evaluations: chains x steps,
counted by :mod:`ebm_bench.samplers.counting`), ``n_params`` (trainable parameters).
Wall times depend on the machine and on what ran beside the job; the fingerprint holds
the device so times of different devices are never compared.

The cost structure a cost claim needs ("Jarzynski costs as much as PCD per update"):

- ``walkers_per_moved``: the sampler's population per chain moved in one update, i.e. how
  many updates a chain waits between moves on average. Jarzynski: n_walkers / n_moved
  (1.0 when every walker moves, ``n_moved`` 0 or >= N). Persistent chains (PCD, PCD-DA,
  persistent STANLEY): buffer_size / chains drawn per update (``n_chains``, 0 = the
  batch). Chains started afresh every update (short-run, CD, NN-EFH, GRBM, the matched
  EBMs): 1.0. None where no chains are trained on (the data and gaussian rows, the
  samplers-only ``exact_energy``, HEE's own dynamics).
- ``sampler_steps_per_update``: K, the sampler steps each moved chain takes per parameter
  update: the method's ``n_steps`` where it has one, else the trainer's count
  (``sampler_steps_per_iter``: M x L for the Gibbs-Langevin models); None without any.
- ``timed_quietly``: 0.0, these times come from pipeline jobs that share a machine with
  other jobs; a benchmark timed in one process writes 1.0 when it measured the machine
  quiet (``ebm-bench bench cost_claim``: load average and CPU share). A claim about wall
  time asks for 1.0.
"""

from __future__ import annotations

from ebm_bench.evaluation import register_family

PIPELINE_TIMING = 0.0  # timed_quietly of a pipeline job (jobs share the machine)
QUIET_TIMING = 1.0  # timed_quietly of a benchmark timed in one quiet process (ebm_bench/bench/cost_claim.py)


def walkers_per_moved(method, params: dict, batch_size: int) -> float | None:
    """Population per chain moved per update (module docstring)."""
    if "n_walkers" in params:  # Jarzynski
        n, moved = int(params["n_walkers"]), int(params.get("n_moved") or 0)
        return n / moved if 0 < moved < n else 1.0
    if getattr(method, "sampler", None) is None or not int(getattr(method, "sampler_steps_per_iter", 0) or 0):
        return None
    persistent = getattr(method, "persistent", None)
    if persistent is None:
        persistent = getattr(method, "buffer", None) is not None
    if persistent and params.get("buffer_size"):
        return int(params["buffer_size"]) / int(params.get("n_chains") or batch_size)
    return 1.0


def sampler_steps_per_update(params: dict, per_iter: int | None) -> float | None:
    """K: ``n_steps`` where the method has it, else the trainer's steps per update."""
    if not per_iter:
        return None
    return float(params["n_steps"]) if "n_steps" in params else float(per_iter)


@register_family("cost", order=90)
def cost(ctx):
    from ebm_bench.core.io import read_json
    from ebm_bench.core.artefacts import load_sample_cost

    train = read_json(ctx.run_dir / "train_status.json")
    sample = load_sample_cost(ctx.run_dir / "samples.npz")
    params = ctx.spec.get("method_params") or {}
    per_iter = train.get("sampler_steps_per_iter", getattr(ctx.method, "sampler_steps_per_iter", 0))
    metrics = {
        "time_per_update_ms": train.get("time_per_update_ms"),
        "train_time_s": train.get("wall_time_s"),
        "grad_evals_train": train.get("grad_evals_train"),
        "grad_evals_sample": sample.get("grad_evals_sample"),
        "n_params": train.get("n_params"),
        "walkers_per_moved": walkers_per_moved(ctx.method, params, int(ctx.spec["train"]["batch_size"])),
        "sampler_steps_per_update": sampler_steps_per_update(params, per_iter),
        "timed_quietly": PIPELINE_TIMING,
    }
    directions = {k: "" for k in metrics}
    protocol = {"directions": directions, "steps": train.get("steps"), "device": train.get("device"),
                "resumed_from": train.get("resumed_from"), "n_sampled": sample.get("n"),
                "fingerprint": {"device": train.get("device"), "threads": ctx.spec.get("threads")}}
    return metrics, protocol
