"""State handling shared by the harmonium methods (GRBM, NN-EFH): a model, its optimiser
and the bank of training data that Algorithm 2 of paper 004 starts generation from.
Registers nothing; grbm.py and nnefh.py subclass it."""

from __future__ import annotations

from typing import Any

from ebm_bench.methods.base import Method


class HarmoniumMethod(Method):
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "model": self.model.state_dict(), "opt": self.opt.state_dict(),
                "bank": self.bank.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.model.load_state_dict(state["model"])
        self.load_optimizer_state(state["opt"])
        self.bank.load_state_dict(state["bank"])
