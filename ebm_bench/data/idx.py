"""Write MNIST-format arrays in torchvision's raw on-disk format (idx-ubyte files).

    ebm-bench write-idx --npz mnist.npz --dataset mnist --data-root DIR

writes ``DIR/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (``FashionMNIST/raw``
for ``--dataset fashion_mnist``) from an ``.npz`` holding ``x_train`` (N, 28, 28),
``y_train`` (N,), ``x_test``, ``y_test`` as uint8, so that ``torchvision.datasets.MNIST``
/ ``FashionMNIST`` (and :mod:`ebm_bench.data.vision`) read it with ``download=False``.
For machines without internet that hold the arrays in another form; the CPU paper smoke
(``ebm-bench bench paper_smoke``) reads MNIST and FashionMNIST only through these files.

The idx format (LeCun et al., "THE MNIST DATABASE", file formats section; read by
torchvision/datasets/mnist.py ``read_sn3_pascalvincent_tensor``): a 4-byte magic number
0x00 0x00, the type code (0x08: unsigned byte), the number of dimensions; then one
big-endian int32 per dimension; then the data in C order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}  # torchvision's class names = folders
KEYS = ("x_train", "y_train", "x_test", "y_test")


def write_idx(path: str | Path, arr: np.ndarray) -> None:
    """One uint8 array as an idx-ubyte file (type code 0x08)."""
    a = np.asarray(arr)
    if a.dtype != np.uint8:
        if a.size and (a.min() < 0 or a.max() > 255 or not np.array_equal(a, a.astype(np.uint8))):
            raise ValueError(f"{path}: idx-ubyte holds integers 0..255, got dtype {a.dtype} outside that range")
        a = a.astype(np.uint8)
    header = bytes([0, 0, 0x08, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(header + np.ascontiguousarray(a).tobytes())
    tmp.replace(path)


def write_raw(npz: str | Path, dataset: str, data_root: str | Path) -> Path:
    """The four idx files of ``dataset`` (mnist / fashion_mnist) under ``data_root``;
    returns the raw folder. Checks the arrays' shapes before writing anything."""
    if dataset not in FOLDERS:
        raise ValueError(f"--dataset {dataset!r}: expected one of {', '.join(FOLDERS)}")
    with np.load(npz, allow_pickle=False) as z:
        missing = [k for k in KEYS if k not in z.files]
        if missing:
            raise ValueError(f"{npz}: no array {missing[0]!r} (expected {', '.join(KEYS)})")
        arrays = {k: z[k] for k in KEYS}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"{npz}: x_{split} {x.shape} / y_{split} {y.shape}: expected (N, H, W) images "
                             f"and (N,) labels")
    raw = Path(data_root) / FOLDERS[dataset] / "raw"
    for split, prefix in (("train", "train"), ("test", "t10k")):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", arrays[f"x_{split}"])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", arrays[f"y_{split}"])
    return raw
