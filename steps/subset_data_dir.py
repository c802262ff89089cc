#!/usr/bin/env python3
"""Kaldi's utils/subset_data_dir.sh --per-spk: the first N utterances of each speaker of a data directory.

Usage: steps/subset_data_dir.py --per-speaker N SRC_DIR OUT_DIR
e.g.   steps/subset_data_dir.py --per-speaker 2 data/mini/train_wide data/mini/cohort   (an AS-norm cohort)
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-speaker", type=int, required=True, help="utterances kept per speaker")
    parser.add_argument("src_dir")
    parser.add_argument("out_dir")
    args = parser.parse_args()

    from pyfunc.data.datadir import subset_per_speaker

    subset_per_speaker(args.src_dir, args.out_dir, args.per_speaker)


if __name__ == "__main__":
    run_main(main)
