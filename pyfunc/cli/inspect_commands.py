"""Arguments of the inspection tools of ``python -m pyfunc``: Kaldi's table tools (the work is in
:mod:`pyfunc.data.table_tools`) and ``info`` (:mod:`pyfunc.pipeline.artefact_info`).

    python -m pyfunc copy-vector scp:exp/ecapa_mini/embeddings/test/xvector.scp ark,t:-
    python -m pyfunc copy-feats --compress=true scp:data/mini/test/feats.scp ark,scp:feats.ark,feats.scp
    python -m pyfunc feat-to-dim scp:data/mini/test/feats.scp
    python -m pyfunc feat-to-len scp:data/mini/test/feats.scp ark,t:-
    python -m pyfunc vector-norms scp:exp/ecapa_mini/embeddings/test/xvector.scp
    python -m pyfunc mean-vector scp:exp/ecapa_mini/embeddings/test/xvector.scp
    python -m pyfunc subset --include keys.txt scp:xvector.scp ark,t:-
    python -m pyfunc info data/mini/test exp/ecapa_mini exp/ecapa_mini/scores/test_cosine --trials data/mini/test/trials

Boolean options take Kaldi's form (``--compress=true``); the log goes to standard error.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from typing import Callable

from pyfunc.data.audio import allow_pipes
from pyfunc.data.table_tools import (
    copy_feats,
    copy_vectors,
    feat_to_dim,
    feat_to_len,
    mean_vector,
    subset_table,
    vector_norms,
)
from pyfunc.pipeline.artefact_info import describe

logger = logging.getLogger(__name__)

RSPEC_HELP = "Kaldi rspecifier: scp:FILE, ark:FILE, ark:- (standard input), ark,t:FILE ..."
WSPEC_HELP = "Kaldi wspecifier: ark:FILE, ark,t:- (text on standard output), ark,scp:FILE.ark,FILE.scp ..."


def kaldi_bool(text: str) -> bool:
    """``true``/``false`` as Kaldi's boolean options take them (``--compress=true``)."""
    if text not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text == "true"


def _pipes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-pipes", action="store_true",
                        help="run 'cmd |' specifiers and scp entries (refused otherwise: they run a shell)")


def _start(args: argparse.Namespace) -> None:
    allow_pipes(args.allow_pipes)


def reader_may_stop(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Exit quietly with 141 (as a program killed by SIGPIPE) when the reader of standard output stops
    early (``... ark,t:- | head``), instead of a traceback or an error line."""
    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            return 141
    return wrapper


def add_copy_vector_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rspecifier", help=RSPEC_HELP)
    parser.add_argument("wspecifier", help=WSPEC_HELP)
    _pipes(parser)


@reader_may_stop
def run_copy_vector(args: argparse.Namespace) -> int:
    _start(args)
    logger.info("copied %d vectors", copy_vectors(args.rspecifier, args.wspecifier))
    return 0


def add_copy_feats_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rspecifier", help=RSPEC_HELP)
    parser.add_argument("wspecifier", help=WSPEC_HELP)
    parser.add_argument("--compress", type=kaldi_bool, nargs="?", const=True, default=False, metavar="true|false",
                        help="write Kaldi's compressed matrices (--compress=true) [false]")
    parser.add_argument("--compression-method", type=int, default=1,
                        help="Kaldi's CompressionMethod with --compress: 1 automatic, 2 speech features, "
                             "3-7 two- and one-byte forms [1]")
    _pipes(parser)


@reader_may_stop
def run_copy_feats(args: argparse.Namespace) -> int:
    _start(args)
    count = copy_feats(args.rspecifier, args.wspecifier, args.compress, args.compression_method)
    logger.info("copied %d feature matrices%s", count, " (compressed)" if args.compress else "")
    return 0


def add_feat_to_dim_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rspecifier", help=RSPEC_HELP)
    parser.add_argument("out", nargs="?", default="-",
                        help="'-' or a file: the dimension of the first entry; a wspecifier: every entry's [-]")
    _pipes(parser)


@reader_may_stop
def run_feat_to_dim(args: argparse.Namespace) -> int:
    _start(args)
    feat_to_dim(args.rspecifier, args.out)
    return 0


def add_feat_to_len_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rspecifier", help=RSPEC_HELP)
    parser.add_argument("wspecifier", nargs="?", default=None,
                        help="frames of every matrix (e.g. ark,t:-); without it the total is printed")
    _pipes(parser)


@reader_may_stop
def run_feat_to_len(args: argparse.Namespace) -> int:
    _start(args)
    feat_to_len(args.rspecifier, args.wspecifier)
    return 0


def add_vector_norms_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rspecifier", help=RSPEC_HELP)
    parser.add_argument("wspecifier", nargs="?", default="ark,t:-", help=f"{WSPEC_HELP} [ark,t:-]")
    _pipes(parser)


@reader_may_stop
def run_vector_norms(args: argparse.Namespace) -> int:
    _start(args)
    vector_norms(args.rspecifier, args.wspecifier)
    return 0


def add_mean_vector_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rspecifier", help=RSPEC_HELP)
    parser.add_argument("out", nargs="?", default="-", help="'-' (standard output) or a file [-]")
    parser.add_argument("--binary", type=kaldi_bool, nargs="?", const=True, default=False, metavar="true|false",
                        help="write a binary Kaldi vector rather than text [false]")
    _pipes(parser)


@reader_may_stop
def run_mean_vector(args: argparse.Namespace) -> int:
    _start(args)
    count, _ = mean_vector(args.rspecifier, args.out, args.binary)
    logger.info("mean of %d vectors", count)
    return 0


def add_subset_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rspecifier", help=RSPEC_HELP)
    parser.add_argument("wspecifier", help=WSPEC_HELP)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--include", metavar="FILE", help="keep the keys listed in FILE (first field of each line)")
    which.add_argument("--exclude", metavar="FILE", help="keep the keys not listed in FILE")
    _pipes(parser)


@reader_may_stop
def run_subset(args: argparse.Namespace) -> int:
    _start(args)
    written, seen = subset_table(args.rspecifier, args.wspecifier, args.include, args.exclude)
    logger.info("kept %d of %d entries", written, seen)
    return 0


def add_info_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="a data dir, model dir, embedding dir, scp/ark, score file or trials file")
    parser.add_argument("--trials", default=None, help="trials file for a score file's target/non-target means")
    parser.add_argument("--check-audio", action="store_true", help="data dir: also open every audio file")


def run_info(args: argparse.Namespace) -> int:
    """Print each description; exit 1 when a check failed (the failures are printed as ``error:`` lines)."""
    failed = False
    for path in args.paths:
        for info in describe(path, args.trials, args.check_audio):
            print(info.text(), end="", flush=True)
            for problem in info.problems:
                print(f"error: {problem}", file=sys.stderr)
                failed = True
    return 1 if failed else 0
