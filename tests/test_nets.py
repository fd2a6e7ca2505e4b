"""Energy networks: shapes, penultimate features, and the paper-given sizes."""

from __future__ import annotations

import pytest
import torch

from ebm_bench.nets import build_net


@pytest.mark.parametrize("size", [28, 32])
def test_cnn_silu_matches_paper_003_mnist_network(size: int) -> None:
    """Paper 003's MNIST CNN has ~77K parameters at hidden 32 (ref code: 76,993 on 28 px)."""
    net = build_net("cnn_silu", (1, size, size), {"hidden_features": 32})
    x = torch.randn(5, 1, size, size)
    assert net(x).shape == (5,) and net.features(x).shape == (5, 64)
    if size == 28:
        assert sum(p.numel() for p in net.parameters()) == 76_993
    # the energy is the linear head of the features (penultimate layer for the probe)
    assert torch.allclose(net(x), net.head(net.features(x)).flatten())
