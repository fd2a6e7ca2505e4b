"""STANLEY: Langevin with an anisotropic step size (Karimi, Xie & Li, paper 002, Algorithm 1).

The chains are moved by the shared ULA sampler with STANLEY's step rule
(:class:`~ebm_bench.samplers.stanley_step.StanleyStep`):

    gamma = th / max(th, |grad U|)                              (Eq. 5)
    x' = x - h0 gamma grad U + sqrt(2 h0 gamma T) xi            (Eq. 6 with h = h0 gamma)

Eq. 6 of the paper (z' = z + gamma/2 grad f + sqrt(gamma) B, f = -U) is this with
``step_size`` h0 = 0.5 and ``temperature`` T = 1, the defaults here; the embedded suite
puts the rule on each dataset's Langevin scale instead. ``stanley_mode``: ``coordinate``
(default; gamma per coordinate, the paper's anisotropic step) or ``sample`` (one gamma per
chain from the gradient norm); a table row says which through its variant name.

``chains`` says where the negatives come from:

- ``short_run`` (default; as ``short_run``, the "plain Langevin" of the suite): fresh
  chains from U[-s, s] every update, K = ``n_steps`` steps; generation likewise.
- ``persistent`` (Algorithm 1 as written: z_{t-1} -> z_t with the same index t as theta):
  ``buffer_size`` persistent chains (Algorithm 1: one per data point of the batch, so
  ``buffer_size`` = the batch size), ``n_steps`` = 1 step per update, no restarts
  (``reinit_prob: 0``); generation runs ``sample_steps`` more steps from the chains
  (drawn with replacement where more samples than chains are asked for). This is
  :class:`~ebm_bench.methods.pcd.PCD`'s machinery with STANLEY's step; plain-Langevin
  Algorithm 1 is ``pcd`` with the same keys.

``metropolis: true`` adds the Metropolis-Hastings correction the paper's ergodicity
argument assumes (its Eq. 17; Algorithm 1 has none): without it the position-dependent
step does not leave exp(-U/T) invariant (docs/stanley.md measures the bias).
The MLE update (Eq. 7-8) is the shared contrastive loss of :class:`LangevinEBM`.
"""

from __future__ import annotations

from ebm_bench.core import validation as V
from ebm_bench.core.errors import ConfigError
from ebm_bench.samplers.stanley_step import MODES, StanleyStep
from ebm_bench.methods.base import register_method
from ebm_bench.methods.langevin import LANGEVIN_DEFAULTS, LangevinEBM
from ebm_bench.methods.pcd import PCD
from ebm_bench.methods.short_run import ShortRun

CHAINS = ("short_run", "persistent")


@register_method("stanley")
class Stanley(PCD):
    """Langevin with STANLEY's anisotropic step (paper 002, Eq. 5-6), short-run or persistent."""

    defaults = {
        **LANGEVIN_DEFAULTS,
        "step_size": 0.5,  # h0: Eq. 6 is ULA with h = gamma / 2 at T = 1
        "temperature": 1.0,
        "stanley_threshold": 0.05,  # th (unofficial prototypes: 0.05 on toys, 1e-4..3e-4 on images)
        "stanley_mode": "coordinate",  # coordinate | sample
        "chains": "short_run",  # short_run | persistent (Algorithm 1)
        # persistent chains only (PCD's keys; Algorithm 1: one chain per batch element, one step per update)
        "buffer_size": 64,
        "n_chains": 0,  # chains moved per update; 0 = the batch size
        "reinit_prob": 0.0,
        "sample_steps": 100,
    }
    checks = {"stanley_threshold": V.positive(), "stanley_mode": V.choice(*MODES), "chains": V.choice(*CHAINS)}
    tiny = {**LangevinEBM.tiny, "buffer_size": 16, "sample_steps": 3}

    def __init__(self, params, data, device, seed):
        super().__init__(params, data, device, seed)
        if self.params["stanley_mode"] not in MODES:
            raise ConfigError(f"stanley_mode = {self.params['stanley_mode']!r}; expected one of {', '.join(MODES)}")
        if not float(self.params["stanley_threshold"]) > 0:
            raise ConfigError(f"stanley_threshold must be > 0, got {self.params['stanley_threshold']}")
        if self.params["chains"] not in CHAINS:
            raise ConfigError(f"chains = {self.params['chains']!r}; expected one of {', '.join(CHAINS)}")
        self.sampler.step_rule = StanleyStep(float(self.params["stanley_threshold"]), self.params["stanley_mode"])

    @property
    def persistent(self) -> bool:
        return self.params["chains"] == "persistent"

    def negatives(self, batch):
        return PCD.negatives(self, batch) if self.persistent else ShortRun.negatives(self, batch)

    def sample_chains(self, n):
        return PCD.sample_chains(self, n) if self.persistent else LangevinEBM.sample_chains(self, n)
