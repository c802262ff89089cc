#!/usr/bin/env python3
"""Kaldi data directory of the simulated RIRs of RIRS_NOISES (utterance id smallroom-Room001-00001).

Usage: local/prepare_rirs.py [--nj N] RIRS_ROOT OUT_DIR
RIRS_ROOT is the RIRS_NOISES folder or its parent; OUT_DIR e.g. data/rirs.
"""

import argparse
import sys
from pathlib import Path

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nj", type=int, default=4, help="parallel processes reading wav headers [4]")
    parser.add_argument("rirs_root")
    parser.add_argument("out_dir", help="e.g. data/rirs")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from musan import prepare_rirs

    prepare_rirs(args.rirs_root, args.out_dir, num_jobs=args.nj)


if __name__ == "__main__":
    run_main(main)
