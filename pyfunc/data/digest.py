"""SHA-256 of a file's bytes: ties a model directory's side files (ONNX export, embedding mean,
calibration) to the ``model.pt`` they were made with."""

from __future__ import annotations

import hashlib

from pyfunc.data.atomic import PathLike


def file_sha256(path: PathLike) -> str:
    """Hex SHA-256 of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
