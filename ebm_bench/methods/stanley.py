"""STANLEY: Langevin with an anisotropic step size (Karimi, Xie & Li, paper 002, Algorithm 1).

The chains are the suite's short-run chains (as ``short_run``, the "plain Langevin" STANLEY
is compared against: fresh chains from U[-s, s] each update, K steps), moved by the shared
ULA sampler with STANLEY's step rule (:class:`~ebm_bench.samplers.stanley_step.StanleyStep`):

    gamma = th / max(th, |grad U|)                              (Eq. 5)
    x' = x - h0 gamma grad U + sqrt(2 h0 gamma T) xi            (Eq. 6 with h = h0 gamma)

Eq. 6 of the paper (z' = z + gamma/2 grad f + sqrt(gamma) B, f = -U) is this with
``step_size`` h0 = 0.5 and ``temperature`` T = 1, the defaults here; the embedded suite
puts the rule on each dataset's Langevin scale instead. ``stanley_mode``: ``coordinate``
(default; gamma per coordinate, the paper's anisotropic step) or ``sample`` (one gamma per
chain from the gradient norm); a table row says which through its variant name.
The MLE update (Eq. 7-8) is the shared contrastive loss of :class:`LangevinEBM`.
"""

from __future__ import annotations

from .. import validation as V
from ..errors import ConfigError
from ..samplers.stanley_step import MODES, StanleyStep
from .base import register_method
from .langevin import LANGEVIN_DEFAULTS, LangevinEBM
from .short_run import ShortRun


@register_method("stanley")
class Stanley(ShortRun):
    """Short-run Langevin with STANLEY's anisotropic step (paper 002, Eq. 5-6)."""

    defaults = {
        **LANGEVIN_DEFAULTS,
        "step_size": 0.5,  # h0: Eq. 6 is ULA with h = gamma / 2 at T = 1
        "temperature": 1.0,
        "stanley_threshold": 0.05,  # th (unofficial prototypes: 0.05 on toys, 1e-4..3e-4 on images)
        "stanley_mode": "coordinate",  # coordinate | sample
    }
    checks = {"stanley_threshold": V.positive(), "stanley_mode": V.choice(*MODES)}
    tiny = {**LangevinEBM.tiny}

    def __init__(self, params, data, device, seed):
        super().__init__(params, data, device, seed)
        if self.params["stanley_mode"] not in MODES:
            raise ConfigError(f"stanley_mode = {self.params['stanley_mode']!r}; expected one of {', '.join(MODES)}")
        if not float(self.params["stanley_threshold"]) > 0:
            raise ConfigError(f"stanley_threshold must be > 0, got {self.params['stanley_threshold']}")
        self.sampler.step_rule = StanleyStep(float(self.params["stanley_threshold"]), self.params["stanley_mode"])
