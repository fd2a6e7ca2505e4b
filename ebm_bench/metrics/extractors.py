"""Feature extractors for FID / IS / mode weights behind one interface.

``extractor.extract(x) -> {"pool": float64 (N, d), "logits": float64 (N, k)}`` and
``extractor.protocol() -> dict`` (name, weights file, sha256, feature dim, input size).
"pool" feeds FID (Heusel et al. 2017), "logits" feeds IS (Salimans et al. 2016) and the
mode weights of paper 003 (Fig. 3: classifier trained on the data).

Two implementations:

- :class:`InceptionExtractor`: torch-fidelity's 'inception-v3-compat' network (features
  '2048' for FID, 'logits_unbiased' for IS, the layers torch-fidelity itself uses by
  default). Input uint8 (N, 3, H, W); torch-fidelity resizes to 299x299 with its
  TF1-compatible bilinear interpolation. Grayscale is repeated to 3 channels.
  Weights are never downloaded implicitly: a configured file, else torch hub's cache
  (``TORCH_HOME/hub/checkpoints/<file name from torch-fidelity's URL>``), else one
  :class:`~ebm_bench.core.errors.WeightsMissing`. :func:`fetch_inception_weights` is the
  download for a local (online) Snakemake rule.
- :class:`DomainExtractor`: a small classifier (CNN for images, MLP for vectors,
  :mod:`ebm_bench.nets.domain_classifier`) trained on the dataset's training split by
  :func:`ebm_bench.training.classifier.train_domain_classifier`; its penultimate
  activations are the FID features, its logits give IS and the mode weights. It is also
  registered in torch-fidelity as the feature extractor ``'ebm-bench-domain'``
  (:func:`register_torch_fidelity_domain_extractor`): torch-fidelity only asks a feature
  extractor for a tensor batch in and a tuple of 2-D tensors out, so 1x8x8 uint8 images and
  float vectors both work through ``torch_fidelity.calculate_metrics``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlparse

import numpy as np
import torch

from ebm_bench.data.base import as_tensor, to_uint8
from ebm_bench.core.errors import WeightsMissing
from ebm_bench.core.io import file_sha256
from ebm_bench.nets.domain_classifier import DomainClassifier, load_classifier
from ebm_bench.core.progress import Task

DOMAIN_EXTRACTOR_NAME = "ebm-bench-domain"
INCEPTION_NAME = "inception-v3-compat"


# --------------------------------------------------------------------------- interface


class FeatureExtractor:
    """Common interface. Subclasses implement :meth:`_forward` on one batch.

    ``extract`` batches the input, runs without gradients and returns float64 numpy arrays
    {"pool": (N, feature_dim), "logits": (N, num_classes)}. Tests may substitute a small
    subclass through this same interface (and must say so).
    """

    name: str = "abstract"
    feature_dim: int
    num_classes: int

    def __init__(self, batch_size: int = 256, device: str | torch.device = "cpu"):
        self.batch_size = int(batch_size)
        self.device = torch.device(device)

    def _forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def extract(self, x: Any, batch_size: int | None = None) -> dict[str, np.ndarray]:
        x = self._prepare(as_tensor(x))
        bs = int(batch_size or self.batch_size)
        pools, logits = [], []
        # a feature pass over a training split (the reference statistics) takes minutes
        with torch.no_grad(), Task("feature rows", x.shape[0], unit="rows") as task:
            for i in range(0, x.shape[0], bs):
                task.tick(i)
                p, lg = self._forward(x[i : i + bs].to(self.device))
                pools.append(p.detach().to("cpu", torch.float64))
                logits.append(lg.detach().to("cpu", torch.float64))
        if not pools:
            raise ValueError("extract() got an empty input")
        return {"pool": torch.cat(pools).numpy(), "logits": torch.cat(logits).numpy()}

    def protocol(self) -> dict[str, Any]:
        raise NotImplementedError

    def torch_fidelity_kwargs(self) -> dict[str, Any]:
        """kwargs selecting the same extractor in ``torch_fidelity.calculate_metrics``."""
        raise NotImplementedError


# --------------------------------------------------------------------------- Inception


# sha256 of torch-fidelity's weights-inception-2015-12-05-6726825d.pth (the file name
# carries its first 8 hex digits, torch hub's convention). A different file gives
# different FIDs, so it is refused, not recorded and used.
PINNED_INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"


def inception_weights_url() -> str:
    """The URL torch-fidelity downloads its Inception weights from (read from its source)."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return URL_INCEPTION_V3


def inception_weights_filename() -> str:
    return os.path.basename(urlparse(inception_weights_url()).path)


def inception_cache_dir() -> Path:
    """Where torch hub (and so torch-fidelity's ``load_state_dict_from_url``) caches it."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_inception_weights(weights_path: str | os.PathLike | None = None) -> Path:
    """The Inception weight file to use: ``weights_path`` if given, else torch hub's cache.

    Raises one :class:`WeightsMissing` naming the file, its URL and where to put it. Never
    downloads: compute nodes are offline and evaluation must not depend on the network.
    """
    fname = inception_weights_filename()
    url = inception_weights_url()
    cached = inception_cache_dir() / fname
    looked: list[str] = []
    if weights_path is not None:
        p = Path(weights_path).expanduser()
        if p.is_dir():  # a folder holding the file is accepted too
            p = p / fname
        if p.is_file():
            return p
        looked.append(f"{p} (config key evaluate.inception_weights)")
    if cached.is_file():
        return cached
    looked.append(f"{cached} (TORCH_HOME/hub/checkpoints)")
    raise WeightsMissing(
        f"Inception-v3 weights {fname} not found; looked in: {'; '.join(looked)}. "
        f"Download {url} on a machine with internet (e.g. "
        f"`python -c 'from ebm_bench.metrics.extractors import fetch_inception_weights; "
        f"fetch_inception_weights()'`, the local Snakemake rule does the same) and put the "
        f"file in {cached.parent}/ (torch hub cache under $TORCH_HOME), or set the config key "
        f"evaluate.inception_weights to its path."
    )


def fetch_inception_weights(dest_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Download torch-fidelity's Inception weights to ``dest_dir`` (default: torch hub cache).

    For a local (online) Snakemake rule; ``torch.hub.download_url_to_file`` writes a temp
    file and moves it into place. Returns the path; an existing file is kept. A failed
    download (offline) raises one :class:`WeightsMissing` naming the file, its URL and the
    folder to put it in.
    """
    dest = Path(dest_dir).expanduser() if dest_dir is not None else inception_cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / inception_weights_filename()
    if not path.is_file():
        url = inception_weights_url()
        try:
            torch.hub.download_url_to_file(url, str(path), progress=progress)
        except (OSError, ValueError, RuntimeError) as e:  # URLError / HTTPError are OSErrors
            reason = getattr(e, "reason", None) or e
            raise WeightsMissing(
                f"Inception-v3 weights {path.name} are missing and could not be downloaded from {url} "
                f"({type(e).__name__}: {reason}); on a machine with internet download {url} and put "
                f"the file in {dest}/ (or set evaluate.inception_weights to its path)"
            ) from None
    return path


class InceptionExtractor(FeatureExtractor):
    """torch-fidelity's 'inception-v3-compat' (TF-Inception port used for FID and IS).

    Features: '2048' (pool3, FID) -> "pool"; 'logits_unbiased' (fc without bias, torch-
    fidelity's default for IS) -> "logits" (1008 classes). Input: uint8 (N, 1|3, H, W), or
    float images in [-1, 1] quantised with :func:`~ebm_bench.data.base.to_uint8` exactly as
    samples.npz stores them.
    """

    name = INCEPTION_NAME
    feature_dim = 2048
    num_classes = 1008
    FEATURES = ("2048", "logits_unbiased")

    def __init__(
        self,
        weights_path: str | os.PathLike | None = None,
        batch_size: int = 64,
        device: str | torch.device = "cpu",
        expected_sha256: str | None = PINNED_INCEPTION_SHA256,
    ):
        """``expected_sha256``: the weights must hash to this (default: the pinned
        torch-fidelity file); ``None`` accepts any file (timing with random weights, tests
        that swap in a small file: such callers must say so)."""
        super().__init__(batch_size, device)
        self.weights_path = resolve_inception_weights(weights_path)
        # torch-fidelity loads the file with weights_only=False; load it once with
        # weights_only=True first so a tampered pickle is refused before it can run code
        try:
            torch.load(self.weights_path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any failure means "do not trust this file"
            raise WeightsMissing(
                f"{self.weights_path} is not a plain tensor state dict "
                f"(torch.load weights_only=True failed: {e}); re-download {inception_weights_url()}"
            ) from e
        self.weights_sha256 = file_sha256(self.weights_path)
        if expected_sha256 is not None and self.weights_sha256 != expected_sha256:
            raise WeightsMissing(
                f"{self.weights_path} has sha256 {self.weights_sha256}, not the pinned {expected_sha256}: "
                f"it is not torch-fidelity's Inception-v3 file and would give other FIDs; "
                f"re-download {inception_weights_url()}"
            )
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        self.model = FeatureExtractorInceptionV3(
            INCEPTION_NAME,
            list(self.FEATURES),
            feature_extractor_weights_path=str(self.weights_path),
        ).to(self.device)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"Inception features need images (N, 1|3, H, W), got {tuple(x.shape)}")
        if x.dtype != torch.uint8:
            x = to_uint8(x.float())
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        return x

    def _forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pool, logits = self.model(batch)
        return pool, logits

    def protocol(self) -> dict[str, Any]:
        import torch_fidelity

        return {
            "name": INCEPTION_NAME,
            "backend": "torch-fidelity",
            "backend_version": str(torch_fidelity.__version__),
            "weights_file": self.weights_path.name,
            "weights_path": str(self.weights_path),
            "weights_url": inception_weights_url(),
            "weights_sha256": self.weights_sha256,
            "feature_layer_fid": "2048",
            "feature_layer_is": "logits_unbiased",
            "feature_dim": self.feature_dim,
            "num_classes": self.num_classes,
            "input": "uint8 (N,3,H,W); 1-channel repeated to 3; float [-1,1] via to_uint8",
            "input_size": self.model.INPUT_IMAGE_SIZE,
        }

    def torch_fidelity_kwargs(self) -> dict[str, Any]:
        return {
            "feature_extractor": INCEPTION_NAME,
            "feature_extractor_weights_path": str(self.weights_path),
        }


class DomainExtractor(FeatureExtractor):
    """Features from the domain classifier: "pool" = penultimate activations, "logits".

    Accepts a :class:`DomainClassifier` (e.g. from :func:`load_classifier`) or a path.
    Inputs: images uint8 or float in [-1, 1] (N, C, H, W); vectors float (N, D).
    """

    name = DOMAIN_EXTRACTOR_NAME

    def __init__(
        self,
        classifier: DomainClassifier | str | os.PathLike,
        batch_size: int = 1024,
        device: str | torch.device = "cpu",
    ):
        super().__init__(batch_size, device)
        if not isinstance(classifier, DomainClassifier):
            classifier = load_classifier(classifier)
        self.model = classifier.eval().requires_grad_(False).to(self.device)
        self.feature_dim = int(classifier.arch["hidden"])
        self.num_classes = int(classifier.arch["num_classes"])

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        want = tuple(int(s) for s in self.model.arch["input_shape"])
        if tuple(x.shape[1:]) != want:
            raise ValueError(f"domain classifier expects inputs (N, {want}), got {tuple(x.shape)}")
        return self.model.prepare(x)

    def _forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.features(batch)

    def protocol(self) -> dict[str, Any]:
        info = getattr(self.model, "info", {})
        return {
            "name": DOMAIN_EXTRACTOR_NAME,
            "backend": "ebm-bench",
            "weights_file": os.path.basename(getattr(self.model, "path", "") or "") or None,
            "weights_path": getattr(self.model, "path", None),
            "weights_sha256": getattr(self.model, "sha256", None),
            "arch": self.model.arch,
            "feature_layer_fid": "penultimate (post-ReLU)",
            "feature_layer_is": "logits",
            "feature_dim": self.feature_dim,
            "num_classes": self.num_classes,
            "input": "images uint8 or float [-1,1] (N,C,H,W); vectors float (N,D)",
            "input_size": list(self.model.arch["input_shape"]),
            "test_accuracy": info.get("test_accuracy"),
            "train_seed": info.get("seed"),
        }

    def torch_fidelity_kwargs(self) -> dict[str, Any]:
        path = getattr(self.model, "path", None)
        if path is None:
            raise ValueError("save the classifier and build the extractor from its path first")
        register_torch_fidelity_domain_extractor()
        return {"feature_extractor": DOMAIN_EXTRACTOR_NAME, "feature_extractor_weights_path": path}


# --------------------------------------------------------------------------- torch-fidelity glue

_TF_DOMAIN_CLASS: type | None = None


def register_torch_fidelity_domain_extractor() -> type:
    """Register the domain classifier in torch-fidelity as ``'ebm-bench-domain'`` (idempotent).

    torch-fidelity builds it as ``cls(name, features_list, **calculate_metrics_kwargs)``; the
    classifier file comes through its standard ``feature_extractor_weights_path`` kwarg and
    is loaded with weights_only=True. Features 'pool' (default for fid/kid/prc) and 'logits'
    (default for isc). Features are returned in float64 so torch-fidelity's statistics match
    :func:`~ebm_bench.metrics.fid.fid_from_features` (which uses float64) exactly.
    Call ``calculate_metrics(..., cuda=False, save_cpu_ram=True, cache=False)`` on CPU:
    ``save_cpu_ram`` keeps the DataLoader in-process, ``cache`` would write under TORCH_HOME.
    The class is defined here, not at module level, because importing torch-fidelity costs ~6 s.
    """
    global _TF_DOMAIN_CLASS
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    if _TF_DOMAIN_CLASS is None:

        class TorchFidelityDomainExtractor(FeatureExtractorBase):
            def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
                super().__init__(name, features_list)
                if feature_extractor_weights_path is None:
                    raise WeightsMissing(
                        f"feature extractor {name!r} needs feature_extractor_weights_path="
                        f"<saved domain classifier>"
                    )
                self.classifier = load_classifier(feature_extractor_weights_path)

            @staticmethod
            def get_provided_features_list():
                return "pool", "logits"

            @staticmethod
            def get_default_feature_layer_for_metric(metric):
                return {"isc": "logits", "fid": "pool", "kid": "pool", "prc": "pool"}[metric]

            @staticmethod
            def can_be_compiled():
                return False

            @staticmethod
            def get_dummy_input_for_compile():
                raise NotImplementedError

            def forward(self, x):
                pool, logits = self.classifier.features(self.classifier.prepare(x))
                feats = {"pool": pool.double(), "logits": logits.double()}
                return tuple(feats[f] for f in self.features_list)

        _TF_DOMAIN_CLASS = TorchFidelityDomainExtractor
    if DOMAIN_EXTRACTOR_NAME not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(DOMAIN_EXTRACTOR_NAME, _TF_DOMAIN_CLASS)
    return _TF_DOMAIN_CLASS


class TensorSamples(torch.utils.data.Dataset):
    """A tensor as a torch-fidelity input (its loader wants one tensor per item, no label)."""

    def __init__(self, x: Any):
        self.x = as_tensor(x)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]




__all__: Sequence[str] = (
    "FeatureExtractor",
    "InceptionExtractor",
    "DomainExtractor",
    "TensorSamples",
    "fetch_inception_weights",
    "inception_weights_url",
    "inception_weights_filename",
    "inception_cache_dir",
    "register_torch_fidelity_domain_extractor",
    "resolve_inception_weights",
)
