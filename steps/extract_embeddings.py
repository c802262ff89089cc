#!/usr/bin/env python3
"""Stage 3: speaker embeddings of a data directory (xvector.scp; with the seed protocol also xvector_crops.scp).

Usage: steps/extract_embeddings.py --model-dir DIR --data DATA_DIR --out EMB_DIR
           [--protocol auto|full|seed] [--device auto|cpu|cuda] [--batch-frames N] [--nj N --cmd LAUNCHER]
           [--onnx MODEL.onnx] [--resample] [--vad] [--skip-bad-audio] [--trials FILE] [--allow-pipes] [--force]

The model's front end decides the input: feats.scp (fbank) or wav.scp (seed).
--resample: wav.scp audio at another rate than the model's (16 kHz) is resampled to it
(torchaudio's sinc interpolation) instead of being bad input; from steps/extract.sh:
--opts "--resample". (fbank models read stage 1's features: resample there.)
--vad: embed only the voiced frames of each utterance, by DATA_DIR/vad.scp (steps/compute_vad.py; an
error when it is missing or out of date); without it a vad.scp is ignored. An utterance with no voiced
frame is bad input. From steps/extract.sh: --opts "--vad".
Bad inputs stop the stage with the list of all of them, unless --skip-bad-audio (then
their keys go to EMB_DIR/skipped_utts; a trial needing one still fails the stage).
A rerun with unchanged inputs does nothing (EMB_DIR/.extract.stamp); --force redoes it.
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True, help="model directory (config.yaml + model.pt)")
    parser.add_argument("--data", required=True, help="Kaldi data directory")
    parser.add_argument("--out", required=True, help="output folder for xvector.scp/ark")
    parser.add_argument("--protocol", default="auto", choices=["auto", "full", "seed"],
                        help="auto: the model's extract.protocol; full: one embedding per utterance; "
                             "seed: also the five 3 s crop embeddings")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda or cuda:N")
    parser.add_argument("--batch-frames", type=int, default=None,
                        help="batch size x longest input in frames (default: the model's extract.batch_frames; "
                             "0: automatic, 30000 on a GPU, 2000 on the CPU)")
    parser.add_argument("--onnx", default=None,
                        help="run this ONNX export of the model (steps/export_onnx.py) in onnxruntime on the CPU")
    parser.add_argument("--nj", type=int, default=1, help="number of parallel jobs (split data directory)")
    parser.add_argument("--cmd", default="", help="launcher prefix for each job, e.g. 'srun -c 1' (default: local)")
    parser.add_argument("--resample", action="store_true",
                        help="resample wav.scp audio at another rate to the model's (seed front end)")
    parser.add_argument("--vad", action="store_true",
                        help="only the voiced frames of each utterance, by DATA_DIR/vad.scp (steps/compute_vad.py)")
    parser.add_argument("--skip-bad-audio", action="store_true",
                        help="leave out utterances with bad input (listed in EMB_DIR/skipped_utts) instead of failing")
    parser.add_argument("--trials", action="append", default=[],
                        help="trials file whose utterances must not be skipped (DATA/trials is always checked)")
    parser.add_argument("--allow-pipes", action="store_true", help="run 'command |' entries of wav.scp/feats.scp")
    parser.add_argument("--force", action="store_true", help="recompute even when the stamp says up to date")
    args = parser.parse_args()

    from pyfunc.data.audio import allow_pipes
    from pyfunc.pipeline.extract_stage import run_extraction

    allow_pipes(args.allow_pipes)
    run_extraction(args.model_dir, args.data, args.out, num_jobs=args.nj, cmd=args.cmd, protocol=args.protocol,
                   device=args.device, batch_frames=args.batch_frames, onnx=args.onnx,
                   skip_bad=args.skip_bad_audio, trials=args.trials, force=args.force,
                   resample=args.resample, vad=args.vad)


if __name__ == "__main__":
    run_main(main)
