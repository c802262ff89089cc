#!/usr/bin/env python3
"""Stage 1, voice activity: Kaldi's energy VAD (compute-vad) of a data directory into DATA_DIR/vad.scp.

Usage: steps/compute_vad.py [--conf conf/vad.conf] [--fbank-conf conf/fbank.conf] [--nj N] [--cmd LAUNCHER]
           [--vad-dir DIR] [--log-dir DIR] [--resample] [--skip-bad-audio] [--allow-pipes] [--force] DATA_DIR

Each utterance's decision is a Kaldi float vector (1.0 voiced, 0.0 not) with one value per frame of its
fbank features: the log energy of each frame (the framing of --fbank-conf, which must be stage 1's) is
compared with --vad-energy-threshold + --vad-energy-mean-scale x the utterance's mean log energy, and a
frame is voiced when at least --vad-proportion-threshold of the frames within --vad-frames-context of it
are above (conf/vad.conf; Kaldi's VoxCeleb settings 5.5 and 0.5). The arks go to --vad-dir
(default DATA_DIR/vad); Kaldi's copy-vector and kaldiio read vad.scp.

Stage 3 (steps/extract_embeddings.py --vad), training (train.vad: true) and select-voiced-frames use it.
Bad audio stops the stage with the list of all of it, unless --skip-bad-audio (then those utterances get
no decision). A rerun with unchanged inputs does nothing (DATA_DIR/.vad.stamp); --force recomputes.
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conf", default="conf/vad.conf", help="Kaldi-style VAD options file [conf/vad.conf]")
    parser.add_argument("--fbank-conf", default="conf/fbank.conf",
                        help="the fbank options of stage 1, for the framing [conf/fbank.conf]")
    parser.add_argument("--nj", type=int, default=1, help="number of parallel jobs")
    parser.add_argument("--cmd", default="", help="launcher prefix for each job, e.g. 'srun -c 1' (default: local)")
    parser.add_argument("--vad-dir", default=None, help="where the ark/scp files go [DATA_DIR/vad]")
    parser.add_argument("--log-dir", default=None, help="where the per-job logs go [VAD_DIR/log]")
    parser.add_argument("--resample", action="store_true",
                        help="resample audio at another rate to the fbank conf's --sample-frequency instead of "
                             "refusing it")
    parser.add_argument("--skip-bad-audio", action="store_true",
                        help="leave out utterances with bad audio instead of failing")
    parser.add_argument("--allow-pipes", action="store_true", help="run 'command |' entries of wav.scp")
    parser.add_argument("--force", action="store_true", help="recompute even when the stamp says up to date")
    parser.add_argument("data_dir")
    args = parser.parse_args()

    from pyfunc.data.audio import allow_pipes
    from pyfunc.pipeline.vad_stage import make_vad

    allow_pipes(args.allow_pipes)
    make_vad(args.data_dir, args.conf, args.fbank_conf, args.vad_dir, args.log_dir, args.nj, args.cmd,
             skip_bad=args.skip_bad_audio, force=args.force, resample=args.resample)


if __name__ == "__main__":
    run_main(main)
