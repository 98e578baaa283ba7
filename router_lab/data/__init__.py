"""Routing datasets: the contract, validation, file I/O and the built-in builders."""

from router_lab.data.builders import build_dataset, resolve_dataset
from router_lab.data.contract import Dataset, validate_frame
from router_lab.data.files import load_dataset_file, write_dataset

__all__ = ["Dataset", "build_dataset", "load_dataset_file", "resolve_dataset", "validate_frame",
           "write_dataset"]
