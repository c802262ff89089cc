"""Kaldi-style offline augmentation for the fbank path: augmented copies of a data dir, without new audio.

``make_augmented_copies`` writes one data dir per kind (``<src>_reverb``,
``<src>_noise``, ...) whose utterances ``<utt>-<kind>`` keep their speaker and
point, in wav.scp, to the ORIGINAL audio. Their ``utt2aug`` file says, per
utterance, exactly which RIR or noise files, offsets and SNRs to apply (a spec
of :mod:`pyfunc.features.augment`, one compact JSON object per line, drawn
deterministically from the random seed, the kind and the utterance id). Stage 1
applies it with :func:`apply_augment_spec` before computing features, so the
features are those of the augmented audio and no augmented wav is written.

In a data dir, ``utt2aug`` may cover only some utterances (after combining a
clean dir with augmented copies): the others are used as they are.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from pyfunc.config import AugmentConfig
from pyfunc.data.atomic import PathLike, write_lines
from pyfunc.data.datadir import DataDir, load_data_dir, validate_data_dir, write_data_dir
from pyfunc.data.tables import KeyChecker, read_map
from pyfunc.errors import ConfigError, DataError
from pyfunc.features.augment import AUG_TYPES, AudioSource, WaveAugmenter, apply_spec

logger = logging.getLogger(__name__)

UTT2AUG = "utt2aug"

OFFLINE_KINDS = ("reverb", "noise", "music", "babble", "television")

DEFAULT_KINDS = ("reverb", "noise", "music", "babble")

_SOURCE = AudioSource()  # per process: lazy reads and a small cache of RIRs and short noises


def format_spec(spec: dict[str, Any]) -> str:
    """One-line compact JSON of a spec (floats written exactly, so a spec reads back bit for bit)."""
    return json.dumps(spec, separators=(",", ":"), ensure_ascii=False)


def _fail(where: str, text: str, why: str) -> DataError:
    shown = text if len(text) <= 200 else text[:200] + "..."
    return DataError(f"{where}: bad augmentation spec ({why}): {shown}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_augment_spec(text: str, where: str = "augmentation spec") -> dict[str, Any]:
    """Parse and check a spec written by :func:`format_spec`; DataError naming ``where`` otherwise."""
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as err:
        raise _fail(where, text, f"not JSON: {err}") from None
    if not isinstance(spec, dict) or set(spec) != {"type", "steps"}:
        raise _fail(where, text, "expected an object with keys 'type' and 'steps'")
    if spec["type"] not in AUG_TYPES:
        raise _fail(where, text, f"type {spec['type']!r} is not one of {', '.join(AUG_TYPES)}")
    if not isinstance(spec["steps"], list):
        raise _fail(where, text, "'steps' must be a list")
    for step in spec["steps"]:
        if not isinstance(step, dict):
            raise _fail(where, text, "each step must be an object")
        if step.get("op") == "reverb" and set(step) == {"op", "rir"}:
            if not isinstance(step["rir"], str) or not step["rir"]:
                raise _fail(where, text, "'rir' must be a file name")
        elif step.get("op") == "add" and set(step) == {"op", "sources"}:
            if not isinstance(step["sources"], list) or not step["sources"]:
                raise _fail(where, text, "'sources' must be a non-empty list")
            for source in step["sources"]:
                if not isinstance(source, dict) or set(source) - {"segment"} != {"wav", "start", "snr"}:
                    raise _fail(where, text, "each source needs exactly 'wav', 'start' and 'snr' (and may have "
                                             "'segment')")
                if not isinstance(source["wav"], str) or not source["wav"]:
                    raise _fail(where, text, "'wav' must be a file name")
                segment = source.get("segment", [0, 1])
                if not (isinstance(segment, list) and len(segment) == 2 and all(
                        isinstance(v, int) and not isinstance(v, bool) for v in segment)
                        and 0 <= segment[0] < segment[1]):
                    raise _fail(where, text, f"'segment' must be [begin, end] samples, 0 <= begin < end, "
                                             f"got {segment!r}")
                if not _number(source["start"]) or not 0.0 <= source["start"] < 1.0:
                    raise _fail(where, text, f"'start' must be a number in [0, 1), got {source['start']!r}")
                if not _number(source["snr"]):
                    raise _fail(where, text, f"'snr' must be a finite number, got {source['snr']!r}")
        else:
            raise _fail(where, text, "a step is {'op': 'reverb', 'rir': ...} or {'op': 'add', 'sources': [...]}")
    return spec


def apply_augment_spec(samples: np.ndarray, spec: str) -> np.ndarray:
    """The augmented ``samples`` (float32, same length) described by one ``utt2aug`` spec."""
    return apply_spec(samples, parse_augment_spec(spec), _SOURCE).astype(np.float32)


def read_utt2aug(data_dir: PathLike, utts: Iterable[str] | None = None) -> dict[str, str]:
    """``utt -> spec`` from ``data_dir/utt2aug``; {} when the file is absent.

    Checks sorted unique keys (LC_ALL=C order) and every spec; with ``utts``, that
    every key is one of them.
    """
    path = Path(data_dir) / UTT2AUG
    if not path.is_file():
        return {}
    table: dict[str, str] = {}
    check_key = KeyChecker()
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                fields = line.strip().split(None, 1)
                if not fields:
                    continue
                where = f"{path}:{number}"
                if len(fields) != 2:
                    raise DataError(f"{where}: expected '<utt> <spec>', got {line.strip()!r}")
                key, spec = fields
                check_key(key, where)
                parse_augment_spec(spec, where)
                table[key] = spec
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a UTF-8 text file ({err})") from None
    if utts is not None:
        extra = sorted(set(table) - set(utts))
        if extra:
            raise DataError(f"{path}: {len(extra)} utterance(s) not in utt2spk, e.g. {extra[:3]}")
    return table


def write_utt2aug(path: PathLike, table: dict[str, str]) -> None:
    """Write ``utt -> spec`` sorted by key (LC_ALL=C order), atomically."""
    write_lines(path, (f"{key} {table[key]}" for key in sorted(table)))


def split_utt2aug(data_dir: PathLike, parts: Sequence[PathLike]) -> None:
    """Give each split part of ``data_dir`` (from ``split_data_dir``) the ``utt2aug`` lines of its utterances."""
    table = read_utt2aug(data_dir)
    for part in parts:
        target = Path(part) / UTT2AUG
        subset = {u: table[u] for u in read_map(Path(part) / "utt2spk") if u in table}
        if subset:
            write_utt2aug(target, subset)
        else:
            target.unlink(missing_ok=True)


def utt_rng(random_seed: int, kind: str, utt: str) -> np.random.Generator:
    """The random stream of one augmented utterance: a function of (random_seed, kind, utt) only."""
    digest = hashlib.sha256(f"{kind}\n{utt}".encode()).digest()
    return np.random.default_rng([random_seed, int.from_bytes(digest[:16], "little")])


def _replace_dir(final: Path, fill) -> None:
    """Build a directory under a temporary name beside ``final`` with ``fill(tmp)``, then swap it in."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    old = None
    try:
        fill(tmp)
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
            os.rmdir(old)
            os.replace(final, old)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
        if old is not None and old.exists():
            shutil.rmtree(old)


def make_augmented_copies(src_data_dir: PathLike, out_root: PathLike, kinds: Sequence[str] = DEFAULT_KINDS,
                          cfg: AugmentConfig | None = None, random_seed: int = 0) -> list[Path]:
    """Write ``out_root/<src_name>_<kind>`` for each kind; return their paths.

    Utterance ids become ``<utt>-<kind>`` (speaker unchanged); wav.scp (and
    utt2dur, if present) are those of the source; ``utt2aug`` holds the spec of
    each utterance, drawn with :meth:`WaveAugmenter.draw_spec` from
    :func:`utt_rng` ``(random_seed, kind, utt)``, so a spec does not depend on the other
    utterances. Each directory is written whole under a temporary name, then renamed.
    """
    if cfg is None:
        raise ConfigError("make_augmented_copies: an AugmentConfig (musan_dir, rir_dir, SNR ranges) is required")
    if not isinstance(random_seed, int) or random_seed < 0:
        raise ConfigError(f"augmentation random seed must be a non-negative integer, got {random_seed!r}")
    kinds = tuple(kinds)
    bad = [k for k in kinds if k not in OFFLINE_KINDS]
    if not kinds or bad or len(set(kinds)) != len(kinds):
        raise ConfigError(f"augmentation kinds {list(kinds)!r}: give distinct kinds among {', '.join(OFFLINE_KINDS)}")
    src = Path(os.path.abspath(src_data_dir))
    data = load_data_dir(src)
    if not data.utt2spk:
        raise DataError(f"{src / 'utt2spk'}: no utterances")
    missing = sorted(set(data.utt2spk) - set(data.wav_scp))
    if missing:
        raise DataError(f"{src / 'wav.scp'}: {len(missing)} utterance(s) of utt2spk missing, e.g. {missing[:3]}")
    if (src / UTT2AUG).is_file():
        raise DataError(f"{src / UTT2AUG}: {src} is already augmented; make copies of the clean data dir")
    augmenter = WaveAugmenter.from_config(cfg, types=kinds)
    out = []
    for kind in kinds:
        rename = {utt: f"{utt}-{kind}" for utt in data.utts}
        copy = DataDir({rename[u]: data.wav_scp[u] for u in data.utts},
                       {rename[u]: data.utt2spk[u] for u in data.utts},
                       {rename[u]: v for u, v in data.utt2dur.items()})
        specs = {rename[u]: format_spec(augmenter.draw_spec(utt_rng(random_seed, kind, u), kind)) for u in data.utts}

        def fill(tmp: Path, copy: DataDir = copy, specs: dict[str, str] = specs) -> None:
            write_data_dir(tmp, copy)
            write_utt2aug(tmp / UTT2AUG, specs)

        final = Path(out_root) / f"{src.name}_{kind}"
        _replace_dir(final, fill)
        logger.info("%s: %d utterances augmented with %s", final, len(specs), kind)
        out.append(final)
    return out


def combine_data_dirs(out_dir: PathLike, dirs: Sequence[PathLike]) -> DataDir:
    """Kaldi's utils/combine_data.sh: the union of data dirs into ``out_dir`` (replaced whole).

    utt2spk, wav.scp and utt2aug are united; utt2dur, feats.scp and utt2num_frames
    only when every input has them (otherwise they are left out, with a warning).
    An utterance id in two inputs is a DataError naming both.
    """
    if not dirs:
        raise DataError("combine_data_dirs: no input data dirs")
    out_path = Path(os.path.abspath(out_dir))
    loaded: list[tuple[Path, DataDir, dict[str, str]]] = []
    owner: dict[str, Path] = {}
    for d in dirs:
        path = Path(os.path.abspath(d))
        if path == out_path:
            raise DataError(f"{path}: the output data dir cannot also be an input")
        data = load_data_dir(path)
        if set(data.wav_scp) != set(data.utt2spk):
            raise DataError(f"{path / 'wav.scp'}: utterances differ from those of utt2spk")
        for utt in data.utt2spk:
            if utt in owner:
                raise DataError(f"{path / 'utt2spk'}: utterance {utt!r} is also in {owner[utt]}; "
                                "combined data dirs must not share utterance ids")
            owner[utt] = path
        loaded.append((path, data, read_utt2aug(path, data.utt2spk)))
    combined = DataDir({}, {})
    utt2aug: dict[str, str] = {}
    for _, data, aug in loaded:
        combined.wav_scp.update(data.wav_scp)
        combined.utt2spk.update(data.utt2spk)
        utt2aug.update(aug)
    for name, attr in (("utt2dur", "utt2dur"), ("feats.scp", "feats_scp"), ("utt2num_frames", "utt2num_frames")):
        have = [path for path, data, _ in loaded if getattr(data, attr)]
        if len(have) == len(loaded):
            for _, data, _ in loaded:
                getattr(combined, attr).update(getattr(data, attr))
        elif have:
            lacking = [str(path) for path, data, _ in loaded if not getattr(data, attr)]
            logger.warning("combine_data_dirs: %s left out of %s: missing in %s", name, out_path, ", ".join(lacking))

    def fill(tmp: Path) -> None:
        write_data_dir(tmp, combined)
        if utt2aug:
            write_utt2aug(tmp / UTT2AUG, utt2aug)

    _replace_dir(out_path, fill)
    return combined


def random_subset(src_dir: PathLike, out_dir: PathLike, num_utts: int, random_seed: int = 0) -> DataDir:
    """Kaldi's ``utils/subset_data_dir.sh SRC N OUT``: ``num_utts`` utterances drawn at random (seeded), with
    their ``utt2aug`` lines, into ``out_dir`` (replaced whole). The Kaldi VoxCeleb recipe keeps 1M of its
    augmented copies this way. ``num_utts`` at or above the size of ``src_dir`` keeps everything.
    """
    if not isinstance(num_utts, int) or num_utts < 1:
        raise ConfigError(f"subset size must be a positive integer, got {num_utts!r}")
    src = Path(os.path.abspath(src_dir))
    out_path = Path(os.path.abspath(out_dir))
    if src == out_path:
        raise DataError(f"{src}: the subset must go to another data dir")
    data = load_data_dir(src)
    aug = read_utt2aug(src, data.utt2spk)
    utts = data.utts
    if num_utts < len(utts):
        keep = np.random.default_rng([random_seed, len(utts)]).choice(len(utts), size=num_utts, replace=False)
        utts = [utts[i] for i in sorted(keep)]
    subset = data.subset(utts)
    kept = {u: aug[u] for u in subset.utt2spk if u in aug}

    def fill(tmp: Path) -> None:
        write_data_dir(tmp, subset)
        if kept:
            write_utt2aug(tmp / UTT2AUG, kept)

    _replace_dir(out_path, fill)
    logger.info("%s: %d of the %d utterances of %s", out_path, len(subset.utt2spk), len(data.utt2spk), src)
    return subset


def combine_and_subset(out_dir: PathLike, dirs: Sequence[PathLike], subset: int = 0, random_seed: int = 0) -> None:
    """:func:`combine_data_dirs`, then with ``subset`` > 0 :func:`random_subset` of the union; checked as a
    data dir (Kaldi's combine_data.sh then subset_data_dir.sh)."""
    if subset < 0:
        raise ConfigError(f"--subset must be 0 (all) or a positive number, got {subset}")
    if subset == 0:
        combine_data_dirs(out_dir, dirs)
    else:
        out = Path(out_dir)
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp:
            combine_data_dirs(Path(tmp) / "all", dirs)
            random_subset(Path(tmp) / "all", out, subset, random_seed)
    validate_data_dir(out_dir, check_wavs=False, check_trials=False)
