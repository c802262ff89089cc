"""Shared entry point of the command-line tools: logging, errors as one ``error:`` line, and signals."""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Callable

from pyfunc.errors import PyfuncError
from pyfunc.logs import LOG_FORMAT

TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # timeout, scancel, systemd; a closed terminal


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl-C raises KeyboardInterrupt, so that the same cleanup runs
    (``except BaseException``/``finally`` blocks remove temporaries and stop job processes)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_HANDLER_PID: int | None = None  # the process that installed the handlers (forked children die as before)


def _terminate(signum: int, frame: object) -> None:
    if os.getpid() != _HANDLER_PID:  # a forked child (DataLoader worker ...): the default action
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    for other in TERMINATING_SIGNALS:  # a second signal must not interrupt the cleanup
        signal.signal(other, signal.SIG_IGN)
    raise Terminated(signum)


def handle_termination() -> None:
    """Turn SIGTERM and SIGHUP into :class:`Terminated` in this process (as Ctrl-C is a KeyboardInterrupt)."""
    global _HANDLER_PID
    _HANDLER_PID = os.getpid()
    for signum in TERMINATING_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:  # nohup's SIGHUP stays ignored
            signal.signal(signum, _terminate)


def interrupted_status(err: KeyboardInterrupt) -> int:
    """The exit status of a run stopped by Ctrl-C (130) or by :class:`Terminated` (128 + the signal)."""
    return 128 + (err.signum if isinstance(err, Terminated) else signal.SIGINT)


def run_main(main: Callable[[], int | None]) -> None:
    """Set up logging, run ``main`` and exit with its status (None counts as 0).

    A :class:`PyfuncError` is the user's problem, not a bug: it prints ``error: <message>``
    to stderr (no traceback) and exits 1, and so does an OSError (a full disk, a missing
    permission: outputs are written atomically, so the old ones are intact). Ctrl-C exits 130;
    SIGTERM and SIGHUP are handled the same way (temporaries removed, job processes stopped) and
    exit 128 + the signal (143, 129).
    """
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    handle_termination()
    try:
        status = main()
    except PyfuncError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except OSError as err:  # a full disk, a missing permission ...: the environment, not a bug
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as err:
        print(f"interrupted ({err})" if isinstance(err, Terminated) else "interrupted", file=sys.stderr)
        sys.exit(interrupted_status(err))
    sys.exit(status or 0)
