#!/usr/bin/env python3
"""Kaldi data directories of MUSAN: OUT_ROOT/musan_noise, musan_music, musan_speech.

Usage: local/prepare_musan.py [--nj N] [--segment-seconds 5 --hop-seconds 3] MUSAN_ROOT OUT_ROOT
MUSAN_ROOT is the musan folder (noise/ music/ speech/) or its parent. By default each data dir
has a Kaldi segments file that cuts the files as the seed's musan_split does (5 s segments every
3 s, files of 5 s or less left out), without copying audio; --segment-seconds 0 makes each whole
file one utterance (recording id = file stem).
"""

import argparse
import sys
from pathlib import Path

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nj", type=int, default=4, help="parallel processes reading wav headers [4]")
    parser.add_argument("--segment-seconds", type=float, default=5.0,
                        help="segment length; 0: whole files, no segments file [5, the seed's]")
    parser.add_argument("--hop-seconds", type=float, default=3.0, help="segment hop [3, the seed's]")
    parser.add_argument("musan_root")
    parser.add_argument("out_root", help="e.g. data")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from musan import prepare_musan

    prepare_musan(args.musan_root, args.out_root, num_jobs=args.nj, segment_seconds=args.segment_seconds,
                  hop_seconds=args.hop_seconds)


if __name__ == "__main__":
    run_main(main)
