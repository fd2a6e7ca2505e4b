"""Datasets: shapes, ranges, splits, exact densities, and the real torchvision loading paths.

The torchvision datasets are tested on tiny files written in each dataset's real on-disk
format (idx-ubyte, CIFAR pickles, CelebA jpgs + annotation txts, Flowers jpgs + .mat,
an ImageFolder tree) and loaded through the real loader. Only torchvision's md5 check of
the official files is monkeypatched (our tiny files cannot match the official hashes).
"""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ebm_bench.data.base import from_uint8, load_dataset
from ebm_bench.data.idx import write_idx  # the project's idx-ubyte writer (read back by torchvision in test_paper_smoke)
from ebm_bench.core.errors import ConfigError, DatasetMissing
from ebm_bench.core.registry import DATASETS

TESTED = {"digits", "digits_236", "toy2d", "gmm_teacher", "mnist", "mnist_236", "fashion_mnist", "cifar10",
          "celeba", "flowers102", "image_folder"}
VISION = ["mnist", "mnist_236", "fashion_mnist", "cifar10", "celeba", "flowers102"]


def test_every_registered_dataset_is_tested():
    assert set(DATASETS.names()) == TESTED


def test_defaults_are_complete_and_specs_consistent():
    for name, spec in DATASETS.items():
        assert isinstance(spec.defaults, dict) and spec.defaults, name
        assert isinstance(spec.default_net, str) and isinstance(spec.default_net_params, dict)
        assert spec.embedded == (name in {"digits", "digits_236", "toy2d", "gmm_teacher"})
        if not spec.embedded:
            assert spec.defaults["size"] == (28 if name == "mnist_236" else 32)
            assert spec.defaults["split_seed"] == 0


def test_light_imports():
    """The registry and the embedded datasets import neither torchvision nor sklearn."""
    code = (
        "import sys\n"
        "from ebm_bench.core.registry import DATASETS\n"
        "DATASETS.names()\n"
        "from ebm_bench.data.base import from_uint8, load_dataset\n"
        "load_dataset('toy2d', {'n_train': 10, 'n_test': 10}, '.')\n"
        "load_dataset('gmm_teacher', {'n_train': 10, 'n_test': 10}, '.')\n"
        "assert 'torchvision' not in sys.modules, 'torchvision imported'\n"
        "assert 'sklearn' not in sys.modules, 'sklearn imported'\n"
    )
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(root)})
    assert r.returncode == 0, r.stderr


def _same(d1, d2):
    for k in ("x_train", "x_test", "y_train", "y_test"):
        a, b = getattr(d1, k), getattr(d2, k)
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.equal(a, b), k


# --------------------------------------------------------------------------- digits
def test_digits():
    d = load_dataset("digits", {}, "unused")
    assert d.x_train.shape == (1437, 1, 8, 8) and d.x_test.shape == (360, 1, 8, 8)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert d.x_train.min() == -1 and d.x_train.max() == 1 and d.x_test.min() >= -1 and d.x_test.max() <= 1
    # values are k/16 of the raw 0..16 scale mapped to [-1, 1]
    assert torch.allclose((d.x_train + 1) * 8, ((d.x_train + 1) * 8).round())
    assert d.is_image and d.num_classes == 10 and d.class_names == [str(i) for i in range(10)]
    assert set(d.y_test.tolist()) == set(range(10))
    # stratified: every class holds out 20% up to one image
    tr, te = torch.bincount(d.y_train, minlength=10), torch.bincount(d.y_test, minlength=10)
    assert torch.all((te - 0.2 * (tr + te)).abs() <= 1)
    # the split is independent of the run seed, and changes with split_seed
    _same(d, load_dataset("digits", {}, "unused", seed=7))
    other = load_dataset("digits", {"split_seed": 1}, "unused")
    assert not torch.equal(other.y_test, d.y_test)
    with pytest.raises(ConfigError, match="test_fraction"):
        load_dataset("digits", {"test_fraction": 1.5}, "unused")


def _raw_digits():
    from sklearn.datasets import load_digits

    dg = load_digits()
    return {img.astype(np.float32).tobytes(): int(t) for img, t in zip(dg.images, dg.target)}


def test_digits_236_proportions_and_content():
    d = load_dataset("digits_236", {}, "unused")
    assert d.class_names == ["2", "3", "6"] and d.num_classes == 3
    assert d.truth["mode_weights"] == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    for y in (d.y_train, d.y_test):
        c = torch.bincount(y, minlength=3)
        assert c[0] == 4 * c[2] and c[1] == 2 * c[2] and c[2] > 0  # exactly 4 : 2 : 1
    assert torch.allclose(d.class_weights(), torch.tensor([4 / 7, 2 / 7, 1 / 7], dtype=torch.float64))
    # as large as the data allow: the 2s (about 177 images) limit the size
    n = len(d.y_train) + len(d.y_test)
    assert n >= 7 * (170 // 4)
    # every image is a real sklearn digit of the right class, and the splits are disjoint
    raw = _raw_digits()
    digits = [2, 3, 6]
    keys = []
    for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
        for img, lab in zip(x, y):
            k = ((img[0].numpy() + 1) * 8).astype(np.float32).tobytes()
            assert raw[k] == digits[lab]
            keys.append(k)
    assert len(set(keys)) == len(keys)  # sklearn's 2/3/6 images are all distinct
    assert len(d.x_test) > 0 and d.x_train.shape[1:] == (1, 8, 8)
    _same(d, load_dataset("digits_236", {}, "unused", seed=3))


def test_digits_236_custom_weights_and_errors():
    d = load_dataset("digits_236", {"digits": [0, 1], "weights": [0.7, 0.3]}, "unused")
    assert d.class_names == ["0", "1"]
    w = d.class_weights()
    assert abs(w[0].item() - 0.7) < 0.01
    with pytest.raises(ConfigError, match="weights"):
        load_dataset("digits_236", {"weights": [1, 1]}, "unused")
    with pytest.raises(ConfigError, match="digits"):
        load_dataset("digits_236", {"digits": [2, 3, 12]}, "unused")


# --------------------------------------------------------------------------- toy2d
def _grid_integral(log_density, half, n=801):
    g = torch.linspace(-half, half, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    p = log_density(torch.stack([xx.flatten(), yy.flatten()], 1)).exp().reshape(n, n)
    return torch.trapezoid(torch.trapezoid(p, g, dim=1), g).item()


@pytest.mark.parametrize("params", [
    {"density": "rings"},
    {"density": "rings", "radii": [0.0, 0.5, 2.5], "ring_std": 0.2, "weights": [1.0, 2.0, 5.0]},
    {"density": "gmm"},
    {"density": "gmm", "n_modes": 3, "radius": 1.5, "mode_std": 0.3, "weights": [0.2, 0.3, 0.5]},
])
def test_toy2d_density_is_normalised(params):
    d = load_dataset("toy2d", params, "unused")
    half = d.truth["grid"]["high"]
    assert d.truth["grid"]["low"] == -half
    assert _grid_integral(d.log_density, half) == pytest.approx(1.0, abs=2e-4)
    # the box holds all the mass: a much larger box integrates to the same
    assert _grid_integral(d.log_density, 2 * half) == pytest.approx(1.0, abs=2e-4)
    x = d.x_train[:5]
    assert d.log_density(x).dtype == torch.float32 and d.log_density(x.double()).dtype == torch.float64
    assert torch.allclose(d.log_density(x).double(), d.log_density(x.double()), atol=1e-5)


def test_toy2d_ring_normaliser_matches_quadrature():
    """Closed-form ring normaliser against an independent radial quadrature."""
    from scipy.integrate import quad

    from ebm_bench.data.toy2d import ring_log_normaliser

    for r, s in [(0.0, 0.3), (1.0, 0.1), (0.2, 0.5), (3.0, 0.05)]:
        z, _ = quad(lambda t: 2 * math.pi * t * math.exp(-((t - r) ** 2) / (2 * s * s)), 0, r + 30 * s,
                    points=[r], limit=200)
        assert ring_log_normaliser(r, s) == pytest.approx(math.log(z), abs=1e-9)


def test_toy2d_rings_samples_match_density():
    from scipy.integrate import cumulative_trapezoid
    from scipy.stats import kstest

    params = {"density": "rings", "weights": [1.0, 2.0, 3.0], "n_train": 6000}
    d = load_dataset("toy2d", params, "unused")
    assert d.x_train.shape == (6000, 2) and d.x_test.shape == (2000, 2)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64 and not d.is_image
    assert d.num_classes == 3 and d.truth["mode_weights"] == pytest.approx([1 / 6, 2 / 6, 3 / 6])
    n = len(d.y_train)
    for k, w in enumerate(d.truth["mode_weights"]):
        assert abs((d.y_train == k).double().mean().item() - w) < 4 * math.sqrt(w * (1 - w) / n)
    s = 0.1
    r = d.x_train.double().norm(dim=1).numpy()
    theta = torch.atan2(d.x_train[:, 1], d.x_train[:, 0]).numpy()
    assert kstest((theta + math.pi) / (2 * math.pi), "uniform").pvalue > 1e-3
    for k, R in enumerate([1.0, 2.0, 3.0]):
        # radial law r exp(-(r - R)^2 / 2 s^2), CDF by independent numerical integration
        t = np.linspace(0, R + 10 * s, 20001)
        cdf = cumulative_trapezoid(t * np.exp(-((t - R) ** 2) / (2 * s * s)), t, initial=0)
        cdf /= cdf[-1]
        rk = r[d.y_train.numpy() == k]
        assert kstest(rk, lambda q: np.interp(q, t, cdf)).pvalue > 1e-3
    # samples and density agree jointly: the sample mean of log p equals E_p[log p] (grid)
    half = d.truth["grid"]["high"]
    g = torch.linspace(-half, half, 801, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    lp = d.log_density(torch.stack([xx.flatten(), yy.flatten()], 1)).reshape(801, 801)
    neg_entropy = torch.trapezoid(torch.trapezoid(lp.exp() * lp, g, dim=1), g).item()
    ld = d.log_density(d.x_train.double())
    assert abs(ld.mean().item() - neg_entropy) < 4 * ld.std().item() / math.sqrt(n)


def test_toy2d_gmm_samples_and_determinism():
    d = load_dataset("toy2d", {"density": "gmm"}, "unused")
    assert d.num_classes == 8 and d.truth["mode_weights"] == pytest.approx([1 / 8] * 8)
    centres = torch.tensor(d.truth["centres"], dtype=torch.float32)
    assert centres.norm(dim=1).allclose(torch.full((8,), 2.0))
    resid = d.x_train - centres[d.y_train]
    assert resid.mean(0).abs().max() < 4 * 0.15 / math.sqrt(5000)
    assert resid.std(0) == pytest.approx(torch.tensor([0.15, 0.15]), rel=0.05)
    # same data for every run seed; split_seed changes it; train/test streams independent
    _same(d, load_dataset("toy2d", {"density": "gmm"}, "unused", seed=5))
    assert not torch.equal(d.x_train, load_dataset("toy2d", {"density": "gmm", "split_seed": 1}, "u").x_train)
    d2 = load_dataset("toy2d", {"density": "gmm", "n_train": 100}, "unused")
    assert torch.equal(d2.x_test, d.x_test)


def test_toy2d_config_errors():
    with pytest.raises(ConfigError, match=r"^dataset 'toy2d' params\.density: 'moons' is not one of"):
        load_dataset("toy2d", {"density": "moons"}, "unused")
    with pytest.raises(ConfigError, match="'weights'"):
        load_dataset("toy2d", {"density": "gmm", "weights": [1.0, 2.0]}, "unused")
    with pytest.raises(ConfigError, match=r"params\.ring_std: 0\.0 is out of range; expected > 0"):
        load_dataset("toy2d", {"ring_std": 0.0}, "unused")


# --------------------------------------------------------------------------- gmm teacher
def _mixture(a, b, p):
    from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

    loc = torch.stack([torch.as_tensor(a), torch.as_tensor(b)]).double()
    comp = MultivariateNormal(loc, scale_tril=torch.eye(loc.shape[1], dtype=torch.float64).expand(2, -1, -1))
    return MixtureSameFamily(Categorical(torch.tensor([p, 1 - p], dtype=torch.float64)), comp)


def test_gmm_teacher_defaults_match_paper():
    d = load_dataset("gmm_teacher", {}, "unused")
    t = d.truth["teacher"]
    assert t["dim"] == 50 and t["z"] == pytest.approx(-math.log(3)) and t["mass_a"] == 0.25
    assert t["a"][0] == -10 and t["b"][0] == 6 and not any(t["a"][1:]) and not any(t["b"][1:])
    assert d.truth["mode_weights"] == [0.25, 0.75]
    assert d.x_train.shape == (10000, 50) and d.x_test.shape == (10000, 50) and d.x_train.dtype == torch.float32
    assert d.num_classes == 2 and d.y_train.dtype == torch.int64
    # Eq. 14 against an independent mixture computation
    mix = _mixture(t["a"], t["b"], 0.25)
    x = torch.cat([d.x_test[:200].double(), torch.randn(50, 50, dtype=torch.float64) * 5])
    assert torch.allclose(d.log_density(x), mix.log_prob(x), atol=1e-9, rtol=0)
    # samples: mode weights, labels = mode, mode means and unit variances
    n = len(d.y_train)
    assert abs((d.y_train == 0).double().mean().item() - 0.25) < 4 * math.sqrt(0.25 * 0.75 / n)
    assert torch.equal(d.y_train, (d.x_train[:, 0] > -2).long())
    for k, c in enumerate((t["a"], t["b"])):
        xs = d.x_train[d.y_train == k].double()
        assert (xs.mean(0) - torch.tensor(c, dtype=torch.float64)).abs().max() < 5 / math.sqrt(len(xs))
        assert xs.var(0).mean().item() == pytest.approx(1.0, abs=0.02)
    _same(d, load_dataset("gmm_teacher", {}, "unused", seed=9))


def test_gmm_teacher_normalised_in_2d_and_lists():
    d = load_dataset("gmm_teacher", {"dim": 2, "a": [-2.0, 1.0], "b": 3, "mass_a": 0.7,
                                     "n_train": 20, "n_test": 20}, "unused")
    t = d.truth["teacher"]
    assert t["a"] == [-2.0, 1.0] and t["b"] == [3.0, 0.0] and t["z"] == pytest.approx(math.log(0.7 / 0.3))
    assert _grid_integral(d.log_density, 12.0) == pytest.approx(1.0, abs=1e-6)
    x = torch.randn(100, 2, dtype=torch.float64) * 3
    assert torch.allclose(d.log_density(x), _mixture(t["a"], t["b"], 0.7).log_prob(x), atol=1e-10)


def test_gmm_teacher_config_errors():
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ConfigError, match=r"params\.mass_a: .* is out of range"):
            load_dataset("gmm_teacher", {"mass_a": bad}, "unused")
    with pytest.raises(ConfigError, match="'a'"):
        load_dataset("gmm_teacher", {"dim": 3, "a": [1.0, 2.0]}, "unused")
    with pytest.raises(ConfigError, match=r"params\.b: 'far' is not a number"):
        load_dataset("gmm_teacher", {"dim": 3, "b": "far"}, "unused")


# --------------------------------------------------------------------------- tiny on-disk datasets
def _mnist_value(i: int, split: int) -> int:
    return (37 * i + 11 * split) % 256


def _make_mnist(root: Path, folder: str, n_train=30, n_test=12) -> None:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for prefix, n, split in (("train", n_train, 0), ("t10k", n_test, 1)):
        # value encodes the index (exact away from edges after resizing); a black top
        # strip of 6 rows pins the orientation
        imgs = np.stack([np.full((28, 28), _mnist_value(i, split)) for i in range(n)])
        imgs[:, :6] = 0
        write_idx(raw / f"{prefix}-images-idx3-ubyte", imgs)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)


def _image_values(x: torch.Tensor) -> list[int]:
    """The uint8 value of each image's bottom-right pixel."""
    return ((x[:, 0, -1, -1] + 1) * 127.5).round().long().tolist()


@pytest.fixture
def no_md5(monkeypatch):
    """Skip ONLY torchvision's md5 comparison against the official files (tiny fakes cannot
    match): existence is still checked, everything else is the real loading path."""
    import torchvision.datasets.celeba as celeba
    import torchvision.datasets.cifar as cifar
    import torchvision.datasets.flowers102 as flowers

    def exists_only(fpath, md5=None):
        return os.path.isfile(fpath)

    for mod in (cifar, celeba, flowers):
        monkeypatch.setattr(mod, "check_integrity", exists_only)


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_like(tmp_path, name, folder):
    _make_mnist(tmp_path, folder)
    d = load_dataset(name, {}, tmp_path)
    assert d.x_train.shape == (30, 1, 32, 32) and d.x_test.shape == (12, 1, 32, 32)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64 and d.is_image
    assert d.num_classes == 10 and len(d.class_names) == 10
    assert d.x_train.min() >= -1 and d.x_train.max() <= 1
    assert _image_values(d.x_train) == [_mnist_value(i, 0) for i in range(30)]
    assert _image_values(d.x_test) == [_mnist_value(i, 1) for i in range(12)]
    assert d.y_train.tolist() == [i % 10 for i in range(30)]
    # the resize keeps constant regions exact and the strip on top
    v = from_uint8(torch.tensor(_mnist_value(3, 0), dtype=torch.uint8))
    assert torch.all(d.x_train[3, 0, 12:] == v) and torch.all(d.x_train[:, 0, :5] == -1)
    # 64 px; deterministic subsets with labels still attached to their images
    d64 = load_dataset(name, {"size": 64, "max_train": 7, "max_test": 5}, tmp_path, seed=1)
    assert d64.x_train.shape == (7, 1, 64, 64) and d64.x_test.shape == (5, 1, 64, 64)
    idx = [[_mnist_value(i, 0) for i in range(30)].index(v) for v in _image_values(d64.x_train)]
    assert d64.y_train.tolist() == [i % 10 for i in idx]
    _same(d64, load_dataset(name, {"size": 64, "max_train": 7, "max_test": 5}, tmp_path, seed=2))
    other = load_dataset(name, {"max_train": 7, "max_test": 5, "split_seed": 3}, tmp_path)
    assert other.y_train.tolist() != d64.y_train.tolist() or _image_values(other.x_train) != _image_values(d64.x_train)
    DATASETS.get(name).check_available({}, tmp_path)
    DATASETS.get(name).download({}, tmp_path)  # files present: torchvision fetches nothing
    with pytest.raises(ConfigError, match=r"params\.size: 48 is not one of 28, 32, 64"):
        load_dataset(name, {"size": 48}, tmp_path)
    with pytest.raises(ConfigError, match=r"params\.max_train: 0 is out of range"):
        load_dataset(name, {"max_train": 0}, tmp_path)


def _cifar_image(i: int) -> np.ndarray:
    """(3, 32, 32) uint8: red grows down the rows, green along the columns, blue = 40 (i % 6)."""
    h, w = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    return np.stack([8 * h, 8 * w, np.full((32, 32), 40 * (i % 6))]).astype(np.uint8)



def _make_cifar(root: Path, n_per_batch=4, n_test=6) -> None:
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)

    def batch(n, offset):
        # CIFAR rows are 3072 bytes: the R plane, then G, then B (each 32 x 32, row-major)
        data = np.stack([_cifar_image(offset + i).reshape(3072) for i in range(n)])
        return {"data": data, "labels": [(offset + i) % 10 for i in range(n)], "batch_label": "x"}

    for k in range(1, 6):
        with open(base / f"data_batch_{k}", "wb") as f:
            pickle.dump(batch(n_per_batch, (k - 1) * n_per_batch), f)
    with open(base / "test_batch", "wb") as f:
        pickle.dump(batch(n_test, 100), f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                     "horse", "ship", "truck"], "num_vis": 3072}, f)


def test_cifar10(tmp_path, no_md5):
    _make_cifar(tmp_path)
    d = load_dataset("cifar10", {}, tmp_path)
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (6, 3, 32, 32)
    assert d.class_names[0] == "airplane" and d.num_classes == 10
    assert d.y_train.tolist() == [i % 10 for i in range(20)]
    for i in range(20):  # channels and orientation survive the HWC -> CHW conversion
        assert torch.equal(d.x_train[i], from_uint8(torch.from_numpy(_cifar_image(i))))
    d64 = load_dataset("cifar10", {"size": 64, "max_test": 2}, tmp_path)
    assert d64.x_train.shape == (20, 3, 64, 64) and d64.x_test.shape == (2, 3, 64, 64)
    DATASETS.get("cifar10").download({}, tmp_path)  # integrity passes: nothing fetched


def test_cifar10_corrupted_is_reported_as_missing(tmp_path):
    """Real md5 check (not patched): the fake batches fail it -> DatasetMissing."""
    _make_cifar(tmp_path)
    DATASETS.get("cifar10").check_available({}, tmp_path)  # the files are there
    with pytest.raises(DatasetMissing) as e:
        load_dataset("cifar10", {}, tmp_path)
    msg = str(e.value)
    assert "cifar10" in msg and "corrupted" in msg and "download" in msg and str(tmp_path) in msg


# CelebA aligned images are 178 wide x 218 high; the central 150 x 150 is one colour and
# the border another, so a correct 140 center crop sees only the centre colour.
CELEBA_CENTRE, CELEBA_BORDER = (200, 40, 90), (0, 255, 0)


def _make_celeba(root: Path, partition=(0, 0, 0, 1, 2, 2, 0)) -> None:
    from PIL import Image

    base = root / "celeba"
    (base / "img_align_celeba").mkdir(parents=True)
    names = [f"{i + 1:06d}.jpg" for i in range(len(partition))]
    for name in names:
        img = np.zeros((218, 178, 3), dtype=np.uint8)
        img[:] = CELEBA_BORDER
        img[34:184, 14:164] = CELEBA_CENTRE
        Image.fromarray(img).save(base / "img_align_celeba" / name, quality=95)
    n = len(names)
    (base / "list_eval_partition.txt").write_text("".join(f"{m} {p}\n" for m, p in zip(names, partition)))
    (base / "identity_CelebA.txt").write_text("".join(f"{m} {i + 1}\n" for i, m in enumerate(names)))
    (base / "list_bbox_celeba.txt").write_text(
        f"{n}\nimage_id x_1 y_1 width height\n" + "".join(f"{m}  95  71 226 313\n" for m in names))
    lm = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
    (base / "list_landmarks_align_celeba.txt").write_text(
        f"{n}\n{lm}\n" + "".join(f"{m}  69 109 106 113 77 142 73 152 108 154\n" for m in names))
    attrs = " ".join(f"attr{k}" for k in range(40))
    (base / "list_attr_celeba.txt").write_text(
        f"{n}\n{attrs} \n" + "".join(f"{m} " + " ".join(["-1", " 1"] * 20) + "\n" for m in names))


def test_celeba(tmp_path, no_md5):
    _make_celeba(tmp_path)
    d = load_dataset("celeba", {}, tmp_path)
    assert d.x_train.shape == (4, 3, 32, 32) and d.x_test.shape == (2, 3, 32, 32)  # valid (1) unused
    assert d.y_train is None and d.num_classes is None and d.is_image
    want = torch.tensor(CELEBA_CENTRE, dtype=torch.float32)[:, None, None] / 127.5 - 1
    assert (d.x_train - want).abs().max() < 12 / 127.5  # jpeg noise only: no border pixels
    d64 = load_dataset("celeba", {"size": 64, "max_train": 3}, tmp_path)
    assert d64.x_train.shape == (3, 3, 64, 64)
    # without the center crop the border colour would show
    wide = load_dataset("celeba", {"crop": 178}, tmp_path)
    assert (wide.x_train - want).abs().max() > 0.5
    DATASETS.get("celeba").download({}, tmp_path)


def _make_flowers(root: Path) -> None:
    from PIL import Image
    from scipy.io import savemat

    base = root / "flowers-102"
    (base / "jpg").mkdir(parents=True)
    for i in range(1, 9):  # non-square images of different shapes, constant colour i * 25
        Image.fromarray(np.full((40 + 3 * i, 60, 3), 25 * i, dtype=np.uint8)).save(
            base / "jpg" / f"image_{i:05d}.jpg", quality=95)
    savemat(base / "imagelabels.mat", {"labels": np.array([[5, 1, 102, 7, 7, 3, 2, 1]], dtype=np.uint8)})
    savemat(base / "setid.mat", {"trnid": np.array([[1, 2]]), "valid": np.array([[3, 4]]),
                                 "tstid": np.array([[5, 6, 7, 8]])})


def test_flowers102(tmp_path, no_md5):
    _make_flowers(tmp_path)
    d = load_dataset("flowers102", {}, tmp_path)
    assert d.x_train.shape == (4, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32)
    assert d.num_classes == 102 and d.class_names[0] == "pink primrose"
    assert d.y_train.tolist() == [4, 0, 101, 6] and d.y_test.tolist() == [6, 2, 1, 0]  # 1-based in the .mat
    assert [round(v / 25) for v in _image_values(d.x_train)] == [1, 2, 3, 4]  # images follow labels
    assert [round(v / 25) for v in _image_values(d.x_test)] == [5, 6, 7, 8]
    assert load_dataset("flowers102", {"train_split": "train"}, tmp_path).x_train.shape[0] == 2
    assert load_dataset("flowers102", {"train_split": "all", "size": 64}, tmp_path).x_train.shape == (8, 3, 64, 64)
    with pytest.raises(ConfigError, match=r"params\.train_split: 'val' is not one of"):
        load_dataset("flowers102", {"train_split": "val"}, tmp_path)
    DATASETS.get("flowers102").download({}, tmp_path)


def _make_folder(root: Path, classes=("cat", "dog"), n=5) -> None:
    from PIL import Image

    for c, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((20, 30, 3), 10 * i + 100 * c, dtype=np.uint8)).save(root / cls / f"{i}.png")


def test_image_folder(tmp_path):
    _make_folder(tmp_path / "pets")
    d = load_dataset("image_folder", {"path": "pets"}, tmp_path)
    assert d.x_train.shape == (8, 3, 32, 32) and d.x_test.shape == (2, 3, 32, 32)
    assert d.class_names == ["cat", "dog"] and d.num_classes == 2
    assert torch.bincount(d.y_test).tolist() == [1, 1]  # stratified
    # PNG is lossless: the constant value identifies the class
    assert all(v // 100 == y for v, y in zip(_image_values(d.x_train), d.y_train.tolist()))
    assert len(set(_image_values(d.x_train)) | set(_image_values(d.x_test))) == 10  # disjoint, complete
    _same(d, load_dataset("image_folder", {"path": str(tmp_path / "pets")}, tmp_path, seed=4))
    with pytest.raises(ConfigError, match=f"resolves to {tmp_path / 'pets'}, outside data_root /"):
        load_dataset("image_folder", {"path": str(tmp_path / "pets")}, "/elsewhere")
    g = load_dataset("image_folder", {"path": "pets", "channels": 1, "size": 64, "max_train": 3}, tmp_path)
    assert g.x_train.shape == (3, 1, 64, 64)
    # explicit train/ and test/ folders
    _make_folder(tmp_path / "split" / "train", n=3)
    _make_folder(tmp_path / "split" / "test", n=2)
    s = load_dataset("image_folder", {"path": "split"}, tmp_path)
    assert s.x_train.shape[0] == 6 and s.x_test.shape[0] == 4
    with pytest.raises(ConfigError, match="'path'"):
        load_dataset("image_folder", {}, tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetMissing, match="class folder"):
        load_dataset("image_folder", {"path": "empty"}, tmp_path)


@pytest.mark.parametrize("name", VISION + ["image_folder"])
def test_missing_dataset_message(tmp_path, name):
    params = {"path": "faces"} if name == "image_folder" else {}
    for call in (lambda: load_dataset(name, params, tmp_path),
                 lambda: DATASETS.get(name).check_available({**DATASETS.get(name).defaults, **params}, tmp_path)):
        with pytest.raises(DatasetMissing) as e:
            call()
        msg = str(e.value)
        assert name in msg and str(tmp_path) in msg and "download" in msg
        if name != "image_folder":
            assert f"ebm-bench download --dataset {name} --data-root {tmp_path}" in msg


def test_mnist_236_subset_proportions_and_labels(tmp_path):
    """Paper 003's biased MNIST on fabricated idx files: only digits 2, 3, 6, exactly
    ``counts`` training images, a test split with the same proportions, labels 0..2 in the
    order of ``digits``, and the mode weights as truth."""
    _make_mnist(tmp_path, "MNIST", n_train=200, n_test=60)  # labels i % 10: 20 / 6 per digit
    d = load_dataset("mnist_236", {"counts": [8, 4, 2]}, tmp_path)
    assert d.x_train.shape == (14, 1, 28, 28) and d.x_test.shape == (10, 1, 28, 28)
    assert d.truth["mode_weights"] == pytest.approx([8 / 14, 4 / 14, 2 / 14])
    assert d.num_classes == 3 and d.class_names == ["2", "3", "6"]
    for x, y, split, n, want in ((d.x_train, d.y_train, 0, 200, [8, 4, 2]), (d.x_test, d.y_test, 1, 60, [6, 3, 1])):
        values = [_mnist_value(i, split) for i in range(n)]
        original = [values.index(v) % 10 for v in _image_values(x)]  # each image's original label
        assert [[2, 3, 6][k] for k in y.tolist()] == original
        assert [original.count(k) for k in (2, 3, 6)] == want
    again = load_dataset("mnist_236", {"counts": [8, 4, 2]}, tmp_path)
    _same(d, again)
    other = load_dataset("mnist_236", {"counts": [8, 4, 2], "split_seed": 1}, tmp_path)
    assert _image_values(other.x_train) != _image_values(d.x_train)
    with pytest.raises(ConfigError, match="'counts'.*digit 2 has 20"):
        load_dataset("mnist_236", {"counts": [21, 4, 2]}, tmp_path)
    with pytest.raises(ConfigError, match="'counts'"):
        load_dataset("mnist_236", {"counts": [8, 4]}, tmp_path)
    with pytest.raises(ConfigError, match=r"params\.size: 30 is not one of"):
        load_dataset("mnist_236", {"size": 30}, tmp_path)


def test_partially_present_dataset_is_missing(tmp_path):
    _make_mnist(tmp_path, "MNIST")
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetMissing, match="t10k-labels-idx1-ubyte"):
        load_dataset("mnist", {}, tmp_path)
