#!/usr/bin/env python3
"""Kaldi-style offline augmentation: augmented copies of a data directory, for the fbank path.

Usage: steps/augment_data_dir.py --config CONF [--kinds reverb,noise,music,babble] [--random-seed N]
           [--musan-dir DIR] [--rir-dir DIR] SRC_DIR OUT_ROOT
e.g.   steps/augment_data_dir.py --config conf/ecapa_c1024_fbank.yaml data/vox2_dev data

Writes OUT_ROOT/<name of SRC_DIR>_<kind> for each kind: utterances <utt>-<kind> (same speaker, same
wav.scp entry) and a utt2aug file with the RIR or noise files, offsets and SNRs to apply. Stage 1
(steps/make_fbank.py) applies them before computing the features; no audio is written. The MUSAN and
RIR data dirs and the SNR ranges and babble talker counts come from the config's train.augment
section (its 'enabled' flag is for on-the-fly augmentation and is not needed here); --musan-dir and
--rir-dir override its musan_dir and rir_dir. Then combine the copies with steps/combine_data_dirs.py.
"""

import argparse
import dataclasses

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="experiment YAML (train.augment: sources, SNRs)")
    parser.add_argument("--kinds", default="reverb,noise,music,babble",
                        help="comma-separated copies to make, among reverb, noise, music, babble, television "
                             "[reverb,noise,music,babble: Kaldi's VoxCeleb recipe]")
    parser.add_argument("--random-seed", "--seed", dest="random_seed", type=int, default=0,
                        help="random seed of the augmentation draws (--seed: its former name) [0]")
    parser.add_argument("--musan-dir", default=None, help="folder of musan_noise, musan_music, musan_speech")
    parser.add_argument("--rir-dir", default=None, help="data dir of simulated RIRs")
    parser.add_argument("src_dir", help="clean data directory")
    parser.add_argument("out_root", help="where the <name>_<kind> data directories go")
    args = parser.parse_args()

    from pyfunc.config import load_config
    from pyfunc.features.augment_offline import make_augmented_copies

    augment = load_config(args.config).train.augment
    overrides = {k: v for k, v in (("musan_dir", args.musan_dir), ("rir_dir", args.rir_dir)) if v is not None}
    augment = dataclasses.replace(augment, **overrides)
    kinds = [k for k in args.kinds.split(",") if k]
    make_augmented_copies(args.src_dir, args.out_root, kinds, augment, args.random_seed)


if __name__ == "__main__":
    run_main(main)
