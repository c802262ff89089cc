#!/usr/bin/env python3
"""ONNX export of a model directory, checked against PyTorch with onnxruntime (<= --tolerance on embeddings).

Usage: steps/export_onnx.py --model-dir DIR --out DIR/model.onnx [--with-frontend | --without-frontend]
           [--exporter dynamo|torchscript] [--opset 18] [--check-wav WAV]... [--tolerance 1e-4]

By default the graph takes the model's native input, as stage 3 reads it: fbank features
(batch, frames, 80) for fbank models, the 16 kHz waveform (batch, samples) for seed models.
The time and batch axes are dynamic. `steps/extract_embeddings.py --onnx FILE` extracts with it.
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> int:
    from pyfunc.cli.tools import add_export_args, run_export

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_export_args(parser)
    return run_export(parser.parse_args())


if __name__ == "__main__":
    run_main(main)
