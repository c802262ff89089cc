"""The ``python -m pyfunc`` tools: verify, embed, export-onnx, results; info and Kaldi's table tools
(copy-vector, copy-feats, feat-to-dim, feat-to-len, vector-norms, mean-vector, subset: see
:mod:`pyfunc.cli.inspect_commands`).

    python -m pyfunc verify a.wav b.wav --model-dir exp/ecapa_mini
    python -m pyfunc embed wavs/ --model-dir exp/ecapa_mini --out emb.npy
    python -m pyfunc enroll --model-dir exp/ecapa_mini --register reg --name alice a1.wav a2.wav a3.wav
    python -m pyfunc identify --model-dir exp/ecapa_mini --register reg unknown.wav
    python -m pyfunc export-onnx --model-dir exp/ecapa_mini --out exp/ecapa_mini/model.onnx
    python -m pyfunc results exp

``steps/export_onnx.py`` and ``steps/summarize_results.py`` are the same commands.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from pyfunc.cli import inspect_commands as inspect
from pyfunc.data.audio import allow_pipes
from pyfunc.errors import ConfigError
from pyfunc.features.vad import DEFAULT_VAD_CONF, read_vad_conf
from pyfunc.inference.api import load_model
from pyfunc.inference.embed_files import embed_to, list_inputs
from pyfunc.inference.long_audio import DEFAULT_MAX_CHUNK_SECONDS
from pyfunc.inference.onnx_export import export_onnx
from pyfunc.inference.register import enroll_speaker, identify_speaker
from pyfunc.scoring.results_summary import summarize

COMMANDS = ("verify", "embed", "enroll", "identify", "export-onnx", "results", "info", "copy-vector", "copy-feats",
            "feat-to-dim", "feat-to-len", "vector-norms", "mean-vector", "subset")


def add_verify_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", nargs=2, metavar="AUDIO", help="two recordings (any format, rate, channels)")
    parser.add_argument("--model-dir", required=True, help="model directory (config.yaml + model.pt)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="decision threshold on the score (default: the model's operating point, "
                             "MODEL_DIR/calibration.yaml, set by steps/calibrate.py)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto [cpu]")
    add_long_audio_args(parser)
    add_vad_args(parser)


def add_vad_args(parser: argparse.ArgumentParser, register: bool = False) -> None:
    also = "; a register keeps the options of its enrolments, and other ones are refused" if register else ""
    parser.add_argument("--vad", action="store_true",
                        help="only the voiced frames of each recording (Kaldi's energy VAD, the model's framing)"
                             + also)
    parser.add_argument("--vad-conf", default=None,
                        help=f"VAD options with --vad [{DEFAULT_VAD_CONF.name}: the package's copy of conf/vad.conf]")


def apply_vad_args(model, args: argparse.Namespace) -> None:
    """``--vad``: the model embeds the voiced frames only, by the options of ``--vad-conf`` (or the default)."""
    if args.vad_conf is not None and not args.vad:
        raise ConfigError("--vad-conf sets the options of --vad; add --vad")
    if args.vad:
        model.vad = read_vad_conf(args.vad_conf if args.vad_conf is not None else DEFAULT_VAD_CONF)


def add_long_audio_args(parser: argparse.ArgumentParser, windows: bool = False) -> None:
    parser.add_argument("--max-chunk-seconds", type=float, default=DEFAULT_MAX_CHUNK_SECONDS, metavar="SECONDS",
                        help="recordings longer than this are embedded block-wise, in blocks of this length: the "
                             "same embedding up to float rounding, with less memory (0: never) "
                             f"[{DEFAULT_MAX_CHUNK_SECONDS:g}]")
    if windows:
        parser.add_argument("--segment", type=float, default=None, metavar="SECONDS",
                            help="one embedding per window of this length, keyed <key>-<start ms>-<end ms>")
        parser.add_argument("--shift", type=float, default=None, metavar="SECONDS",
                            help="with --segment: seconds between window starts [the segment length]")


def run_verify(args: argparse.Namespace) -> int:
    """Print the score (and calibrated LLR), the threshold with where it came from, and the decision;
    exit status 0 whatever the decision."""
    model = load_model(args.model_dir, args.device, args.max_chunk_seconds)
    apply_vad_args(model, args)
    result = model.verify(args.audio[0], args.audio[1], threshold=args.threshold)
    print(f"score {result.score:.6f}")
    if result.llr is not None:
        print(f"llr {result.llr:.6f}")
    if result.same is None:
        print("threshold none")
        print("decision unknown")
        print(f"warning: no decision: threshold {result.threshold_source}", file=sys.stderr)
        return 0
    print(f"threshold {result.threshold:.6f} ({result.threshold_source})")
    print(f"decision {'same' if result.same else 'different'}")
    return 0


def add_embed_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT",
                        help="a folder of audio files (recursive), a list file (one path per line) or a wav.scp")
    parser.add_argument("--model-dir", required=True, help="model directory (config.yaml + model.pt)")
    parser.add_argument("--out", required=True,
                        help="NAME.npy (+ NAME.keys), NAME.ark/NAME.scp (a Kaldi pair), or a folder for "
                             "xvector.scp/ark as stage 3 writes")
    parser.add_argument("--input-type", default="auto", choices=["auto", "dir", "list", "scp"],
                        help="how to read INPUT (auto: folder, *.scp, else a list)")
    parser.add_argument("--allow-pipes", action="store_true", help="run the pipe commands of a wav.scp")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto [cpu]")
    parser.add_argument("--batch-frames", type=int, default=None,
                        help="batch size x longest input in frames (default: the model's extract.batch_frames; "
                             "0: automatic)")
    add_long_audio_args(parser, windows=True)
    add_vad_args(parser)


def run_embed(args: argparse.Namespace) -> int:

    if args.allow_pipes:
        allow_pipes(True)
    table = list_inputs(args.input, args.input_type)
    model = load_model(args.model_dir, args.device, args.max_chunk_seconds)
    apply_vad_args(model, args)
    for path in embed_to(model, table, args.out, source=args.input, batch_frames=args.batch_frames,
                         segment=args.segment, shift=args.shift):
        print(path)
    return 0


def add_enroll_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", nargs="+", metavar="AUDIO", help="recordings of the speaker (any format, rate, "
                        "channels)")
    parser.add_argument("--model-dir", required=True, help="model directory (config.yaml + model.pt)")
    parser.add_argument("--register", required=True, help="register directory (made when missing)")
    parser.add_argument("--name", required=True, help="the speaker's name (no whitespace, no path separator)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto [cpu]")
    add_long_audio_args(parser)
    add_vad_args(parser, register=True)


def run_enroll(args: argparse.Namespace) -> int:
    """Add the speaker, or add recordings to it; print what was done."""
    model = load_model(args.model_dir, args.device, args.max_chunk_seconds)
    apply_vad_args(model, args)
    result = enroll_speaker(model, args.register, args.name, args.audio)
    for path in result.already:
        print(f"warning: {path} is enrolled for {args.name} already; not added again", file=sys.stderr)
    what = "enrolled" if result.new_speaker else "updated"
    if result.added:
        print(f"{what} {result.name}: {len(result.added)} recording(s) added, {result.total} in all, "
              f"in {args.register}")
    else:
        print(f"unchanged {result.name}: {result.total} recording(s) in {args.register}")
    return 0


def add_identify_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", metavar="AUDIO", help="the recording to identify (any format, rate, channels)")
    parser.add_argument("--model-dir", required=True, help="model directory: the one the register was made with")
    parser.add_argument("--register", required=True, help="register directory (python -m pyfunc enroll)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="decision threshold on the score (default: the model's operating point, as verify)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto [cpu]")
    add_long_audio_args(parser)
    add_vad_args(parser, register=True)


def run_identify(args: argparse.Namespace) -> int:
    """Print the enrolled speakers ranked by score, each with its decision, the threshold and who is identified;
    exit status 0 whatever the decision."""
    model = load_model(args.model_dir, args.device, args.max_chunk_seconds)
    apply_vad_args(model, args)
    result = identify_speaker(model, args.register, args.audio, threshold=args.threshold)
    calibrated = any(c.llr is not None for c in result.ranking)
    print("rank speaker score" + (" llr" if calibrated else "") + " decision")
    for rank, cand in enumerate(result.ranking, start=1):
        decision = "unknown" if cand.passes is None else ("same" if cand.passes else "different")
        llr = f" {cand.llr:.6f}" if cand.llr is not None else ""
        print(f"{rank} {cand.name} {cand.score:.6f}{llr} {decision}")
    if result.threshold is None:
        print("threshold none")
        print("identified unknown")
        print(f"warning: no decision: threshold {result.threshold_source}", file=sys.stderr)
        return 0
    print(f"threshold {result.threshold:.6f} ({result.threshold_source})")
    print(f"identified {result.identified or 'none'}" + ("" if result.identified else
                                                          " (no enrolled speaker passes the threshold)"))
    return 0


def add_export_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", required=True, help="model directory (trained, or imported from the seed)")
    parser.add_argument("--out", required=True, help="ONNX file to write")
    front = parser.add_mutually_exclusive_group()
    front.add_argument("--with-frontend", dest="frontend", action="store_const", const=True,
                       help="waveform input: the front end (Kaldi fbank or the seed log-mel) inside the graph")
    front.add_argument("--without-frontend", dest="frontend", action="store_const", const=False,
                       help="feature input (batch, frames, feat_dim): the front end computed outside")
    parser.add_argument("--exporter", default="dynamo", choices=["dynamo", "torchscript"],
                        help="torch.export-based (default) or the legacy TorchScript exporter (faster)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset [18]")
    parser.add_argument("--check-wav", action="append", default=[],
                        help="recording for the onnxruntime parity check (repeatable; default: synthetic signals)")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest |ONNX - PyTorch| allowed on the embeddings [1e-4]")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime parity check")


def run_export(args: argparse.Namespace) -> int:

    report = export_onnx(args.model_dir, args.out, include_frontend=args.frontend, exporter=args.exporter,
                         opset=args.opset, check=not args.no_check, check_wavs=args.check_wav,
                         tolerance=args.tolerance)
    check = "not checked" if report.max_abs_diff is None else f"max |ONNX - PyTorch| {report.max_abs_diff:.2e}"
    print(f"{report.path}: {report.input_kind} input, {check}")
    return 0


def add_results_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("roots", nargs="*", default=["exp"], metavar="DIR_OR_FILE",
                        help="experiment folders searched for stage-6 'results' files, or such files [exp]")
    parser.add_argument("--out", default=None, help="also write the Markdown table here")


def run_results(args: argparse.Namespace) -> int:

    print(summarize(args.roots, args.out), end="")
    return 0

_SUBCOMMANDS: dict[str, tuple[Callable, Callable, str]] = {
    "verify": (add_verify_args, run_verify, "score two recordings and decide same/different speaker"),
    "embed": (add_embed_args, run_embed, "embeddings of a folder, a list or a wav.scp to .npy or ark/scp"),
    "enroll": (add_enroll_args, run_enroll, "add a speaker's recordings to a speaker register"),
    "identify": (add_identify_args, run_identify, "rank a register's speakers against a recording and decide who "
                 "it is"),
    "export-onnx": (add_export_args, run_export, "export a model directory to ONNX, checked with onnxruntime"),
    "results": (add_results_args, run_results, "one Markdown table of every exp/*/results"),
    "info": (inspect.add_info_args, inspect.run_info,
             "what a data dir, model dir, embedding dir, scp/ark, score or trials file holds"),
    "copy-vector": (inspect.add_copy_vector_args, inspect.run_copy_vector,
                    "Kaldi's copy-vector: copy a table of vectors"),
    "copy-feats": (inspect.add_copy_feats_args, inspect.run_copy_feats,
                   "Kaldi's copy-feats: copy a table of matrices (--compress=true)"),
    "feat-to-dim": (inspect.add_feat_to_dim_args, inspect.run_feat_to_dim,
                    "Kaldi's feat-to-dim: the dimension of a table's entries"),
    "feat-to-len": (inspect.add_feat_to_len_args, inspect.run_feat_to_len,
                    "Kaldi's feat-to-len: frames per utterance, or in all"),
    "vector-norms": (inspect.add_vector_norms_args, inspect.run_vector_norms, "the L2 norm of every vector"),
    "mean-vector": (inspect.add_mean_vector_args, inspect.run_mean_vector, "the mean of a table of vectors"),
    "subset": (inspect.add_subset_args, inspect.run_subset, "the entries whose keys a file lists (or does not)"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyfunc", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_args, run, help_text) in _SUBCOMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        add_args(command)
        command.set_defaults(run=run)
    args = parser.parse_args(argv)
    return args.run(args)
