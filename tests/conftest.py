import os

from pathlib import Path

import pytest
import torch

from ebm_bench.data import Dataset

# tests run on few cores; keep torch from oversubscribing them
torch.set_num_threads(int(os.environ.get("EBM_BENCH_TEST_THREADS", "1")))


def _tiny_image_data(n: int = 64) -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.rand((n, 1, 8, 8), generator=g) * 2 - 1
    y = torch.randint(0, 3, (n,), generator=g)
    return Dataset("tiny_images", x, x[:16], y, y[:16], is_image=True, num_classes=3)


def _tiny_vector_data(n: int = 128) -> Dataset:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn((n, 2), generator=g) * 0.3 + (y.float() * 2 - 1)[:, None]
    return Dataset("tiny_vectors", x, x[:32], y, y[:32], is_image=False, num_classes=2)


@pytest.fixture(params=["image", "vector"])
def tiny_data(request) -> Dataset:
    return _tiny_image_data() if request.param == "image" else _tiny_vector_data()


@pytest.fixture(scope="session")
def untrained_classifier(tmp_path_factory) -> dict[str, Path]:
    """An untrained (fixed random weights) domain classifier per digits dataset: its
    weights only need to be fixed, not good (the metric-protocol and flag tests)."""
    from ebm_bench.data import load_dataset
    from ebm_bench.nets.domain_classifier import save_classifier
    from ebm_bench.training.classifier import train_domain_classifier

    out = {}
    for name in ("digits", "digits_236"):
        d = load_dataset(name, {}, "data")
        ckpt, _ = train_domain_classifier(d.x_train[:32], d.y_train[:32], d.x_test[:32], d.y_test[:32],
                                          epochs=0, num_classes=d.num_classes)
        path = tmp_path_factory.mktemp(name) / "clf.pt"
        save_classifier(path, ckpt)
        out[name] = path
    return out


def pytest_collection_modifyitems(config, items):
    """Longest tests first (the SLURM cluster test, then the workflow tests): under
    `pytest -n 2` they start at once on the two workers instead of last, which keeps the
    whole run short. The sort is stable; the rest keeps its order."""
    items.sort(key=lambda it: 0 if it.get_closest_marker("slurm") else 1 if it.get_closest_marker("workflow") else 2)


@pytest.fixture
def float64():
    """torch's default dtype float64 for the test (reference comparisons run in float64)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)
