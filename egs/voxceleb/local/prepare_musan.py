#!/usr/bin/env python3
"""Kaldi data directories of MUSAN: OUT_ROOT/musan_noise, musan_music, musan_speech (utterance id = file stem).

Usage: local/prepare_musan.py [--nj N] MUSAN_ROOT OUT_ROOT
MUSAN_ROOT is the musan folder (noise/ music/ speech/) or its parent.
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nj", type=int, default=4, help="parallel processes reading wav headers [4]")
    parser.add_argument("musan_root")
    parser.add_argument("out_root", help="e.g. data")
    args = parser.parse_args()

    from pyfunc.corpora.musan import prepare_musan

    prepare_musan(args.musan_root, args.out_root, num_jobs=args.nj)


if __name__ == "__main__":
    run_main(main)
