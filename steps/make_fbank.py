#!/usr/bin/env python3
"""Stage 1: Kaldi fbank features of a data directory into ark/scp (adds feats.scp, utt2num_frames).

Usage: steps/make_fbank.py [--nj N] [--cmd LAUNCHER] [--conf conf/fbank.conf] DATA_DIR FEAT_DIR LOG_DIR
"""

import argparse

from pyfunc.cli import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nj", type=int, default=1, help="number of parallel jobs")
    parser.add_argument("--cmd", default="", help="launcher prefix for each job, e.g. 'srun -c 1' (default: local)")
    parser.add_argument("--conf", default="conf/fbank.conf", help="Kaldi-style fbank options file")
    parser.add_argument("data_dir")
    parser.add_argument("feat_dir", help="where the ark/scp files go")
    parser.add_argument("log_dir", help="where the per-job logs go")
    args = parser.parse_args()

    from pyfunc.datadir import validate_data_dir
    from pyfunc.features import make_fbank

    make_fbank(args.data_dir, args.conf, args.feat_dir, args.log_dir, args.nj, args.cmd)
    validate_data_dir(args.data_dir, check_wavs=False)


if __name__ == "__main__":
    run_main(main)
