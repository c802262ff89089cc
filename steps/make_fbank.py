#!/usr/bin/env python3
"""Stage 1: Kaldi fbank features of a data directory into ark/scp (adds feats.scp, utt2num_frames).

Usage: steps/make_fbank.py [--nj N] [--cmd LAUNCHER] [--conf conf/fbank.conf] [--compress true|false]
           [--resample] [--skip-bad-audio] [--allow-pipes] [--force] DATA_DIR FEAT_DIR LOG_DIR

--compress true writes Kaldi-compressed matrices (as copy-feats --compress=true: one byte per value,
quantised within each column's range, about a quarter of the float32 size); training reads (and decodes)
only the rows of each chunk either way.

Audio at another sample rate than the conf's (16 kHz; e.g. 8 kHz telephone recordings) is bad
audio, unless --resample: then it is resampled (torchaudio's sinc interpolation) before the
features are computed.

Bad audio stops the stage with the list of all bad utterances, unless --skip-bad-audio
(then their keys go to DATA_DIR/skipped_utts; one that DATA_DIR/trials needs still fails
the stage). A rerun with unchanged inputs does nothing (DATA_DIR/.fbank.stamp); --force
recomputes.
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nj", type=int, default=1, help="number of parallel jobs")
    parser.add_argument("--cmd", default="", help="launcher prefix for each job, e.g. 'srun -c 1' (default: local)")
    parser.add_argument("--conf", default="conf/fbank.conf", help="Kaldi-style fbank options file")
    parser.add_argument("--compress", default="false", choices=("true", "false"),
                        help="Kaldi-compressed feature matrices [false]")
    parser.add_argument("--resample", action="store_true",
                        help="resample audio at another rate to the conf's --sample-frequency instead of refusing it")
    parser.add_argument("--skip-bad-audio", action="store_true",
                        help="leave out utterances with bad audio (listed in DATA_DIR/skipped_utts) instead of failing")
    parser.add_argument("--allow-pipes", action="store_true", help="run 'command |' entries of wav.scp")
    parser.add_argument("--force", action="store_true", help="recompute even when the stamp says up to date")
    parser.add_argument("data_dir")
    parser.add_argument("feat_dir", help="where the ark/scp files go")
    parser.add_argument("log_dir", help="where the per-job logs go")
    args = parser.parse_args()

    from pyfunc.data.audio import allow_pipes
    from pyfunc.data.datadir import validate_data_dir
    from pyfunc.pipeline.fbank_stage import make_fbank

    allow_pipes(args.allow_pipes)
    make_fbank(args.data_dir, args.conf, args.feat_dir, args.log_dir, args.nj, args.cmd,
               skip_bad=args.skip_bad_audio, force=args.force, compress=args.compress == "true",
               resample=args.resample)
    validate_data_dir(args.data_dir, check_wavs=False)


if __name__ == "__main__":
    run_main(main)
