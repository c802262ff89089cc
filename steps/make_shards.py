#!/usr/bin/env python3
"""Write a training data directory as tar shards for stage 2 (steps/train.py --shards OUT_DIR/shards.list).

Usage: steps/make_shards.py [--utts-per-shard N] [--feats] [--random-seed N] DATA_DIR OUT_DIR

Each shard OUT_DIR/shard_NNNNNN.tar holds N utterances (shuffled once with --random-seed, so that every shard
mixes speakers): the bytes of each wav.scp audio file (or, with --feats, the feats.scp matrix as float32
.npy) and the speaker and its stage-2 label. OUT_DIR/shards.list names the shards, one per line. Reading a
few large files front to back, instead of millions of small ones, is what a shared file system serves
well; train with the same DATA_DIR, whose utt2spk gives the speakers.
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utts-per-shard", type=int, default=1000, help="utterances per shard [1000]")
    parser.add_argument("--feats", action="store_true", help="store the fbank matrices of feats.scp, not the audio")
    parser.add_argument("--random-seed", type=int, default=0, help="random seed of the shuffle before sharding [0]")
    parser.add_argument("data_dir", help="training data directory")
    parser.add_argument("out_dir", help="where the shards and shards.list go")
    args = parser.parse_args()

    from pyfunc.training.shard_writer import make_shards

    make_shards(args.data_dir, args.out_dir, args.utts_per_shard, args.feats, args.random_seed)


if __name__ == "__main__":
    run_main(main)
