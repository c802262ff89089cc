"""ONNX export of a model directory, checked against PyTorch with onnxruntime.

The exported graph maps a batch of inputs with a dynamic time axis to raw
embeddings (batch, embed_dim), the same as stage 3 writes. Its input is either

* ``features`` (batch, frames, feat_dim): the front end's output computed outside
  (Kaldi fbank from ``feats.scp`` for fbank models; for seed models the seed
  log-mel, transposed). Mean normalisation over time is inside the graph.
* ``waveform`` (batch, samples) float samples in [-1, 1] at the model's rate:
  the front end is inside the graph. The seed's log-mel and Kaldi's fbank (the
  options of the model's ``fbank.conf``, as ``torchaudio.compliance.kaldi.fbank``
  computes them) are rebuilt from ops every exporter and runtime has: frames by
  a strided convolution, the DFT as a matrix product, the mel filters as another.

Each export is checked: the ONNX model runs in onnxruntime on test inputs of two
lengths (a batch of two and a batch of one) and must give the PyTorch
embeddings within ``tolerance`` (default 1e-4, absolute). The file carries
metadata (``pyfunc_input``, ``pyfunc_model_sha256``, ...) so that stage 3 can
refuse an export of another or an older ``model.pt``.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.compliance.kaldi as kaldi
from torch import nn

from pyfunc.data.atomic import PathLike, atomic_path
from pyfunc.data.digest import file_sha256
from pyfunc.errors import ConfigError, PyfuncError
from pyfunc.features.kaldi_fbank import compute_fbank
from pyfunc.inference.api import load_model
from pyfunc.inference.batching import embed_batch
from pyfunc.inference.onnx_runtime import ONNX_FORMAT, ort_session, run_session
from pyfunc.models.ecapa import ECAPATDNN

logger = logging.getLogger(__name__)

INPUT_KINDS = ("features", "waveform")

EXPORTERS = ("dynamo", "torchscript")

DEFAULT_OPSET = 18

DEFAULT_TOLERANCE = 1e-4

_INT16_SCALE = 32768.0


def _dft_matrix(n_fft: int, length: int) -> torch.Tensor:
    """(length, 2 * (n_fft // 2 + 1)) float64: [cos | -sin] of the real DFT, for the first ``length`` samples."""
    n = torch.arange(length, dtype=torch.float64).view(-1, 1)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64).view(1, -1)
    angle = 2 * math.pi * ((n * k) % n_fft) / n_fft  # reduce n*k first: exact angles for large products
    return torch.cat([torch.cos(angle), -torch.sin(angle)], dim=1)

# Kaldi fbank options the in-graph front end reproduces; values other than these are refused.
_KALDI_FIXED = {"dither": 0.0, "snip_edges": True, "use_energy": False, "subtract_mean": False,
                "vtln_warp": 1.0, "min_duration": 0.0, "htk_compat": False}


class KaldiFbankGraph(nn.Module):
    """``torchaudio.compliance.kaldi.fbank`` of a (batch, samples) waveform batch, from exportable ops.

    Input samples in [-1, 1] (scaled to the 16-bit range inside, as :func:`pyfunc.features.kaldi_fbank.compute_fbank`
    does); output (batch, frames, num_mel_bins) with Kaldi's ``snip_edges`` framing.
    """

    def __init__(self, options: dict[str, Any]):
        super().__init__()

        defaults = {name: p.default for name, p in inspect.signature(kaldi.fbank).parameters.items()}
        opts = {**defaults, **options}
        for name, value in _KALDI_FIXED.items():
            if opts[name] != value:
                raise ConfigError(f"fbank option --{name.replace('_', '-')}={opts[name]} is not supported by the "
                                  f"ONNX front end (it needs {value}); export without the front end instead")
        rate = float(opts["sample_frequency"])
        self.window_size = int(rate * opts["frame_length"] * 0.001)
        self.window_shift = int(rate * opts["frame_shift"] * 0.001)
        padded = (1 << (self.window_size - 1).bit_length()) if opts["round_to_power_of_two"] else self.window_size
        if self.window_size < 2 or self.window_shift < 1 or padded % 2:
            raise ConfigError(f"fbank frame length {opts['frame_length']} ms / shift {opts['frame_shift']} ms "
                              f"do not give a usable window at {rate} Hz")
        self.sample_rate = int(rate)
        self.remove_dc_offset = bool(opts["remove_dc_offset"])
        self.preemphasis = float(opts["preemphasis_coefficient"])
        self.use_power = bool(opts["use_power"])
        self.use_log = bool(opts["use_log_fbank"])
        window = kaldi._feature_window_function(opts["window_type"], self.window_size, opts["blackman_coeff"],
                                                torch.device("cpu"), torch.float64)
        banks, _ = kaldi.get_mel_banks(int(opts["num_mel_bins"]), padded, rate, float(opts["low_freq"]),
                                       float(opts["high_freq"]), float(opts["vtln_low"]), float(opts["vtln_high"]),
                                       1.0)
        banks = F.pad(banks.double(), (0, 1))  # the Nyquist bin gets no weight, as in kaldi.fbank
        self.num_bins = padded // 2 + 1
        self.register_buffer("frame_kernel", torch.eye(self.window_size).unsqueeze(1))  # exact framing by conv
        self.register_buffer("dft", (window.view(-1, 1) * _dft_matrix(padded, self.window_size)).float())
        self.register_buffer("mel", banks.t().contiguous().float())  # (num_bins, num_mel_bins)
        self.register_buffer("floor", torch.tensor(torch.finfo(torch.float32).eps))
        self.min_samples = self.window_size + self.window_shift  # two frames

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        frames = F.conv1d(wav.unsqueeze(1) * _INT16_SCALE, self.frame_kernel, stride=self.window_shift)
        frames = frames.transpose(1, 2)  # (batch, frames, window)
        if self.remove_dc_offset:
            frames = frames - frames.mean(dim=2, keepdim=True)
        if self.preemphasis != 0.0:
            previous = torch.cat([frames[:, :, :1], frames[:, :, :-1]], dim=2)
            frames = frames - self.preemphasis * previous
        spec = torch.matmul(frames, self.dft)  # windowed real DFT: (batch, frames, 2 * num_bins)
        real, imag = spec[:, :, :self.num_bins], spec[:, :, self.num_bins:]
        spectrum = real * real + imag * imag
        if not self.use_power:
            spectrum = spectrum.sqrt()
        mel = torch.matmul(spectrum, self.mel)
        return torch.maximum(mel, self.floor).log() if self.use_log else mel


class SeedLogMelGraph(nn.Module):
    """The seed front end (:class:`pyfunc.features.seed_logmel.SeedLogMel`) from exportable ops, with its own buffers.

    (batch, samples) -> (batch, 80, frames), mean-normalised over time.
    """

    def __init__(self, seed_logmel: nn.Module):
        super().__init__()
        pre, melspec = seed_logmel[0], seed_logmel[1]
        spectrogram = melspec.spectrogram
        if not (spectrogram.center and spectrogram.pad_mode == "reflect" and spectrogram.power == 2.0
                and not spectrogram.normalized and spectrogram.pad == 0):
            raise ConfigError("the seed front end's spectrogram settings are not the seed's; cannot export it")
        self.pre = pre
        self.n_fft = int(spectrogram.n_fft)
        self.hop = int(spectrogram.hop_length)
        window = spectrogram.window.double()
        left = (self.n_fft - window.shape[0]) // 2
        padded = F.pad(window, (left, self.n_fft - window.shape[0] - left))  # torch.stft centres the window
        self.num_bins = self.n_fft // 2 + 1
        kernel = (padded.view(-1, 1) * _dft_matrix(self.n_fft, self.n_fft)).t().unsqueeze(1)
        self.register_buffer("dft", kernel.float())  # (2 * num_bins, 1, n_fft)
        self.register_buffer("mel", melspec.mel_scale.fb.t().contiguous().float())  # (n_mels, num_bins)
        self.min_samples = self.n_fft // 2 + 1  # reflect padding needs more samples than the pad; two frames

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = self.pre(wav)
        x = F.pad(x.unsqueeze(1), (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        spec = F.conv1d(x, self.dft, stride=self.hop)  # (batch, 2 * num_bins, frames)
        real, imag = spec[:, :self.num_bins], spec[:, self.num_bins:]
        x = torch.matmul(self.mel, real * real + imag * imag) + 1e-6
        x = x.log()
        return x - x.mean(dim=-1, keepdim=True)


class ExportableEncoder(nn.Module):
    """Inputs (features or waveform) -> raw embeddings, written with ops that export to ONNX."""

    def __init__(self, encoder: ECAPATDNN, input_kind: str, fbank_options: dict[str, Any] | None = None):
        super().__init__()
        if input_kind not in INPUT_KINDS:
            raise ConfigError(f"unknown ONNX input {input_kind!r}; use one of {', '.join(INPUT_KINDS)}")
        self.encoder = encoder
        self.input_kind = input_kind
        self.frontend: nn.Module | None = None
        if input_kind == "waveform":
            if encoder.frontend == "seed":
                self.frontend = SeedLogMelGraph(encoder.torchfbank)
            else:
                if fbank_options is None:
                    raise ConfigError("a fbank model exported with its front end needs the fbank options")
                self.frontend = KaldiFbankGraph(fbank_options)

    @property
    def min_length(self) -> int:
        """The shortest input (samples or frames) that gives an embedding."""
        return self.frontend.min_samples if self.frontend is not None else 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.frontend, SeedLogMelGraph):
            feats = self.frontend(x)
        else:
            if self.frontend is not None:
                x = self.frontend(x)
            feats = (x - x.mean(dim=1, keepdim=True)).transpose(1, 2)
        return self.encoder.encode(feats)


def _test_waves(sample_rate: int, seconds: Sequence[float] = (1.37, 2.05)) -> list[np.ndarray]:
    """Deterministic voice-like test signals: harmonic tones with a glide, light noise and a quiet gap."""
    rng = np.random.default_rng(20240607)
    waves = []
    for i, length in enumerate(seconds):
        t = np.arange(int(length * sample_rate)) / sample_rate
        f0 = 120.0 + 35.0 * i + 20.0 * np.sin(2 * np.pi * 0.7 * t)
        phase = 2 * np.pi * np.cumsum(f0) / sample_rate
        wave = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.1
        wave *= (np.abs(t - length / 2) > 0.1)  # a 0.2 s near-silent gap
        waves.append((wave + 0.003 * rng.standard_normal(t.shape)).astype(np.float32))
    return waves


def _reference_inputs(encoder: ECAPATDNN, input_kind: str, waves: Sequence[np.ndarray],
                      fbank_options: dict[str, Any] | None) -> tuple[list[np.ndarray], np.ndarray]:
    """The ONNX inputs for ``waves`` and the PyTorch embeddings of the recipe's path (one row per wave)."""
    if encoder.frontend == "fbank":
        feats = [compute_fbank(w, fbank_options) for w in waves]
        reference = np.concatenate([embed_batch(encoder, [f]) for f in feats])
        return (list(waves) if input_kind == "waveform" else feats), reference
    reference = np.concatenate([embed_batch(encoder, [w]) for w in waves])
    if input_kind == "waveform":
        return list(waves), reference
    with torch.no_grad():
        feats = [encoder.torchfbank(torch.from_numpy(w)[None])[0].t().numpy() for w in waves]
    return feats, reference


def check_parity(path: PathLike, encoder: ECAPATDNN, input_kind: str, fbank_options: dict[str, Any] | None,
                 waves: Sequence[np.ndarray], tolerance: float = DEFAULT_TOLERANCE) -> float:
    """Largest |ONNX - PyTorch| over the embeddings of ``waves`` (all in one batch when of one length,
    else one at a time, and the first twice in one batch); a PyfuncError when above ``tolerance``."""
    inputs, reference = _reference_inputs(encoder, input_kind, waves, fbank_options)
    session = ort_session(path)
    worst = 0.0
    for i, item in enumerate(inputs):
        rows = run_session(session, [item, item]) if i == 0 else run_session(session, [item])
        worst = max(worst, float(np.abs(rows - reference[i]).max()))
    if not worst <= tolerance:
        raise PyfuncError(f"{path}: ONNX embeddings differ from PyTorch's by {worst:.3g} (tolerance {tolerance:g})")
    return worst


@dataclass(frozen=True)
class ExportReport:
    path: Path
    input_kind: str
    max_abs_diff: float | None
    seconds: float


def _export_graph(module: ExportableEncoder, example: torch.Tensor, path: Path, exporter: str, opset: int) -> None:
    name = "waveform" if module.input_kind == "waveform" else "features"
    if exporter == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
            torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=opset,
                              input_names=[name], output_names=["embedding"],
                              dynamic_axes={name: {0: "batch", 1: "time"}, "embedding": {0: "batch"}})
        return
    batch = torch.export.Dim("batch", min=1, max=4096)
    length = torch.export.Dim("time", min=module.min_length, max=1 << 28)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        torch.onnx.export(module, (example,), str(path), dynamo=True, opset_version=opset, input_names=[name],
                          output_names=["embedding"], dynamic_shapes=({0: batch, 1: length},),
                          external_data=False, verbose=False)


def export_onnx(model_dir: PathLike, out: PathLike, include_frontend: bool | None = None, exporter: str = "dynamo",
                opset: int = DEFAULT_OPSET, check: bool = True, check_wavs: Sequence[PathLike] = (),
                tolerance: float = DEFAULT_TOLERANCE) -> ExportReport:
    """Export the encoder of ``model_dir`` to ``out`` (written atomically, after the check passes).

    ``include_frontend``: True (waveform input), False (features input) or None (the model's
    native input as stage 3 reads it: features for fbank models, the waveform for seed models).
    ``check_wavs``: recordings for the parity check (default: synthetic signals).
    """
    import onnx  # noqa: PLC0415 (optional: only the ONNX tools need it)


    if exporter not in EXPORTERS:
        raise ConfigError(f"unknown exporter {exporter!r}; use one of {', '.join(EXPORTERS)}")
    start = time.perf_counter()
    model = load_model(model_dir, "cpu")
    encoder = model.encoder
    if include_frontend is None:
        include_frontend = encoder.frontend == "seed"
    input_kind = "waveform" if include_frontend else "features"
    module = ExportableEncoder(encoder, input_kind, model.fbank_options).eval()
    waves = [model.load_audio(w) for w in check_wavs] or _test_waves(model.sample_rate)
    example_input, _ = _reference_inputs(encoder, input_kind, waves[:1], model.fbank_options)
    example = torch.from_numpy(np.stack([example_input[0]] * 2))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        with torch.no_grad():
            _export_graph(module, example, tmp, exporter, opset)
        graph = onnx.load(str(tmp))
        meta = {"pyfunc_format": ONNX_FORMAT, "pyfunc_input": input_kind, "pyfunc_frontend": encoder.frontend,
                "pyfunc_feat_dim": str(encoder.feat_dim), "pyfunc_embed_dim": str(encoder.embed_dim),
                "pyfunc_sample_rate": str(model.sample_rate),
                "pyfunc_model_sha256": file_sha256(Path(model_dir) / "model.pt"),
                "pyfunc_fbank_options": json.dumps(model.fbank_options or {}, sort_keys=True)}
        del graph.metadata_props[:]
        for key, value in meta.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(graph)
        onnx.save(graph, str(tmp))
        worst = check_parity(tmp, encoder, input_kind, model.fbank_options, waves, tolerance) if check else None
    seconds = time.perf_counter() - start
    logger.info("exported %s (%s input, %s exporter, opset %d) to %s in %.1f s%s", model_dir, input_kind, exporter,
                opset, out, seconds, "" if worst is None else f"; max |ONNX - PyTorch| = {worst:.2e}")
    return ExportReport(out, input_kind, worst, seconds)
