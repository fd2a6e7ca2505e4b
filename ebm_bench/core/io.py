"""Small, safe file helpers: atomic writes and data-only loading."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_torch(obj: Any, path: Path) -> None:
    import torch  # here, not at import: the tables and figure jobs never load torch

    atomic_write_bytes(path, lambda f: torch.save(obj, f))


def load_torch(path: Path, map_location: Any = "cpu") -> Any:
    """Checkpoints from others must never run code here: tensors and plain data only."""
    import torch

    return torch.load(path, map_location=map_location, weights_only=True)


def write_json(obj: Any, path: Path) -> None:
    data = json.dumps(obj, indent=2, sort_keys=True, allow_nan=True).encode()
    atomic_write_bytes(path, lambda f: f.write(data))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def spec_hash(spec: dict) -> str:
    """Identity of a run's configuration: a checkpoint of another config is not resumed."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
