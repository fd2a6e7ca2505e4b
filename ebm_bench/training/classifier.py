"""Training of the domain classifier (one per labelled dataset; the network and its file
format are :mod:`ebm_bench.nets.domain_classifier`)."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from ebm_bench.core.progress import Task
from ebm_bench.data.base import as_tensor, from_uint8
from ebm_bench.nets.domain_classifier import (CLASSIFIER_FORMAT, CLASSIFIER_FORMAT_VERSION, DomainClassifier,
                                              default_arch)


def accuracy(model: DomainClassifier, x: torch.Tensor, y: torch.Tensor, bs: int = 1024) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], bs):
            correct += int((model(x[i : i + bs]).argmax(1) == y[i : i + bs]).sum())
    return correct / max(int(x.shape[0]), 1)


def train_domain_classifier(
    x_train: Any,
    y_train: Any,
    x_test: Any,
    y_test: Any,
    seed: int = 0,
    epochs: int = 20,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    width: int = 16,
    hidden: int = 128,
    num_classes: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the domain classifier on the training split; deterministic on CPU for a seed.

    Images (N, C, H, W) in [-1, 1] (or uint8) get the small CNN, vectors (N, D) the MLP.
    Adam, cross-entropy, data order from a seeded ``torch.Generator``; initialisation from
    ``torch.manual_seed(seed)`` inside ``torch.random.fork_rng`` so the caller's global RNG
    state is untouched. Returns ``(checkpoint, info)``: checkpoint is a plain dict
    {"format", "format_version", "arch", "state_dict", "info"} for
    :func:`ebm_bench.nets.domain_classifier.save_classifier`;
    info has "test_accuracy", "train_accuracy", "n_train", "n_test", "num_classes",
    "feature_dim", "num_params", the hyper-parameters, and "train_seconds" (wall time, kept
    out of the checkpoint so the saved file is byte-identical for a seed).
    """
    xtr = as_tensor(x_train)
    xte = as_tensor(x_test)
    if xtr.dtype == torch.uint8:
        xtr, xte = from_uint8(xtr), from_uint8(xte)
    xtr, xte = xtr.float(), xte.float()
    ytr = as_tensor(y_train).long()
    yte = as_tensor(y_test).long()
    k = int(num_classes) if num_classes is not None else int(max(ytr.max(), yte.max())) + 1
    arch = default_arch(xtr, k, width, hidden)
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DomainClassifier(arch)
        # standardise inputs: per channel for images, per coordinate for vectors
        dims = (0, 2, 3) if model.is_image else (0,)
        model.in_mean.copy_(xtr.mean(dim=dims).reshape(model.in_mean.shape))
        model.in_std.copy_(xtr.std(dim=dims).clamp_min(1e-6).reshape(model.in_std.shape))
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        gen = torch.Generator().manual_seed(seed)
        n = xtr.shape[0]
        n_batches = -(-n // batch_size)
        # ~13 min per dataset at paper size on CPU: a line at the start, then one a minute
        # ("epoch e/E > batch b/B loss=...", with the rate, elapsed time and eta in epochs)
        with Task("epoch", epochs) as task:
            task.tick(0, f"({n} rows, batch {batch_size})", force=True)
            for e in range(epochs):
                model.train()
                perm = torch.randperm(n, generator=gen)
                with Task("batch", n_batches) as inner:
                    for b, i in enumerate(range(0, n, batch_size)):
                        idx = perm[i : i + batch_size]
                        loss = nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        opt.step()
                        # the loss is read (a device sync) only when a line is printed
                        inner.tick(b + 1, lambda v=loss.detach(): f"loss={float(v):.4g}")
                task.tick(e + 1, "")
    model.eval()
    info: dict[str, Any] = {
        "test_accuracy": accuracy(model, xte, yte),
        "train_accuracy": accuracy(model, xtr, ytr),
        "n_train": int(xtr.shape[0]),
        "n_test": int(xte.shape[0]),
        "num_classes": k,
        "feature_dim": int(hidden),
        "num_params": int(sum(p.numel() for p in model.parameters())),
        "kind": arch["kind"],
        "input_shape": list(arch["input_shape"]),
        "seed": int(seed),
        "epochs": int(epochs),
        "batch_size": int(batch_size),
        "lr": float(lr),
        "weight_decay": float(weight_decay),
        "optimizer": "adam",
        "torch_version": str(torch.__version__),
    }
    ckpt = {
        "format": CLASSIFIER_FORMAT,
        "format_version": CLASSIFIER_FORMAT_VERSION,
        "arch": arch,
        "state_dict": {k_: v.detach().clone() for k_, v in model.state_dict().items()},
        "info": dict(info),
    }
    info["train_seconds"] = time.perf_counter() - t0
    return ckpt, info
