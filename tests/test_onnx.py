"""ONNX export: onnxruntime embeddings equal PyTorch's (<= 1e-4) with and without the front end, and stage 3
extracts with an export."""

from __future__ import annotations

import kaldiio
import numpy as np
import onnx
import pytest
import torch
from tools_helpers import REPO, copy_data_dir, needs_espeak, tiny_mini_corpus, tiny_model_dir

import pyfunc
from pyfunc.cli.tools import main as pyfunc_main
from pyfunc.data.tables import read_scp
from pyfunc.errors import DataError, PyfuncError
from pyfunc.inference.onnx_export import ExportableEncoder, check_parity, export_onnx
from pyfunc.inference.onnx_runtime import onnx_metadata, ort_session
from pyfunc.pipeline.extract_job import extract_embeddings
from pyfunc.pipeline.fbank_stage import make_fbank

pytestmark = needs_espeak
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    data = copy_data_dir(tiny_mini_corpus(tmp_path_factory) / "test", root / "test")
    return {"root": root, "data": data, "wavs": [read_scp(data / "wav.scp")[k] for k in
                                                 sorted(read_scp(data / "wav.scp"))]}


@pytest.fixture(scope="module")
def exported(mini):
    """A tiny fbank model (seed protocol: crops too) exported without and with its front end."""
    root = mini["root"]
    model_dir = tiny_model_dir(root / "model", protocol="seed", random_seed=6)
    without = export_onnx(model_dir, model_dir / "model.onnx", include_frontend=False, exporter="torchscript",
                          check_wavs=mini["wavs"][:2])
    with_fe = export_onnx(model_dir, root / "wave.onnx", include_frontend=True, exporter="torchscript")
    return {"model_dir": model_dir, "without": without, "with": with_fe}


def _ort_embed(path, items) -> np.ndarray:
    session = ort_session(path)
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: item[None].astype(np.float32)})[0] for item in items])


def test_fbank_model_with_and_without_front_end(mini, exported) -> None:
    model = pyfunc.load_model(exported["model_dir"])
    waves = [model.load_audio(w) for w in mini["wavs"][2:5]]
    reference = np.stack([model.embed(w) for w in waves])
    assert np.abs(reference).max() > 0.1  # embeddings of a size that makes 1e-4 a real bound

    without = exported["without"]
    assert without.input_kind == "features" and without.max_abs_diff <= TOLERANCE
    feats = [model.model_input(w) for w in waves]
    assert np.abs(_ort_embed(without.path, feats) - reference).max() <= TOLERANCE

    with_fe = exported["with"]
    assert with_fe.input_kind == "waveform" and with_fe.max_abs_diff <= TOLERANCE
    assert np.abs(_ort_embed(with_fe.path, waves) - reference).max() <= TOLERANCE
    graph = onnx.load(str(with_fe.path))
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert graph.graph.input[0].name == "waveform" and [d.dim_param for d in dims] == ["batch", "time"]
    meta = onnx_metadata(with_fe.path)
    assert meta["pyfunc_input"] == "waveform" and meta["pyfunc_frontend"] == "fbank"
    assert '"num_mel_bins": 80' in meta["pyfunc_fbank_options"]


def test_seed_model_default_exporter_through_the_command(mini, tmp_path, capsys) -> None:
    """The default path: torch.export-based exporter, the seed model's native (waveform) input."""
    model_dir = tiny_model_dir(tmp_path / "seed", frontend="seed", random_seed=2)
    assert pyfunc_main(["export-onnx", "--model-dir", str(model_dir), "--out", str(tmp_path / "seed.onnx"),
                        "--check-wav", mini["wavs"][0], "--check-wav", mini["wavs"][5]]) == 0
    assert "waveform input, max |ONNX - PyTorch|" in capsys.readouterr().out
    model = pyfunc.load_model(model_dir)
    waves = [model.load_audio(w) for w in mini["wavs"][1:3]]
    reference = np.stack([model.embed(w) for w in waves])
    assert np.abs(_ort_embed(tmp_path / "seed.onnx", waves) - reference).max() <= TOLERANCE


def test_parity_check_fails_on_a_wrong_graph(mini, exported) -> None:
    model = pyfunc.load_model(exported["model_dir"])
    path = exported["without"].path
    waves = [model.load_audio(mini["wavs"][0])]
    assert check_parity(path, model.encoder, "features", model.fbank_options, waves) <= TOLERANCE
    with torch.no_grad():
        model.encoder.fc6.bias += 1e-3  # PyTorch now differs from the export by 1e-3 on every output
    with pytest.raises(PyfuncError, match="differ from PyTorch's by"):
        check_parity(path, model.encoder, "features", model.fbank_options, waves)


def test_stage3_extracts_with_onnxruntime(mini, exported, tmp_path) -> None:
    data = copy_data_dir(mini["data"], tmp_path / "test")
    make_fbank(data, REPO / "conf" / "fbank.conf", tmp_path / "fbank", tmp_path / "fbank" / "log", num_jobs=1)
    model_dir = exported["model_dir"]
    extract_embeddings(model_dir, data, tmp_path / "torch", device="cpu")
    extract_embeddings(model_dir, data, tmp_path / "ort", onnx=model_dir / "model.onnx")
    for name in ("xvector.scp", "xvector_crops.scp"):
        ours, theirs = kaldiio.load_scp(str(tmp_path / "ort" / name)), kaldiio.load_scp(str(tmp_path / "torch" / name))
        assert sorted(ours) == sorted(theirs) and len(ours) == 6
        assert max(np.abs(ours[k] - theirs[k]).max() for k in ours) <= TOLERANCE

    # an export of another model.pt, or with the other input, is refused
    other = tiny_model_dir(tmp_path / "other", random_seed=7)
    with pytest.raises(DataError, match="exported from another model.pt"):
        extract_embeddings(other, data, tmp_path / "bad", onnx=model_dir / "model.onnx")
    with pytest.raises(DataError, match="takes waveform input, but stage 3 feeds this fbank model features"):
        extract_embeddings(model_dir, data, tmp_path / "bad", onnx=exported["with"].path)


def test_front_end_options_the_graph_cannot_reproduce_are_refused(tmp_path) -> None:
    model_dir = tiny_model_dir(tmp_path / "model")
    (model_dir / "fbank.conf").write_text("--num-mel-bins=80\n--dither=1.0\n")
    model = pyfunc.load_model(model_dir)
    with pytest.raises(PyfuncError, match="--dither=1.0 is not supported by the ONNX front end"):
        ExportableEncoder(model.encoder, "waveform", model.fbank_options)
