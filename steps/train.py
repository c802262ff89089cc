#!/usr/bin/env python3
"""Stage 2: train ECAPA-TDNN + AAM-softmax (run directly, or under torchrun for several processes).

Usage: steps/train.py --config conf/ecapa_mini.yaml --data data/mini/train --exp exp/ecapa_mini
Rerunning resumes from the newest checkpoint in EXP/models/.
"""

import argparse

from pyfunc.cli import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="experiment YAML")
    parser.add_argument("--data", required=True, help="training data directory")
    parser.add_argument("--exp", required=True, help="experiment directory")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    args = parser.parse_args()

    from pyfunc.config import load_config
    from pyfunc.train import train

    train(load_config(args.config), args.data, args.exp, args.device)


if __name__ == "__main__":
    run_main(main)
