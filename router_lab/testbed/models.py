"""The real models the testbed runs: the device model in onnxruntime and the cloud model for the service.

For ``digits`` both are the dataset's own model families, fitted at start-up on the rows the
requests are *not* drawn from (so their answers on the served rows are held out, like the dataset's
out-of-fold outcomes) and exported to ONNX with skl2onnx: the device's logistic regression on the
pooled image (folded to the 64 raw pixels) and the cloud's RBF SVM.  With a bundle, the device runs
the bundle's ``device_graph.onnx``.  Datasets without a real model answer with the recorded outcome.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from router_lab.data.contract import Dataset

PIXELS = tuple(f"px_{j:02d}" for j in range(64))
OPSET = {"": 17, "ai.onnx.ml": 3}


@dataclass
class LiveModels:
    """What the live run needs of the models (None where the dataset has no real model)."""

    pixels: np.ndarray | None  # float32 [rows, 64]: the device's input and the upload's payload
    labels: np.ndarray | None  # int64 [rows]: the true answer
    device_onnx: bytes | None  # device model: input [n, 64] -> label (first output)
    cloud_onnx: bytes | None  # cloud model for the service
    source: str  # what was used, for testbed.json
    device_graph: Any = None  # a bundle's device graph (runtime DeviceRouter), used instead of device_onnx


def _to_onnx(model: Any, name: str) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    with warnings.catch_warnings():  # skl2onnx reads SVC's deprecated probA_/probB_
        warnings.simplefilter("ignore", FutureWarning)
        proto = convert_sklearn(model, name, initial_types=[("features", FloatTensorType([None, len(PIXELS)]))],
                                options={"zipmap": False}, target_opset=OPSET)
    return proto.SerializeToString()


def live_models(dataset: Dataset, dataset_cfg: Any, pool: np.ndarray, device_graph: Any = None) -> LiveModels:
    """The device and cloud models for ``dataset``; ``pool``: rows requests are drawn from."""
    frame = dataset.frame
    if getattr(dataset_cfg, "kind", None) != "digits" or not set(PIXELS) <= set(frame.columns):
        return LiveModels(None, None, None, None, "recorded outcomes (the dataset has no real models)")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from router_lab.data.digits import _device_pipeline, fold_device_model, pooling_matrix

    pixels = frame[list(PIXELS)].to_numpy(np.float32)
    labels = frame["label"].to_numpy(np.int64)
    fit_rows = np.setdiff1d(np.arange(len(frame)), pool)
    if fit_rows.size < 50:  # requests drawn from (nearly) every row: nothing is held out
        fit_rows = np.arange(len(frame))
    cloud = make_pipeline(StandardScaler(), SVC(C=dataset_cfg.cloud_C, gamma="scale"))
    cloud.fit(pixels[fit_rows], labels[fit_rows])
    source = f"digits: cloud RBF SVM fitted on the {fit_rows.size} rows outside the request pool"
    if device_graph is not None:
        return LiveModels(pixels, labels, None, _to_onnx(cloud, "cloud_model"),
                          source + "; device: the bundle's device_graph.onnx", device_graph)
    pool_matrix = pooling_matrix(dataset_cfg.pool)
    device = _device_pipeline(dataset_cfg).fit(pixels[fit_rows] @ pool_matrix.T, labels[fit_rows])
    return LiveModels(pixels, labels, _to_onnx(fold_device_model(device, pool_matrix), "device_model"),
                      _to_onnx(cloud, "cloud_model"), source + "; device: logistic regression fitted on the same rows")
