"""The method contract.

A method is one class registered under its name with ``@register_method("name")``, with
a one-line docstring (``ebm-bench list`` shows it). It declares every hyperparameter in
``defaults`` (the config may override only those keys), how their values are checked in
``checks`` (key -> :class:`ebm_bench.core.validation.Check`; keys without one are checked by
the type of their default), rules relating several keys in the classmethod
``check_params`` (all run before any job), and a ``tiny`` override dict that the
contract tests and the workflow test use to train it in seconds. The training loop (``ebm_bench.training.loop``) calls only:

- ``train_step(batch, step) -> dict[str, float]``: one parameter update, logged scalars;
- ``sample(n) -> Tensor``: ``n`` samples in model space (shape ``(n, *data.shape)``);
- ``features(x) -> dict[str, Tensor]``: named ``(n, d)`` representations for the probe;
- ``state_dict()`` / ``load_state_dict(state)``: everything needed to resume bit-exactly,
  including random generators; only tensors, numbers, strings, lists and dicts, so
  checkpoints load with ``torch.load(weights_only=True)``;
- ``sampler_steps_per_iter``: sampler steps per update, for the cost columns;
- optionally ``bind_data(dataset, real_split)``: called by the sample stage before
  ``sample`` for methods that generate from the data itself (the ``data`` reference row).

Gradient evaluations (grad_x U at one point) are counted by the function that takes
them, :func:`ebm_bench.samplers.counting.energy_and_grad` (every ULA step uses it; a
method's own loss of the gradient calls it with ``create_graph=True``); the cost columns
read the counter, so a method counts nothing itself.

Randomness: a method draws only from ``self.gen`` (a seeded ``torch.Generator`` on the
method's device), never from torch's global RNG, so a resumed run repeats an
uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ebm_bench.core.registry import METHODS

register_method = METHODS.register


@dataclass(frozen=True)
class DataInfo:
    """What a method may know about its dataset."""

    shape: tuple[int, ...]
    is_image: bool
    num_classes: int | None = None

    @classmethod
    def of(cls, data) -> "DataInfo":
        return cls(tuple(data.shape), bool(data.is_image), data.num_classes)


class Method:
    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    checks: ClassVar[dict[str, Any]] = {}
    tiny: ClassVar[dict[str, Any]] = {}
    # options added after results existed whose default reproduces the behaviour from
    # before: at that default they are left out of the rerun decision
    # (ebm_bench.pipeline.config.rerun_view), so adding an option does not retrain finished runs
    neutral: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        """Rules relating several hyperparameters (``params`` merged over ``defaults``),
        run by the config check before any job; raise ConfigError naming the key."""

    def __init__(self, params: dict[str, Any], data: DataInfo, device: torch.device | str, seed: int):
        self.params = {**self.defaults, **params}
        self.data = data
        self.device = torch.device(device)
        self.seed = int(seed)
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(self.seed)

    @classmethod
    def tiny_params(cls, data: DataInfo) -> dict[str, Any]:
        """Hyperparameters that train in seconds on ``data`` (contract and workflow tests)."""
        return dict(cls.tiny)

    @classmethod
    def resolve_params(cls, params: dict[str, Any], train: dict[str, Any]) -> dict[str, Any]:
        """Hyperparameters derived from the run's training settings (``train``: batch_size,
        steps, ...), applied by :func:`ebm_bench.pipeline.config.run_spec` so the run spec records
        the resolved value. Default: none."""
        return params

    #: the probe family also scores this method's features at initialisation (same seed,
    #: untrained): the control a learned representation must beat (docs/protocol.md)
    probe_untrained_control: ClassVar[bool] = False

    # --- contract -------------------------------------------------------------------
    sampler_steps_per_iter: int = 0

    def train_step(self, batch: torch.Tensor, step: int) -> dict[str, float]:
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])

    # --- optimiser, built on first use --------------------------------------------------
    # A torch optimiser imports torch._dynamo when its first parameter group is added
    # (1-3 s per process). The sample and evaluate jobs load a trained model and never
    # update it, so they never build one; training builds it at the first update and a
    # checkpoint's optimiser state is applied then (same result as loading it eagerly).
    def make_optimizer(self) -> torch.optim.Optimizer:
        raise NotImplementedError

    @property
    def opt(self) -> torch.optim.Optimizer:
        opt = self.__dict__.get("_opt")
        if opt is None:
            opt = self.make_optimizer()
            pending = self.__dict__.pop("_opt_state", None)
            if pending is not None:
                opt.load_state_dict(pending)
            self._opt = opt
        return opt

    @opt.setter
    def opt(self, value: torch.optim.Optimizer) -> None:  # e.g. a test's scripted optimiser
        self._opt = value
        self.__dict__.pop("_opt_state", None)

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        if self.__dict__.get("_opt") is None:
            self._opt_state = state
        else:
            self._opt.load_state_dict(state)

    # --- helpers ----------------------------------------------------------------------
    def noise_like(self, x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape, generator=self.gen, device=x.device, dtype=x.dtype)

    def uniform(self, shape: tuple[int, ...], low: float = -1.0, high: float = 1.0) -> torch.Tensor:
        u = torch.rand(shape, generator=self.gen, device=self.device)
        return low + (high - low) * u
