"""Shared entry point of the command-line tools: logging, and errors as one ``error:`` line."""

from __future__ import annotations

import logging
import sys
from typing import Callable

from pyfunc.errors import PyfuncError
from pyfunc.logs import LOG_FORMAT


def run_main(main: Callable[[], int | None]) -> None:
    """Set up logging, run ``main`` and exit with its status (None counts as 0).

    A :class:`PyfuncError` is the user's problem, not a bug: it prints ``error: <message>``
    to stderr (no traceback) and exits 1, and so does an OSError (a full disk, a missing
    permission: outputs are written atomically, so the old ones are intact). Ctrl-C exits 130.
    """
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    try:
        status = main()
    except PyfuncError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except OSError as err:  # a full disk, a missing permission ...: the environment, not a bug
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)
