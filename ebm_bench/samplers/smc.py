"""Sequential Monte Carlo pieces of Jarzynski-weighted training (Carbone et al. 2023, paper 003).

Everything here works on log weights A (one per walker) and stays in log space
(logsumexp): the weights exp(A) overflow float64 long before A itself is large (the
reference code exponentiates raw A). Notation follows paper 003 with the chain's
temperature made explicit: the ULA move x' = x - h d(x) + sqrt(2 h T) xi, d = grad U (or
its clamp), targets exp(-U/T); it is ULA on V = U/T with step s = h T, so Eq. 6 with V and s
reads alpha(x, y) = [U(x) + 1/2 (y - x) . d(x) + h/4 |d(x)|^2] / T  (see :func:`alpha`).

- :func:`alpha`: Eq. 6 at temperature T (the Jarzynski weight update is Eq. 5:
  A <- A - alpha_{k+1}(X_{k+1}, X_k) + alpha_k(X_k, X_{k+1})).
- :func:`log_mean_exp`: log N^-1 sum_i e^{A_i}, the increment of log Z in Eq. 12.
- :func:`normalized_weights`: p_i = e^{A_i} / sum_j e^{A_j} (Alg. 1 line 4, Eq. 11).
- :func:`ess_fraction`: Eq. 13, ESS = (N^-1 sum e^A)^2 / (N^-1 sum e^{2A}) in (0, 1].
- :func:`resample_indices`: multinomial, stratified and systematic resampling (App. A.4).
"""

from __future__ import annotations

import math

import torch

RESAMPLERS = ("multinomial", "stratified", "systematic")


def flat_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-walker inner product over every non-batch dimension, returned in float64.

    The dot product itself runs in the inputs' float32 (``torch.linalg.vecdot``: products
    rounded once, blocked/cascade summation, relative error ~1e-7 even over d = 3072
    pixels, and no TF32: it is not a matmul); everything after it, the division by T and
    the sums over steps that make the log weights, is float64 (``alpha``, the callers).
    Measured: summing with ``dtype=torch.float64`` or on float64 copies of the N x d arrays
    made the App. B.1 GMM update 1.5-2x slower than the whole rest of it. The energies and
    gradients come from the network in float32 under
    :func:`~ebm_bench.core.precision.strict_float32`."""
    return torch.linalg.vecdot(a.flatten(1), b.flatten(1)).double()


def alpha(u: torch.Tensor, d: torch.Tensor, dx: torch.Tensor, h: float, temperature: float,
          dd: torch.Tensor | None = None) -> torch.Tensor:
    """alpha_k(x, y) of paper 003 Eq. 6 for the chain actually run, per walker, float64.

    ``u`` = U_k(x) (N,), ``d`` = the drift applied at x (grad U_k(x), or its clamp when the
    sampler clips gradients), ``dx`` = y - x, ``h`` the ULA step and ``temperature`` T:

        alpha_k(x, y) = [ U_k(x) + 1/2 (y - x) . d(x) + h/4 |d(x)|^2 ] / T

    which is Eq. 6 written for V = U/T and step s = h T (x' = x - s grad V + sqrt(2 s) xi);
    with T = 1 and d = grad U it is Eq. 6 verbatim. For a clamped drift it is the same
    identity: -alpha_{k+1}(x', x) + alpha_k(x, x') = V_k(x) - V_{k+1}(x')
    + log beta_{k+1}(x', x) - log beta_k(x, x') with beta the Gaussian kernel of the move
    (paper 003 Eq. 30-31), the |y - x|^2 / (4 s) terms cancelling exactly. ``dd``: |d|^2
    when the caller already has it (``flat_dot(d, d)``).
    """
    dd = flat_dot(d, d) if dd is None else dd
    return (u.double() + 0.5 * flat_dot(dx, d) + 0.25 * h * dd) / temperature


def alpha_reverse_rest(d: torch.Tensor, dx: torch.Tensor, h: float, temperature: float,
                       dd: torch.Tensor | None = None) -> torch.Tensor:
    """alpha_{k+1}(x', x) - U_{k+1}(x') / T for the reverse of a move x -> x' = x + dx, with
    ``d`` the drift at x' under the new parameters: [-1/2 dx . d + h/4 |d|^2] / T, float64.

    The same value as ``alpha(0, d, -dx, h, T)`` without the N x d negation of ``dx``
    (the App. B.1 update is a few passes over N x d arrays; one more is measurable)."""
    dd = flat_dot(d, d) if dd is None else dd
    return (-0.5 * flat_dot(dx, d) + 0.25 * h * dd) / temperature


def log_mean_exp(a: torch.Tensor) -> torch.Tensor:
    """log( N^-1 sum_i exp(a_i) ) by logsumexp (paper 003 Eq. 12: log Z_k - log Z_0)."""
    return torch.logsumexp(a, 0) - math.log(a.numel())


def normalized_weights(a: torch.Tensor) -> torch.Tensor:
    """p_i = exp(A_i) / sum_j exp(A_j) (paper 003 Alg. 1 line 4; Eq. 11), i.e. softmax."""
    return torch.softmax(a, 0)


def ess_fraction(a: torch.Tensor) -> float:
    """Effective sample size per walker, paper 003 Eq. 13, computed in log space:

    ESS = (N^-1 sum e^{A_i})^2 / (N^-1 sum e^{2 A_i}),
    log ESS = 2 logsumexp(A) - logsumexp(2A) - log N.  In (0, 1]; 1 for equal weights.
    """
    a = a.double()
    log_ess = 2.0 * torch.logsumexp(a, 0) - torch.logsumexp(2.0 * a, 0) - math.log(a.numel())
    return float(torch.exp(log_ess).clamp(max=1.0))


def _uniforms(scheme: str, n: int, gen: torch.Generator, device) -> torch.Tensor:
    """The points u_1..u_n in (0, 1] of paper 003 App. A.4, float64, increasing for the
    stratified and systematic schemes."""
    j = torch.arange(n, dtype=torch.float64, device=device)
    if scheme == "multinomial":  # u_n ~ U(0, 1] independently
        return 1.0 - torch.rand(n, generator=gen, dtype=torch.float64, device=device)
    if scheme == "stratified":  # u_n ~ U((n-1)/N, n/N] independently
        r = 1.0 - torch.rand(n, generator=gen, dtype=torch.float64, device=device)
        return (j + r) / n
    if scheme == "systematic":  # u_1 ~ U(0, 1/N], u_n = u_1 + (n-1)/N
        r = 1.0 - torch.rand(1, generator=gen, dtype=torch.float64, device=device)
        return (j + r) / n
    raise ValueError(f"unknown resampler {scheme!r}; expected one of {', '.join(RESAMPLERS)}")


def resample_indices(log_w: torch.Tensor, n: int, scheme: str, gen: torch.Generator) -> torch.Tensor:
    """Indices of ``n`` walkers drawn with probabilities p = softmax(log_w) (paper 003 App. A.4).

    With P_m = p_1 + ... + p_m (Eq. 37), walker m is chosen by the point u if
    P_{m-1} < u <= P_m (Eq. 38); the schemes differ only in the points u (see
    :func:`_uniforms`). All three are unbiased: walker i is drawn n p_i times in
    expectation; the systematic scheme draws it floor(n p_i) or ceil(n p_i) times.
    Vectorised (one ``searchsorted``), in float64.
    """
    p = normalized_weights(log_w.double())
    cdf = torch.cumsum(p, 0)
    cdf = cdf / cdf[-1]  # total exactly 1 (x / x == 1), so u = 1 lands in the last non-empty slot
    u = _uniforms(scheme, n, gen, log_w.device)
    idx = torch.searchsorted(cdf, u, right=False)  # first m with P_m >= u
    return idx.clamp_(max=p.numel() - 1)
