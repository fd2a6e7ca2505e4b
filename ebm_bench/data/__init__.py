"""Datasets behind a registry: ``DATASETS.get(name).load(params, data_root, seed)``."""

from ebm_bench.data.base import Dataset, DatasetSpec, from_uint8, load_dataset, register_dataset, to_uint8

__all__ = ["Dataset", "DatasetSpec", "from_uint8", "load_dataset", "register_dataset", "to_uint8"]
