"""Names made from a directory's path: a data dir's name names its features, embeddings and scores.

``data/x/sub/..`` is the data dir ``data/x`` (its basename ``..`` would put the embeddings into the model
directory itself), and an output folder named ``.`` or ``..`` (made by a script from such a basename) is
refused rather than written into its parent.
"""

from __future__ import annotations

import os

from pyfunc.data.atomic import PathLike
from pyfunc.errors import DataError

DOT_NAMES = ("", ".", "..")


def data_dir_name(path: PathLike) -> str:
    """The name of the directory ``path`` with ``.`` and ``..`` resolved (``data/x/sub/..`` -> ``x``);
    a DataError when there is none (``/``)."""
    name = os.path.basename(os.path.normpath(os.path.abspath(path)))
    if name in DOT_NAMES:
        raise DataError(f"{path!s}: no name to name its outputs by; give the directory by a path that ends in its "
                        "name")
    return name


def check_output_dir_name(path: PathLike, what: str) -> None:
    """DataError when the output folder ``path`` is written as ending in ``.`` or ``..`` (``emb/..``): a name
    made from such a data dir's basename, which would write into the folder above."""
    name = os.path.basename(os.fspath(path).rstrip("/"))
    if name in (".", ".."):
        raise DataError(f"{path!s}: {what} named {name!r}: its outputs would land in "
                        f"{os.path.normpath(os.fspath(path))}; name the data dir by a path ending in its own name "
                        f"(data/x, not data/x/sub/..)")
