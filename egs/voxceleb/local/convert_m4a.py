#!/usr/bin/env python3
"""Decode every .m4a under SRC_ROOT to 16 kHz mono 16-bit wav at the same relative path under DST_ROOT.

Usage: local/convert_m4a.py [--nj N] SRC_ROOT DST_ROOT
e.g.   local/convert_m4a.py --nj 16 /corpora/voxceleb2/dev/aac /corpora/voxceleb2/dev/wav
Needs ffmpeg. Files already converted are skipped, so an interrupted run resumes.
"""

import argparse
import logging

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nj", type=int, default=4, help="ffmpeg processes at a time [4]")
    parser.add_argument("src_root")
    parser.add_argument("dst_root")
    args = parser.parse_args()

    from pyfunc.data.m4a import convert_m4a_tree

    report = convert_m4a_tree(args.src_root, args.dst_root, num_jobs=args.nj)
    logging.info("converted %d files, %d already there", report.converted, report.skipped)


if __name__ == "__main__":
    run_main(main)
