"""The `gaussian` control row (ebm_bench/methods/gaussian.py): samples carry the training
split's mean and covariance; images are clipped and quantised like the stored images."""

from __future__ import annotations

import torch

from ebm_bench.data import from_uint8, to_uint8
from ebm_bench.data.base import Dataset
from ebm_bench.methods.base import DataInfo
from ebm_bench.core.registry import METHODS


def _data(x_train: torch.Tensor, image: bool) -> Dataset:
    return Dataset(name="t", x_train=x_train, x_test=x_train[:10], is_image=image)


def test_vector_samples_have_the_training_moments() -> None:
    g = torch.Generator().manual_seed(0)
    mix = torch.tensor([[2.0, 0.0, 0.0], [1.5, 0.5, 0.0], [0.0, 0.0, 0.0]])  # rank 2: singular covariance
    x = torch.randn(4000, 3, generator=g) @ mix.T + torch.tensor([1.0, -2.0, 0.5])
    data = _data(x, image=False)
    m = METHODS.get("gaussian")({}, DataInfo.of(data), "cpu", 0)
    m.bind_data(data)
    s = m.sample(50_000).double()
    assert torch.allclose(s.mean(0), x.double().mean(0), atol=0.05)
    assert torch.allclose(torch.cov(s.T), torch.cov(x.double().T), atol=0.08)
    assert s[:, 2].std() < 1e-6  # a constant coordinate stays constant (no jitter)


def test_image_samples_are_clipped_and_quantised() -> None:
    g = torch.Generator().manual_seed(1)
    x = from_uint8(to_uint8(torch.rand(500, 1, 4, 4, generator=g) * 2.4 - 1.2))
    data = _data(x, image=True)
    m = METHODS.get("gaussian")({}, DataInfo.of(data), "cpu", 0)
    m.bind_data(data)
    s = m.sample(200)
    assert s.shape == (200, 1, 4, 4)
    assert s.min() >= -1.0 and s.max() <= 1.0
    assert torch.equal(s, from_uint8(to_uint8(s)))  # on the 256 levels
