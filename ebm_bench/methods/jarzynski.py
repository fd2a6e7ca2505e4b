"""Sequential Monte Carlo training with Jarzynski weights (Carbone et al. 2023, paper 003).

N walkers X^i with log weights A^i follow the shared ULA sampler while the parameters
move; the weights make the weighted walkers exact samples of the current model (Prop. 1,
Eq. 7), so the gradient of the cross-entropy (Eq. 11), log Z (Eq. 12), the cross-entropy
itself (Eq. 9/12) and the effective sample size (Eq. 13) are all available at every step.

Algorithms (``n_moved`` = N'):

- Alg. 1 (full batch, N' = N or 0): every walker makes one ULA move per update;
  A <- A - alpha_{k+1}(X_{k+1}, X_k) + alpha_k(X_k, X_{k+1})           (Eq. 5, Eq. 6)
- Alg. 2 (mini-batch, N' < N): a random set B of N' walkers moves as above; every other
  walker keeps its position and gets the work term only,
  A <- A - U_{k+1}(X)/T + U_k(X)/T                                     (Alg. 2 line 13).

Weights match the chain actually run (Eq. 6 with U/T; docs/sources.md): the sampler's
move is x' = x - h d(x) + sqrt(2 h T) xi with d = grad U (clamped when ``grad_clip`` is
set); its target is exp(-U/T), and the weights use U/T, the same h and the same drift d
(:func:`ebm_bench.samplers.smc.alpha`). Projection onto a box (``clamp``) is not a
Gaussian move and cannot be weighted: it is refused unless ``weights_ignore_clamp`` says
to ignore it (reference-code quirk 3). ``step_rule`` samplers (STANLEY) are not weighted.
``weights_temperature`` (reference-code quirk 2, default None = the chain's T) computes the
weights at another temperature: the authors' image code runs noise 0.01 with h = 1
(T = 5e-5) but weights for T = 1; set it to 1.0 only to reproduce that code, knowing that
the weights then do not correct the chain that was run.

Cost. One update computes U and grad_x U at the walkers once (``energy_and_grad``; the
numbers are used twice: to complete the weights of the previous move and to make this
one, i.e. ``ULA.step`` split by ``ULA.move`` so that resampling can happen in between),
one forward pass with the parameter graph for Eq. 11, one over the data, and one
backward: the same passes as PCD with one ULA step per update (paper 003 Alg. 4). The
second half of Eq. 5, alpha_{k+1}(X_{k+1}, X_k), needs U and grad U under the *new*
parameters at the new positions, which are exactly what the next update computes first;
so the weights of a move are completed at the start of the next update ("pending"), and
the logged estimates of step k refer to theta_k, the parameters of that step's gradient.
Alg. 2 adds one forward pass (no graph) over all N walkers for the work term, as the
reference code does, plus the gradient at the N' walkers moved in the previous update.

Resampling (Sec. 3.2, App. A.4): when ESS_k < c_k, walkers are redrawn with
probabilities p = softmax(A) by the ``resampler`` (multinomial, stratified, systematic),
A is reset to 0 and log Z is carried forward: log Z_k = log Z_{k_r} + logmeanexp(A_k).
The threshold schedule is c_k = 0 before ``resample_from_step`` and ``resample_threshold``
after (paper 003 Fig. 4: no resampling early, c = 0.5 later; Sec. 4.1: c = 1/1.05).
``resample_every: L`` > 0 replaces the ESS test by a fixed lag: resample at every L-th
update after ``resample_from_step``, whatever the ESS (App. B.1, Fig. 10 compares the
three resamplers "using three pre-specified lags between the resampling steps").

Walkers must start from rho_theta_0 (Prop. 1). ``walker_init: model`` draws them exactly
where the network has an exact sampler (the Eq. 15 GMM student at T = 1, as in App. B.1),
and then log Z_0 is the network's exact ``log_partition``; on a network without one it is
a ConfigError (never a silent fallback). ``noise`` is the explicit approximation: the
``init_chains`` law followed by ``burn_in_steps`` unweighted ULA steps at theta_0 (the
reference image code runs 8,000-20,000); the logged ``log_z`` is then log Z_k - log Z_0
(Z_0 unknown) and ``walkers_exact_start`` is logged as 0. ``data`` starts at data points
(the PCD start of Alg. 4; only meaningful for ``weighted: false``).

Ancestry. Every walker carries the index of the initial walker it descends from
(``ancestors``, permuted by each resampling, saved in the state); ``n_ancestors``, the
number of distinct initial walkers among the current ones, is logged every update with
``ess`` and ``n_resamples``: weights that degenerate between resamplings show up as
n_ancestors -> 1 (the population is then copies of a few walkers).

Precision. The weights divide energy differences by T (5e-5 at paper scale): the walker
energies and gradients that enter them are computed with TF32 / bfloat16 matmuls and
convolutions off (:func:`~ebm_bench.core.precision.strict_float32`, whatever the
global setting; ``weights_precision: native`` leaves the global setting in force) and the
sums of Eq. 6 are accumulated in float64.

``weighted: false`` keeps A = 0 and never resamples: the unweighted procedure of paper 003
App. C.1.2 (walkers from rho_theta_0, ULA, no weights), or PCD with ``walker_init: data``.
``grad_walkers: all`` sums Eq. 11 over all N walkers (Alg. 2 line 5); ``moved`` uses the
N' walkers about to move with their weights renormalised among them; ``subset`` a fresh
random set of N' (reference MNIST code); ``previous`` the N' walkers moved in the
*previous* update, with the log weights they had at its end (before any resampling): the
reference CIFAR code's ``self.fake_imgs`` / ``self.fake_imgs_weights`` (at the first update
a random set of N' drawn after burn-in, log weights 0).
Generation (``sample``) resamples the weighted walkers (Sec. 3.2, "Generative modeling")
and optionally runs ``sample_steps`` more (unweighted) ULA steps.

Longer than 500 lines because a method is one file (adding a method = adding a file): Alg. 1 and 2 of
paper 003 with every paper-vs-code reading as a named option live together, so one file says what the
method is and which reading each config runs.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ebm_bench.core import validation as V
from ebm_bench.core.errors import ConfigError
from ebm_bench.core.progress import Task
from ebm_bench.samplers import energy_and_grad
from ebm_bench.core.precision import strict_float32
from ebm_bench.samplers.smc import RESAMPLERS, alpha, alpha_reverse_rest, ess_fraction, flat_dot, log_mean_exp, normalized_weights, resample_indices
from ebm_bench.methods.base import DataInfo, register_method
from ebm_bench.methods.langevin import LANGEVIN_DEFAULTS, LangevinEBM

JARZYNSKI_DEFAULTS: dict[str, Any] = {
    **LANGEVIN_DEFAULTS,
    "n_steps": 1,  # ULA steps per update of each moved walker (Alg. 1 and 2: one)
    "n_walkers": 1024,  # N (paper 003 MNIST: 1024; CIFAR-10: 4096)
    "n_moved": 0,  # N' walkers moved per update (Alg. 2); 0 or >= N: all of them (Alg. 1)
    "weighted": True,  # False: unweighted walkers (App. C.1.2), A stays 0
    "resampler": "systematic",  # multinomial | stratified | systematic (App. A.4)
    "resample_threshold": 0.5,  # c: resample when ESS_k < c (Eq. 13, fraction of N)
    "resample_from_step": 0,  # c_k = 0 (no resampling) up to and including this step
    # L > 0: resample every L updates after resample_from_step whatever the ESS (paper 003
    # App. B.1, Fig. 10: "pre-specified lags between the resampling steps"); 0: when ESS_k < c_k
    "resample_every": 0,
    # all: ESS_k of Eq. 13 over the N walkers; loss: over the walkers the loss reads
    # (grad_walkers: previous), a fraction of their number, while all N are resampled
    # (reference CIFAR-10 code: ESS of the N' loss walkers < resample_ess = 64 of 256)
    "resample_ess_over": "all",
    "walker_init": "model",  # model | noise | data (see module docstring)
    "burn_in_steps": 0,  # unweighted ULA steps at theta_0 when no exact sampler exists
    # all (Eq. 11 / Alg. 2 line 5) | moved (the N' about to move) | subset (reference MNIST code) |
    # previous (the N' moved in the previous update, reference CIFAR code: its loss lags one move)
    "grad_walkers": "all",
    # walker mini-batches of N' = n_moved walkers moved per update, one after another under
    # theta_k, each a fresh random set (reference MNIST code: num_batch = 6; Alg. 2: one)
    "n_minibatches": 1,
    # eq5: the weights of paper 003 Eq. 5 (the reverse kernel of a move under theta_{k+1}; the
    # gradient at theta_k uses A_k complete under theta_k). reference: the authors' code
    # (MNIST_code/Sampler.py): the work term U_{k-1}(X) - U_k(X) at fixed X, every kernel of
    # the moves under theta_k, and the gradient at theta_k taken with the weights before
    # that work term (docs/reference-equivalence.md)
    "weights_scheme": "eq5",
    # quirk 4 (reference code): end = A_0 = 0 after burn-in (Prop. 1); start = the first work
    # term uses U_theta0 at the walkers' positions *before* burn-in, i.e. A_0 = [U_0(X_init) -
    # U_0(X_0)] / T (the reference keeps the energy it computed before its burn-in)
    "burn_in_energy": "end",
    "sample_steps": 0,  # extra unweighted ULA steps after resampling, for generation
    "weights_ignore_clamp": False,  # quirk 3: allow `clamp` although the weights ignore it
    "weights_temperature": None,  # quirk 2: None = the chain's T (correct); a number = weights at that T
    # quirk 5 (GMM_code/GMM.py: `xo = x` aliases the walkers updated in place, so both kernels
    # of Eq. 5 are evaluated at the new position X' and the displacement terms vanish):
    # A += [U_k(X') - U_{k+1}(X') + h/4 (|d_k(X')|^2 - |d_{k+1}(X')|^2)] / T. Alg. 1 only
    # (full batch, n_steps 1, weights_scheme eq5); one extra U, grad U pass per update
    "weights_aliased_positions": False,
    "weights_precision": "strict",  # strict: IEEE float32 energies for the weights (no TF32/bf16) | native
}


def exact_sampler(net: torch.nn.Module, temperature: float) -> Callable[[int, torch.Generator], torch.Tensor] | None:
    """An exact sampler of rho_theta = exp(-U/T)/Z where one exists, else None.

    The Eq. 15 GMM student at T = 1 is the mixture p N(a, I) + (1 - p) N(b, I) with
    p = 1/(1 + e^{-z}) (paper 003 Sec. 4.1); App. B.1 starts the walkers there.
    """
    from ebm_bench.nets.gmm_energy import GMMEnergy

    if not isinstance(net, GMMEnergy) or temperature != 1.0:
        return None

    def draw(n: int, gen: torch.Generator) -> torch.Tensor:
        with torch.no_grad():
            a, b = net.a.detach(), net.b.detach()
            on_a = torch.rand(n, generator=gen, device=a.device) < torch.sigmoid(net.z.detach())
            xi = torch.randn((n, a.numel()), generator=gen, device=a.device, dtype=a.dtype)
            return torch.where(on_a[:, None], a, b) + xi

    return draw


@register_method("jarzynski")
class Jarzynski(LangevinEBM):
    """Jarzynski-weighted SMC training, paper 003 Alg. 1 (full batch) / Alg. 2 (mini-batch)."""

    defaults = JARZYNSKI_DEFAULTS
    # resample_every 0: the ESS test; weights_aliased_positions false: our Eq. 5 weights
    neutral = ("resample_every", "weights_aliased_positions", "resample_ess_over")
    checks = {
        "n_walkers": V.count(),
        "n_moved": V.count(0),
        "resampler": V.choice(*RESAMPLERS),
        "resample_threshold": V.probability(),
        "resample_from_step": V.count(0),
        "resample_every": V.count(0),
        "resample_ess_over": V.choice("all", "loss"),
        "walker_init": V.choice("model", "noise", "data"),
        "burn_in_steps": V.count(0),
        "grad_walkers": V.choice("all", "moved", "subset", "previous"),
        "n_minibatches": V.count(),
        "weights_scheme": V.choice("eq5", "reference"),
        "burn_in_energy": V.choice("end", "start"),
        "weights_temperature": V.positive(nullable=True),
        "weights_aliased_positions": V.Check("bool"),
    }
    tiny = {"n_steps": 2, "n_walkers": 16, "n_moved": 8, "resample_threshold": 0.95, "walker_init": "noise",
            "burn_in_steps": 2}

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        super().check_params(params)
        cls._check_minibatches(params)
        if params["clamp"] and params["weighted"] and not params["weights_ignore_clamp"]:
            raise ConfigError("clamp: true projects the walkers onto [-1, 1], a move the Jarzynski weights cannot "
                              "account for; set weights_ignore_clamp: true to run it anyway (reference-code quirk 3)")

    @staticmethod
    def _check_minibatches(params: dict[str, Any]) -> None:
        n, m = int(params["n_walkers"]), int(params["n_moved"])
        if int(params["n_minibatches"]) > 1 and (m == 0 or m >= n):
            raise ConfigError(f"n_minibatches = {params['n_minibatches']} needs Alg. 2 (0 < n_moved < n_walkers); "
                              f"got n_moved = {m}, n_walkers = {n}")
        if params.get("weights_aliased_positions") and not (
                (m == 0 or m >= n) and int(params["n_steps"]) == 1 and params["weights_scheme"] == "eq5"):
            raise ConfigError("weights_aliased_positions (GMM_code/GMM.py quirk 5) is defined for Alg. 1 only: "
                              "n_moved 0 (or >= n_walkers), n_steps 1, weights_scheme eq5")
        if params["grad_walkers"] in ("subset", "previous") and (m == 0 or m >= n):
            raise ConfigError(f"grad_walkers: {params['grad_walkers']} takes n_moved of the walkers: needs "
                              f"0 < n_moved < n_walkers")
        if params.get("resample_ess_over") == "loss" and params["grad_walkers"] != "previous":
            raise ConfigError(f"resample_ess_over: loss reads the ESS of the loss walkers of grad_walkers: "
                              f"previous (reference CIFAR-10 code); got grad_walkers: {params['grad_walkers']}")
        if (params["weights_scheme"] == "eq5" and int(params["n_minibatches"]) > 1
                and params["grad_walkers"] in ("moved", "previous")):
            raise ConfigError(f"grad_walkers: {params['grad_walkers']} is ambiguous with n_minibatches > 1 under "
                              f"weights_scheme: eq5; use subset or all")

    def __init__(self, params: dict[str, Any], data: DataInfo, device, seed: int):
        super().__init__(params, data, device, seed)
        p = self.params
        if p["weights_scheme"] not in ("eq5", "reference"):
            raise ConfigError(f"weights_scheme = {p['weights_scheme']!r}; expected 'eq5' or 'reference'")
        if p["burn_in_energy"] not in ("end", "start"):
            raise ConfigError(f"burn_in_energy = {p['burn_in_energy']!r}; expected 'end' or 'start'")
        if p["grad_walkers"] not in ("all", "moved", "subset", "previous"):
            raise ConfigError(f"grad_walkers = {p['grad_walkers']!r}; expected 'all', 'moved', 'subset' or "
                              f"'previous'")
        self._check_minibatches(p)
        if p["resampler"] not in RESAMPLERS:
            raise ConfigError(f"resampler = {p['resampler']!r}; expected one of {', '.join(RESAMPLERS)}")
        if p["walker_init"] not in ("model", "noise", "data"):
            raise ConfigError(f"walker_init = {p['walker_init']!r}; expected 'model', 'noise' or 'data'")
        if int(p["n_walkers"]) < 1 or int(p["n_moved"]) < 0 or int(p["n_steps"]) < 1:
            raise ConfigError("n_walkers >= 1, n_moved >= 0 and n_steps >= 1 are required")
        if p["clamp"] and p["weighted"] and not p["weights_ignore_clamp"]:
            raise ConfigError("clamp: true projects the walkers onto [-1, 1], a move the Jarzynski weights cannot "
                              "account for; set weights_ignore_clamp: true to run it anyway (reference-code quirk 3)")
        if self.sampler.step_rule is not None:
            raise ConfigError("the Jarzynski weights assume the plain ULA move (no step_rule)")
        if p["weights_precision"] not in ("strict", "native"):
            raise ConfigError(f"weights_precision = {p['weights_precision']!r}; expected 'strict' or 'native'")
        if p["walker_init"] == "model" and exact_sampler(self.net, float(p["temperature"])) is None:
            raise ConfigError(
                f"walker_init: model needs a network with an exact sampler of rho_theta0 (Prop. 1), and "
                f"{type(self.net).__name__} at T = {p['temperature']} has none; set walker_init: noise with "
                f"burn_in_steps to start from the init_chains law plus unweighted ULA burn-in (an approximation "
                f"of rho_theta0, logged as walkers_exact_start = 0)")
        self.strict = p["weights_precision"] == "strict"
        if self.sampler.metropolis:
            raise ConfigError("metropolis: the Jarzynski weights assume the plain ULA move (no accept/reject)")
        self.n_walkers = int(p["n_walkers"])
        n_moved = int(p["n_moved"])
        self.n_moved = self.n_walkers if n_moved == 0 or n_moved >= self.n_walkers else n_moved
        self.full_batch = self.n_moved == self.n_walkers
        self.h = float(p["step_size"])
        self.temperature = float(p["temperature"] if p["weights_temperature"] is None else p["weights_temperature"])
        if not self.temperature > 0:
            raise ConfigError("the Jarzynski weights need a temperature > 0")
        # walker state (filled at the first update, which sees the data)
        self.walkers = torch.zeros((0, *data.shape), device=self.device)
        self.log_w = torch.zeros(0, dtype=torch.float64, device=self.device)  # A (partial while pending)
        self.pending = False  # A still lacks -alpha_{k+1}(X_{k+1}, X_k) / the -U_{k+1}/T work term
        self.pending_idx = torch.zeros(0, dtype=torch.long, device=self.device)  # walkers moved last update
        self.pending_dx = torch.zeros((0, *data.shape), device=self.device)  # their last displacement
        self.log_z_ref = 0.0  # log Z at the last resampling (log Z_0 at the start), Sec. 3.2 step 3
        self.log_z_exact0 = False  # whether log Z_0 is the network's exact log partition
        self.n_resamples = 0
        self.ancestors = torch.zeros(0, dtype=torch.long, device=self.device)  # initial walker of each walker
        self.exact_start = False  # walkers drawn exactly from rho_theta0
        self.initialised = False
        # weights_scheme: reference: U_{k-1} at the walkers, the energy the next work term starts from
        self.ref_energy = torch.zeros(0, dtype=torch.float64, device=self.device)
        # grad_walkers: previous: the walkers the next gradient uses (moved last update)
        self.prev_idx = torch.zeros(0, dtype=torch.long, device=self.device)

    # --- walkers ---------------------------------------------------------------------------
    def init_walkers(self, data: torch.Tensor) -> None:
        """X_0 ~ rho_theta_0 and A_0 = 0 (Alg. 1 lines 1-2)."""
        p, n = self.params, self.n_walkers
        draw = exact_sampler(self.net, float(p["temperature"])) if p["walker_init"] == "model" else None
        self.exact_start = draw is not None
        if draw is not None:
            x = draw(n, self.gen)
            log_part = getattr(self.net, "log_partition", None)
            if callable(log_part) and self.temperature == 1.0:  # log Z of exp(-U), T = 1
                self.log_z_ref, self.log_z_exact0 = float(log_part().detach()), True
        else:
            if p["walker_init"] == "data":
                x = data[torch.randint(len(data), (n,), generator=self.gen, device=self.device)].detach().clone()
            else:
                x = self.init_chains(n)
            u_start = self._energy_nograd(x).double() if p["burn_in_energy"] == "start" else None
            x = self.sampler.run(self.energy, x, int(p["burn_in_steps"]), self.gen, what="burn-in ULA step")
        self.walkers = x.detach()
        self.log_w = torch.zeros(n, dtype=torch.float64, device=self.device)
        self.ref_energy = torch.zeros(0, dtype=torch.float64, device=self.device)
        quirk4 = draw is None and p["burn_in_energy"] == "start" and p["weighted"]
        if p["weights_scheme"] == "reference":
            # the energy the first work term starts from (quirk 4: the one before burn-in)
            self.ref_energy = u_start if quirk4 else self._energy_nograd(self.walkers).double()
        elif quirk4:  # eq5: the same offset, carried in A_0
            self.log_w = (u_start - self._energy_nograd(self.walkers).double()) / self.temperature
        self.ancestors = torch.arange(n, device=self.device)
        self.pending = False
        if p["grad_walkers"] == "previous":  # the first gradient: a random N' after burn-in (ref CIFAR)
            self.prev_idx = self.draw_subset()
        self.initialised = True

    def _energy_nograd(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), strict_float32(self.strict):
            return self.energy(x).detach()

    def _energy_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """U and grad_x U at walkers, in full float32 precision (they enter the weights)."""
        with strict_float32(self.strict):
            return energy_and_grad(self.energy, x)

    def resample_due(self, step: int, ess: float, log_w: torch.Tensor) -> bool:
        """Whether update ``step`` resamples (Sec. 3.2, Eq. 13): never up to and including
        ``resample_from_step``; after it every ``resample_every``-th update (a fixed lag,
        App. B.1 Fig. 10) when that is > 0, else when the ESS fraction < c =
        ``resample_threshold``: ``ess`` (all N walkers, Eq. 13) or, with
        ``resample_ess_over: loss``, that of ``log_w`` restricted to the walkers the loss
        reads (reference CIFAR-10 code, docs/reference-equivalence.md row 16)."""
        p = self.params
        start, every = int(p["resample_from_step"]), int(p["resample_every"])
        if step <= start:
            return False
        if every > 0:
            return (step - start) % every == 0
        if p["resample_ess_over"] == "loss":
            ess = ess_fraction(log_w[self.prev_idx]) if len(self.prev_idx) else 1.0
        return ess < float(p["resample_threshold"])

    def n_ancestors(self) -> int:
        """Number of distinct initial walkers the current walkers descend from (cached: the
        ancestry changes only where ``self.ancestors`` is replaced, at a resampling)."""
        cached = getattr(self, "_ancestor_count", None)
        if cached is None or cached[0] is not self.ancestors:
            self._ancestor_count = (self.ancestors, int(torch.unique(self.ancestors).numel()))
        return self._ancestor_count[1]

    def _completion(self, u: torch.Tensor, g_pending: torch.Tensor | None,
                    dd: torch.Tensor | None = None) -> torch.Tensor:
        """The pending part of A's update, evaluated under the current parameters theta_k:

        every walker: -U_k(X_k)/T (Alg. 2 line 13 work term; the U part of -alpha_k in Eq. 5);
        walkers moved in the previous update, with dx = X_k - X_{k-1}, additionally
        -[1/2 (X_{k-1} - X_k) . d_k(X_k) + h/4 |d_k(X_k)|^2] / T, the rest of -alpha_k(X_k, X_{k-1}).
        ``dd``: |d_k(X_k)|^2 of the pending walkers when the caller has it.
        """
        inc = -u.double() / self.temperature
        if g_pending is not None and len(self.pending_idx):
            rest = alpha_reverse_rest(self.sampler.drift(g_pending), self.pending_dx, self.h, self.temperature, dd)
            inc = inc.index_add(0, self.pending_idx, -rest)
        return inc

    def _energies(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """U_k at every walker; grad U_k at every walker (full batch) and at the pending ones."""
        x = self.walkers
        if self.full_batch:
            u, g = self._energy_and_grad(x)
            return u, g, (g if self.pending else None)
        if not self.params["weighted"]:  # unweighted Alg. 2 needs no energies of unmoved walkers
            return torch.zeros(len(x), device=self.device), None, None
        if not (self.pending and len(self.pending_idx)):
            return self._energy_nograd(x), None, None
        # the walkers moved last update need grad U_k (for -alpha_k), which also gives their
        # U_k: the gradient-free forward pass covers only the others
        u_pend, g_pend = self._energy_and_grad(x[self.pending_idx])
        rest = torch.ones(len(x), dtype=torch.bool, device=self.device)
        rest[self.pending_idx] = False
        u = torch.empty(len(x), dtype=u_pend.dtype, device=self.device)
        u[self.pending_idx] = u_pend.detach()
        if bool(rest.any()):
            u[rest] = self._energy_nograd(x[rest])
        return u, None, g_pend

    def completed_log_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(A_k, U_k(X_k)) under the current parameters, without changing any state."""
        u, _, g_pend = self._energies()
        a = self.log_w.clone()
        if self.params["weighted"] and self.pending:
            a = a + self._completion(u, g_pend)
        return (a if self.params["weighted"] else torch.zeros_like(a)), u

    @torch.no_grad()
    def estimates(self, data: torch.Tensor | None = None) -> dict[str, float]:
        """log Z (Eq. 12), ESS (Eq. 13) and, given data, the cross-entropy estimate (Eq. 9/12)
        of the current parameters (the Alg. 1 outputs), without changing any state."""
        if not self.initialised:
            raise RuntimeError("estimates() needs the walkers: run at least one train_step first")
        a, _ = self.completed_log_weights()
        out = {"log_z": self.log_z_ref + float(log_mean_exp(a)), "ess": ess_fraction(a)}
        if data is not None:
            out["cross_entropy_est"] = out["log_z"] + float(self._energy_nograd(data.to(self.device)).double().mean()) / self.temperature
        return out

    # --- contract ------------------------------------------------------------------------
    def train_step(self, batch: torch.Tensor, step: int) -> dict[str, float]:
        p, T = self.params, self.temperature
        weighted = bool(p["weighted"])
        pos = self.preprocess(batch.to(self.device))
        if not self.initialised:
            self.init_walkers(pos)
        n = self.n_walkers
        if len(self.ancestors) != len(self.walkers):  # walkers set from outside (tests)
            self.ancestors = torch.arange(len(self.walkers), device=self.device)
        if p["weights_scheme"] == "reference":
            return self._train_step_reference(pos, step)

        # 1. U_k(X_k) (and grad U_k) under the current parameters theta_k
        u, g, g_pend = self._energies()
        # full batch: the drift at X_k closes the last move and opens the next; |d_k|^2 once
        d = self.sampler.drift(g) if weighted and self.full_batch else None
        dd = flat_dot(d, d) if d is not None else None
        # 2. complete A_k: -alpha_k(X_k, X_{k-1}) for moved walkers, -U_k/T work term for the others
        if weighted and self.pending:
            self.log_w = self.log_w + self._completion(u, g_pend, dd if g_pend is g else None)
        self.pending = False
        a = self.log_w
        # grad_walkers: previous: the walkers moved last update and their A_k, before resampling
        prev = (self.walkers[self.prev_idx], a[self.prev_idx]) if p["grad_walkers"] == "previous" else None
        # 3. estimates at theta_k: log Z_k (Eq. 12, carried across resamplings), ESS_k (Eq. 13)
        log_z = self.log_z_ref + float(log_mean_exp(a))
        ess = ess_fraction(a) if weighted else 1.0
        # 4. resampling step (Sec. 3.2; App. A.4) when ESS_k < c_k
        resampled = 0
        if weighted and self.resample_due(step, ess, a):
            idx = resample_indices(a, n, p["resampler"], self.gen)
            self.walkers, u = self.walkers[idx], u[idx]
            self.ancestors = self.ancestors[idx]
            g = g[idx] if g is not None else None
            dd = dd[idx] if dd is not None else None
            self.log_w = torch.zeros_like(a)  # reset A = 0 ...
            self.log_z_ref = log_z  # ... and carry Z forward: Z_k = Z_{k_r} N^-1 sum e^{A_k}
            self.n_resamples += 1
            resampled = 1
            a = self.log_w
        x = self.walkers

        # 5. the walkers that move this update (Alg. 2 line 7: a random mini-batch B of N')
        if self.full_batch:
            moved = None
            x_b, u_b, g_b = x, u, g
        else:
            # grad_walkers: subset draws its walkers first (the reference MNIST code's order)
            gsub = self.draw_subset() if p["grad_walkers"] == "subset" else None
            moved = self.draw_subset()
            x_b, u_b = x[moved], u[moved]
            _, g_b = self._energy_and_grad(x_b)

        # 6. empirical CE gradient, Eq. 11: sum_i p_i dU(X_i) - mean over data of dU(x*)
        e_pos = self.energy(pos)
        if prev is not None:
            e_neg = self.energy(prev[0])
            w = normalized_weights(prev[1]) if weighted else torch.full((len(prev[0]),), 1.0 / len(prev[0]),
                                                                         dtype=torch.float64, device=self.device)
        elif moved is None or p["grad_walkers"] == "all":
            e_neg = self.energy(x)
            w = normalized_weights(a) if weighted else torch.full((n,), 1.0 / n, dtype=torch.float64, device=self.device)
        else:
            gi = gsub if gsub is not None else moved
            e_neg = self.energy(x[gi])
            w = normalized_weights(a[gi]) if weighted else torch.full((len(gi),), 1.0 / len(gi),
                                                                      dtype=torch.float64, device=self.device)
        w = w.to(e_neg.dtype)
        e_model = (w * e_neg).sum()
        loss = e_pos.mean() - e_model
        if p["energy_reg"] > 0:
            loss = loss + p["energy_reg"] * ((e_pos**2).mean() + (w * e_neg**2).sum())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()

        # 7. ULA moves under theta_k (Alg. 1 line 8 / Alg. 2 line 9) and the first half of the
        #    weight update, +alpha_k(X_k, X_{k+1}) (Eq. 5); unmoved walkers get +U_k(X)/T
        if int(p["n_minibatches"]) > 1:
            self._move_minibatches(x, u, moved, x_b, u_b, g_b, weighted)
            return self._finish_step(step, loss, e_pos, e_model, weighted, log_z, ess, resampled)
        x0 = x_b
        x1 = self.sampler.move(x0, g_b, self.gen)
        dx = x1 - x0  # the last step's displacement (kept for -alpha_{k+1} next update)
        if weighted and p["weights_aliased_positions"]:
            # quirk 5: both kernels at X' (under theta_k now, under theta_{k+1} at completion,
            # where a zero pending displacement leaves -U_{k+1}(X')/T - h/4 |d_{k+1}(X')|^2/T)
            u1, g1 = self._energy_and_grad(x1)
            dx = torch.zeros_like(x1)
            inc_b = alpha(u1, self.sampler.drift(g1), dx, self.h, T)
        else:
            inc_b = alpha(u_b, self.sampler.drift(g_b), dx, self.h, T,
                          dd if moved is None else None) if weighted else None
        with Task("ULA step", int(p["n_steps"]), done=1) as task:  # minutes per update at CIFAR size on CPU
            for _ in range(int(p["n_steps"]) - 1):
                # further steps under the same theta_k: ULA.step returns U_k, grad U_k at its start
                # point x1, which close the previous step and open this one:
                # -alpha_k(x1, x0) + alpha_k(x1, x2) = 1/2 (x2 - x0) . d_k(x1) / T (U and |d|^2 cancel)
                _, g1 = self._energy_and_grad(x1)
                x2 = self.sampler.move(x1, g1, self.gen)
                if weighted:
                    inc_b = inc_b + 0.5 * flat_dot(x2 - x0, self.sampler.drift(g1)) / T
                x0, x1 = x1, x2
                task.tick(task.i + 1)
        if int(p["n_steps"]) > 1:
            dx = x1 - x0
        if weighted:
            if moved is None:
                self.log_w = self.log_w + inc_b
            else:
                inc = u.double() / T
                inc[moved] = inc_b
                self.log_w = self.log_w + inc
            self.pending = True
        if moved is None:
            self.walkers = x1
            self.pending_idx = torch.arange(n, device=self.device)
        else:
            self.walkers = x.clone()
            self.walkers[moved] = x1
            self.pending_idx = moved
            self.prev_idx = moved
        self.pending_dx = dx.detach()
        return self._finish_step(step, loss, e_pos, e_model, weighted, log_z, ess, resampled)

    def draw_subset(self) -> torch.Tensor:
        """A random set of N' = n_moved distinct walkers (Alg. 2 line 7)."""
        return torch.randperm(self.n_walkers, generator=self.gen, device=self.device)[: self.n_moved]

    def _ula_moves(self, x0: torch.Tensor, g0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``n_steps`` ULA moves from x0 (grad U_k(x0) = g0) under theta_k. Returns the end
        point, the last step's displacement, the sum over the steps after the first of
        1/2 (x_{j+1} - x_{j-1}) . d_k(x_j) / T (the closed inner terms of Eq. 5, U and |d|^2
        cancelling), and the first displacement."""
        T = self.temperature
        x1 = self.sampler.move(x0, g0, self.gen)
        dx_first = x1 - x0
        inner = torch.zeros(len(x0), dtype=torch.float64, device=self.device)
        with Task("ULA step", int(self.params["n_steps"]), done=1) as task:
            for _ in range(int(self.params["n_steps"]) - 1):
                _, g1 = self._energy_and_grad(x1)
                x2 = self.sampler.move(x1, g1, self.gen)
                inner = inner + 0.5 * flat_dot(x2 - x0, self.sampler.drift(g1)) / T
                x0, x1 = x1, x2
                task.tick(task.i + 1)
        return x1, x1 - x0, inner, dx_first

    def _move_minibatches(self, x: torch.Tensor, u: torch.Tensor, moved: torch.Tensor, x_b: torch.Tensor,
                          u_b: torch.Tensor, g_b: torch.Tensor, weighted: bool) -> None:
        """Eq. 5 for ``n_minibatches`` mini-batches moved one after another under theta_k.

        A walker in several mini-batches makes one longer chain of moves under theta_k: at
        the start of its next mini-batch -alpha_k(x, x_prev) + alpha_k(x, x') closes to
        1/2 (x' - x_prev) . d_k(x) / T, and only its last move stays pending (its reverse
        kernel under theta_{k+1}, completed at the next update)."""
        T, n = self.temperature, self.n_walkers
        walkers = x.clone()
        inc = u.double() / T  # walkers never moved this update: +U_k(X)/T (work term)
        done = torch.zeros(n, dtype=torch.bool, device=self.device)
        dx_last = torch.zeros_like(x)
        for j in range(int(self.params["n_minibatches"])):
            if j > 0:
                moved = self.draw_subset()
                x_b = walkers[moved]
                u_b, g_b = self._energy_and_grad(x_b)
            x_end, dx, inner, dx1 = self._ula_moves(x_b, g_b)
            if weighted:
                d = self.sampler.drift(g_b)
                again = done[moved]
                first = alpha(u_b, d, dx1, self.h, T)
                cont = 0.5 * flat_dot(dx1 + dx_last[moved], d) / T
                step_inc = torch.where(again, cont, first) + inner
                inc[moved] = torch.where(again, inc[moved] + step_inc, step_inc)
            walkers[moved] = x_end
            dx_last[moved] = dx
            done[moved] = True
        if weighted:
            self.log_w = self.log_w + inc
            self.pending = True
        self.walkers = walkers
        self.pending_idx = torch.nonzero(done).flatten()
        self.pending_dx = dx_last[self.pending_idx].detach()

    def _train_step_reference(self, pos: torch.Tensor, step: int) -> dict[str, float]:
        """One update as the authors' MNIST code makes it (``weights_scheme: reference``).

        1. the gradient at theta_k with the weights as they stand (complete through theta_{k-1});
        2. ``n_minibatches`` times: a random set of N' walkers moves ``n_steps`` ULA steps under
           theta_k, each step adding log q_k(x | x') - log q_k(x' | x) (both kernels under
           theta_k) to its walker; then every walker gets the work term E - U_k(X), where E is
           the energy the previous such term left (U_{k-1} at the first mini-batch, U_k after);
        3. the optimiser step. Resampling (ESS_k < c_k) happens before step 1, i.e. after the
           previous update's moves, where the reference resamples."""
        p, T, n = self.params, self.temperature, self.n_walkers
        weighted = bool(p["weighted"])
        if len(self.ref_energy) != n:
            self.ref_energy = self._energy_nograd(self.walkers).double()
        a = self.log_w
        log_z = self.log_z_ref + float(log_mean_exp(a))
        ess = ess_fraction(a) if weighted else 1.0
        resampled = 0
        # grad_walkers: previous: the walkers the last update moved, as they stood at its end
        prev = (self.walkers[self.prev_idx], a[self.prev_idx]) if p["grad_walkers"] == "previous" else None
        if weighted and self.resample_due(step, ess, a):
            idx = resample_indices(a, n, p["resampler"], self.gen)
            self.walkers, self.ref_energy, self.ancestors = self.walkers[idx], self.ref_energy[idx], self.ancestors[idx]
            self.log_w = torch.zeros_like(a)
            self.log_z_ref = log_z
            self.n_resamples += 1
            resampled = 1
            a = self.log_w
        x = self.walkers
        # 1. the gradient (Eq. 11) over all walkers, a fresh subset, or the first mini-batch
        gi = None
        if p["grad_walkers"] == "subset" or (p["grad_walkers"] == "moved" and not self.full_batch):
            gi = self.draw_subset()
        e_pos = self.energy(pos)
        xg, ag = prev if prev is not None else ((x, a) if gi is None else (x[gi], a[gi]))
        e_neg = self.energy(xg)
        w = normalized_weights(ag) if weighted else torch.full((len(xg),), 1.0 / len(xg), dtype=torch.float64,
                                                               device=self.device)
        w = w.to(e_neg.dtype)
        e_model = (w * e_neg).sum()
        loss = e_pos.mean() - e_model
        if p["energy_reg"] > 0:
            loss = loss + p["energy_reg"] * ((e_pos**2).mean() + (w * e_neg**2).sum())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        # 2. the mini-batches under theta_k
        walkers = x.clone()
        h = self.h
        for j in range(int(p["n_minibatches"])):
            if self.full_batch:
                b = None
            elif j == 0 and p["grad_walkers"] == "moved":
                b = gi
            else:
                b = self.draw_subset()
            xb = walkers if b is None else walkers[b]
            _, g0 = self._energy_and_grad(xb)
            kern = torch.zeros(len(xb), dtype=torch.float64, device=self.device)
            with Task("ULA step", int(p["n_steps"])) as task:
                for _ in range(int(p["n_steps"])):
                    x1 = self.sampler.move(xb, g0, self.gen)
                    _, g1 = self._energy_and_grad(x1)
                    if weighted:  # log q_k(x | x1) - log q_k(x1 | x), Gaussian kernels of variance 2 h T
                        d0, d1 = self.sampler.drift(g0), self.sampler.drift(g1)
                        kern = kern + (0.5 * flat_dot(x1 - xb, d0 + d1) + 0.25 * h * (flat_dot(d0, d0) - flat_dot(d1, d1))) / T
                    xb, g0 = x1, g1
                    task.tick(task.i + 1)
            if b is None:
                walkers = xb
            else:
                walkers[b] = xb
                self.prev_idx = b  # the last mini-batch: what the reference returns as fake_imgs
            if weighted:
                u_new = self._energy_nograd(walkers).double()
                self.log_w = self.log_w + (self.ref_energy - u_new) / T
                if b is None:
                    self.log_w = self.log_w + kern
                else:
                    self.log_w[b] = self.log_w[b] + kern
                self.ref_energy = u_new
        self.walkers = walkers.detach()
        self.pending = False
        return self._finish_step(step, loss, e_pos, e_model, weighted, log_z, ess, resampled)

    def _finish_step(self, step: int, loss: torch.Tensor, e_pos: torch.Tensor, e_model: torch.Tensor,
                     weighted: bool, log_z: float, ess: float, resampled: int) -> dict[str, float]:
        T = self.temperature
        exact = self.exact_cross_entropy(e_pos)  # Eq. 16 at theta_k, beside the Eq. 12 estimate
        # 8. optimisation step theta_k -> theta_{k+1} (Alg. 1 line 6)
        self.clip_param_grads()
        self.schedule_lr(step)
        self.opt.step()

        out = {
            "loss": float(loss.detach()),
            "energy_data": float(e_pos.detach().mean()),
            "energy_model": float(e_model.detach()),
        }
        if weighted:
            # Eq. 9/12 with the batch's data term: H_k = log Z_k + mean U_k(x*)/T
            out.update(log_z=log_z, cross_entropy_est=log_z + float(e_pos.detach().double().mean()) / T)
        # ESS_k (before this update's resampling), resamplings so far, distinct ancestors after it
        out.update(ess=ess, n_resamples=float(self.n_resamples), resampled=float(resampled),
                   n_ancestors=float(self.n_ancestors()), walkers_exact_start=float(self.exact_start))
        lo, hi = torch.aminmax(self.walkers)  # one pass, no |x| temporary
        out["sample_absmax"] = max(-float(lo), float(hi))
        out.update(exact)
        out.update(self.net_scalars())
        return out

    def sample(self, n: int) -> torch.Tensor:
        """Equal-weight samples: n draws from the weighted walkers (Sec. 3.2, "Generative
        modeling"), then ``sample_steps`` unweighted ULA steps."""
        if not self.initialised:
            self.init_walkers(self.init_chains(self.n_walkers))
        a, _ = self.completed_log_weights()
        idx = resample_indices(a, n, self.params["resampler"], self.gen)
        x = self.walkers[idx]
        if int(self.params["sample_steps"]) > 0:
            x = self.sampler.run(self.energy, x, int(self.params["sample_steps"]), self.gen)
        return x.detach()

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "walkers": self.walkers.clone(),
            "log_w": self.log_w.clone(),
            "pending": self.pending,
            "pending_idx": self.pending_idx.clone(),
            "pending_dx": self.pending_dx.clone(),
            "log_z_ref": self.log_z_ref,
            "log_z_exact0": self.log_z_exact0,
            "n_resamples": self.n_resamples,
            "ancestors": self.ancestors.clone(),
            "exact_start": self.exact_start,
            "initialised": self.initialised,
            "ref_energy": self.ref_energy.clone(),
            "prev_idx": self.prev_idx.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.walkers = state["walkers"].to(self.device).clone()
        self.log_w = state["log_w"].to(self.device).clone()
        self.pending = bool(state["pending"])
        self.pending_idx = state["pending_idx"].to(self.device).clone()
        self.pending_dx = state["pending_dx"].to(self.device).clone()
        self.log_z_ref = float(state["log_z_ref"])
        self.log_z_exact0 = bool(state["log_z_exact0"])
        self.n_resamples = int(state["n_resamples"])
        # checkpoints written before ancestry was tracked: every walker its own ancestor
        self.ancestors = state.get("ancestors", torch.arange(len(self.walkers))).to(self.device).clone()
        self.exact_start = bool(state.get("exact_start", self.log_z_exact0))
        self.initialised = bool(state["initialised"])
        self.ref_energy = state.get("ref_energy", torch.zeros(0, dtype=torch.float64)).to(self.device).clone()
        self.prev_idx = state.get("prev_idx", torch.zeros(0, dtype=torch.long)).to(self.device).clone()
