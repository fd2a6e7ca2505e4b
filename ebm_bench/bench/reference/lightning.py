"""The few lines of PyTorch Lightning's loop that paper 003's notebooks need
(github.com/submissionx12/EBMs_Jarzynski: MNIST_code/main.ipynb,
CIFAR-10_code/main_CIFAR_{Jarzynski,PCD}.ipynb): their ``DeepEnergyModel`` subclasses
``pl.LightningModule`` and is trained by ``pl.Trainer``, which is not run here."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ebm_bench.bench.reference.common import notebook_cell


class LightningStub(torch.nn.Module):
    """What the reference's LightningModule subclass uses of Lightning in training_step."""

    current_epoch = 0

    def save_hyperparameters(self, *a, **k) -> None:  # pragma: no cover - __init__ is not run
        pass

    def log(self, *a, **k) -> None:
        pass



def gradient_clip_val(nb: Path) -> float:
    """``gradient_clip_val`` of the notebook's ``train_model`` cell (checked: exactly one)."""
    trainer = notebook_cell(nb, "def train_model(")
    m = re.findall(r"gradient_clip_val\s*=\s*([0-9.eE+-]+)", trainer)
    if len(m) != 1:
        raise ValueError(f"{nb.name}: expected one gradient_clip_val in train_model")
    return float(m[0])


def lightning_updates(model, batches, clip_val: float) -> list[dict]:
    """The reference's training steps as PyTorch Lightning runs them (zero_grad,
    training_step, backward, clip_grad_norm_, step), with a snapshot after each."""
    snaps = []
    (opt,), _ = model.configure_optimizers()
    for k, batch in enumerate(batches):
        opt.zero_grad()
        loss = model.training_step((batch, None), k)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(model.parameters()), clip_val)
        opt.step()
        snaps.append({"params": [p.detach().clone() for p in model.cnn.parameters()],
                      "walkers": model.sampler.examples.detach().clone(),
                      "log_w": model.sampler.log_weights.detach().clone(),
                      "grad_norm": float(torch.sqrt(sum((p.grad ** 2).sum() for p in model.cnn.parameters())))})
    return snaps
