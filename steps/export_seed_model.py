#!/usr/bin/env python3
"""Export a model directory (seed front end) as a checkpoint in the seed system's format.

Usage: steps/export_seed_model.py MODEL_DIR SEED_CHECKPOINT
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="model directory (config.yaml + model.pt) with model.frontend: seed")
    parser.add_argument("seed_checkpoint", help="output state dict (speaker_encoder.*, speaker_loss.weight)")
    args = parser.parse_args()

    from pyfunc.models.seed_format import export_seed_checkpoint

    export_seed_checkpoint(args.model_dir, args.seed_checkpoint)


if __name__ == "__main__":
    run_main(main)
