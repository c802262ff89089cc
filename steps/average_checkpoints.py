#!/usr/bin/env python3
"""Average the last N epoch checkpoints of a training run into a model directory (WeSpeaker's num_avg).

Usage: steps/average_checkpoints.py --exp EXP --last N [--out MODEL_DIR]
Reads EXP/config.yaml and EXP/models/epoch_*.pt, writes MODEL_DIR/config.yaml and model.pt (default: EXP,
replacing its model.pt). Parameters and BatchNorm statistics are averaged; train.average_last: N in the
config does the same at the end of training.
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp", required=True, help="experiment directory (config.yaml, models/epoch_*.pt)")
    parser.add_argument("--last", type=int, required=True, help="number of newest epoch checkpoints to average")
    parser.add_argument("--out", default=None, help="model directory to write [EXP]")
    args = parser.parse_args()

    import logging
    from pathlib import Path

    from pyfunc.config import load_config
    from pyfunc.models.averaging import average_into_model_dir

    exp = Path(args.exp)
    paths = average_into_model_dir(exp / "models", args.last, load_config(exp / "config.yaml"), args.out or exp)
    logging.getLogger("steps.average_checkpoints").info("averaged %s into %s", ", ".join(p.name for p in paths),
                                                        Path(args.out or exp) / "model.pt")


if __name__ == "__main__":
    run_main(main)
