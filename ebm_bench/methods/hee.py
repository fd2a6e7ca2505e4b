"""HEE: hierarchical exponential-family energy-based model with neural sampling
(Dong & Wu 2023, paper 000; only its supplement is available, cited as "supp.").

Model. Layers x_0 (data, n_0 = prod(data shape)) to x_L (sizes ``layers`` = [n_1..n_L]).
Each conditional is an exponential family with phi(x) = x (supp. Sec. 2-3, Table 1)::

    p(x_l | x_{l+1}) = exp(eta_l^T x_l + g_l(x_l) - A(eta_l)),   eta_l = W_l f(x_{l+1}) + b_l,
    p(x_L) = exp(b_L^T x_L + g_L(x_L) - A(b_L)),   g_l(x) = -x^T Lambda_l x,

i.e. x_l | x_{l+1} ~ N((2 Lambda_l)^{-1} eta_l, (2 Lambda_l)^{-1}) and
A(eta) = eta^T Lambda^{-1} eta / 4 + (n / 2) ln pi - (1 / 2) ln det Lambda, so A'(eta) =
E[x_l | eta_l] (supp. Eq. 3). ``nonlinearity: linear`` (f = identity) is HEE-L, a linear-
Gaussian model whose marginal p(x_0) is Gaussian hence unimodal (supp. Sec. 2, Eq. 22);
``tanh`` puts the nonlinearity in the natural parameter, eta_l = W_l tanh(x_{l+1}) + b_l,
so p(x_0) is an infinite mixture of Gaussians and can be multimodal.

Quadratic term (``quadratic``): ``fixed`` Lambda_l = ``precision`` * I (Table 1 writes
g = -x^T x, i.e. ``precision: 1``, conditional variance 1/2; supp. Eq. 14-16 treat the
Hessian as I + theta^T theta, which is ``precision: 0.5``; both are allowed, 1 is the
default because the table is the settings of the experiments); ``diagonal``: a learned
per-unit precision (our addition for data whose scale is far from 1/2, e.g. the 2D toys);
``full``: the learned symmetric Lambda_l of the CIFAR-10 setting, g = -x^T W x - Tr(W^T W).
The Tr(W^T W) term is constant in x, so it cancels between g and A and changes neither the
distribution nor the gradient of ln p: it is not implemented. Learned precisions are
projected onto [``precision_min``, ``precision_max``] (diagonal; ``full`` is only
symmetrised, its positive definiteness is not enforced). The upper bound ``precision_max``
(25) keeps the explicit EM step of x_0 stable (2 Lambda dt / tau_x = 0.5): a learned
precision of an always-constant pixel would otherwise grow without bound. ``connectivity``
< 1 keeps a fixed random fraction of each W_l (CIFAR-10: 20% sparse connections, Table 1),
drawn from the run seed.

Inference (supp. Sec. 1.3, Sec. 3). With x_0 clamped to the data the latents z = x_{1:L}
run Langevin dynamics on ln p(z | x_0) = ln p(x_{0:L}) + const, integrated by Euler-
Maruyama with dt = ``dt`` tau_x (0.01, Sec. 3); layer l has time constant tau_z,l =
linspace(tau_z[0], tau_z[1], L) (Table 1). ``order: 1``: first-order Langevin; ``order:
2``: the second-order dynamics with the auxiliary variable v, supp. Eq. 4-5, tau_v =
``tau_v_factor`` tau_z, ``m`` (Table 1: 0.5, 0.5), in two readings (``adaptation``, both
in :mod:`ebm_bench.samplers.hee_dynamics`, both with the stationary law p(z|x) N(v) of
Eq. 12-13): ``literal`` (the default: Eq. 5-7 as printed, one noise drives z and v, v is
never driven by z; provably first-order Langevin in law on Gaussian posteriors, so it
cannot accelerate) and ``driven`` (tau_v dv/dt = -m v - 4 m g + independent noise, with g
the latent score: the reading that speeds inference, docs/hee.md). The default is the
printed equation because it is the only form the supplement writes down; the suite's
variants name their reading. v is not initialised by the supplement; we draw it
from its stationary law N(0, 4 m tau_z / tau_v) independently of z (``v_init:
stationary``), so (z, v) starts in the product form of Eq. 12; ``v_init: zero`` (adaptation
at rest) makes the covariance of z converge ~2.6x more slowly (``ebm-bench
hee-mixing``). Either way the literal reading does not reach the posterior faster than
first-order Langevin on Gaussian posteriors (the mean follows the same ODE; see the
sampler module); the driven reading does. The score of layer l is

    grad_{x_l} ln p = eta_l - 2 Lambda_l x_l + f'(x_l) * (W_{l-1}^T (x_{l-1} - A'(eta_{l-1}))),

and A'(eta_{l-1}) is estimated by the fast interneurons u_{l-1} (time constant tau_u),
which run Langevin on p(u | eta_{l-1}) (supp. Eq. 3); ``interneurons: false`` uses the
closed-form A' of the Gaussian family instead (exact; for tests and ablation). The
interneurons' sampling noise enters the latents' drift through W_{l-1}^T (x_{l-1} - u_{l-1}):
for tau_u > 0 it acts as extra noise (intensity ~ |W|^2 tau_u / (2 Lambda), vanishing only as
tau_u -> 0), i.e. it heats the posterior; ``n_interneurons`` = K averages K interneurons per
unit (noise / K; ours, the supplement uses one). ``interneuron_integrator: exact`` integrates
the interneurons' Ornstein-Uhlenbeck SDE exactly over each step (eta held fixed), so they
keep their physical rate 2 Lambda / tau_u for any learned precision; the preconditioned
Euler alternative relaxes them at 1 / tau_u only, which for 2 Lambda > tau_x / tau_u makes
them slower than x_0 itself: in joint generation x_0 - u_0 then feeds the velocity of
x_l back into x_l (negative friction) and the dynamics blew up (HEE-L on the 8-mode toy,
sample std ~700). Use ``exact`` (or the plain Euler step) with learned precisions.

Learning (supp. Eq. 1: grad KL = -E[grad ln p(x_0, z)] under the posterior), local in time
and space, no negative phase: during each presentation of a batch every weight moves, at
every EM step, by

    tau_theta dW_l/dt = <(x_l - u_l) f(x_{l+1})^T>,   tau_theta db_l/dt = <x_l - u_l>,
    tau_theta dLambda_l/dt = <u_l u_l^T - x_l x_l^T>   (diagonal: <u_l^2 - x_l^2>),

<.> the mean over the batch (each example is its own copy of the network); with u_l
replaced by its expectation A'(eta_l) (and u u^T by E[x x^T | eta]) this is exactly
grad ln p(x_{0:L}) (tested against autograd), and u_l is an unbiased sample of it. A batch
is presented for ``present_time`` tau_x (supp. Sec. 3: 300 tau_x); latents start from
N(0, ``latent_init_std``^2), v per ``v_init`` and interneurons at 0 (not in the supplement);
``learn_after`` tau_x of inference may precede learning (default 0: learning always on).

Generation (supp. Sec. 3), selected by ``generation``:
- ``joint``: every layer, x_0 included (time constant tau_x), runs the same Langevin
  dynamics on ln p(x_{0:L}) from random activity for ``joint_time`` (300) tau_x; the
  output is x_0 averaged over the last ``joint_average`` (100) tau_x.
- ``marginal``: the supplement names it but does not define it. Our choice: the top-down
  dynamics, each layer running Langevin on its own conditional only,
  tau_l dx_l/dt = grad_{x_l} ln p(x_l | x_{l+1}(t)) + noise (x_L on its prior), with no
  bottom-up term and no interneurons, for ``marginal_time`` (100) tau_x, output x_0
  averaged over the last ``marginal_average`` (50) tau_x. With x_{l+1} frozen the x_l
  dynamics leave p(x_l | x_{l+1}) invariant, so with slower upper layers (tau_z increases
  with depth, Table 1) x_0 samples the marginal p(x_0) = int p(x_0 | x_1) p(x_1) dx_1 --
  continuous-time ancestral sampling, which needs no feedback from below to equilibrate
  and so plausibly is why the supplement runs it 3x shorter.
``generation_output: last`` returns the final x_0 instead of the time average (the time
average removes the conditional noise of x_0 and is what the supplement reports).

Density (for the exact 2D KL): HEE-L's p(x_0) is the Gaussian of the recursion
m_l = K_l (W_l m_{l+1} + b_l), C_l = K_l W_l C_{l+1} W_l^T K_l + K_l, K_l = (2 Lambda_l)^{-1};
the nonlinear model's p(x_0) has no closed form and is estimated by ``density_mc``
ancestral samples of x_1 from a fixed generator, p(x_0) ~ (1/K) sum_k N(x_0; K_0 eta_0(x_1^k),
K_0) -- a consistent (K -> inf) estimate that is itself a normalised density.

Features for the linear probe: the posterior means E[x_l | x_0] for l = 1..L, the time
average of the inference dynamics (``feature_time`` tau_x, average over the last
``feature_average``), from a generator seeded per call so features are deterministic.

Longer than 500 lines because a method is one file (adding a method = adding a file): the network,
its inference (three inner-loop implementations behind one switch), local learning and generation of
paper 000's model are one method; the dynamics and the loops themselves live in samplers/.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ebm_bench.core import validation as V
from ebm_bench.core.progress import Task
from ebm_bench.core.errors import ConfigError
from ebm_bench.samplers.counting import count_grad_evals
from ebm_bench.samplers.hee_dynamics import ADAPTATIONS, first_order_step, gaussian_family_drift, interneuron_step, interneuron_step_exact, second_order_step
from ebm_bench.samplers.hee_compiled import available as compiled_available
from ebm_bench.samplers.hee_compiled import run_compiled
from ebm_bench.samplers.hee_compiled import unsupported_reason as compiled_unsupported
from ebm_bench.samplers.hee_fused import run_fused
from ebm_bench.methods.base import DataInfo, Method, register_method

HEE_DEFAULTS: dict[str, Any] = {
    "layers": [10, 10, 10, 10, 10],  # n_1..n_L (Table 1, 2D synthetic: L = 5, n_l = 10)
    "nonlinearity": "tanh",  # f in eta_l = W_l f(x_{l+1}) + b_l: "linear" (HEE-L) | "tanh"
    "quadratic": "fixed",  # g = -x^T Lambda x: "fixed" (precision * I) | "diagonal" | "full" (learned)
    "precision": 1.0,  # Lambda (fixed) or its initial value; Table 1: g = -x^T x
    "precision_min": 0.05,  # learned diagonal precisions are projected onto [min, max]
    "precision_max": 25.0,  # EM stability of x_0 and the interneurons: 2 Lambda dt / tau < 2
    "connectivity": 1.0,  # fraction of non-zero entries of each W_l (CIFAR-10: 0.2)
    "weight_init": 0.5,  # W_l ~ N(0, weight_init^2 / n_{l+1})
    "order": 2,  # inference/generation dynamics: 1 (first-order Langevin) | 2 (supp. Eq. 4-5)
    "generation": "joint",  # "joint" | "marginal"
    "generation_output": "average",  # "average" (supp. Sec. 3) | "last"
    "tau_x": 1.0,  # every other time constant (tau_z, tau_u, tau_theta, dt, *_time) is in units of tau_x
    "tau_z": [1.0, 10.0],  # tau of layers 1..L = linspace(tau_z[0], tau_z[1], L) (Table 1)
    "tau_v_factor": 0.5,  # tau_v = 0.5 tau_z
    "v_init": "stationary",  # "stationary": v ~ N(0, 4 m tau_z / tau_v) (Eq. 12) | "zero"
    "adaptation": "literal",  # order 2: "literal" (supp. Eq. 5-7 as printed) | "driven" (v driven by z)
    "m": 0.5,
    "tau_u": 0.1,
    "tau_theta": 10.0,
    "dt": 0.01,  # Euler-Maruyama step in units of tau_x
    "interneurons": True,  # False: closed-form A'(eta) instead of the interneurons' estimate
    "n_interneurons": 1,  # interneurons per unit whose average estimates A'(eta) (ours; paper: 1)
    "interneuron_integrator": "euler",  # "euler" (supp. Sec. 3) | "exact" (OU step; fixed/diagonal)
    "interneuron_precondition": False,  # True: interneurons relax at rate 1/tau_u whatever Lambda
    "present_time": 300.0,  # tau_x each batch is presented for (Sec. 3)
    "learn_after": 0.0,  # tau_x of inference before learning starts in each presentation
    "latent_init_std": 1.0,
    "joint_time": 300.0,
    "joint_average": 100.0,
    "marginal_time": 100.0,
    "marginal_average": 50.0,
    "feature_time": 20.0,
    "feature_average": 10.0,
    "density_mc": 4096,  # ancestral samples for the nonlinear model's p(x_0)
    "sample_batch": 1000,
    # the Euler loop's implementation: "eager" (the reference, op by op), "fused" (block
    # weights, in-place updates, same random stream; samplers/hee_fused.py, issue 21),
    # "compiled" (the loop in C, built with gcc at first use, its own Gaussian stream of the
    # same law; samplers/hee_compiled.py: only when named, so that results never depend on
    # whether a compiler is present), "auto" = fused (quadratic fixed / diagonal), else eager
    "inner_loop": "auto",
}

NONLINEARITIES = ("linear", "tanh")
QUADRATICS = ("fixed", "diagonal", "full")
GENERATIONS = ("joint", "marginal")
INNER_LOOPS = ("auto", "eager", "fused", "compiled")


def check_params(p: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` naming the key, before any compute."""
    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            raise ConfigError(f"hee: {key} = {p[key]!r}; {what}")

    layers = p["layers"]
    need(isinstance(layers, (list, tuple)) and len(layers) >= 1
         and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in layers),
         "layers", "expected a non-empty list of positive integers (n_1..n_L)")
    need(p["nonlinearity"] in NONLINEARITIES, "nonlinearity", f"expected one of {NONLINEARITIES}")
    need(p["quadratic"] in QUADRATICS, "quadratic", f"expected one of {QUADRATICS}")
    need(p["generation"] in GENERATIONS, "generation", f"expected one of {GENERATIONS}")
    need(p["generation_output"] in ("average", "last"), "generation_output", "expected 'average' or 'last'")
    need(p["v_init"] in ("stationary", "zero"), "v_init", "expected 'stationary' or 'zero'")
    need(p["order"] in (1, 2), "order", "expected 1 (first-order Langevin) or 2 (supp. Eq. 4-5)")
    need(p["adaptation"] in ADAPTATIONS, "adaptation", f"expected one of {ADAPTATIONS}")
    tz = p["tau_z"]
    need(isinstance(tz, (int, float)) and not isinstance(tz, bool) and tz > 0
         or isinstance(tz, (list, tuple)) and len(tz) == 2 and all(float(t) > 0 for t in tz),
         "tau_z", "expected a positive number or [first, last] > 0 (linspace over the layers)")
    for key in ("precision", "tau_x", "tau_v_factor", "m", "tau_u", "tau_theta", "dt", "present_time",
                "joint_time", "marginal_time", "feature_time"):
        need(float(p[key]) > 0, key, "expected > 0")
    need(0 < float(p["precision_min"]) <= float(p["precision"]), "precision_min",
         "expected 0 < precision_min <= precision")
    need(float(p["precision_max"]) >= float(p["precision"]), "precision_max", "expected precision_max >= precision")
    need(0 < float(p["connectivity"]) <= 1, "connectivity", "expected a fraction in (0, 1]")
    need(float(p["weight_init"]) >= 0, "weight_init", "expected >= 0")
    need(float(p["latent_init_std"]) >= 0, "latent_init_std", "expected >= 0")
    need(0 <= float(p["learn_after"]) < float(p["present_time"]), "learn_after",
         "expected 0 <= learn_after < present_time")
    for avg, total in (("joint_average", "joint_time"), ("marginal_average", "marginal_time"),
                       ("feature_average", "feature_time")):
        need(0 < float(p[avg]) <= float(p[total]), avg, f"expected 0 < {avg} <= {total}")
    need(int(p["density_mc"]) >= 1, "density_mc", "expected >= 1")
    need(int(p["n_interneurons"]) >= 1, "n_interneurons", "expected >= 1")
    need(int(p["sample_batch"]) >= 1, "sample_batch", "expected >= 1")
    dt = float(p["dt"]) * float(p["tau_x"])
    need(p["interneuron_integrator"] in ("euler", "exact"), "interneuron_integrator", "expected 'euler' or 'exact'")
    need(not (p["interneuron_integrator"] == "exact" and p["quadratic"] == "full"), "interneuron_integrator",
         "the exact step is implemented for fixed / diagonal precisions only")
    if p["interneurons"] and not p["interneuron_precondition"] and p["quadratic"] != "full" \
            and p["interneuron_integrator"] == "euler":
        top = float(p["precision"] if p["quadratic"] == "fixed" else p["precision_max"])
        need(2 * top * dt / (float(p["tau_u"]) * float(p["tau_x"])) < 2, "interneuron_precondition",
             f"the interneurons' EM step is unstable for precisions up to {top:g} (2 Lambda dt / tau_u >= 2): "
             "set interneuron_precondition: true or lower precision / precision_max")
    need(p["inner_loop"] in INNER_LOOPS, "inner_loop", f"expected one of {INNER_LOOPS}")
    need(not (p["inner_loop"] == "fused" and p["quadratic"] == "full"), "inner_loop",
         "the fused loop supports quadratic fixed / diagonal only (full: eager or auto)")
    if p["inner_loop"] == "compiled":
        why = compiled_unsupported(p, "cpu", len(layers))
        need(why is None, "inner_loop", f"the compiled loop cannot run this configuration: {why} (use auto)")
    need(float(p["dt"]) < float(p["tau_u"]), "dt",
         f"the EM step dt = {p['dt']} tau_x must be below tau_u = {p['tau_u']} tau_x")


def _steps(time: float, dt_rel: float) -> int:
    return max(1, int(round(float(time) / float(dt_rel))))


@register_method("hee")
class HEE(Method):
    """HEE (paper 000 supp.): layered exponential-family EBM, neural sampling, local learning."""

    defaults = HEE_DEFAULTS
    checks = {
        "layers": V.list_of(V.count(), min_len=1),
        "nonlinearity": V.choice(*NONLINEARITIES),
        "quadratic": V.choice(*QUADRATICS),
        "generation": V.choice(*GENERATIONS),
        "generation_output": V.choice("average", "last"),
        "v_init": V.choice("stationary", "zero"),
        "order": V.choice(1, 2),
        "interneuron_integrator": V.choice("euler", "exact"),
        "inner_loop": V.choice(*INNER_LOOPS),
        "tau_z": V.either(V.positive(), V.list_of(V.positive(), length=2)),
        "connectivity": V.number(gt=0, le=1),
        "weight_init": V.nonnegative(),
        "latent_init_std": V.nonnegative(),
        "learn_after": V.nonnegative(),
        "density_mc": V.count(), "n_interneurons": V.count(), "sample_batch": V.count(),
        **{k: V.positive() for k in ("precision", "precision_min", "precision_max", "tau_x", "tau_v_factor", "m",
                                     "tau_u", "tau_theta", "dt", "present_time", "joint_time", "marginal_time",
                                     "feature_time", "joint_average", "marginal_average", "feature_average")},
    }

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        check_params(params)
    tiny = {"layers": [4, 3], "present_time": 0.2, "joint_time": 0.3, "joint_average": 0.1,
            "marginal_time": 0.2, "marginal_average": 0.1, "feature_time": 0.2, "feature_average": 0.1,
            "density_mc": 64}

    def __init__(self, params: dict[str, Any], data: DataInfo, device, seed: int):
        super().__init__(params, data, device, seed)
        p = self.params
        check_params(p)
        self.sizes = [math.prod(data.shape)] + [int(n) for n in p["layers"]]
        self.L = len(self.sizes) - 1
        offs = [0]
        for n in self.sizes:
            offs.append(offs[-1] + n)
        self.N = offs[-1]
        self.sl = [slice(offs[l], offs[l + 1]) for l in range(self.L + 1)]
        tz = p["tau_z"]
        first, last = (float(tz), float(tz)) if isinstance(tz, (int, float)) else (float(tz[0]), float(tz[1]))
        taus = torch.linspace(first, last, self.L).tolist() if self.L > 1 else [first]
        self.tau_x = float(p["tau_x"])
        self.taus = [self.tau_x] + [t * self.tau_x for t in taus]  # tau of x_0 (generation), x_1..x_L
        self.tau_vec = torch.cat([torch.full((n,), t) for n, t in zip(self.sizes, self.taus)]).to(self.device)
        self.dt = float(p["dt"]) * self.tau_x
        self.tau_u = float(p["tau_u"]) * self.tau_x
        self.tau_theta = float(p["tau_theta"]) * self.tau_x
        self.full = p["quadratic"] == "full"
        g = torch.Generator().manual_seed(self.seed)
        dev = self.device
        self.W: list[torch.Tensor] = []
        self.mask: list[torch.Tensor | None] = []
        for l in range(self.L):
            n_out, n_in = self.sizes[l], self.sizes[l + 1]
            w = torch.randn(n_out, n_in, generator=g) * float(p["weight_init"]) / math.sqrt(n_in)
            mk = None
            if float(p["connectivity"]) < 1:
                mk = (torch.rand(n_out, n_in, generator=g) < float(p["connectivity"])).float()
                w = w * mk / math.sqrt(float(p["connectivity"]))
                mk = mk.to(dev)
            self.W.append(w.to(dev))
            self.mask.append(mk)
        self.bias = torch.zeros(self.N, device=dev)  # b_0..b_L concatenated
        c = float(p["precision"])
        # Lambda: per-unit vector (fixed, diagonal) or one symmetric matrix per layer (full)
        self.lam: torch.Tensor | list[torch.Tensor] = (
            [c * torch.eye(n, device=dev) for n in self.sizes] if self.full else torch.full((self.N,), c, device=dev))
        self.sampler_steps_per_iter = _steps(p["present_time"], p["dt"])
        self.loop = self.pick_loop()
        self.fused = self.loop == "fused"

    def pick_loop(self) -> str:
        """The Euler loop ``inner_loop`` resolves to here: ``auto`` is the fused loop (the
        eager loop's random stream: results do not depend on whether a C compiler is
        present), eager for quadratic full; ``compiled`` must be asked for by name (its own
        Gaussian stream of the same law) and is a ConfigError where it cannot run."""
        p = self.params
        loop = p["inner_loop"]
        if loop == "compiled":
            why = compiled_unsupported(p, self.device, self.L)
            ok, err = compiled_available() if why is None else (False, why)
            if not ok:
                raise ConfigError(f"hee: inner_loop = 'compiled'; {err} (use fused or auto)")
            return loop
        if loop != "auto":
            return loop
        return "eager" if self.full else "fused"

    # --- parameters per layer ------------------------------------------------------------------
    @property
    def b(self) -> list[torch.Tensor]:
        return [self.bias[s] for s in self.sl]

    def lam_layer(self, l: int) -> torch.Tensor:
        return self.lam[l] if self.full else self.lam[self.sl[l]]

    def split(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x[:, s] for s in self.sl]

    # --- model -----------------------------------------------------------------------------
    def f(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.params["nonlinearity"] == "linear" else torch.tanh(x)

    def eta(self, FX: torch.Tensor) -> torch.Tensor:
        """All natural parameters at once: eta_l = W_l f(x_{l+1}) + b_l (l < L), eta_L = b_L."""
        parts = [FX[:, self.sl[l + 1]] @ self.W[l].T for l in range(self.L)]
        parts.append(torch.zeros(FX.shape[0], self.sizes[self.L], device=FX.device, dtype=FX.dtype))
        return torch.cat(parts, 1) + self.bias

    def quad_grad(self, X: torch.Tensor) -> torch.Tensor:
        """g'(x) = -2 Lambda x for every layer."""
        if self.full:
            return torch.cat([-2.0 * X[:, s] @ lam for s, lam in zip(self.sl, self.lam)], 1)
        return -2.0 * self.lam * X

    def cond_mean(self, E: torch.Tensor) -> torch.Tensor:
        """A'(eta) = E[x_l | eta_l] = (2 Lambda_l)^{-1} eta_l for every layer (supp. Eq. 3)."""
        if self.full:
            return torch.cat([torch.linalg.solve(2.0 * lam, E[:, s].T).T for s, lam in zip(self.sl, self.lam)], 1)
        return E / (2.0 * self.lam)

    def cond_second_moment(self, E: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """E[x^2 | eta] per unit (fixed / diagonal), or per layer E[x x^T | eta] (B, n, n) (full)."""
        mean = self.cond_mean(E)
        if self.full:
            return [mean[:, s, None] * mean[:, None, s] + torch.linalg.inv(2.0 * lam) for s, lam in zip(self.sl, self.lam)]
        return mean * mean + 1.0 / (2.0 * self.lam)

    @staticmethod
    def log_partition(eta: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        """A(eta) = eta^T Lambda^{-1} eta / 4 + (n/2) ln pi - (1/2) ln det Lambda, per row."""
        n = eta.shape[1]
        if lam.ndim == 2:
            return 0.25 * (eta * torch.linalg.solve(lam, eta.T).T).sum(1) + 0.5 * n * math.log(math.pi) \
                - 0.5 * torch.logdet(lam)
        return 0.25 * (eta * eta / lam).sum(1) + 0.5 * n * math.log(math.pi) - 0.5 * torch.log(lam).sum()

    def log_joint(self, xs: list[torch.Tensor], W: list[torch.Tensor] | None = None,
                  b: list[torch.Tensor] | None = None, lam: list[torch.Tensor] | None = None) -> torch.Tensor:
        """ln p(x_{0:L}) per row, sum_l eta_l^T x_l - x_l^T Lambda_l x_l - A(eta_l), written
        layer by layer independently of the dynamics' code (differentiable; tests)."""
        W = self.W if W is None else W
        b = self.b if b is None else b
        lam = [self.lam_layer(l) for l in range(self.L + 1)] if lam is None else lam
        B = xs[0].shape[0]
        out = xs[0].new_zeros(B)
        for l in range(self.L + 1):
            eta = (self.f(xs[l + 1]) @ W[l].T + b[l]) if l < self.L else b[l].expand(B, -1)
            x = xs[l]
            quad = (x @ lam[l] * x).sum(1) if lam[l].ndim == 2 else (lam[l] * x * x).sum(1)
            out = out + (eta * x).sum(1) - quad - self.log_partition(eta, lam[l])
        return out

    def score(self, X: torch.Tensor, FX: torch.Tensor, E: torch.Tensor, A: torch.Tensor,
              bottom_up: bool = True) -> torch.Tensor:
        """grad_{x_l} ln p(x_{0:L}) for every layer l, with ``A`` standing for A'(eta)
        (interneurons or closed form):  eta_l - 2 Lambda_l x_l + f'(x_l) W_{l-1}^T (x_{l-1} -
        A'(eta_{l-1})). ``bottom_up = False`` keeps grad ln p(x_l | x_{l+1}) only."""
        s = E + self.quad_grad(X)
        if bottom_up:
            err = X - A
            back = [X.new_zeros(X.shape[0], self.sizes[0])]
            back += [err[:, self.sl[l - 1]] @ self.W[l - 1] for l in range(1, self.L + 1)]
            back = torch.cat(back, 1)
            s = s + (back if self.params["nonlinearity"] == "linear" else back * (1.0 - FX * FX))
        return s

    @staticmethod
    def interneuron_second_moment(U: torch.Tensor) -> torch.Tensor:
        """The batch mean of the interneurons' estimate of E[x x^T | eta] of one layer:
        U (k, B, n) -> (1/(kB)) sum_{k,b} u u^T (n, n), what the Lambda update reads
        (:meth:`updates`). One matrix product: the per-sample (B, n, n) estimates it
        averages were 4.6 GB per Euler step at CIFAR-10's first layer (n = 3000, B = 128;
        supp. Table 1) and ran the CPU paper smoke out of memory."""
        flat = U.reshape(-1, U.shape[-1])
        return flat.T @ flat / flat.shape[0]

    def updates(self, X: torch.Tensor, FX: torch.Tensor, A: torch.Tensor,
                A2: torch.Tensor | list[torch.Tensor] | None) -> dict[str, Any]:
        """The local learning rule (batch means): dW_l = <(x_l - a_l) f(x_{l+1})^T>,
        db_l = <x_l - a_l>, dLambda_l = <a2_l - x_l x_l^T> (diagonal: <a2_l - x_l^2>), with
        a = A'(eta) or its interneuron estimate u, a2 the second moment or u u^T. With the
        exact moments this is grad ln p(x_{0:L}) (supp. Eq. 1, 3; tested with autograd)."""
        B = X.shape[0]
        err = X - A
        out: dict[str, Any] = {"W": [err[:, self.sl[l]].T @ FX[:, self.sl[l + 1]] / B for l in range(self.L)],
                               "b": err.mean(0)}
        if self.params["quadratic"] == "diagonal":
            out["lam"] = (A2 - X * X).mean(0)
        elif self.full:  # A2[l]: per-sample (B, n, n) or already the batch mean (n, n)
            out["lam"] = [(A2[l] if A2[l].dim() == 2 else A2[l].mean(0)) - X[:, s].T @ X[:, s] / B
                          for l, s in enumerate(self.sl)]
        return out

    def apply_updates(self, upd: dict[str, Any], rate: float) -> None:
        for l in range(self.L):
            self.W[l].add_(upd["W"][l], alpha=rate)
            if self.mask[l] is not None:
                self.W[l].mul_(self.mask[l])
        self.bias.add_(upd["b"], alpha=rate)
        if "lam" in upd:
            if self.full:
                for lam, d in zip(self.lam, upd["lam"]):
                    lam.add_(0.5 * (d + d.T), alpha=rate)
            else:
                self.lam.add_(upd["lam"], alpha=rate).clamp_(float(self.params["precision_min"]),
                                                             float(self.params["precision_max"]))

    # --- dynamics ------------------------------------------------------------------------------
    def _interneuron_step(self, U: torch.Tensor, E: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """One step of the interneurons U (K, B, N) driven by eta = E (B, N)."""
        if self.full:
            shape = U.shape
            U2, E2 = U.reshape(-1, self.N), E.expand(shape).reshape(-1, self.N)
            noise = torch.randn(U2.shape, generator=gen, device=U.device, dtype=U.dtype)
            return first_order_step(U2, E2 + self.quad_grad(U2), self.tau_u, self.dt, noise).reshape(shape)
        if self.params["interneuron_integrator"] == "exact":
            return interneuron_step_exact(U, E, self.lam, self.tau_u, self.dt, gen)
        if not self.params["interneuron_precondition"]:
            return interneuron_step(U, E, self.lam, self.tau_u, self.dt, gen)
        # preconditioned by the conditional variance K = (2 Lambda)^{-1}: same target, every
        # interneuron relaxes at rate 1 / tau_u whatever the (learned) precision
        k = 1.0 / (2.0 * self.lam)
        noise = torch.randn(U.shape, generator=gen, device=U.device, dtype=U.dtype)
        return first_order_step(U, k * gaussian_family_drift(U, E, self.lam), self.tau_u, self.dt,
                                torch.sqrt(k) * noise)

    def simulate(self, x0: torch.Tensor | None, n_steps: int, gen: torch.Generator, *, mode: str,
                 learn_from: int | None = None, avg_from: int | None = None,
                 init: torch.Tensor | None = None, record=None) -> dict[str, Any]:
        """Run the network for ``n_steps`` EM steps (all layers in one (B, N) state).

        mode ``infer``: x_0 clamped to ``x0``, latents on ln p(z | x_0), learning from step
        ``learn_from`` when given; ``joint``: all layers free on ln p(x_{0:L});
        ``marginal``: top-down dynamics (each layer on its own conditional). Returns the
        final state X (B, N) and its time average from step ``avg_from`` on;
        ``record(step, X)`` is called after every step (benchmarks; with the fused loop X
        is a buffer updated in place: copy what you keep). ``inner_loop`` picks the eager
        loop below (the reference), :func:`~ebm_bench.samplers.hee_fused.run_fused`
        (same recursion and random stream, fewer and fused ops) or
        :func:`~ebm_bench.samplers.hee_compiled.run_compiled` (same recursion in C, its own
        noise of the same law; with ``record`` or a float64 state it runs fused).
        """
        p = self.params
        dev = self.device
        if init is not None:
            X = init.clone()
        else:
            X = float(p["latent_init_std"]) * torch.randn(x0.shape[0], self.N, generator=gen, device=dev)
        clamp = mode == "infer"
        if clamp:
            x0 = x0.reshape(x0.shape[0], -1).to(dev, X.dtype)
            X[:, self.sl[0]] = x0
        order = int(p["order"])
        adaptation = p["adaptation"]
        tau = self.tau_vec
        tau_v = float(p["tau_v_factor"]) * tau
        m = float(p["m"])
        V = None
        if order == 2:  # v starts at rest (0) or from its stationary law N(0, 4 m tau_z / tau_v) (Eq. 12)
            V = torch.zeros_like(X)
            if p["v_init"] == "stationary":
                V = torch.randn(X.shape, generator=gen, device=dev, dtype=X.dtype) * torch.sqrt(4.0 * m * tau / tau_v)
        use_u = bool(p["interneurons"]) and mode != "marginal"
        k_u = int(p["n_interneurons"])
        U = X.new_zeros(k_u, *X.shape) if use_u else None  # k_u interneurons per unit
        learn_m2 = p["quadratic"] != "fixed"
        # one simulation can run for minutes (a FashionMNIST presentation, generation):
        # it is a progress task, nested in the caller's (training step, sample chains)
        with Task(f"hee {mode} Euler step", n_steps) as task:
            if self.loop == "compiled" and record is None and X.dtype == torch.float32:
                return run_compiled(self, X, V, U, n_steps, gen, mode=mode, x0=x0 if clamp else None,
                                    learn_from=learn_from, avg_from=avg_from, task=task)
            if self.loop in ("fused", "compiled"):  # compiled with a record callback or float64: fused
                return run_fused(self, X, V, U, n_steps, gen, mode=mode, x0=x0 if clamp else None,
                                 learn_from=learn_from, avg_from=avg_from, record=record, task=task)
            total = torch.zeros_like(X) if avg_from is not None else None
            n_avg = 0
            for step in range(n_steps):
                FX = self.f(X)
                E = self.eta(FX)
                A = U.mean(0) if use_u else self.cond_mean(E)
                S = self.score(X, FX, E, A, bottom_up=mode != "marginal")
                upd = None
                if learn_from is not None and step >= learn_from:
                    if not learn_m2:
                        A2 = None
                    elif use_u:
                        A2 = ([self.interneuron_second_moment(U[:, :, s]) for s in self.sl] if self.full
                              else (U * U).mean(0))
                    else:
                        A2 = self.cond_second_moment(E)
                    upd = self.updates(X, FX, A, A2)
                count_grad_evals(X.shape[0])  # one score evaluation per chain per EM step
                noise = torch.randn(X.shape, generator=gen, device=dev, dtype=X.dtype)
                if order == 1:
                    X = first_order_step(X, S, tau, self.dt, noise)
                else:
                    nv = (torch.randn(X.shape, generator=gen, device=dev, dtype=X.dtype) if adaptation == "driven"
                          else None)
                    X, V = second_order_step(X, V, S, tau, tau_v, m, self.dt, noise, adaptation, nv)
                if clamp:
                    X[:, self.sl[0]] = x0
                if use_u:
                    U = self._interneuron_step(U, E, gen)
                if upd is not None:
                    self.apply_updates(upd, self.dt / self.tau_theta)
                if total is not None and step >= avg_from:
                    total += X
                    n_avg += 1
                if record is not None:
                    record(step + 1, X)
                task.tick(step + 1)
            mean = total / max(n_avg, 1) if total is not None else None
            return {"X": X, "V": V, "U": U, "mean": mean}

    # --- contract -----------------------------------------------------------------------------
    @torch.no_grad()
    def train_step(self, batch: torch.Tensor, step: int) -> dict[str, float]:
        p = self.params
        x0 = batch.to(self.device).reshape(batch.shape[0], -1).float()
        n = self.sampler_steps_per_iter
        learn_from = min(_steps(p["learn_after"], p["dt"]), n - 1) if float(p["learn_after"]) > 0 else 0
        w_before = [w.clone() for w in self.W]
        X = self.simulate(x0, n, self.gen, mode="infer", learn_from=learn_from)["X"]
        lj = self.log_joint(self.split(X))
        dw = sum(float((w - wb).pow(2).sum()) for w, wb in zip(self.W, w_before)) ** 0.5
        lam0 = self.lam[0].diagonal() if self.full else self.lam[self.sl[0]]
        return {
            "log_joint": float(lj.mean()),
            "recon_err": float((self.cond_mean(self.eta(self.f(X)))[:, self.sl[0]] - x0).pow(2).mean()),
            "weight_change": dw,
            "precision0": float(lam0.mean()),
            "latent_absmax": float(X[:, self.sizes[0]:].abs().max()),
        }

    @torch.no_grad()
    def sample(self, n: int, generation: str | None = None) -> torch.Tensor:
        return self.sample_outputs(n, generation)[self.params["generation_output"]]

    @torch.no_grad()
    def sample_outputs(self, n: int, generation: str | None = None) -> dict[str, torch.Tensor]:
        """{"average": time average over the last window, "last": the final x_0} of the
        same chains (one simulation gives both outputs of ``generation_output``)."""
        p = self.params
        mode = generation or p["generation"]
        if mode not in GENERATIONS:
            raise ConfigError(f"hee: generation = {mode!r}; expected one of {GENERATIONS}")
        total, avg = ((p["joint_time"], p["joint_average"]) if mode == "joint"
                      else (p["marginal_time"], p["marginal_average"]))
        n_steps = _steps(total, p["dt"])
        avg_from = n_steps - _steps(avg, p["dt"])
        out: dict[str, list[torch.Tensor]] = {"average": [], "last": []}
        with Task("chains", n) as task:  # generation: a progress task over the chains done
            for start in range(0, n, int(p["sample_batch"])):
                task.tick(start)
                k = min(int(p["sample_batch"]), n - start)
                init = float(p["latent_init_std"]) * torch.randn(k, self.N, generator=self.gen, device=self.device)
                r = self.simulate(None, n_steps, self.gen, mode=mode, avg_from=avg_from, init=init)
                out["average"].append(r["mean"][:, self.sl[0]].reshape(k, *self.data.shape))
                out["last"].append(r["X"][:, self.sl[0]].reshape(k, *self.data.shape))
        return {key: torch.cat(v) for key, v in out.items()}

    @torch.no_grad()
    def posterior_means(self, x: torch.Tensor, seed: int = 0) -> list[torch.Tensor]:
        """E[x_l | x_0] for l = 1..L: time averages of the inference dynamics."""
        p = self.params
        gen = torch.Generator(device=self.device).manual_seed(int(seed))
        n_steps = _steps(p["feature_time"], p["dt"])
        avg_from = n_steps - _steps(p["feature_average"], p["dt"])
        r = self.simulate(x.to(self.device).reshape(x.shape[0], -1).float(), n_steps, gen, mode="infer",
                          avg_from=avg_from)
        return self.split(r["mean"])[1:]

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {f"post_x{l + 1}": mu for l, mu in enumerate(self.posterior_means(x))}

    # --- density of x_0 ---------------------------------------------------------------------------
    def _cond_cov(self, l: int) -> torch.Tensor:
        """K_l = (2 Lambda_l)^{-1} (float64 matrix)."""
        lam = self.lam_layer(l).double()
        return torch.linalg.inv(2.0 * lam) if lam.ndim == 2 else torch.diag(1.0 / (2.0 * lam))

    @torch.no_grad()
    def ancestral(self, n: int, gen: torch.Generator) -> list[torch.Tensor]:
        """Exact samples of p(x_{0:L}) (x_L from its prior, then each conditional down), float64."""
        xs: list[Any] = [None] * (self.L + 1)
        for l in range(self.L, -1, -1):
            b = self.b[l].double()
            eta = b.expand(n, -1) if l == self.L else self.f(xs[l + 1]) @ self.W[l].double().T + b
            K = self._cond_cov(l)
            noise = torch.randn(n, self.sizes[l], generator=gen, device=self.device, dtype=torch.float64)
            xs[l] = eta @ K + noise @ torch.linalg.cholesky(K).T
        return xs

    @torch.no_grad()
    def marginal_gaussian(self) -> tuple[torch.Tensor, torch.Tensor]:
        """HEE-L's p(x_0) = N(m_0, C_0) (float64): m_l = K_l (W_l m_{l+1} + b_l),
        C_l = K_l W_l C_{l+1} W_l^T K_l + K_l with K_l = (2 Lambda_l)^{-1}."""
        if self.params["nonlinearity"] != "linear":
            raise ValueError("p(x_0) is Gaussian only for nonlinearity = linear (HEE-L)")
        K = self._cond_cov(self.L)
        mean, cov = K @ self.b[self.L].double(), K
        for l in range(self.L - 1, -1, -1):
            K, W = self._cond_cov(l), self.W[l].double()
            mean = K @ (W @ mean + self.b[l].double())
            cov = K @ W @ cov @ W.T @ K + K
        return mean, cov

    @torch.no_grad()
    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """ln p(x_0): exact for HEE-L; the ``density_mc``-sample mixture estimate otherwise."""
        x = x.reshape(x.shape[0], -1).double().to(self.device)
        if self.params["nonlinearity"] == "linear":
            mean, cov = self.marginal_gaussian()
            return torch.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob(x)
        logn = self.mc_log_terms(x)
        return torch.logsumexp(logn, 1) - math.log(logn.shape[1])

    @torch.no_grad()
    def mc_log_terms(self, x: torch.Tensor) -> torch.Tensor:
        """ln N(x_0; K_0 eta_0(x_1^k), K_0) for ``density_mc`` ancestral samples x_1^k drawn
        from a generator seeded by the run seed (so the estimate is a fixed function)."""
        x = x.reshape(x.shape[0], -1).double().to(self.device)
        gen = torch.Generator(device=self.device).manual_seed(self.seed + 7919)
        xs = self.ancestral(int(self.params["density_mc"]), gen)
        K0 = self._cond_cov(0)
        means = (self.f(xs[1]) @ self.W[0].double().T + self.b[0].double()) @ K0  # (K, d)
        chol = torch.linalg.cholesky(K0)
        wx = torch.linalg.solve_triangular(chol, x.T, upper=False).T
        wm = torch.linalg.solve_triangular(chol, means.T, upper=False).T
        d2 = (wx * wx).sum(1, keepdim=True) - 2 * wx @ wm.T + (wm * wm).sum(1)[None, :]
        d = x.shape[1]
        return -0.5 * d2.clamp(min=0) - 0.5 * d * math.log(2 * math.pi) - torch.log(torch.diagonal(chol)).sum()

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """-ln p(x_0) (normalised; see :meth:`log_marginal`), used by the exact 2D metrics."""
        return -self.log_marginal(x).to(x.dtype if x.is_floating_point() else torch.float32)

    # --- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        lam = [t.clone() for t in self.lam] if self.full else self.lam.clone()
        return {**super().state_dict(), "W": [w.clone() for w in self.W], "bias": self.bias.clone(), "lam": lam,
                "mask": [m.clone() if m is not None else torch.empty(0) for m in self.mask]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.W = [w.to(self.device).clone() for w in state["W"]]
        self.bias = state["bias"].to(self.device).clone()
        self.lam = [t.to(self.device).clone() for t in state["lam"]] if self.full else state["lam"].to(self.device).clone()
        self.mask = [m.to(self.device).clone() if m.numel() else None for m in state["mask"]]
