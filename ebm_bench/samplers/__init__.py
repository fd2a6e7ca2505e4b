"""Samplers over an energy ``U(x) -> (batch,)``, shared by every method that uses them."""

from ebm_bench.samplers.counting import energy_and_grad
from ebm_bench.samplers.ula import ULA

__all__ = ["ULA", "energy_and_grad"]
