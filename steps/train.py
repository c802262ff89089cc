#!/usr/bin/env python3
"""Stage 2: train ECAPA-TDNN + AAM-softmax (run directly, or under torchrun for several processes).

Usage: steps/train.py --config conf/ecapa_mini.yaml --data data/mini/train --exp exp/ecapa_mini
           [--fbank-conf conf/fbank.conf]
Rerunning resumes from the newest checkpoint in EXP/models/ (only with the config and
data it was made with: EXP/models/.train.stamp). --allow-pipes runs feats.scp pipe entries; wav.scp pipes
(ffmpeg for m4a) are refused: they would run once per example, so convert to wav first. After training, the main
process draws EXP/plots/learning_curve.png from EXP/log/history.tsv and, with
--fbank-conf, stores the fbank options of the training features as EXP/fbank.conf (and
EXP/untrained/fbank.conf), where the verify/embed tools and the ONNX export read them. --shards LIST reads
the examples from the tar shards of DATA (steps/make_shards.py; --feats for the fbank front end) instead
of its wav.scp or feats.scp files: the same examples, from a few large files.
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="experiment YAML")
    parser.add_argument("--data", required=True, help="training data directory")
    parser.add_argument("--exp", required=True, help="experiment directory")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--fbank-conf", default=None,
                        help="fbank options of the training features, copied into the model directories")
    parser.add_argument("--shards", default=None,
                        help="shard list of the data dir (steps/make_shards.py): read the examples from its shards")
    parser.add_argument("--allow-pipes", action="store_true", help="run 'command |' entries of wav.scp/feats.scp")
    args = parser.parse_args()

    from pyfunc.data.audio import allow_pipes
    from pyfunc.pipeline.train_stage import run_training

    allow_pipes(args.allow_pipes)
    run_training(args.config, args.data, args.exp, args.device, args.fbank_conf, args.shards)


if __name__ == "__main__":
    run_main(main)
