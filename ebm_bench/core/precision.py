"""The precision policy, in one place (docs/performance.md says why).

Default everywhere: full float32, TF32 off (PyTorch's own default for matmuls since 1.12;
cuDNN convolutions are switched off here too), float64 where a module asks for it.

May use reduced precision, on request only (method parameter ``train_precision``):

- ``tf32``: TF32 tensor-core matmuls and convolutions (10-bit mantissa inputs, float32
  accumulation) in the training step of a Langevin EBM: the network's forward and backward,
  the Langevin gradients grad_x U included. On CPU it changes nothing.
- ``bf16``: ``torch.autocast`` to bfloat16 around the network's forward (its backward follows
  the forward's dtypes), the energies returned as float32. Everything outside the network
  (ULA moves, noise, loss reductions, optimiser state) stays float32.

Never reduced (the guarded computations), whatever the method asks for:

- Jarzynski weights: work terms and alpha (paper 003 Eq. 5-6) difference energies of
  O(1e2-1e4) to resolve O(1) changes; a bf16 energy (8-bit mantissa) is wrong in the third
  digit. A weighted ``jarzynski`` refuses ``train_precision`` other than fp32 (the walkers'
  energies feed the weights and the moves alike), and computes its weights' energies under
  :func:`ebm_bench.core.precision.strict_float32` (float64 work terms).
- Exact metrics (KL, cross-entropy, log Z of known densities), FID/KID/IS statistics
  (means, covariances, matrix square roots: float64 in torch-fidelity / pytorch-fid) and the
  Inception feature pass: evaluation code runs under :func:`exact`, which turns autocast and
  TF32 off for its extent, so a caller's reduced-precision context cannot leak into it.

:func:`training_step` (entered by the training loop around every update) and
:func:`network_forward` (installed on a method's network) are the only places reduced
precision is switched on; :func:`exact` is where it is switched off.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterator

import torch

from ebm_bench.core.errors import ConfigError

MODES = ("fp32", "tf32", "bf16")

# --- strict float32 (what the Jarzynski weights and AIS run under) ---
#
# Full float32 precision for the computations that feed importance weights.
#
# Jarzynski weights (paper 003 Eq. 5-6) are sums of energy differences divided by the
# chain's temperature T; at paper scale T = 5e-5, so an energy error of 1e-3 (TF32 or
# bfloat16 matmuls and convolutions, about 3 significant digits) becomes an error of 20 in
# a log weight. Such reduced-precision modes are switched on globally by
# ``torch.backends.cuda.matmul.allow_tf32``, ``torch.backends.cudnn.allow_tf32`` (on by
# default for convolutions on CUDA), ``torch.set_float32_matmul_precision("high"|"medium")``
# (which also turns CPU matmuls into bfloat16 on CPUs that support it), or the per-backend
# ``fp32_precision`` settings. :func:`strict_float32` switches every one of them to IEEE
# float32 for the duration of a block and restores the caller's settings afterwards, so the
# weights do not depend on how the rest of the program set the matmul precision.

# (module path under torch.backends, attribute) of the per-backend precision knobs
_BACKENDS = ("cuda.matmul", "cudnn.conv", "cudnn.rnn", "mkldnn.matmul", "mkldnn.conv", "mkldnn.rnn")


def _backend(path: str):
    obj = torch.backends
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


@contextlib.contextmanager
def strict_float32(enabled: bool = True) -> Iterator[None]:
    """Run the block with IEEE float32 matmuls and convolutions (no TF32, no bfloat16)."""
    if not enabled:
        yield
        return
    if hasattr(torch.backends, "fp32_precision"):  # torch >= 2.9: per-backend fp32_precision
        saved = []
        for path in _BACKENDS:
            b = _backend(path)
            if b is not None and hasattr(b, "fp32_precision"):
                saved.append((b, b.fp32_precision))
                b.fp32_precision = "ieee"
        try:
            yield
        finally:
            for b, value in reversed(saved):
                b.fp32_precision = value
        return
    # older torch: the legacy switches
    prec = torch.get_float32_matmul_precision()
    mm, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(prec)
        torch.backends.cuda.matmul.allow_tf32 = mm
        torch.backends.cudnn.allow_tf32 = cudnn


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"train_precision = {mode!r}; expected one of {', '.join(MODES)}")
    return mode


def _tf32_flags() -> tuple[bool, bool]:
    return bool(torch.backends.cuda.matmul.allow_tf32), bool(torch.backends.cudnn.allow_tf32)


def _set_tf32(matmul: bool, cudnn: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = matmul
    torch.backends.cudnn.allow_tf32 = cudnn


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 matmuls and convolutions on (or off) for the extent of the block; restored after."""
    saved = _tf32_flags()
    _set_tf32(enabled, enabled)
    try:
        yield
    finally:
        _set_tf32(*saved)


def set_default_policy() -> None:
    """Full float32: TF32 off for matmuls and cuDNN convolutions (a job's starting state)."""
    _set_tf32(False, False)


@contextlib.contextmanager
def exact() -> Iterator[None]:
    """Guarded computations: no autocast (CPU or CUDA), no TF32 and IEEE float32 matmuls
    on every backend (:func:`ebm_bench.core.precision.strict_float32`, which the
    Jarzynski weights use) inside the block; the caller's settings are restored after."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(tf32(False))
        stack.enter_context(strict_float32())
        stack.enter_context(torch.autocast("cpu", enabled=False))
        if torch.cuda.is_available():
            stack.enter_context(torch.autocast("cuda", enabled=False))
        yield


@contextlib.contextmanager
def training_step(mode: str) -> Iterator[None]:
    """Around one update of a method whose ``train_precision`` is ``mode``: TF32 on for
    ``tf32`` (forward, backward and Langevin gradients), nothing for fp32 / bf16 (bf16 lives
    in :func:`network_forward`)."""
    if check_mode(mode) == "tf32":
        with tf32(True):
            yield
    else:
        yield


def network_forward(net: torch.nn.Module, mode: str, device: torch.device) -> torch.nn.Module:
    """Install ``mode`` on ``net``'s forward (bf16: autocast, float32 energies out). The
    module and its state dict are unchanged (the forward is wrapped on the instance)."""
    if check_mode(mode) != "bf16":
        return net
    inner: Callable[..., Any] = net.forward
    device_type = torch.device(device).type

    @functools.wraps(inner)
    def forward(*args, **kwargs):
        with torch.autocast(device_type, dtype=torch.bfloat16):
            out = inner(*args, **kwargs)
        return out.float() if torch.is_tensor(out) and out.is_floating_point() else out

    net.forward = forward  # type: ignore[method-assign]
    net._ebm_bench_precision = mode  # type: ignore[attr-defined]
    return net


def method_mode(method: Any) -> str:
    """A method's training precision (fp32 for methods without the parameter)."""
    return str(getattr(method, "params", {}).get("train_precision", "fp32") or "fp32")
