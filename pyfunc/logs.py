"""Log format shared by the command-line tools, the job processes and the training log."""

from __future__ import annotations

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
