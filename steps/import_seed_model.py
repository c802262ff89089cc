#!/usr/bin/env python3
"""Import a checkpoint saved by the seed system into a model directory (seed front end, seed protocol).

Usage: steps/import_seed_model.py [--config BASE_YAML] SEED_CHECKPOINT MODEL_DIR

C, the embedding size and the number of classes are read off the weights; the
other settings come from BASE_YAML (default: the built-in defaults).
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="base YAML config for the settings the weights do not fix")
    parser.add_argument("seed_checkpoint", help="state dict saved by the seed (speaker_encoder.*, speaker_loss.weight)")
    parser.add_argument("model_dir", help="model directory to write (config.yaml + model.pt)")
    args = parser.parse_args()

    from pyfunc.models.seed_format import import_seed_checkpoint

    import_seed_checkpoint(args.seed_checkpoint, args.model_dir, args.config)


if __name__ == "__main__":
    run_main(main)
