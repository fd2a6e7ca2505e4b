"""Samplers over an energy ``U(x) -> (batch,)``, shared by every method that uses them."""

from ebm_bench.samplers.ula import ULA, energy_and_grad

__all__ = ["ULA", "energy_and_grad"]
