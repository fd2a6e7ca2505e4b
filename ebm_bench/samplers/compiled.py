"""Launch-bound Langevin chains: the ULA inner loop compiled (method parameter ``sampler_compile``).

A chain of K ULA steps over a small network is K forward + backward passes of a few
kernels each; on a GPU at the paper's sizes (ConvNet nf = 64, 64 chains) the kernel
launches, not the arithmetic, set the pace. Two options, CUDA-only in spirit:

- ``torch_compile``: one step (energy, grad_x U by ``torch.func.grad``, the move) is one
  ``torch.compile``-d function; it fuses the elementwise work and, with
  ``mode="reduce-overhead"`` on CUDA, replays it as a CUDA graph.
- ``cuda_graph``: the same step (eager kernels) captured once per chain shape into a CUDA
  graph and replayed: one launch per step. The network's parameters are read in place
  (optimisers update them in place), so a graph stays valid across updates.

Both draw the noise exactly as the eager sampler does (``torch.randn`` with the method's
generator, outside the compiled region), so the random stream, and with it resume, is
unchanged; the arithmetic may differ from eager in the last bits (fused kernels), which
is why the option is off by default (``none``: :class:`~ebm_bench.samplers.ULA` itself,
bit-identical to before). Steps are counted in the gradient-evaluation counter as in eager.
Samplers with a ``step_rule`` (STANLEY) or a Metropolis correction (MALA) are never compiled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ebm_bench.core.errors import ConfigError
from ebm_bench.core.progress import Task
from ebm_bench.samplers.counting import count_grad_evals
from ebm_bench.samplers.ula import ULA

COMPILE_MODES = ("none", "torch_compile", "cuda_graph")


def check_compile_mode(mode: str, device: torch.device) -> str:
    if mode not in COMPILE_MODES:
        raise ConfigError(f"sampler_compile = {mode!r}; expected one of {', '.join(COMPILE_MODES)}")
    if mode == "cuda_graph" and torch.device(device).type != "cuda":
        raise ConfigError("sampler_compile = 'cuda_graph' needs device: cuda")
    return mode


@dataclass
class CompiledULA(ULA):
    """:class:`ULA` whose ``run`` (K steps from x) uses a compiled step; ``step``/``move``
    (single moves, used by Jarzynski's weighted inner loop) stay eager."""

    compile_mode: str = "torch_compile"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def _raw_step(self, energy: Callable, x: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(energy(xg).sum(), xg)
        drift = self.drift(g)
        x_new = x - self.step_size * drift + self.noise_std * xi
        return self.bound(x, x_new)

    def _compiled(self, energy: Callable, x: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        key = (id(energy.__self__) if hasattr(energy, "__self__") else id(energy), tuple(x.shape), x.dtype,
               str(x.device))
        fn = self._cache.get(key)
        if fn is not None:
            return fn
        if self.compile_mode == "torch_compile":
            def step(x, xi, energy=energy):
                g = torch.func.grad(lambda y: energy(y).sum())(x)
                x_new = x - self.step_size * self.drift(g) + self.noise_std * xi
                return self.bound(x, x_new)

            mode = "reduce-overhead" if x.device.type == "cuda" else None
            fn = torch.compile(step, mode=mode, dynamic=False)
        else:
            fn = _CudaGraphStep(lambda x_, xi_: self._raw_step(energy, x_, xi_), x)
        self._cache[key] = fn
        return fn

    def run(self, energy: Callable, x: torch.Tensor, n_steps: int, gen: torch.Generator,
            what: str = "ULA step") -> torch.Tensor:
        if self.step_rule is not None or self.metropolis or n_steps <= 0:
            return super().run(energy, x, n_steps, gen, what)
        fn = self._compiled(energy, x)
        x = x.detach()
        with Task(what, n_steps) as task:
            for k in range(n_steps):
                xi = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
                x = fn(x, xi)
                if self.compile_mode == "torch_compile":
                    x = x.detach().clone()  # reduce-overhead outputs are overwritten by the next replay
                count_grad_evals(x.shape[0])
                task.tick(k + 1)
        return x.detach()


class _CudaGraphStep:
    """One ULA step captured as a CUDA graph for a fixed chain shape (static buffers)."""

    def __init__(self, step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], like: torch.Tensor):
        self.x = torch.empty_like(like)
        self.xi = torch.empty_like(like)
        self.x.copy_(like)
        self.xi.normal_()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the capture (cuDNN/cuBLAS workspaces)
            for _ in range(3):
                step(self.x, self.xi)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = step(self.x, self.xi)

    def __call__(self, x: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        self.x.copy_(x)
        self.xi.copy_(xi)
        self.graph.replay()
        return self.out.clone()


def make_sampler(mode: str, device: Any, **ula: Any) -> ULA:
    """The Langevin sampler of a method: :class:`ULA` for ``none``, else :class:`CompiledULA`."""
    if check_compile_mode(mode, torch.device(device)) == "none":
        return ULA(**ula)
    return CompiledULA(**ula, compile_mode=mode)
