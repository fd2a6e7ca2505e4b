"""Energy networks behind a registry: ``NETWORKS.get(name)(shape, **params)``.

Every network maps a batch ``x`` to energies ``U(x)`` of shape ``(batch,)`` (density
proportional to ``exp(-U)``) and exposes ``features(x) -> (batch, d)``, the penultimate
layer used by the linear probe.
"""

from ebm_bench.nets.base import EnergyNet, build_net

__all__ = ["EnergyNet", "build_net"]
