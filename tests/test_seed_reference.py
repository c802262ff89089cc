"""Seed checkpoint import/export, and the seed system's own outputs reproduced through stages 3 and 4."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch
from conftest import SHARED

from pyfunc.data.atomic import write_lines
from pyfunc.data.audio import read_audio
from pyfunc.data.tables import write_table
from pyfunc.errors import PyfuncError
from pyfunc.features.seed_logmel import SeedLogMel
from pyfunc.models.aam_softmax import AAMSoftmax
from pyfunc.models.ecapa import ECAPATDNN
from pyfunc.models.model_dir import load_model_dir, load_model_dir_with_head, save_model_dir
from pyfunc.models.seed_format import export_seed_checkpoint, import_seed_checkpoint
from pyfunc.pipeline.extract_job import extract_embeddings

ROOT = Path(__file__).resolve().parents[1]
REF = SHARED / "reference"
CHECKPOINT = REF / "seed_ecapa_c1024.model"
pytestmark = pytest.mark.skipif(not CHECKPOINT.is_file(), reason="seed reference data not available")


@pytest.fixture(scope="module")
def reference():
    return torch.load(REF / "seed_ecapa_c1024_reference.pt", weights_only=True)


@pytest.fixture(scope="module")
def seed_model(tmp_path_factory):
    """The seed checkpoint imported into a model directory."""
    root = tmp_path_factory.mktemp("seed")
    import_seed_checkpoint(CHECKPOINT, root / "model")
    return root


@pytest.fixture(scope="module")
def seed_run(seed_model):
    """Stage 3 (seed protocol) with the imported seed model on the reference wavs."""
    root = seed_model
    wavs = {p.name: str(p) for p in sorted((REF / "wav").glob("utt*.wav"))}
    assert len(wavs) == 6
    write_table(root / "data" / "wav.scp", wavs)
    write_table(root / "data" / "utt2spk", {k: k.split(".")[0] for k in wavs})
    write_table(root / "data" / "spk2utt", {k.split(".")[0]: k for k in wavs})
    extract_embeddings(root / "model", root / "data", root / "emb", protocol="seed", device="cpu")
    return root


def _read_scp(path: Path) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in kaldiio.load_scp(str(path)).items()}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _close(ours: np.ndarray, ref: torch.Tensor, what: str) -> None:
    ref = ref.numpy()
    assert ours.shape == ref.shape, what
    assert np.abs(ours - ref).max() <= 1e-4, what
    cos = (_unit(ours.reshape(-1, ref.shape[-1])) * _unit(ref.reshape(-1, ref.shape[-1]))).sum(-1)
    assert cos.min() >= 0.99999, what


def test_imported_config(seed_run):
    _, config = load_model_dir(seed_run / "model")
    assert (config.model.frontend, config.model.channels, config.model.embed_dim, config.model.num_classes) == \
        ("seed", 1024, 192, 20)
    assert config.extract.protocol == "seed"


def _mkl_symbol(name: str) -> int | None:
    """The value of MKL's service function NAME in this process; None when torch carries no MKL.

    The lookup in the global scope comes first, so an LD_PRELOADed shim answers for MKL.
    """
    try:
        return int(getattr(ctypes.CDLL(None), name)())
    except AttributeError:
        pass
    try:
        return int(getattr(ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so")), name)())
    except (OSError, AttributeError):
        return None


def _mkl_takes_its_intel_path() -> bool | None:
    """Whether oneMKL in this process dispatches its Intel-CPU kernels; None when torch carries no MKL."""
    answer = _mkl_symbol("mkl_serv_intel_cpu_true")
    return None if answer is None else bool(answer)


# oneMKL's code branches (MKL_CBWR_* in mkl_cbwr.h) from its AVX-512 kernels up: the reference's FFTs
# ran on one of these (an Intel Xeon; the test also passed bit for bit on AMD Zen 4/5 with the shim).
MKL_CBWR_AVX512 = 12


def _mkl_code_branch() -> int | None:
    """The code branch MKL dispatches here (MKL_CBWR_*: 10 AVX2, 12 AVX512, 14 AVX512_E1); None if unknown.

    mkl_serv_cbwr_get_auto_branch is MKL's internal answer to MKL_CBWR_AUTO; it honours the
    CPU's instruction sets and MKL_ENABLE_INSTRUCTIONS.
    """
    return _mkl_symbol("mkl_serv_cbwr_get_auto_branch")


def _logmel_pairs(model_root: Path, reference) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(ours, reference) log-mel per utterance, through the imported model's front end (what stage 3 runs)."""
    model, _ = load_model_dir(model_root / "model")
    pairs = {}
    for name, ref in reference["per_utt"].items():
        wav = torch.from_numpy(read_audio(str(REF / "wav" / name)))[None]
        pairs[name] = (model.logmel(wav)[0].numpy(), ref["logmel_cmn"].numpy())
        assert pairs[name][0].shape == pairs[name][1].shape, name
    return pairs


def test_logmel_matches_the_seed(seed_model, reference, tmp_path):
    """Where MKL runs the reference's FFT kernels, the seed front end gives the seed's log-mel bit for bit.

    Bound: max abs difference <= 1e-4 and cosine >= 0.99999 per frame, which only
    identical FFT kernels meet (other kernels move near-silent bands by up to 2e-4,
    see test_logmel_is_within_fft_round_off_on_any_cpu). The reference was computed
    on oneMKL's Intel-CPU code path with its AVX-512 kernels. So the claim is made
    only where MKL dispatches those: on an Intel CPU with AVX-512, or on another x86
    CPU with AVX-512 through tests/mkl_intel_cpu_shim.c (preloaded in a rerun of
    this test), which makes MKL take its Intel path. On a CPU without AVX-512
    (e.g. an AMD EPYC with AVX2 only) MKL's Intel path runs its AVX2 kernels, whose
    round-off differs: the test skips, saying so, and the any-CPU test holds there.
    """
    intel_path = _mkl_takes_its_intel_path()
    if intel_path is None:
        pytest.skip("torch carries no oneMKL here, and the reference's FFT round-off is MKL's")
    if intel_path:
        branch = _mkl_code_branch()
        if branch is None or branch < MKL_CBWR_AVX512:
            pytest.skip(f"MKL's Intel path here runs code branch {branch} (MKL_CBWR_*; no AVX-512 kernels), not the "
                        "reference's AVX-512 FFTs; test_logmel_is_within_fft_round_off_on_any_cpu bounds this CPU")
        for name, (ours, want) in _logmel_pairs(seed_model, reference).items():
            assert np.abs(ours - want).max() <= 1e-4, name
            assert ((_unit(ours) * _unit(want)).sum(-1)).min() >= 0.99999, name
        return
    assert "PYFUNC_MKL_SHIM" not in os.environ, "the preloaded shim did not change MKL's CPU dispatch"
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("non-Intel CPU and no C compiler to build tests/mkl_intel_cpu_shim.c")
    shim = tmp_path / "libmkl_intel_cpu_shim.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(shim), str(ROOT / "tests" / "mkl_intel_cpu_shim.c")],
                   check=True)
    preload = " ".join(filter(None, [str(shim), os.environ.get("LD_PRELOAD")]))
    env = {**os.environ, "LD_PRELOAD": preload, "PYFUNC_MKL_SHIM": "1"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             f"{__file__}::test_logmel_matches_the_seed"],
                            capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    if "1 skipped" in result.stdout:
        reason = [line for line in result.stdout.splitlines() if "SKIPPED" in line]
        pytest.skip(f"with the shim preloaded: {reason[0] if reason else result.stdout.strip()}")
    assert "1 passed" in result.stdout, result.stdout + result.stderr


def _exact_logmel(name: str) -> np.ndarray:
    """The seed front end's log-mel of REF/wav/NAME computed in float64 (round-off ~1e-12: "exact" here)."""
    front_end = SeedLogMel().double()
    wav = torch.from_numpy(read_audio(str(REF / "wav" / name))).double()[None]
    with torch.no_grad():
        power = torch.nn.Sequential.forward(front_end, wav)  # the float64 chain, without forward's float32 cast
        logmel = (power + 1e-6).log()
        return (logmel - logmel.mean(dim=-1, keepdim=True))[0].numpy()


def test_logmel_is_within_fft_round_off_on_any_cpu(seed_model, reference):
    """On whatever FFT kernels MKL (or pocketfft) picks here, the log-mel is within float32 FFT round-off.

    The bound, from float32 round-off: a float32 FFT of an N-point frame x gives each
    bin with an error of about eps * sqrt(log2 N) * ||x|| (eps = 2**-24; the rms of
    the Cooley-Tukey bound eps * log2 N * ||x||, Higham, Accuracy and Stability of
    Numerical Algorithms, ch. 24). A mel band of power P then moves by a relative
    2 * eps * sqrt(log2 N) * ||x|| / sqrt(P), and so does its log: ~1e-5 for a band
    with 1e-3 of the frame's energy, but ~3.6e-4 for the near-silent low bands
    (1e-6 of it) a few frames of these files have. Which values get which share of
    that depends on the kernel's order of operations, so two correct kernels agree
    no better than this. Hence, against the float64 log-mel: all values within
    2.5e-4, 99.99 % within 1.5e-4, mean below 2e-6 (the reference itself, MKL's
    AVX-512 kernels, is at most 1.2e-4 / 9e-5 / 1e-6 from it); against the
    reference, by the triangle inequality, within 5e-4; and every frame's cosine
    >= 0.99999, since the round-off sits in bands that carry no energy. Measured on
    an AMD Zen 5 (2026-12-07): at most 2.0e-4 from the reference on MKL's AMD and
    AVX2 paths, 0 on its AVX-512 Intel path.
    """
    for name, (ours, want) in _logmel_pairs(seed_model, reference).items():
        exact = _exact_logmel(name)
        assert np.abs(want - exact).max() <= 1.5e-4, f"{name}: the reference is not float32 round-off of the seed"
        error = np.abs(ours - exact)
        assert error.max() <= 2.5e-4 and np.quantile(error, 0.9999) <= 1.5e-4 and error.mean() <= 2e-6, name
        assert np.abs(ours - want).max() <= 5e-4, name
        assert ((_unit(ours) * _unit(want)).sum(-1)).min() >= 0.99999, name


def test_embeddings_match_the_seed(seed_run, reference):
    full = _read_scp(seed_run / "emb" / "xvector.scp")
    crops = _read_scp(seed_run / "emb" / "xvector_crops.scp")
    assert sorted(full) == sorted(crops) == sorted(reference["per_utt"])
    for name, ref in reference["per_utt"].items():
        _close(full[name], ref["embedding_raw"], f"{name} raw")
        _close(_unit(full[name]), ref["embedding_full"], f"{name} full")
        _close(_unit(crops[name]), ref["embedding_crops"], f"{name} crops")


def test_scores_match_the_seed(seed_run, reference, tmp_path):
    from pyfunc.pipeline.score_stage import score_trials

    pairs = [line.split() for line in (REF / "seed_ecapa_c1024_scores.txt").read_text().splitlines() if line.strip()]
    assert len(pairs) == 15
    write_lines(tmp_path / "trials", (f"{e} {t}" for e, t, _ in pairs))
    score_trials(tmp_path / "trials", seed_run / "emb", tmp_path / "scores", protocol="auto")
    ours = {}
    for line in (tmp_path / "scores").read_text().splitlines():
        enroll, test, score = line.split()[:3]
        ours[(enroll, test)] = float(score)
    assert len(ours) == 15
    for enroll, test, score in pairs:
        assert ours[(enroll, test)] == pytest.approx(float(score), abs=1e-5)
    for enroll, test, score in reference["trials"]:
        assert ours[(enroll, test)] == pytest.approx(score, abs=1e-5)


def test_export_import_round_trip_is_bit_identical(seed_run, tmp_path):
    export_seed_checkpoint(seed_run / "model", tmp_path / "exported.model")
    original = torch.load(CHECKPOINT, weights_only=True)
    exported = torch.load(tmp_path / "exported.model", weights_only=True)
    assert list(exported) == list(original)
    for key, value in original.items():
        assert exported[key].dtype == value.dtype and torch.equal(exported[key], value), key
    import_seed_checkpoint(tmp_path / "exported.model", tmp_path / "again")
    a_enc, a_head, a_cfg = load_model_dir_with_head(seed_run / "model")
    b_enc, b_head, b_cfg = load_model_dir_with_head(tmp_path / "again")
    assert a_cfg == b_cfg
    for (key, a), b in zip(a_enc.state_dict().items(), b_enc.state_dict().values()):
        assert torch.equal(a, b), key
    assert torch.equal(a_head.weight, b_head.weight)


def _random_seed_model(channels: int, num_classes: int):
    torch.manual_seed(11)
    encoder = ECAPATDNN(channels, frontend="seed")
    gen = torch.Generator().manual_seed(3)
    for module in encoder.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=gen) + 0.5)
            module.num_batches_tracked.fill_(17)
    return encoder.eval(), AAMSoftmax(192, num_classes)


def test_other_channel_count_with_module_prefix(tmp_path):
    encoder, head = _random_seed_model(256, 11)
    state = {f"module.speaker_encoder.{k}": v for k, v in encoder.state_dict().items()}
    state["module.speaker_loss.weight"] = head.weight.detach()
    torch.save(state, tmp_path / "c256.model")
    config = import_seed_checkpoint(tmp_path / "c256.model", tmp_path / "model")
    assert (config.model.channels, config.model.embed_dim, config.model.num_classes) == (256, 192, 11)
    model, loaded_config = load_model_dir(tmp_path / "model")
    assert loaded_config == config
    wav = torch.from_numpy(read_audio(str(REF / "wav" / "utt2.wav")))[None]
    with torch.no_grad():
        assert torch.equal(model(wav), encoder(wav))
    assert int(model.bn1.num_batches_tracked) == 17


def test_import_errors_list_the_offending_keys(tmp_path):
    state = torch.load(CHECKPOINT, weights_only=True)
    state["speaker_encoder.extra.weight"] = torch.zeros(3)
    state["other.thing"] = torch.zeros(1)
    del state["speaker_encoder.layer2.convs.3.bias"]
    state["speaker_encoder.bn5.bias"] = torch.zeros(10)
    torch.save(state, tmp_path / "bad.model")
    with pytest.raises(PyfuncError) as err:
        import_seed_checkpoint(tmp_path / "bad.model", tmp_path / "model")
    message = str(err.value)
    assert "bad.model" in message
    assert "missing key(s): speaker_encoder.layer2.convs.3.bias" in message
    assert "unexpected key(s): other.thing, speaker_encoder.extra.weight" in message
    assert "mis-shaped key(s): speaker_encoder.bn5.bias (shape (10,), expected (3072,))" in message
    assert not (tmp_path / "model").exists()

    torch.save({"speaker_encoder.conv1.weight": torch.zeros(8, 80, 5)}, tmp_path / "partial.model")
    with pytest.raises(PyfuncError, match="missing key 'speaker_encoder.fc6.weight'"):
        import_seed_checkpoint(tmp_path / "partial.model", tmp_path / "model")
    torch.save([torch.zeros(1)], tmp_path / "list.model")
    with pytest.raises(PyfuncError, match="expected a state dict"):
        import_seed_checkpoint(tmp_path / "list.model", tmp_path / "model")
    (tmp_path / "trunc.model").write_bytes(CHECKPOINT.read_bytes()[:100_000])
    with pytest.raises(PyfuncError, match="truncated or corrupt"):
        import_seed_checkpoint(tmp_path / "trunc.model", tmp_path / "model")


def test_export_refuses_fbank_models(tmp_path):
    encoder = ECAPATDNN(16, embed_dim=8)
    from pyfunc.config import Config

    config = Config()
    config.model.channels, config.model.embed_dim = 16, 8
    save_model_dir(tmp_path / "model", config, encoder, AAMSoftmax(8, 2))
    with pytest.raises(PyfuncError, match="only models with the 'seed' front end can be exported"):
        export_seed_checkpoint(tmp_path / "model", tmp_path / "out.model")
    assert not (tmp_path / "out.model").exists()


def test_import_export_cli(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    encoder, head = _random_seed_model(64, 3)
    state = {f"speaker_encoder.{k}": v for k, v in encoder.state_dict().items()}
    state["speaker_loss.weight"] = head.weight.detach()
    torch.save(state, tmp_path / "c64.model")
    (tmp_path / "base.yaml").write_text("extract:\n  batch_frames: 1234\n")
    run = lambda *args: subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,  # noqa
                                       cwd=ROOT, env=env)
    result = run(ROOT / "steps" / "import_seed_model.py", "--config", tmp_path / "base.yaml", tmp_path / "c64.model",
                 tmp_path / "model")
    assert result.returncode == 0, result.stderr
    _, config = load_model_dir(tmp_path / "model")
    assert config.extract.batch_frames == 1234 and config.model.channels == 64
    result = run(ROOT / "steps" / "export_seed_model.py", tmp_path / "model", tmp_path / "out.model")
    assert result.returncode == 0, result.stderr
    back = torch.load(tmp_path / "out.model", weights_only=True)
    assert list(back) == list(state) and all(torch.equal(back[k], v) for k, v in state.items())
    result = run(ROOT / "steps" / "import_seed_model.py", tmp_path / "missing.model", tmp_path / "m2")
    assert result.returncode == 1 and "missing.model: model file not found" in result.stderr
