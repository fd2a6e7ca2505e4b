"""HEE's inner loop compiled to C (method parameter ``inner_loop: compiled``; issue 21).

Why. At supp. Table 1's 2D setting (L = 5 layers of 10, batch 512) a Euler step is ~0.5
MFLOP of arithmetic, but the fused torch loop (:mod:`ebm_bench.samplers.hee_fused`)
still spends ~0.3 ms on it: ~25 tensor-op dispatches and, above all, the two B x N
Gaussian draws of torch's CPU generator (mt19937, ~3.5 ns a number: ~45% of the step).
A presentation is 30,000 steps, so Python-level fixes (``torch.compile`` of a step saved
~20%, docs/hee.md) cannot reach a 10-minute run of 300 presentations.

What. ``hee_kernel.c`` (next to this file) runs the whole loop of
:meth:`ebm_bench.methods.hee.HEE.simulate` in C: the same Euler-Maruyama recursion in the
same order within a step (score and learning signal from the step's start state, x / v
move, clamp, interneurons on the step's eta, learning update of W, b, Lambda; the
coefficients of ``hee_fused``), the state held unit-major so every line is a loop over
the chains that gcc vectorises (AVX-512 here), in chunks of 64 chains that stay in cache.
It is built once per machine with the system C compiler (``gcc -O3 -march=native
-mprefer-vector-width=512 -ffast-math``, ~1 s; cached under ``$EBM_BENCH_KERNEL_CACHE`` or the temp directory,
keyed by the source, the flags and the host) and loaded with :mod:`ctypes`.

The noise, and what that changes. The Gaussians come from xoshiro128++ (Blackman & Vigna
2021, ACM TOMS 47(4): 128-bit state, passes BigCrush) run as 64 streams in vector lanes,
each seeded by SplitMix64 (the seeding its authors recommend) from a 64-bit key drawn
from the method's ``torch.Generator`` at each :meth:`~ebm_bench.methods.hee.HEE.simulate`
call, then the Box-Muller transform torch's own CPU ``normal_`` applies to its uniforms
(radius from 24 bits, the angle's cosine and sine by their Taylor series on a quarter
turn plus the quadrant). Torch's generator (mt19937, ~3.5 ns a Gaussian) and a counter-
based Philox4x32-10 (~1.2 ns) were measured first: the latter alone took ~40% of the C
step. The numbers are consumed in the loop's fixed order, so a run is deterministic given
its seed and resumes exactly (the key is a function of the checkpointed generator state).
It is a *different* stream from the eager and fused loops' (which share torch's), of the
same law: i.i.d. N(0, 1) per (step, draw, unit, chain). The dynamics themselves are the
eager loop's: fed the eager loop's own draws (``noise``) the compiled loop reproduces its
trajectory and learned parameters to float32 rounding (tests/test_hee_compiled.py); the
generator is tested separately (outputs against a scalar xoshiro128++ / SplitMix64,
moments, Kolmogorov-Smirnov, no correlation between successive numbers or streams).

Used only when a config names ``inner_loop: compiled`` (``auto`` is the fused loop, so
that a config's numbers never depend on whether a compiler is present). Supported (else
:func:`unsupported_reason` says why, and naming it is a ConfigError; above ~1,000 units the
fused loop's BLAS products are faster): CPU, float32, quadratic fixed or diagonal, one interneuron per unit
(``n_interneurons: 1``) or the closed-form A', every interneuron integrator, orders 1
and 2 and both readings, the three modes, sparse connectivity; no ``record`` callback.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ebm_bench.samplers.counting import count_grad_evals

SOURCE = Path(__file__).with_name("hee_kernel.c")
# -mprefer-vector-width=512: gcc's tuning for AVX-512 server cores vectorises with 256-bit
# registers unless told otherwise, and calls libmvec's 8-lane logf / tanhf; full-width
# vectors halved the Table 1 step (0.125 -> 0.062 ms, docs/hee.md "Cost"). Ignored where
# the host has no 512-bit vectors; an x86 option, so it is given on x86 only.
_X86 = ("-mprefer-vector-width=512",) if platform.machine().lower() in ("x86_64", "amd64", "i686") else ()
CFLAGS = ("-O3", "-march=native", *_X86, "-ffast-math", "-fopenmp-simd", "-fPIC", "-shared")
CHUNK = 64  # chains per chunk in the kernel (CB); the state is padded to a multiple of it
SEGMENT_S = 5.0  # seconds per call into C (a progress line may come between calls); at most
SEGMENT_MAX_STEPS = 4096  # steps, and the first call runs SEGMENT_FIRST_STEPS to time one step
SEGMENT_FIRST_STEPS = 32
MAX_LAYERS = 62  # the kernel's offset tables hold 64 entries
STATE_WORDS = 4 * 4 * 16  # the generator's state: 4 vectors x 4 words x 16 lanes (uint32)

_state: dict[str, Any] = {"lib": None, "error": None, "compile_s": None}


class KernelUnavailable(RuntimeError):
    """The C kernel could not be built or loaded here (no compiler, failed build)."""


def cache_dir() -> Path:
    env = os.environ.get("EBM_BENCH_KERNEL_CACHE")
    return Path(env) if env else Path(tempfile.gettempdir()) / f"ebm_bench_kernels_{os.getuid()}"


def compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")


def kernel_path(cc: str) -> Path:
    """Cache path of the built kernel: -march=native code is valid on this host only."""
    h = hashlib.sha256(SOURCE.read_bytes())
    h.update(" ".join((cc,) + CFLAGS).encode())
    h.update(platform.node().encode() + platform.machine().encode())
    return cache_dir() / f"hee_kernel_{h.hexdigest()[:16]}.so"


def load_kernel() -> ctypes.CDLL:
    """The built kernel (compiled on first use; the seconds it took in :func:`compile_seconds`).
    Raises :class:`KernelUnavailable` with the reason."""
    if _state["lib"] is not None:
        return _state["lib"]
    if _state["error"] is not None:
        raise KernelUnavailable(_state["error"])
    try:
        cc = compiler()
        if cc is None:
            raise KernelUnavailable("no C compiler (gcc / cc) on PATH")
        path = kernel_path(cc)
        t0 = time.perf_counter()
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")  # parallel jobs: build privately, rename atomically
            res = subprocess.run([cc, *CFLAGS, "-o", str(tmp), str(SOURCE), "-lm"], capture_output=True, text=True)
            if res.returncode != 0:
                tmp.unlink(missing_ok=True)
                raise KernelUnavailable(f"{cc} failed on {SOURCE.name}: {res.stderr.strip()[:300]}")
            os.replace(tmp, path)
        lib = ctypes.CDLL(str(path))
        _state["compile_s"] = time.perf_counter() - t0
    except (OSError, subprocess.SubprocessError) as e:
        _state["error"] = f"could not build or load {SOURCE.name}: {e}"
        raise KernelUnavailable(_state["error"]) from e
    except KernelUnavailable as e:
        _state["error"] = str(e)
        raise
    P, I, I64, U64, D = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_uint64, ctypes.POINTER(ctypes.c_double)
    lib.hee_run.argtypes = [I, I, I, P, P, D, P, P, P, P, P, P, P, P, P, P, I64, I64, I64, I64, P, P]
    lib.hee_run.restype = I
    lib.hee_seed.argtypes = [U64, P]
    lib.hee_seed.restype = None
    lib.hee_normals.argtypes = [U64, I64, P]
    lib.hee_normals.restype = None
    lib.hee_raw.argtypes = [U64, I, P]
    lib.hee_raw.restype = None
    _state["lib"] = lib
    return lib


def compile_seconds() -> float | None:
    """Seconds the first :func:`load_kernel` of this process took (build + load; ~0 when cached)."""
    return _state["compile_s"]


def forget() -> None:
    """Drop this process's loaded kernel, error and warning (tests of the fallback)."""
    _state.update(lib=None, error=None, compile_s=None)


def available() -> tuple[bool, str]:
    try:
        load_kernel()
        return True, ""
    except KernelUnavailable as e:
        return False, str(e)


def unsupported_reason(params: dict[str, Any], device, n_layers: int) -> str | None:
    """Why this configuration cannot run compiled (None: it can)."""
    if torch.device(device).type != "cpu":
        return "CPU only"
    if params["quadratic"] == "full":
        return "quadratic full is not implemented (fixed / diagonal only)"
    if params["interneurons"] and int(params["n_interneurons"]) != 1:
        return "n_interneurons > 1 is not implemented"
    if n_layers > MAX_LAYERS:
        return f"more than {MAX_LAYERS} layers"
    return None


def _f32(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float32).contiguous()


def _unit_major(x: torch.Tensor, bp: int) -> torch.Tensor:
    """(B, n) -> (n, Bp) float32, zero-padded chains."""
    out = torch.zeros(x.shape[1], bp, dtype=torch.float32)
    out[:, :x.shape[0]] = x.t()
    return out


def _ptr(t: torch.Tensor | None):
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def run_compiled(model, X: torch.Tensor, V: torch.Tensor | None, U: torch.Tensor | None, n_steps: int,
                 gen: torch.Generator | None, *, mode: str, x0: torch.Tensor | None, learn_from: int | None,
                 avg_from: int | None, noise: torch.Tensor | None = None, task=None) -> dict[str, Any]:
    """The loop of :meth:`HEE.simulate` from its initial state (X, V, U), in C. Updates the
    model's W, bias and lam in place exactly when the eager loop would; ``task`` (the
    caller's :class:`ebm_bench.core.progress.Task`) is ticked between calls into C. ``noise`` (tests):
    the Gaussians to use instead of the generator's, shape (n_steps, slots, N, Bp) with slots
    x, v (driven reading only), u (interneurons only) in this order, Bp = B rounded up to 64."""
    lib = load_kernel()
    p = model.params
    B, N = X.shape
    if X.dtype != torch.float32:
        raise ValueError(f"inner_loop compiled runs float32 only, got {X.dtype}")
    bp = -(-B // CHUNK) * CHUNK
    order = int(p["order"])
    driven = order == 2 and p["adaptation"] == "driven"
    use_u = U is not None
    if use_u and U.shape[0] != 1:
        raise ValueError("inner_loop compiled supports one interneuron per unit")
    clamp = mode == "infer"
    learning = learn_from is not None
    diag = p["quadratic"] == "diagonal"
    integ = {"euler": 0, "exact": 1}[p["interneuron_integrator"]]
    if integ == 0 and p["interneuron_precondition"]:
        integ = 2

    Xt = _unit_major(X, bp)
    Vt = _unit_major(V, bp) if order == 2 else None
    Ut = _unit_major(U[0], bp) if use_u else None
    x0t = _unit_major(x0.reshape(B, -1).to(torch.float32), bp) if clamp else None
    total = torch.zeros(N, bp, dtype=torch.float32) if avg_from is not None else None
    W = torch.cat([_f32(w).flatten() for w in model.W])
    mask = None
    if any(mk is not None for mk in model.mask):
        mask = torch.cat([(_f32(mk) if mk is not None else torch.ones_like(_f32(w))).flatten()
                          for mk, w in zip(model.mask, model.W)])
    bias, lam, tau = _f32(model.bias).clone(), _f32(model.lam).clone(), _f32(model.tau_vec)
    sizes = (ctypes.c_int * len(model.sizes))(*model.sizes)
    flags = (ctypes.c_int * 8)(int(p["nonlinearity"] == "linear"), order, int(driven), int(clamp),
                               int(mode != "marginal"), int(use_u), integ, int(diag))
    par = (ctypes.c_double * 7)(model.dt, float(p["m"]), float(p["tau_v_factor"]), model.tau_u,
                                model.dt / model.tau_theta, float(p["precision_min"]), float(p["precision_max"]))
    rng_state = torch.zeros(STATE_WORDS, dtype=torch.int32)
    if noise is None:  # 64 bits from the method's generator: the run's stream follows its seed and resumes
        key = int(torch.randint(-2 ** 63, 2 ** 63 - 1, (1,), generator=gen, dtype=torch.int64)) % 2 ** 64
        lib.hee_seed(key, _ptr(rng_state))
    else:
        slots = 1 + int(driven) + int(use_u)
        if tuple(noise.shape) != (n_steps, slots, N, bp) or noise.dtype != torch.float32:
            raise ValueError(f"noise: expected float32 of shape {(n_steps, slots, N, bp)}, got {tuple(noise.shape)}")
        noise = noise.contiguous()
    done, seg = 0, SEGMENT_FIRST_STEPS
    while done < n_steps:
        k = min(seg, n_steps - done)
        t_seg = time.monotonic()
        nz = None if noise is None else noise[done:done + k]
        rc = lib.hee_run(B, bp, model.L, sizes, flags, par, _ptr(Xt), _ptr(Vt), _ptr(Ut), _ptr(W), _ptr(mask),
                         _ptr(bias), _ptr(lam), _ptr(tau), _ptr(x0t), _ptr(total), done, k,
                         -1 if not learning else int(learn_from), -1 if avg_from is None else int(avg_from),
                         _ptr(rng_state), _ptr(nz))
        if rc != 0:
            raise MemoryError("hee_kernel: could not allocate its work buffers")
        done += k
        per_step = (time.monotonic() - t_seg) / k
        seg = int(min(SEGMENT_MAX_STEPS, max(1, SEGMENT_S / max(per_step, 1e-9))))
        if task is not None:
            task.tick(done)  # the progress clock decides whether a line is due
    count_grad_evals(B * n_steps)  # one score evaluation per chain per EM step (as eager)

    if learning:  # write the parameters back, in place (callers may hold references)
        off = 0
        for w in model.W:
            w.copy_(W[off:off + w.numel()].view_as(w))
            off += w.numel()
        model.bias.copy_(bias)
        if diag:
            model.lam.copy_(lam)
    n_avg = max(0, n_steps - max(0, int(avg_from))) if avg_from is not None else 0
    mean = total[:, :B].t() / max(n_avg, 1) if total is not None else None
    return {"X": Xt[:, :B].t().contiguous(), "V": None if Vt is None else Vt[:, :B].t().contiguous(),
            "U": None if Ut is None else Ut[:, :B].t().contiguous()[None], "mean": mean}


def normals(key: int, n: int) -> torch.Tensor:
    """The first ``n`` (a multiple of 64) Gaussians of the kernel's generator seeded with
    ``key``, in the order the loop consumes them (tests of the law)."""
    lib = load_kernel()
    out = torch.empty(n, dtype=torch.float32)
    lib.hee_normals(key, n // CHUNK, _ptr(out))
    return out


def raw_outputs(key: int, n: int) -> list[list[int]]:
    """``n`` successive 32-bit outputs of the 16 streams of the generator's first state
    vector, seeded with ``key`` ([step][lane]; tests against a scalar xoshiro128++)."""
    lib = load_kernel()
    out = (ctypes.c_uint32 * (16 * n))()
    lib.hee_raw(key, n, out)
    return [list(out[16 * i:16 * (i + 1)]) for i in range(n)]
