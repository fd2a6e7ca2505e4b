"""PCD with data augmentation of the replayed chains (Du et al. 2021), the "PCD with
mini-batches and data augmentation" baseline of paper 003, Table 1.

This is :class:`~ebm_bench.methods.pcd.PCD` (replay buffer, ULA chains, IGEBM energy
penalty) with its ``augment`` hook: every chain drawn from the buffer is transformed
before its K Langevin steps, with torchvision transforms at Du et al.'s settings
(github.com/yilundu/improved_contrastive_divergence ``utils.py``, ``ReservoirBuffer``,
CIFAR-10): RandomResizedCrop(image size, scale 0.08-1), horizontal flip,
ColorJitter(0.8, 0.8, 0.8, 0.4) applied with probability 0.8, RandomGrayscale p = 0.2.
Buffer of 10,000 and restart probability 0.001 (Du et al.'s reservoir buffer is replaced
by PCD's write-back buffer; ``train.py``). Paper 003 Sec. 4.3 also lists a Gaussian blur,
which Du et al.'s code leaves commented out for CIFAR-10; it is not applied
(docs/sources.md).

Images live in [-1, 1]; they are mapped to [0, 1] for the colour transforms and back.
Hue and saturation jitter and grayscale conversion leave one-channel images unchanged
(torchvision), so on digits the augmentation is crop + flip + brightness/contrast.
Vector data are not augmented (the method is then PCD with its own restart probability).

Randomness: torchvision draws from torch's global generator, so each call runs the
transforms inside ``torch.random.fork_rng`` seeded from ``self.gen``: the global stream
is untouched and a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import torch

from ebm_bench.core import validation as V
from ebm_bench.methods.base import register_method
from ebm_bench.methods.pcd import PCD


@register_method("pcd_da")
class PCDDataAugment(PCD):
    """PCD whose replayed chains are augmented (Du et al. 2021; paper 003 Table 1 baseline)."""

    defaults = {
        **PCD.defaults,
        "reinit_prob": 0.001,  # Du et al. 2021
        "buffer_size": 10000,
        "aug_crop_scale": [0.08, 1.0],  # RandomResizedCrop scale range
        "aug_flip": True,  # RandomHorizontalFlip(p = 0.5)
        "aug_jitter": [0.8, 0.8, 0.8, 0.4],  # ColorJitter(brightness, contrast, saturation, hue)
        "aug_jitter_p": 0.8,  # RandomApply probability of the jitter
        "aug_gray_p": 0.2,  # RandomGrayscale probability
    }
    checks = {"aug_crop_scale": V.list_of(V.number(gt=0, le=1), length=2),
              "aug_jitter": V.list_of(V.nonnegative(), length=4), "aug_jitter_p": V.probability(),
              "aug_gray_p": V.probability()}
    tiny = {**PCD.tiny}

    def __init__(self, params, data, device, seed):
        super().__init__(params, data, device, seed)
        self._transform = None

    def transform(self):
        if self._transform is None:
            from torchvision.transforms import v2  # heavy import: only where it is used

            p = self.params
            size = list(self.data.shape[1:])
            steps = [v2.RandomResizedCrop(size, scale=tuple(float(s) for s in p["aug_crop_scale"]), antialias=True)]
            if p["aug_flip"]:
                steps.append(v2.RandomHorizontalFlip())
            steps += [v2.RandomApply([v2.ColorJitter(*[float(j) for j in p["aug_jitter"]])], p=float(p["aug_jitter_p"])),
                      v2.RandomGrayscale(p=float(p["aug_gray_p"]))]
            self._transform = v2.Compose(steps)
        return self._transform

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        if not self.data.is_image or len(x) == 0:
            return x
        t = self.transform()
        seed = int(torch.randint(0, 2**62, (1,), generator=self.gen, device=self.device))
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)  # CPU stream only (transforms run on CPU)
            x01 = ((x.detach().cpu() + 1.0) / 2.0).clamp(0.0, 1.0)
            out = torch.stack([t(xi) for xi in x01])
        return (out * 2.0 - 1.0).to(x.device, x.dtype)
