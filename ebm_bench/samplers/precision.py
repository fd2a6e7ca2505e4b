"""Full float32 precision for the computations that feed importance weights.

Jarzynski weights (paper 003 Eq. 5-6) are sums of energy differences divided by the
chain's temperature T; at paper scale T = 5e-5, so an energy error of 1e-3 (TF32 or
bfloat16 matmuls and convolutions, about 3 significant digits) becomes an error of 20 in
a log weight. Such reduced-precision modes are switched on globally by
``torch.backends.cuda.matmul.allow_tf32``, ``torch.backends.cudnn.allow_tf32`` (on by
default for convolutions on CUDA), ``torch.set_float32_matmul_precision("high"|"medium")``
(which also turns CPU matmuls into bfloat16 on CPUs that support it), or the per-backend
``fp32_precision`` settings. :func:`strict_float32` switches every one of them to IEEE
float32 for the duration of a block and restores the caller's settings afterwards, so the
weights do not depend on how the rest of the program set the matmul precision.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

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
