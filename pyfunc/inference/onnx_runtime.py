"""Embedding with an ONNX export of a model directory in onnxruntime."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from pyfunc.data.atomic import PathLike
from pyfunc.data.digest import file_sha256
from pyfunc.errors import DataError
from pyfunc.models.ecapa import ECAPATDNN

logger = logging.getLogger(__name__)

ONNX_FORMAT = "pyfunc-onnx-1"


def ort_session(path: PathLike, threads: int | None = None):
    """An onnxruntime CPU session of ``path`` (``threads``: intra-op threads, default torch's thread count)."""
    import onnxruntime as ort  # noqa: PLC0415 (optional: only the ONNX tools need it)

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for unreadable or invalid files
        raise DataError(f"{path}: onnxruntime cannot load this model: {type(err).__name__}: {err}") from None


def run_session(session, items: Sequence[np.ndarray]) -> np.ndarray:
    name = session.get_inputs()[0].name
    return session.run(None, {name: np.ascontiguousarray(np.stack(items), dtype=np.float32)})[0]


def onnx_metadata(path: PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (without loading the weights into a runtime)."""
    import onnx  # noqa: PLC0415 (optional: only the ONNX tools need it)

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: ONNX file not found")
    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf decode errors and the like
        raise DataError(f"{path}: not a readable ONNX file: {type(err).__name__}: {err}") from None
    return {prop.key: prop.value for prop in graph.metadata_props}


class OnnxEmbedder:
    """An :class:`~pyfunc.inference.embedder.Embedder` that runs an export of the model directory in onnxruntime.

    The export must take the model's native input (features for fbank models, the waveform
    for seed models) and come from the same ``model.pt`` (checked by its SHA-256).
    """

    def __init__(self, onnx_path: PathLike, model_dir: PathLike, encoder: ECAPATDNN, threads: int | None = None):
        onnx_path, model_dir = Path(onnx_path), Path(model_dir)
        meta = onnx_metadata(onnx_path)
        if meta.get("pyfunc_format") != ONNX_FORMAT:
            raise DataError(f"{onnx_path}: not exported by pyfunc (no {ONNX_FORMAT!r} metadata); "
                            f"export it with steps/export_onnx.py")
        native = "waveform" if encoder.frontend == "seed" else "features"
        if meta.get("pyfunc_input") != native:
            raise DataError(f"{onnx_path}: takes {meta.get('pyfunc_input')} input, but stage 3 feeds this "
                            f"{encoder.frontend} model {native}; export it with the default front-end setting")
        if meta.get("pyfunc_model_sha256") != file_sha256(model_dir / "model.pt"):
            raise DataError(f"{onnx_path}: exported from another model.pt than {model_dir / 'model.pt'}; "
                            f"export it again")
        self.path = onnx_path
        self.frontend = encoder.frontend
        self.feat_dim = encoder.feat_dim
        self.embed_dim = encoder.embed_dim
        self.on_gpu = False  # onnxruntime's CPU provider
        env_threads = os.environ.get("OMP_NUM_THREADS", "")
        self.session = ort_session(onnx_path, threads or (int(env_threads) if env_threads.isdigit() else None))

    def embed_batch(self, items: Sequence[np.ndarray | torch.Tensor]) -> np.ndarray:
        """(len(items), embed_dim) float32; items of one shape run as one batch."""
        out = np.zeros((len(items), self.embed_dim), dtype=np.float32)
        arrays = [item.numpy() if isinstance(item, torch.Tensor) else item for item in items]
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, item in enumerate(arrays):
            groups.setdefault(tuple(item.shape), []).append(index)
        for indices in groups.values():
            out[indices] = run_session(self.session, [arrays[i] for i in indices])
        return out
