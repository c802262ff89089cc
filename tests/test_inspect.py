"""Kaldi's table tools without Kaldi (copy-vector, copy-feats, feat-to-dim, feat-to-len, vector-norms,
mean-vector, subset) and ``python -m pyfunc info`` on every kind of artefact."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile
from conftest import REPO, make_tone_data_dir

from pyfunc.cli.runner import run_main
from pyfunc.cli.tools import main
from pyfunc.data.arkio import ArkScpWriter
from pyfunc.data.kaldi_text import format_real, matrix_text, number_text, read_text_object, vector_text
from pyfunc.data.tables import write_table
from pyfunc.data.trials import write_trials
from pyfunc.pipeline.fbank_stage import make_fbank


def tool(capsysbinary, *args: object) -> tuple[int, bytes, str]:
    """Run ``python -m pyfunc ARGS`` in this process: (exit status, stdout bytes, stderr text)."""
    capsysbinary.readouterr()
    try:
        run_main(lambda: main([str(a) for a in args]))
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    out, err = capsysbinary.readouterr()
    return code, out, err.decode()


def tool_process(*args: object, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "pyfunc", *map(str, args)], input=stdin, capture_output=True,
                          env=env, timeout=120)


# ---------------------------------------------------------------------------------------------
# Kaldi's text format, byte for byte


def test_text_format_is_kaldis_byte_for_byte() -> None:
    """Expected bytes written out by hand from Kaldi's code (src/, as of kaldi-asr/kaldi f400766):

    - util/kaldi-table-inl.h, TableWriterArchiveImpl::Write: ``os << key << ' '`` then the object;
    - base/io-funcs-inl.h, InitKaldiOutputStream: text streams get ``os.precision(7)`` (default float
      field), so each number is C's ``%.7g`` of the float widened to double: 0.1f is 0.100000001490116
      -> ``0.1``, 1e-5f -> ``1e-05``, 123456789 rounds to the float 123456792 -> ``1.234568e+08``;
    - matrix/kaldi-vector.cc, VectorBase::Write (text): ``" [ "``, every element then ``" "``, ``"]\\n"``;
    - matrix/kaldi-matrix.cc, MatrixBase::Write (text): ``" ["``, per row ``"\\n  "`` and the elements each
      followed by ``" "``, then ``"]\\n"``; no columns: ``" [ ]\\n"``;
    - util/kaldi-holder-inl.h, BasicHolder::Write: ``WriteBasicType`` (``os << t << " "``) then ``'\\n'``.

    kaldiio's own text writer differs (``0.10000000149011612``), which is why we write the text ourselves.
    """
    vector = np.array([0.5, -1.25, 1e-5, 123456789.0, 0.1, 3.0, -0.0, 2.0 / 3.0], dtype=np.float32)
    assert vector_text(vector) == " [ 0.5 -1.25 1e-05 1.234568e+08 0.1 3 -0 0.6666667 ]\n"
    matrix = np.array([[1.0, 2.5], [-0.001, 1e10]], dtype=np.float32)
    assert matrix_text(matrix) == " [\n  1 2.5 \n  -0.001 1e+10 ]\n"
    assert matrix_text(np.zeros((3, 0), np.float32)) == " [ ]\n"
    assert number_text(312) == "312 \n" and number_text(np.float32(5.0)) == "5 \n"
    assert [format_real(x) for x in (np.inf, -np.inf, np.nan, -np.nan)] == ["inf", "-inf", "nan", "-nan"]
    assert format_real(np.float32(0.0001)) == "0.0001" and format_real(np.float32(1234567.0)) == "1234567"
    assert format_real(12345678.0) == "1.234568e+07"


def test_table_tools_write_kaldis_text(tmp_path: Path, capsysbinary) -> None:
    scp = tmp_path / "v.scp"
    with ArkScpWriter(tmp_path / "v.ark", scp) as write:
        write("a", np.array([3.0, 4.0], np.float32))
        write("b", np.array([1.0, 0.1], np.float32))
    code, out, err = tool(capsysbinary, "copy-vector", f"scp:{scp}", "ark,t:-")
    assert code == 0, err
    assert out == b"a  [ 3 4 ]\nb  [ 1 0.1 ]\n"
    code, out, _ = tool(capsysbinary, "vector-norms", f"scp:{scp}")
    assert out == b"a 5 \nb 1.004988 \n"  # sqrt(1 + 0.1f^2) = 1.00498756...
    code, out, _ = tool(capsysbinary, "mean-vector", f"scp:{scp}")
    assert out == b" [ 2 2.05 ]\n"
    code, out, _ = tool(capsysbinary, "feat-to-dim", f"scp:{scp}")
    assert out == b"2\n"


def test_text_objects_read_back_whatever_the_first_value() -> None:
    """kaldiio reads ``[ 1 0.5 ]`` as integers (its first value has no '.') and fails; ours reads floats."""
    vector = read_text_object(b" [ 1 0.5 1e-05 ]\n", lambda: b"", "x")
    assert vector.dtype == np.float32 and vector.tolist() == pytest.approx([1.0, 0.5, 1e-5])
    lines = iter([b"  1 2 \n", b"  3 4.5 ]\n"])
    matrix = read_text_object(b" [\n", lambda: next(lines), "x")
    assert matrix.shape == (2, 2) and matrix.dtype == np.float32 and matrix[1, 1] == 4.5


# ---------------------------------------------------------------------------------------------
# Copying through pipes, compression, subsets


def _vectors(path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    table = {f"utt{i:02d}": rng.standard_normal(16).astype(np.float32) * 10.0 ** rng.integers(-6, 6)
             for i in range(12)}
    table["utt00"][:4] = [1.0, 0.0, 1e-5, 123456789.0]  # integer-looking first value, zero, %g exponents
    with ArkScpWriter(path.with_suffix(".ark"), path) as write:
        for key, vector in table.items():
            write(key, vector)
    return path, table


def test_copy_vector_round_trip_through_text_pipe(tmp_path: Path) -> None:
    scp, table = _vectors(tmp_path / "xvector.scp")
    text = tool_process("copy-vector", f"scp:{scp}", "ark,t:-")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(b"utt00  [ 1 0 1e-05 1.234568e+08 ")
    out = tmp_path / "out.ark"
    back = tool_process("copy-vector", "ark,t:-", f"ark:{out}", stdin=text.stdout)
    assert back.returncode == 0, back.stderr
    copied = dict(kaldiio.load_ark(str(out)))
    assert list(copied) == list(table)
    for key, vector in table.items():
        assert copied[key].dtype == np.float32
        # seven significant digits, read back as float32: within 5e-7 relative, plus float32 rounding
        np.testing.assert_allclose(copied[key], vector, rtol=6e-7, atol=0)


def test_copy_feats_binary_compressed_and_scp(tmp_path: Path, capsysbinary) -> None:
    rng = np.random.default_rng(0)
    feats = {f"u{i}": (rng.standard_normal((20 + i, 5)) + 5).astype(np.float32) for i in range(4)}
    with ArkScpWriter(tmp_path / "f.ark", tmp_path / "f.scp") as write:
        for key, matrix in feats.items():
            write(key, matrix)
    code, _, err = tool(capsysbinary, "copy-feats", f"scp:{tmp_path / 'f.scp'}",
                        f"ark,scp:{tmp_path / 'c.ark'},{tmp_path / 'c.scp'}")
    assert code == 0, err
    exact = kaldiio.load_scp(str(tmp_path / "c.scp"))
    assert all(np.array_equal(exact[k], feats[k]) for k in feats)
    code, _, err = tool(capsysbinary, "copy-feats", "--compress=true", f"scp:{tmp_path / 'f.scp'}",
                        f"ark:{tmp_path / 'z.ark'}")
    assert code == 0, err
    assert (tmp_path / "z.ark").read_bytes()[3:8] == b"\0BCM "  # after "u0 ": Kaldi's compressed matrix
    compressed = dict(kaldiio.load_ark(str(tmp_path / "z.ark")))
    for key, matrix in feats.items():  # one byte per value within per-column quantiles: about 1 % of the range
        assert np.abs(compressed[key] - matrix).max() < 0.05 * np.ptp(matrix)
    code, out, _ = tool(capsysbinary, "copy-feats", "--compress=true", f"ark:{tmp_path / 'z.ark'}", "ark,t:-")
    assert out.startswith(b"u0  [\n  ")
    assert out.count(b"\n  ") == sum(m.shape[0] for m in feats.values())


def test_subset_keeps_the_listed_keys_in_table_order(tmp_path: Path, capsysbinary, caplog) -> None:
    scp, table = _vectors(tmp_path / "x.scp")
    (tmp_path / "keys").write_text("utt07 extra fields\nutt03\nnot-there\n")
    code, _, err = tool(capsysbinary, "subset", "--include", tmp_path / "keys", f"scp:{scp}", f"ark:{tmp_path / 's'}")
    assert code == 0, err
    kept = dict(kaldiio.load_ark(str(tmp_path / "s")))
    assert list(kept) == ["utt03", "utt07"] and np.array_equal(kept["utt07"], table["utt07"])
    assert "1 key(s)" in caplog.text and "not-there" in caplog.text
    code, _, _ = tool(capsysbinary, "subset", "--exclude", tmp_path / "keys", f"scp:{scp}", f"ark:{tmp_path / 's'}")
    assert len(dict(kaldiio.load_ark(str(tmp_path / "s")))) == 10


@pytest.mark.parametrize("args, message", [
    (["copy-vector", "feats.scp", "ark,t:-"], "error: rspecifier 'feats.scp': not a Kaldi rspecifier"),
    (["copy-vector", "scp:X/missing.scp", "ark,t:-"], "error: rspecifier scp:X/missing.scp: X/missing.scp: file not"),
    (["copy-vector", "scp:X/v.scp", "bogus,t:-"], "error: wspecifier 'bogus,t:-': not a Kaldi wspecifier (unknown"),
    (["copy-vector", "scp:X/v.scp", "scp:out.scp"], "error: wspecifier 'scp:out.scp': writing needs an ark"),
    (["copy-vector", "ark:X/gone.ark", "ark,t:-"], "error: rspecifier ark:X/gone.ark: X/gone.ark: file not found"),
    (["copy-vector", "ark:cat X/v.ark |", "ark,t:-"], "runs a command; run with --allow-pipes"),
    (["copy-feats", "scp:X/v.scp", "ark,t:-"], "key 'a': expected a matrix, got a vector of dimension 2"),
    (["subset", "--include", "X/nokeys", "scp:X/v.scp", "ark,t:-"], "error: --include X/nokeys: file not found"),
    (["copy-vector", "scp:X/bad.scp", "ark,t:-"], "X/bad.scp:1: key 'a': X/nowhere.ark: file not found"),
])
def test_bad_specifiers_and_missing_files_are_one_error_line(tmp_path: Path, capsysbinary, args, message) -> None:
    with ArkScpWriter(tmp_path / "v.ark", tmp_path / "v.scp") as write:
        write("a", np.array([3.0, 4.0], np.float32))
    (tmp_path / "bad.scp").write_text(f"a {tmp_path / 'nowhere.ark'}:2\n")
    code, out, err = tool(capsysbinary, *[a.replace("X/", f"{tmp_path}/") for a in args])
    assert code == 1 and out == b""
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message.replace("X/", f"{tmp_path}/") in lines[0], err
    assert "Traceback" not in err


def test_truncated_archive_names_the_key(tmp_path: Path, capsysbinary) -> None:
    with ArkScpWriter(tmp_path / "v.ark", tmp_path / "v.scp") as write:
        write("a", np.arange(8, dtype=np.float32))
    data = (tmp_path / "v.ark").read_bytes()
    (tmp_path / "cut.ark").write_bytes(data[:-8])  # two floats short
    code, _, err = tool(capsysbinary, "copy-vector", f"ark:{tmp_path / 'cut.ark'}", "ark,t:-")
    assert code == 1 and "key 'a': truncated object" in err


# ---------------------------------------------------------------------------------------------
# feat-to-dim and feat-to-len on stage-1 features


def test_feat_to_dim_and_len_on_stage1_features(tmp_path: Path, capsysbinary) -> None:
    data = make_tone_data_dir(tmp_path, speakers=2, utts=2, seconds=1.0)
    make_fbank(data, REPO / "conf" / "fbank.conf", tmp_path / "fbank", tmp_path / "log")
    code, out, err = tool(capsysbinary, "feat-to-dim", f"scp:{data / 'feats.scp'}", "-")
    assert code == 0 and out == b"80\n", err
    # Kaldi's frame count (snip_edges): 1 + (samples - 400) // 160 for 25 ms windows shifted by 10 ms at 16 kHz
    lengths = {}
    for utt, wav in (line.split() for line in (data / "wav.scp").read_text().splitlines()):
        samples = soundfile.info(wav).frames
        lengths[utt] = 1 + (samples - 400) // 160
    code, out, _ = tool(capsysbinary, "feat-to-len", f"scp:{data / 'feats.scp'}", "ark,t:-")
    assert out.decode() == "".join(f"{utt} {n} \n" for utt, n in sorted(lengths.items()))
    code, out, _ = tool(capsysbinary, "feat-to-len", f"scp:{data / 'feats.scp'}")
    assert out == f"{sum(lengths.values())}\n".encode()
    code, out, _ = tool(capsysbinary, "feat-to-dim", f"scp:{data / 'feats.scp'}", "ark,t:-")
    assert out.decode() == "".join(f"{utt} 80 \n" for utt in sorted(lengths))


# ---------------------------------------------------------------------------------------------
# info


def _rows(text: str) -> dict[str, str]:
    """``label  value`` rows of an info block (two or more spaces after the label)."""
    return dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in text.splitlines()[1:] if line.strip())


def test_info_of_a_data_dir_names_its_counts(tmp_path: Path, capsysbinary) -> None:
    data = make_tone_data_dir(tmp_path, speakers=3, utts=4, seconds=1.0)
    utts = sorted(line.split()[0] for line in (data / "utt2spk").read_text().splitlines())
    write_table(data / "utt2dur", {utt: f"{1.0 + 0.5 * i:.1f}" for i, utt in enumerate(utts)})  # 1.0 ... 6.5 s
    write_trials(data / "trials", [(utts[0], utts[1], True), (utts[0], utts[4], False), (utts[4], utts[5], True),
                                   (utts[0], utts[8], False), (utts[8], utts[9], True), (utts[1], utts[9], False),
                                   (utts[2], utts[10], False)])
    code, out, err = tool(capsysbinary, "info", data)
    assert code == 0, err
    rows = _rows(out.decode())
    assert out.decode().splitlines()[0] == f"{data}: Kaldi data directory"
    assert rows["speakers"] == "3" and rows["utterances"] == "12"
    assert rows["hours"].startswith("0.01 (45.0 s in utt2dur")  # 12 + 0.5 * (0 + ... + 11) = 45 s
    assert rows["trials"] == "7 (3 target, 4 nontarget), 8 utterances"  # utts 0, 1, 2, 4, 5, 8, 9, 10
    assert rows["checks"].startswith("passed")
    assert rows["features"].startswith("none")

    make_fbank(data, REPO / "conf" / "fbank.conf", tmp_path / "fbank", tmp_path / "log")
    code, out, _ = tool(capsysbinary, "info", data)
    assert _rows(out.decode())["features"].startswith("feats.scp: 12 utterances; utt2num_frames: ")

    (data / "spk2utt").write_text((data / "spk2utt").read_text().replace(f" {utts[0]}", ""))  # now disagrees
    code, out, err = tool(capsysbinary, "info", data)
    assert code == 1 and _rows(out.decode())["checks"] == "FAILED (see below)"
    assert "error: " in err and "spk2utt" in err


def test_info_of_tables_counts_entries_frames_norms_and_bad_values(tmp_path: Path, capsysbinary) -> None:
    with ArkScpWriter(tmp_path / "feats.ark", tmp_path / "feats.scp") as write:
        for key, frames in (("a", 10), ("b", 20), ("c", 30)):
            write(key, np.ones((frames, 4), np.float32))
    code, out, err = tool(capsysbinary, "info", tmp_path / "feats.scp")
    assert code == 0, err
    rows = _rows(out.decode())
    assert rows["entries"] == "3 (3 matrices)" and rows["dimension"] == "4"
    assert rows["frames"] == "60 (min 10, mean 20, max 30 per entry)" and rows["NaN/inf"] == "none"
    size = os.path.getsize(tmp_path / "feats.ark")  # 3 keys of 2 bytes, 3 headers of 15 bytes, 60 x 4 floats
    assert size == 3 * 2 + 3 * 15 + 60 * 4 * 4
    assert rows["arks"] == f"1 file(s), {size / 1000:.1f} kB: {tmp_path / 'feats.ark'} ({size / 1000:.1f} kB)"

    emb = tmp_path / "emb"
    emb.mkdir()
    kaldiio.save_ark(str(emb / "x.ark"), {"u1": np.array([3, 4, 0], np.float32), "u2": np.array([0, 0, 2], np.float32),
                                          "u3": np.array([1, np.nan, 0], np.float32)}, scp=str(emb / "xvector.scp"))
    code, out, err = tool(capsysbinary, "info", emb)
    rows = _rows(out.decode())
    assert rows["entries"] == "3 (3 vectors)" and rows["dimension"] == "3"
    assert rows["L2 norms"] == "min 2.00, mean 3.50, max 5.00 (of the finite entries)"
    assert rows["NaN/inf"] == "1 entries, e.g. ['u3']"
    assert code == 1 and "error: " in err and "NaN or infinity" in err


def test_info_of_scores_and_trials(tmp_path: Path, capsysbinary) -> None:
    trials = tmp_path / "trials"
    pairs = [("a", "b", True), ("a", "c", False), ("b", "c", False), ("c", "d", True), ("a", "d", False)]
    write_trials(trials, pairs)
    (tmp_path / "scores").write_text("a b 0.9\na c 0.1\nb c 0.2\nc d 0.7\na d 0.3\n")
    code, out, err = tool(capsysbinary, "info", "--trials", trials, tmp_path / "scores", trials)
    assert code == 0, err
    text = out.decode()
    assert f"{tmp_path / 'scores'}: score file" in text and f"{trials}: trials file" in text
    assert "  scores     5 (min 0.1000, mean 0.4400, max 0.9000)" in text
    assert "  target     2 trials, mean 0.8000" in text and "  nontarget  3 trials, mean 0.2000" in text
    assert "  EER        0.00 % " in text  # every target above every non-target
    assert "  trials  5 (2 target, 3 nontarget), 4 utterances" in text


def test_info_of_a_model_dir(tmp_path: Path, capsysbinary) -> None:
    """C=512: the seed's ECAPA-TDNN has 6 978 176 parameters (docs/reference-system.md); the AAM head 192 x 5."""
    from tools_helpers import tiny_model_dir

    from pyfunc.config import Config
    from pyfunc.models.model_dir import build_encoder, build_head, save_model_dir
    from pyfunc.scoring.operating_point import write_operating_point

    exp = tmp_path / "exp"
    config = Config()
    config.model.channels, config.model.num_classes = 512, 5
    save_model_dir(exp, config, build_encoder(config.model), build_head(config))
    (exp / "models").mkdir()
    (exp / "models" / "epoch_3.pt").write_bytes(b"")  # only its name counts here
    (exp / "log").mkdir()
    (exp / "log" / "history.tsv").write_text("epoch\tloss\taccuracy\n1\t5.0\t10\n2\t3.0\t40\n3\t1.234\t87.5\n")
    write_operating_point(exp / "calibration.yaml", {"kind": "eer", "scoring": "cosine", "threshold": 0.42,
                                                     "dev": {"trials": "data/dev/trials",
                                                             "scores": "exp/scores/dev_cosine"}})
    tiny_model_dir(exp / "untrained")
    code, out, err = tool(capsysbinary, "info", exp, exp / "untrained")
    assert code == 0, err
    first, second = out.decode().split(f"{exp / 'untrained'}: model directory\n")
    rows = _rows(first)
    assert rows["C"] == "512" and rows["classes"] == "5 training speakers"
    assert rows["parameters"].startswith("6 978 176 (encoder) + 960 (AAM-softmax head")
    assert rows["origin"].startswith("trained by stage 2: 3 epochs (") and "loss 1.234, accuracy 87.50 %" in first
    config.train.average_last = 3  # train.average_last: model.pt is not the last checkpoint
    save_model_dir(exp, config, build_encoder(config.model), build_head(config))
    code, out, err = tool(capsysbinary, "info", exp)
    assert _rows(out.decode())["origin"].startswith(
        "trained by stage 2: 3 epochs, model.pt the average of the last 3 epoch checkpoints (last checkpoint ")
    assert rows["operating point"].startswith("0.420000 on the cosine score: the EER threshold of "
                                              "exp/scores/dev_cosine against data/dev/trials")
    rows = _rows("\n" + second)
    assert rows["C"] == "32" and rows["origin"].startswith("the initial, untrained weights")
    assert rows["operating point"].startswith("none: neither")


def test_info_of_an_unknown_path_is_an_error(tmp_path: Path, capsysbinary) -> None:
    (tmp_path / "notes.txt").write_text("hello world\n")
    for path in (tmp_path / "notes.txt", tmp_path / "missing", tmp_path):
        code, out, err = tool(capsysbinary, "info", path)
        assert code == 1 and err.startswith(f"error: {path}: "), err
