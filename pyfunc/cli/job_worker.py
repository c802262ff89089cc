"""The per-job processes that :func:`pyfunc.pipeline.jobs.run_jobs` launches for stages 1 and 3.

Run as ``python -m pyfunc.cli.job_worker fbank|embed ...``; a failure prints the message and exits 1.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pyfunc.cli.runner import handle_termination, interrupted_status
from pyfunc.errors import PyfuncError
from pyfunc.logs import LOG_FORMAT
from pyfunc.pipeline.extract_job import extract_embeddings
from pyfunc.pipeline.fbank_stage import make_fbank_part
from pyfunc.pipeline.jobs import ProgressReporter


def _fbank(args: argparse.Namespace) -> None:

    progress = ProgressReporter(args.progress)
    make_fbank_part(args.data, args.conf, args.ark, args.scp, progress=progress, skip_bad=args.skip_bad_audio,
                    bad_list=args.bad_list, compress=args.compress, resample=args.resample)
    progress.close()


def _embed(args: argparse.Namespace) -> None:

    progress = ProgressReporter(args.progress)
    extract_embeddings(args.model_dir, args.data, args.out, protocol=args.protocol, device=args.device,
                       batch_frames=args.batch_frames, progress=progress, onnx=args.onnx,
                       skip_bad=args.skip_bad_audio, bad_list=args.bad_list, resample=args.resample,
                       vad=args.vad)
    progress.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyfunc.cli.job_worker")
    sub = parser.add_subparsers(dest="task", required=True)
    fbank = sub.add_parser("fbank", help="fbank features of one data directory into one ark/scp")
    fbank.add_argument("--conf", required=True)
    fbank.add_argument("--progress", default=None)
    fbank.add_argument("--skip-bad-audio", action="store_true")
    fbank.add_argument("--compress", action="store_true", help="Kaldi-compressed matrices")
    fbank.add_argument("--resample", action="store_true", help="resample audio at another rate")
    fbank.add_argument("--bad-list", default=None, help="write 'utt reason' of bad audio here")
    fbank.add_argument("data")
    fbank.add_argument("ark")
    fbank.add_argument("scp")
    fbank.set_defaults(run=_fbank)
    embed = sub.add_parser("embed", help="embeddings of one data directory")
    embed.add_argument("--model-dir", required=True)
    embed.add_argument("--protocol", default="auto")
    embed.add_argument("--device", default="auto")
    embed.add_argument("--batch-frames", type=int, default=None)
    embed.add_argument("--progress", default=None)
    embed.add_argument("--skip-bad-audio", action="store_true")
    embed.add_argument("--bad-list", default=None, help="write 'utt reason' of bad inputs here")
    embed.add_argument("--onnx", default=None)
    embed.add_argument("--resample", action="store_true", help="resample audio at another rate (seed front end)")
    embed.add_argument("--vad", action="store_true", help="only the voiced frames, by DATA/vad.scp")
    embed.add_argument("data")
    embed.add_argument("out")
    embed.set_defaults(run=_embed)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    handle_termination()  # the driver stops its jobs with SIGTERM: writers remove their temporaries
    try:
        args.run(args)
    except PyfuncError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        print("interrupted", file=sys.stderr)
        return interrupted_status(err)
    return 0

if __name__ == "__main__":
    sys.exit(main())
