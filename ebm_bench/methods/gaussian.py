"""A plainly wrong control row: a Gaussian fitted to the training split, scored like a method."""

from __future__ import annotations

from typing import Any

import torch

from ebm_bench.core import validation as V
from ebm_bench.data import from_uint8, to_uint8
from ebm_bench.methods.base import Method, register_method


@register_method("gaussian")
class FittedGaussian(Method):
    """A Gaussian with the training split's mean and full covariance: a plainly wrong control.

    Why: a metric, or a claim's gate, that cannot tell this row from the held-out ``data``
    row sees no more than the first two moments, and a method that scores no better than
    it has learned nothing beyond them. It trains nothing (no parameters, no gradient
    evaluations). The sample stage hands it the dataset (``bind_data``, as for the
    ``data`` row); it fits mu and Sigma on the whole training split (vectors; images as
    their flattened pixels, in float64; ``covariance: diagonal`` keeps the variances only) and ``sample(n)`` draws mu + V diag(sqrt(lambda)) z
    from the eigendecomposition of Sigma (eigenvalues below 0 from rounding set to 0, so a
    singular covariance, such as the digits' constant border pixels, needs no jitter).
    Images are then clipped to the pixel range [-1, 1] and quantised to the 256 levels
    of the stored images, exactly as the ``data`` row's images are. Its probe feature is
    the raw pixels (``pixels``), the only representation a Gaussian has: its linear probe
    is the data row's raw-pixel control again. It exposes no energy, so the families that
    score a learned energy (``exact``, ``model_modes``) skip it.
    """

    defaults: dict[str, Any] = {
        "covariance": "full",  # full | diagonal (the per-coordinate variances only: weaker still)
    }
    checks = {"covariance": V.choice("full", "diagonal")}
    tiny: dict[str, Any] = {"covariance": "full"}
    grad_evals_per_iter = 0

    def __init__(self, params, data, device, seed):
        super().__init__(params, data, device, seed)
        self._mean: torch.Tensor | None = None
        self._scale: torch.Tensor | None = None  # V diag(sqrt(lambda)), (d, d)

    def bind_data(self, dataset, real_split: str = "train") -> None:
        """Fit mean and covariance on the training split (whatever the reference uses)."""
        x = dataset.x_train.reshape(len(dataset.x_train), -1).double()
        mean = x.mean(0)
        xc = x - mean
        cov = xc.T @ xc / max(len(x) - 1, 1)
        if self.params["covariance"] == "diagonal":
            cov = torch.diag(torch.diagonal(cov))
        lam, vec = torch.linalg.eigh(cov)
        self._mean = mean
        self._scale = vec * lam.clamp_min(0.0).sqrt()[None, :]

    def train_step(self, batch: torch.Tensor, step: int) -> dict[str, float]:
        return {}

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        if self._mean is None:
            raise RuntimeError("the gaussian control row is fitted to the dataset: call bind_data first")
        d = self._mean.numel()
        z = torch.randn((n, d), generator=self.gen, device=self.device, dtype=torch.float64).cpu()
        x = (self._mean + z @ self._scale.T).float().reshape(n, *self.data.shape)
        if self.data.is_image:
            x = from_uint8(to_uint8(x))  # clip to [-1, 1] and quantise like the stored images
        return x.to(self.device)

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"pixels": x.reshape(len(x), -1).float()}
