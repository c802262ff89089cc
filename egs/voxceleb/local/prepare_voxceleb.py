#!/usr/bin/env python3
"""Stage 0 of the VoxCeleb recipe: Kaldi data directories of VoxCeleb2 dev and VoxCeleb1, and the trials.

Usage: local/prepare_voxceleb.py [--vox2-root DIR] [--vox2-wav-dir DIR] [--vox1-root DIR [DIR ...]]
           [--meta-dir DIR] [--data data] [--vox2-audio auto|wav|m4a] [--nj N] [--lists vox1_o,vox1_e,vox1_h]
           [--trial-subsets vox1_o,...] [--cohort-per-spk N]

Writes DATA/vox2_dev (training), DATA/vox1 (all of VoxCeleb1), DATA/vox1/trials/{vox1_o,vox1_e,vox1_h}
from whichever of veri_test2.txt, list_test_all2.txt, list_test_hard2.txt are in --meta-dir (with --lists:
exactly those lists, each of which must be there), DATA/vox1_eval holding the utterances of those lists
(what stage 3 embeds), and for each name in --trial-subsets a data directory DATA/NAME holding only that
list's utterances, with the list as its trials file. --cohort-per-spk N also
writes DATA/vox2_cohort, the first N utterances of each VoxCeleb2 speaker (a smaller AS-norm cohort).
Utterance ids are id10270/x6uYqmx31kE/00001 (speaker/video/file). Speaker folders outside VoxCeleb2's
dev/ folder (e.g. test/aac, when --vox2-root is the corpus root) are refused, counts other than the
released 5 994 speakers and 1 092 009 utterances are a warning, and a trial list with a speaker that
is also a training speaker (DATA/vox2_dev) is an error.
With --vox2-wav-dir DIR (and --vox2-audio auto), VoxCeleb2's m4a files are first decoded once to 16 kHz
wav under DIR (ffmpeg, --nj at a time, atomic per file, resuming an interrupted run) and DATA/vox2_dev
uses those; nothing is converted when every m4a already has a wav beside it. Without it, m4a input
gives ffmpeg pipe entries in wav.scp (stages 1 and 3 run them with pipes allowed; training refuses
them) and no utt2dur.
"""

import argparse
import logging
import sys
from pathlib import Path

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vox2-root", default=None, help="VoxCeleb2 dev folder (dev/aac as released, or wav)")
    parser.add_argument("--vox1-root", nargs="+", default=[], action="extend",
                        help="VoxCeleb1 folder(s): one merged wav/ or vox1_dev_wav and vox1_test_wav")
    parser.add_argument("--meta-dir", default=None, help="folder with the official trial lists (veri_test2.txt ...)")
    parser.add_argument("--data", default="data", help="where the data directories go [data]")
    parser.add_argument("--vox2-wav-dir", default="",
                        help="decode VoxCeleb2's m4a to wav here first ('' : no conversion, pipes) ['']")
    parser.add_argument("--vox2-audio", default="auto", choices=("auto", "wav", "m4a"),
                        help="VoxCeleb2 files to use [auto: wav if complete, else m4a]")
    parser.add_argument("--nj", type=int, default=4, help="parallel processes reading wav headers [4]")
    parser.add_argument("--lists", default=None,
                        help="comma-separated trial lists to convert, each required (default: those present)")
    parser.add_argument("--cohort-per-spk", type=int, default=0,
                        help="also write DATA/vox2_cohort with N utterances per VoxCeleb2 speaker (0: no) [0]")
    parser.add_argument("--trial-subsets", default="vox1_o",
                        help="comma-separated trial lists to make DATA/NAME data directories of ('' for none) [vox1_o]")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from voxceleb import (
        OFFICIAL_TRIALS,
        check_disjoint_speakers,
        convert_vox2_dev,
        prepare_vox1,
        prepare_vox1_trials,
        prepare_vox2_dev,
    )

    from pyfunc.data.corpus_files import make_trial_subset, subset_for_trials
    from pyfunc.data.datadir import subset_per_speaker
    from pyfunc.errors import ConfigError

    subsets = [s for s in args.trial_subsets.split(",") if s]
    unknown = sorted(set(subsets) - set(OFFICIAL_TRIALS.values()))
    if unknown:
        raise ConfigError(f"--trial-subsets: unknown list(s) {unknown}; choose from {sorted(OFFICIAL_TRIALS.values())}")
    if args.vox2_root is None and not args.vox1_root:
        raise ConfigError("nothing to do: give --vox2-root and/or --vox1-root")
    if args.meta_dir is not None and not args.vox1_root:
        raise ConfigError("--meta-dir needs --vox1-root (the trials name VoxCeleb1 utterances)")
    if args.cohort_per_spk < 0 or args.cohort_per_spk and args.vox2_root is None:
        raise ConfigError("--cohort-per-spk needs --vox2-root and a number of utterances >= 0")
    lists = None if args.lists is None else [s for s in args.lists.split(",") if s]
    data = Path(args.data)
    if args.vox2_root is not None:
        vox2_root = args.vox2_root
        if args.vox2_wav_dir and args.vox2_audio == "auto":
            vox2_root = convert_vox2_dev(vox2_root, args.vox2_wav_dir, num_jobs=args.nj) or vox2_root
        prepare_vox2_dev(vox2_root, data / "vox2_dev", audio=args.vox2_audio, num_jobs=args.nj)
        if args.cohort_per_spk:
            subset_per_speaker(data / "vox2_dev", data / "vox2_cohort", args.cohort_per_spk)
    if args.vox1_root:
        prepare_vox1(args.vox1_root, data / "vox1", num_jobs=args.nj)
        if args.meta_dir is None:
            logging.warning("no --meta-dir: no trial lists made")
            return
        report = prepare_vox1_trials(args.meta_dir, data / "vox1", lists)
        if (data / "vox2_dev" / "utt2spk").is_file():
            check_disjoint_speakers(data / "vox2_dev", data / "vox1", [path for path, _ in report.written.values()])
        subset_for_trials(data / "vox1", [path for path, _ in report.written.values()], data / "vox1_eval")
        for name in subsets:
            if name in report.written:
                make_trial_subset(data / "vox1", report.written[name][0], data / name)
            else:
                logging.warning("no trial list %s, so no data directory %s", name, data / name)


if __name__ == "__main__":
    run_main(main)
