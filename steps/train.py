#!/usr/bin/env python3
"""Stage 2: train ECAPA-TDNN + AAM-softmax (run directly, or under torchrun for several processes).

Usage: steps/train.py --config conf/ecapa_mini.yaml --data data/mini/train --exp exp/ecapa_mini
           [--fbank-conf conf/fbank.conf]
Rerunning resumes from the newest checkpoint in EXP/models/ (only with the config and
data it was made with: EXP/models/.train.stamp; --allow-pipes runs wav.scp pipes). After training, the main
process draws EXP/plots/learning_curve.png from EXP/log/history.tsv and, with
--fbank-conf, stores the fbank options of the training features as EXP/fbank.conf (and
EXP/untrained/fbank.conf), where the verify/embed tools and the ONNX export read them.
"""

import argparse
import logging
import os
import shutil
from pathlib import Path

from pyfunc.cli import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="experiment YAML")
    parser.add_argument("--data", required=True, help="training data directory")
    parser.add_argument("--exp", required=True, help="experiment directory")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--fbank-conf", default=None,
                        help="fbank options of the training features, copied into the model directories")
    parser.add_argument("--allow-pipes", action="store_true", help="run 'command |' entries of wav.scp/feats.scp")
    args = parser.parse_args()

    from pyfunc.config import load_config
    from pyfunc.features import read_kaldi_conf
    from pyfunc.fileio import atomic_path
    from pyfunc.train import train

    if args.fbank_conf:
        read_kaldi_conf(args.fbank_conf)  # a bad file fails now, not after training
    from pyfunc.audio import allow_pipes
    from pyfunc.stamps import check_training_inputs

    allow_pipes(args.allow_pipes)
    config = load_config(args.config)
    check_training_inputs(config, args.data, args.exp)  # resume only the same run (EXP/models/.train.stamp)
    train(config, args.data, args.exp, args.device)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    exp = Path(args.exp)
    if args.fbank_conf:
        for model_dir in (exp, exp / "untrained"):
            if model_dir.is_dir():
                with atomic_path(model_dir / "fbank.conf") as tmp:
                    shutil.copyfile(args.fbank_conf, tmp)
    from pyfunc.plots import plot_learning_curve

    path = plot_learning_curve(exp / "log" / "history.tsv", exp / "plots" / "learning_curve.png",
                               title=f"training of {exp}")
    logging.getLogger("steps.train").info("wrote %s", path)


if __name__ == "__main__":
    run_main(main)
