"""The per-job process of the VAD stage (:func:`pyfunc.pipeline.vad_stage.make_vad`).

Run as ``python -m pyfunc.cli.vad_worker [options] PART_DIR ARK SCP``; a failure prints the message and exits 1.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pyfunc.cli.runner import handle_termination
from pyfunc.errors import PyfuncError
from pyfunc.logs import LOG_FORMAT
from pyfunc.pipeline.jobs import ProgressReporter
from pyfunc.pipeline.vad_stage import make_vad_part


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyfunc.cli.vad_worker")
    parser.add_argument("--vad-conf", required=True)
    parser.add_argument("--fbank-conf", required=True)
    parser.add_argument("--progress", default=None)
    parser.add_argument("--skip-bad-audio", action="store_true")
    parser.add_argument("--resample", action="store_true", help="resample audio at another rate")
    parser.add_argument("data")
    parser.add_argument("ark")
    parser.add_argument("scp")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    handle_termination()  # the driver stops its jobs with SIGTERM: writers remove their temporaries
    progress = ProgressReporter(args.progress)
    try:
        make_vad_part(args.data, args.vad_conf, args.fbank_conf, args.ark, args.scp, progress=progress,
                      skip_bad=args.skip_bad_audio, resample=args.resample)
    except PyfuncError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    progress.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
