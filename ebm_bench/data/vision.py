"""Image datasets read through torchvision from ``data_root`` (never downloaded by ``load``).

``mnist``, ``fashion_mnist`` (MNIST in paper 004, FashionMNIST in papers 000 and 004),
``cifar10`` (papers 002, 003 Table 1, 004 Table 2), ``celeba`` (paper 004 uses CelebA-32
for the GRBM; its CelebA-HQ 64 is not in torchvision: use ``image_folder``), ``flowers102``
(Oxford Flowers, papers 002 Sec. 5.2 and 004 Fig. 3) and ``image_folder`` (any tree of
class sub-folders of images).

Every split is loaded once into one float32 tensor (N, C, size, size) in [-1, 1], quantised
to 256 levels like the uint8 sample files. ``size`` is 32 or 64. ``max_train`` /
``max_test`` keep a random subset chosen with ``split_seed`` (never the run seed).
``default_net_params`` ({"nf": 64}) suit 32 px; paper configs set their own network.

``download`` (run by the local Snakemake rule on a machine with internet) calls the
torchvision class with ``download=True``; ``load`` uses ``download=False`` and turns
torchvision's "not found / corrupted" errors into one :class:`DatasetMissing` that says
where it looked and how to fetch the files. torchvision is imported only inside functions
(importing it costs seconds).

Longer than 500 lines because it is the one place the torchvision-backed datasets are declared
(MNIST, FashionMNIST, CIFAR-10, CelebA, Flowers-102, image folders): they share the loading, the offline
path and its one-line errors, and their declared checks.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ebm_bench.core import validation as V
from ebm_bench.core.errors import ConfigError, DatasetMissing
from ebm_bench.data.base import Dataset, DatasetSpec, register_dataset

SIZES = (32, 64)
_BATCH = 256  # images per DataLoader batch when decoding files
_COMMON = {"size": 32, "max_train": None, "max_test": None, "split_seed": 0, "num_workers": 0}


def _subset(n: int, max_n: int | None, split_seed: int, stream: int) -> np.ndarray:
    """Sorted indices of a deterministic random subset of ``max_n`` of ``n`` (all if None)."""
    if max_n is None or max_n >= n:
        return np.arange(n)
    rng = np.random.default_rng([split_seed, stream])
    return np.sort(rng.choice(n, size=max_n, replace=False))


def _resize_uint8(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, h, w) uint8 -> (N, C, size, size) uint8, bilinear with antialias.

    Done in float32 with torch (not torchvision's native uint8 kernel, which is chosen
    per CPU) so that every machine gets the same pixels.
    """
    if x.shape[-2:] == (size, size):
        return x
    out = torch.empty(x.shape[0], x.shape[1], size, size, dtype=torch.uint8)
    for i in range(0, x.shape[0], 4096):
        y = torch.nn.functional.interpolate(
            x[i:i + 4096].float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out[i:i + 4096] = y.round().clamp(0, 255).to(torch.uint8)
    return out


def _array_split(data: Any, targets: Any, idx: np.ndarray, size: int, hwc: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Subset + resize an in-memory uint8 array (MNIST ``.data``, CIFAR ``.data``)."""
    x = torch.as_tensor(np.asarray(data)[idx]) if not isinstance(data, torch.Tensor) else data[torch.from_numpy(idx)]
    x = x.permute(0, 3, 1, 2) if hwc else x.unsqueeze(1)
    x = _resize_uint8(x.contiguous(), size)
    y = torch.as_tensor(np.asarray(targets)[idx], dtype=torch.int64)
    return x.float().div_(127.5).sub_(1.0), y


def _collate(batch: list) -> tuple[torch.Tensor, torch.Tensor | None]:
    x = torch.stack([b[0] for b in batch])
    y = None if batch[0][1] is None else torch.as_tensor([int(b[1]) for b in batch], dtype=torch.int64)
    return x, y


def _decode_split(ds: Any, idx: np.ndarray, num_workers: int, channels: int, size: int):
    """Decode the images ``idx`` of a file-backed torchvision dataset (its transform must
    end in PILToTensor) into one preallocated float32 tensor, batch by batch."""
    from torch.utils.data import DataLoader, Subset

    loader = DataLoader(Subset(ds, idx.tolist()), batch_size=_BATCH, shuffle=False,
                        num_workers=int(num_workers), collate_fn=_collate)
    x = torch.empty(len(idx), channels, size, size, dtype=torch.float32)
    ys, i = [], 0
    for xb, yb in loader:
        x[i:i + len(xb)] = xb.float().div_(127.5).sub_(1.0)
        i += len(xb)
        if yb is not None:
            ys.append(yb)
    return x, (torch.cat(ys) if ys else None)


def _pil_transform(size: int, crop: int | None = None, grayscale: bool = False):
    """[center-crop ``crop``] -> resize shorter side -> center-crop square -> uint8 tensor."""
    from torchvision import transforms as T

    steps = [T.CenterCrop(crop)] if crop else []
    if grayscale:
        steps.append(T.Grayscale(1))
    steps += [T.Resize(size, interpolation=T.InterpolationMode.BILINEAR, antialias=True),
              T.CenterCrop(size), T.PILToTensor()]
    return T.Compose(steps)


class _VisionSpec(DatasetSpec):
    """Shared validation, error messages and load skeleton of the image datasets."""

    defaults: ClassVar[dict[str, Any]] = dict(_COMMON)
    checks: ClassVar[dict[str, Any]] = {
        "size": V.choice(*SIZES),
        "max_train": V.count(nullable=True),
        "max_test": V.count(nullable=True),
        "split_seed": V.count(0),
        "num_workers": V.count(0),
    }
    default_net = "convnet"
    default_net_params = {"nf": 64}
    embedded = False
    images = True
    channels: ClassVar[int] = 3
    folder: ClassVar[str] = ""  # sub-directory of data_root torchvision reads

    # --- hooks ------------------------------------------------------------------------
    @classmethod
    def _required(cls, params: dict[str, Any], data_root: Path) -> list[Path]:
        """Files / directories that must exist (existence only; checksums at load)."""
        raise NotImplementedError

    @classmethod
    def _read(cls, params: dict[str, Any], data_root: Path):
        """-> (x_train, y_train, x_test, y_test, class_names) with torchvision, download=False."""
        raise NotImplementedError

    @classmethod
    def _sources(cls, params: dict[str, Any], data_root: Path) -> tuple[str, str]:
        """(what to fetch, where to put it) for the offline message of :meth:`download`."""
        return "the dataset's files", str(cls._where(params, data_root))

    @classmethod
    def _fetch(cls, params: dict[str, Any], data_root: Path, fetch) -> None:
        """Run torchvision's download; offline (or any failed fetch) it raises one
        :class:`DatasetMissing` naming what is missing, the URL and where to put it.
        torchvision's own chatter is shown only when the download worked."""
        import contextlib
        import io
        import re

        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                fetch()
        except (OSError, RuntimeError, ImportError, ValueError) as e:  # URLError is an OSError
            text = f"{getattr(e, 'reason', None) or e}"
            said = re.findall(r"<urlopen error [^>]*>|HTTP Error [^\n]*", text + "\n" + buf.getvalue())
            reason = f"{type(e).__name__}: {text.strip().splitlines()[0].rstrip(':')}"
            if said and said[-1] not in reason:
                reason += f", {said[-1]}"
            what, where = cls._sources(params, Path(data_root))
            raise DatasetMissing(
                f"dataset {cls.name!r} is missing and could not be downloaded ({reason}); "
                f"on a machine with internet fetch {what} into {where} "
                f"(or run `ebm-bench download --dataset {cls.name} --data-root {data_root}` there)"
            ) from None
        sys.stdout.write(buf.getvalue())

    # --- shared -------------------------------------------------------------------------
    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        cls._params(params)

    @classmethod
    def _params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` merged over the defaults, with the rules ``checks`` cannot say
        (each key's own range is declared in ``checks`` and checked before any load,
        :func:`ebm_bench.data.base.load_dataset`)."""
        return {**cls.defaults, **params}

    @classmethod
    def _where(cls, params: dict[str, Any], data_root: Path) -> Path:
        return Path(data_root) / cls.folder

    @classmethod
    def _missing(cls, params: dict[str, Any], data_root: Path, detail: str) -> DatasetMissing:
        return DatasetMissing(
            f"dataset {cls.name!r} not found in {cls._where(params, data_root)} ({detail}). "
            f"Download it on a machine with internet access: "
            f"`ebm-bench download --dataset {cls.name} --data-root {data_root}` "
            f"(or `snakemake download_all`)."
        )

    @classmethod
    def check_available(cls, params: dict[str, Any], data_root: Path) -> None:
        p = cls._params(params)
        missing = [q for q in cls._required(p, Path(data_root)) if not q.exists()]
        if missing:
            if not cls._where(p, Path(data_root)).exists():
                raise cls._missing(p, data_root, "no such directory")
            shown = ", ".join(q.name for q in missing[:3]) + (" ..." if len(missing) > 3 else "")
            raise cls._missing(p, data_root, f"missing {shown}")

    @classmethod
    def load(cls, params: dict[str, Any], data_root: Path, seed: int = 0) -> Dataset:
        p = cls._params(params)
        data_root = Path(data_root)
        cls.check_available(p, data_root)
        try:
            x_tr, y_tr, x_te, y_te, names = cls._read(p, data_root)
        except RuntimeError as e:
            # torchvision: "Dataset not found or corrupted. You can use download=True ..."
            if "not found" not in str(e).lower() and "corrupted" not in str(e).lower():
                raise
            raise cls._missing(p, data_root, f"torchvision: {str(e).split('.')[0]}") from e
        except FileNotFoundError as e:
            raise cls._missing(p, data_root, str(e)) from e
        return Dataset(
            name=cls.name, x_train=x_tr, x_test=x_te, y_train=y_tr, y_test=y_te, is_image=True,
            num_classes=None if names is None else len(names), class_names=names,
        )


class _MNISTLike(_VisionSpec):
    """idx-ubyte files in ``data_root/<Class>/raw/``; 28 px resized to ``size``, 1 channel."""

    channels = 1
    checks = {"size": V.choice(28, *SIZES)}  # 28: the native size (paper 003's MNIST network)
    tv_class: ClassVar[str] = "MNIST"

    @classmethod
    def _tv(cls):
        import torchvision.datasets as D

        return getattr(D, cls.tv_class)

    @classmethod
    def _required(cls, params, data_root):
        raw = data_root / cls.folder / "raw"
        processed = data_root / cls.folder / "processed"
        if (processed / "training.pt").exists() and (processed / "test.pt").exists():
            return []  # torchvision's legacy format is also read
        return [raw / f"{s}-{k}-idx{3 if k == 'images' else 1}-ubyte"
                for s in ("train", "t10k") for k in ("images", "labels")]

    @classmethod
    def _read(cls, params, data_root):
        out = []
        for train, stream in ((True, 0), (False, 1)):
            ds = cls._tv()(str(data_root), train=train, download=False)
            idx = _subset(len(ds.data), params["max_train" if train else "max_test"], int(params["split_seed"]), stream)
            out += list(_array_split(ds.data, ds.targets, idx, int(params["size"]), hwc=False))
        return (*out, list(ds.classes))

    @classmethod
    def download(cls, params, data_root):
        cls._fetch(params, data_root, lambda: cls._tv()(str(data_root), train=True, download=True))  # both splits

    @classmethod
    def _sources(cls, params, data_root):
        tv = cls._tv()
        files = ", ".join(f for f, _ in tv.resources)
        return (f"{files} from {tv.mirrors[0]}",
                f"{Path(data_root) / cls.folder / 'raw'}/ (gunzipped: *-ubyte)")


@register_dataset("mnist")
class MNISTData(_MNISTLike):
    """MNIST (LeCun et al.), 60k/10k, 10 classes."""

    folder = "MNIST"
    tv_class = "MNIST"


@register_dataset("mnist_236")
class MNIST236Data(MNISTData):
    """Biased MNIST of paper 003: digits 2, 3, 6 at weights 4/7, 2/7, 1/7 (Sec. 4.2, App. B.2).

    Only the digits ``digits`` (2, 3, 6), with ``counts`` training images each (5600, 2800, 1400: mode
    weights 4/7, 2/7, 1/7), drawn with ``split_seed``; labels remapped to 0..K-1 in the order
    of ``digits``, ``truth["mode_weights"]`` = counts / sum(counts).

    The paper does not say which test images it used. The test split here keeps the same
    weights (as many of the digits' test images as the proportions allow: 1009, 505, 252 of
    the 1032, 1010, 958), so that a sample-vs-test FID measures the biased target, not a
    uniform mixture. 28 px (native) by default, the size of the paper's network.
    """

    defaults = {**_COMMON, "size": 28, "digits": [2, 3, 6], "counts": [5600, 2800, 1400]}
    checks = {"digits": V.list_of(V.integer(0, 9), min_len=1), "counts": V.list_of(V.count(), min_len=1)}
    default_net = "cnn_silu"  # paper 003's MNIST network (any size; convnet needs 2^k px)
    default_net_params = {}

    @classmethod
    def _params(cls, params):
        p = super()._params(params)
        if len(set(p["digits"])) != len(p["digits"]):
            raise ConfigError(f"dataset param 'digits' must be distinct digits, got {p['digits']}")
        if len(p["counts"]) != len(p["digits"]):
            raise ConfigError(f"dataset param 'counts' must be one count per digit, got {p['counts']}")
        return p

    @classmethod
    def _read(cls, params, data_root):
        x_tr, y_tr, x_te, y_te, _ = super()._read({**params, "max_train": None, "max_test": None}, data_root)
        digits, counts = [int(d) for d in params["digits"]], [int(c) for c in params["counts"]]
        rng = np.random.default_rng([int(params["split_seed"]), 236])
        weights = np.asarray(counts, dtype=float) / sum(counts)
        out = []
        for x, y, want in ((x_tr, y_tr, counts), (x_te, y_te, None)):
            pools = [rng.permutation(np.flatnonzero(y.numpy() == d)) for d in digits]
            if want is None:  # test: the largest subset with the training proportions
                total = min(len(q) / w for q, w in zip(pools, weights))
                want = [int(np.floor(total * w + 1e-9)) for w in weights]
            short = [(d, len(q), n) for d, q, n in zip(digits, pools, want) if len(q) < n]
            if short:
                d, have, n = short[0]
                raise ConfigError(f"dataset param 'counts': digit {d} has {have} training images, {n} requested")
            idx = np.sort(np.concatenate([q[:n] for q, n in zip(pools, want)]))
            remap = torch.full((10,), -1, dtype=torch.int64)
            remap[digits] = torch.arange(len(digits))
            out += [x[torch.from_numpy(idx)], remap[y[torch.from_numpy(idx)]]]
        return (*out, [str(d) for d in digits])

    @classmethod
    def load(cls, params, data_root, seed: int = 0):
        d = super().load(params, data_root, seed)
        counts = [int(c) for c in cls._params(params)["counts"]]
        d.truth["mode_weights"] = [c / sum(counts) for c in counts]
        return d


@register_dataset("fashion_mnist")
class FashionMNISTData(_MNISTLike):
    """Fashion-MNIST (Xiao et al. 2017), 60k/10k, 10 classes."""

    folder = "FashionMNIST"
    tv_class = "FashionMNIST"


@register_dataset("cifar10")
class CIFAR10Data(_VisionSpec):
    """CIFAR-10 python batches in ``data_root/cifar-10-batches-py``; 50k/10k, 10 classes, 3 ch.

    torchvision verifies the md5 of every batch at load, so a truncated file is reported as
    missing (re-download).
    """

    folder = "cifar-10-batches-py"

    @classmethod
    def _required(cls, params, data_root):
        base = data_root / cls.folder
        return [base / f for f in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                                    "data_batch_5", "test_batch", "batches.meta")]

    @classmethod
    def _read(cls, params, data_root):
        from torchvision.datasets import CIFAR10

        out = []
        for train, stream in ((True, 0), (False, 1)):
            ds = CIFAR10(str(data_root), train=train, download=False)
            idx = _subset(len(ds.data), params["max_train" if train else "max_test"], int(params["split_seed"]), stream)
            out += list(_array_split(ds.data, ds.targets, idx, int(params["size"]), hwc=True))
        return (*out, list(ds.classes))

    @classmethod
    def download(cls, params, data_root):
        from torchvision.datasets import CIFAR10

        cls._fetch(params, data_root, lambda: CIFAR10(str(data_root), train=True, download=True))

    @classmethod
    def _sources(cls, params, data_root):
        from torchvision.datasets import CIFAR10

        return CIFAR10.url, f"{Path(data_root)}/ (unpacked: {cls.folder}/)"


@register_dataset("celeba")
class CelebAData(_VisionSpec):
    """CelebA aligned faces in ``data_root/celeba`` (official train / test partition).

    Preprocessing: center crop 140 x 140 of the 178 x 218 aligned image, then resize to
    ``size`` (a common choice for CelebA-32/64 generative models). No labels
    (``num_classes`` None). The full train split is 162,770 images (2 GB of float32 at
    32 px): set ``max_train`` on small machines. Download needs ``gdown`` and is often
    rate-limited by Google Drive; the files can also be placed by hand.
    """

    labelled = False
    folder = "celeba"
    files = ("list_attr_celeba.txt", "identity_CelebA.txt", "list_bbox_celeba.txt",
             "list_landmarks_align_celeba.txt", "list_eval_partition.txt")
    defaults = {**_COMMON, "crop": 140}
    checks = {"crop": V.count()}

    @classmethod
    def _required(cls, params, data_root):
        base = data_root / cls.folder
        return [base / f for f in cls.files] + [base / "img_align_celeba"]

    @classmethod
    def _read(cls, params, data_root):
        from torchvision.datasets import CelebA

        tf = _pil_transform(int(params["size"]), crop=int(params["crop"]))
        out = []
        for split, key, stream in (("train", "max_train", 0), ("test", "max_test", 1)):
            ds = CelebA(str(data_root), split=split, target_type=[], transform=tf, download=False)
            idx = _subset(len(ds), params[key], int(params["split_seed"]), stream)
            x, _ = _decode_split(ds, idx, params["num_workers"], 3, int(params["size"]))
            out += [x, None]
        return (*out, None)

    @classmethod
    def download(cls, params, data_root):
        from torchvision.datasets import CelebA

        cls._fetch(params, data_root, lambda: CelebA(str(data_root), split="all", target_type=[], download=True))

    @classmethod
    def _sources(cls, params, data_root):
        from torchvision.datasets import CelebA

        files = ", ".join(f"{name} (https://drive.google.com/uc?id={gid})" for gid, _, name in CelebA.file_list)
        return files, f"{Path(data_root) / cls.folder}/ (img_align_celeba.zip unpacked there)"


@register_dataset("flowers102")
class Flowers102Data(_VisionSpec):
    """Oxford Flowers-102 in ``data_root/flowers-102`` (jpg/, imagelabels.mat, setid.mat).

    Resize the shorter side to ``size`` then center crop; 102 labels. ``train_split``:
    "trainval" (default, the official train + val, 2,040 images), "train" (1,020) or "all"
    (all 8,189 images, as generative-model papers often train on; the test split, 6,149
    images, then overlaps the training data).
    """

    folder = "flowers-102"
    defaults = {**_COMMON, "train_split": "trainval"}
    _train_splits: ClassVar[dict[str, tuple[str, ...]]] = {
        "train": ("train",), "trainval": ("train", "val"), "all": ("train", "val", "test")}
    checks = {"train_split": V.choice(*_train_splits)}

    @classmethod
    def _required(cls, params, data_root):
        base = data_root / cls.folder
        return [base / "jpg", base / "imagelabels.mat", base / "setid.mat"]

    @classmethod
    def _read(cls, params, data_root):
        from torch.utils.data import ConcatDataset
        from torchvision.datasets import Flowers102

        size = int(params["size"])
        tf = _pil_transform(size)
        out = []
        for splits, key, stream in ((cls._train_splits[params["train_split"]], "max_train", 0),
                                    (("test",), "max_test", 1)):
            ds = ConcatDataset([Flowers102(str(data_root), split=s, transform=tf, download=False) for s in splits])
            idx = _subset(len(ds), params[key], int(params["split_seed"]), stream)
            out += list(_decode_split(ds, idx, params["num_workers"], 3, size))
        return (*out, list(Flowers102.classes))

    @classmethod
    def download(cls, params, data_root):
        from torchvision.datasets import Flowers102

        cls._fetch(params, data_root, lambda: Flowers102(str(data_root), split="train", download=True))  # all splits

    @classmethod
    def _sources(cls, params, data_root):
        from torchvision.datasets import Flowers102

        files = ", ".join(f for f, _ in Flowers102._file_dict.values())
        return (f"{files} from {Flowers102._download_url_prefix}",
                f"{Path(data_root) / cls.folder}/ (102flowers.tgz unpacked there: jpg/)")


@register_dataset("image_folder")
class ImageFolderData(_VisionSpec):
    """Any folder of class sub-folders of images (torchvision ``ImageFolder``), e.g. CelebA-HQ.

    ``path`` is relative to ``data_root`` and must resolve inside it. If it has ``train/`` and ``test/``
    sub-folders they are the splits (same class folders in both); otherwise a stratified
    split holds out ``test_fraction`` of every class, chosen with ``split_seed``. Images
    are resized (shorter side) and center-cropped to ``size``; ``channels`` 3 (RGB) or 1.
    """

    defaults = {**_COMMON, "path": None, "channels": 3, "test_fraction": 0.2}
    checks = {"path": V.Check("str", nullable=True), "channels": V.choice(1, 3), "test_fraction": V.fraction()}
    path_params = ("path",)

    @classmethod
    def _params(cls, params):
        p = super()._params(params)
        if not p["path"]:  # declared nullable (its default); a load needs one
            raise ConfigError(f"dataset param 'path' (a folder of class sub-folders) is required, got {p['path']!r}")
        return p

    @classmethod
    def _where(cls, params, data_root):
        # relative to data_root; a path that resolves outside it (absolute, ``..``, a link)
        # is refused: a config reads datasets from data_root only
        return V.inside(data_root, params["path"], "dataset param 'path'")

    @classmethod
    def _missing(cls, params, data_root, detail):
        return DatasetMissing(
            f"dataset 'image_folder' not found in {cls._where(params, data_root)} ({detail}). "
            f"There is nothing to download for it: put one sub-folder of images per class "
            f"there (optionally under train/ and test/), or fix dataset param 'path'."
        )

    @classmethod
    def _required(cls, params, data_root):
        return [cls._where(params, data_root)]

    @classmethod
    def _read(cls, params, data_root):
        from torchvision.datasets import ImageFolder

        root = cls._where(params, data_root)
        size, ch, s = int(params["size"]), int(params["channels"]), int(params["split_seed"])
        tf = _pil_transform(size, grayscale=ch == 1)
        if (root / "train").is_dir() and (root / "test").is_dir():
            tr, te = ImageFolder(str(root / "train"), transform=tf), ImageFolder(str(root / "test"), transform=tf)
            if tr.classes != te.classes:
                raise ConfigError(f"dataset param 'path': {root}/train and {root}/test must hold the same class "
                                  f"folders, got {tr.classes} and {te.classes}")
            parts = [(tr, np.arange(len(tr))), (te, np.arange(len(te)))]
        else:
            ds = ImageFolder(str(root), transform=tf)
            targets = np.asarray(ds.targets)
            rng = np.random.default_rng([s, 4])
            test = []
            for c in range(len(ds.classes)):
                members = rng.permutation(np.flatnonzero(targets == c))
                test.append(members[: int(round(float(params["test_fraction"]) * len(members)))])
            test_idx = np.sort(np.concatenate(test))
            parts = [(ds, np.setdiff1d(np.arange(len(ds)), test_idx)), (ds, test_idx)]
        classes = list(parts[0][0].classes)
        if len(classes) < 2:
            raise ConfigError(f"dataset param 'path': {root} holds {len(classes)} class folder ({classes[0]!r}); "
                              f"the domain classifier, linear probe and mode weights need at least 2 "
                              f"(one sub-folder of images per class)")
        out = []
        for (ds_, pool), key, stream in zip(parts, ("max_train", "max_test"), (0, 1)):
            pool = pool[_subset(len(pool), params[key], s, stream)]
            out += list(_decode_split(ds_, pool, params["num_workers"], ch, size))
        return (*out, classes)

    @classmethod
    def download(cls, params, data_root):
        cls.check_available(params, data_root)
