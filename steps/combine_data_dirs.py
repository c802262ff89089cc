#!/usr/bin/env python3
"""Kaldi's utils/combine_data.sh (and subset_data_dir.sh): the union of data directories, optionally subsampled.

Usage: steps/combine_data_dirs.py [--subset N] [--random-seed S] OUT_DIR IN_DIR...
e.g.   steps/combine_data_dirs.py --subset 1000000 data/vox2_dev_aug data/vox2_dev_{reverb,noise,music,babble}
       steps/combine_data_dirs.py data/vox2_dev_combined data/vox2_dev data/vox2_dev_aug

utt2spk, wav.scp and utt2aug are united; feats.scp, utt2num_frames and utt2dur only when every input has
them. Utterance ids must not repeat across inputs. With --subset N, N utterances of the union are kept,
drawn at random with --random-seed (Kaldi's VoxCeleb recipe keeps 1M of its augmented copies).
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subset", type=int, default=0, help="keep N random utterances of the union (0: all) [0]")
    parser.add_argument("--random-seed", "--seed", dest="random_seed", type=int, default=0,
                        help="random seed of the subset draw (--seed: its former name) [0]")
    parser.add_argument("out_dir")
    parser.add_argument("in_dirs", nargs="+", metavar="IN_DIR")
    args = parser.parse_args()

    from pyfunc.features.augment_offline import combine_and_subset

    combine_and_subset(args.out_dir, args.in_dirs, args.subset, args.random_seed)


if __name__ == "__main__":
    run_main(main)
