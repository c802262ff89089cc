"""A speaker register: enrol named speakers from recordings, identify who speaks in another recording.

``python -m pyfunc enroll`` and ``identify`` (docs/tools.md). The register is a plain directory:

    register.yaml                  the manifest: the model it was made with (model dir, model.pt SHA-256,
                                   scoring protocol, embedding mean), and per speaker its recordings,
                                   total duration and mean embedding magnitude (verify's quality measures)
    models.ark, models.scp         one vector per speaker: the model that is scored (Kaldi binary, kaldiio;
                                   the scps name their arks by absolute path, for Kaldi tools: enroll and
                                   identify read the arks, so a copied register works where it is)
    model_crop_means.{ark,scp}     seed protocol only: the model's crop side
    speakers/<NAME>/xvector.{ark,scp}   the raw embedding of each recording, keys NAME-00001, ...
    speakers/<NAME>/xvector_crops.{ark,scp}   seed protocol only: their crop embeddings
    speakers/<NAME>/wav.scp, utt2dur    each key's recording (its absolute path) and duration in seconds

A speaker's model is :func:`pyfunc.scoring.enrolment.enrolment_model` of its embeddings (the model's
embedding mean subtracted first when its ``score.subtract_mean`` is on): the length-normalised mean of
the length-normalised embeddings, as stages 4-5 score enrolled models. ``identify`` ranks the speakers
by that score against the recording and decides at the operating point that ``verify`` uses.

Every file is replaced atomically (temporary + rename), the manifest last; an ``enroll`` holds an
exclusive ``fcntl.flock`` on ``.lock`` in the register while it reads and rewrites it, ``identify`` a
shared one, so concurrent calls see and leave a whole register. A register made with another
``model.pt`` (or another embedding mean or protocol) is refused by name, and so is a call with other voice
activity options (``--vad``, ``--vad-conf``) than the register's enrolments were made with.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import kaldiio
import numpy as np
import yaml

from pyfunc.data.arkio import ArkScpWriter
from pyfunc.data.atomic import PathLike, atomic_open, remove_temporaries
from pyfunc.data.digest import file_sha256
from pyfunc.data.tables import read_map, read_scp, write_table
from pyfunc.errors import DataError
from pyfunc.features.vad import vad_options_dict
from pyfunc.inference.api import SpeakerModel
from pyfunc.models.model_dir import MODEL_NAME
from pyfunc.scoring.calibration import quality_features
from pyfunc.scoring.cosine import l2_normalise
from pyfunc.scoring.embedding_mean import subtract_mean
from pyfunc.scoring.enrolment import enrolment_model
from pyfunc.scoring.operating_point import check_usable_by, missing_description

logger = logging.getLogger(__name__)

REGISTER_FORMAT = "pyfunc-register-1"
MANIFEST_NAME = "register.yaml"
LOCK_NAME = ".lock"
SPEAKERS_DIR = "speakers"
MODELS_SCP = "models.scp"
MODEL_CROPS_SCP = "model_crop_means.scp"
OWN_NAMES = {LOCK_NAME, MANIFEST_NAME, SPEAKERS_DIR, MODELS_SCP, "models.ark", MODEL_CROPS_SCP,
             "model_crop_means.ark"}


def check_speaker_name(name: str) -> str:
    """``name`` when it can be a speaker's folder and Kaldi key: non-empty, no whitespace, no path separator,
    no control character, not starting with a dot; otherwise a DataError saying why."""
    if not name:
        raise DataError("speaker name is empty")
    bad = [c for c in name if c.isspace() or c in "/\\" or not c.isprintable()]
    if bad:
        raise DataError(f"speaker name {name!r} contains {bad[0]!r}; names may not hold whitespace, path separators "
                        "or control characters")
    if name.startswith("."):
        raise DataError(f"speaker name {name!r} starts with a dot (hidden and temporary files do)")
    return name


def model_identity(model: SpeakerModel) -> dict[str, Any]:
    """What ties a register to a model: its directory, ``model.pt``'s SHA-256, protocol, embedding mean and
    voice activity options (``--vad``; None without)."""
    mean = model.embedding_mean
    return {"dir": str(model.model_dir.resolve()), "sha256": file_sha256(model.model_dir / MODEL_NAME),
            "protocol": model.protocol, "embed_dim": int(model.embed_dim),
            "mean_sha256": None if mean is None else file_sha256(mean.path),
            "vad": None if model.vad is None else vad_options_dict(model.vad)}


@contextlib.contextmanager
def register_lock(register: PathLike, exclusive: bool) -> Iterator[None]:
    """Hold ``fcntl.flock`` on ``REGISTER/.lock``: exclusive to change the register, shared to read it."""
    path = Path(register) / LOCK_NAME
    with open(path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def read_register(register: PathLike) -> dict[str, Any] | None:
    """The manifest of ``register`` (None when it has none yet); a malformed one is a DataError naming it."""
    path = Path(register) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise DataError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict) or data.get("format") != REGISTER_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise DataError(f"{path}: not a speaker register manifest (format {found!r}, expected {REGISTER_FORMAT!r})")
    if not isinstance(data.get("model"), dict) or not isinstance(data.get("speakers"), dict):
        raise DataError(f"{path}: expected the mappings 'model' and 'speakers'")
    return data


def check_register_model(manifest: dict[str, Any], identity: dict[str, Any], register: PathLike,
                         model_dir: PathLike) -> None:
    """DataError when ``register`` was made with another model than ``identity`` (model.pt, protocol, mean)."""
    made = manifest["model"]
    if made.get("sha256") != identity["sha256"]:
        raise DataError(f"{register} was made with model {made.get('dir')} (sha256 {str(made.get('sha256'))[:12]}...), "
                        f"not {model_dir} (sha256 {identity['sha256'][:12]}...); enrol the speakers again in "
                        "another register")
    for key, what in (("protocol", "scoring protocol"), ("mean_sha256", "embedding mean (score.subtract_mean)"),
                      ("embed_dim", "embedding dimension")):
        if made.get(key) != identity[key]:
            raise DataError(f"{register} was made with {made.get('dir')} scoring with another {what} ({made.get(key)}) "
                            f"than {model_dir} now ({identity[key]}); enrol the speakers again in another register")
    if made.get("vad") != identity["vad"]:  # registers of before --vad have no key: made without
        def said(vad: dict[str, Any] | None) -> str:
            return "without --vad" if vad is None else f"--vad ({', '.join(f'{k}={v}' for k, v in vad.items())})"
        raise DataError(f"{register} was enrolled {said(made.get('vad'))}, this call is {said(identity['vad'])}; "
                        "give the register's voice activity options (or enrol the speakers again in another register)")


@dataclass(frozen=True)
class Embedded:
    """The embeddings of some recordings, as the register keeps them."""

    paths: list[str]
    full: np.ndarray  # raw, num x dim
    crops: np.ndarray | None  # raw, num x num_crops x dim (seed protocol)
    durations: list[float]


def embed_recordings(model: SpeakerModel, audio: Sequence[PathLike]) -> Embedded:
    """Embed recordings (any format, rate and channel count, as ``verify`` reads them)."""
    paths = [str(Path(a).absolute()) for a in audio]
    samples = [model.load_audio(p, where=p) for p in paths]
    items = [model.model_input(s, p) for s, p in zip(samples, paths)]
    full = model.embed_inputs(items)
    crops = model.embed_crop_inputs(items) if model.protocol == "seed" else None
    return Embedded(paths, full, crops, [len(s) / model.sample_rate for s in samples])


def _speaker_vectors(model: SpeakerModel, full: np.ndarray, crops: np.ndarray | None, name: str
                     ) -> tuple[np.ndarray, np.ndarray | None, float]:
    """(model vector, crop side or None, mean magnitude) of a speaker's raw embeddings."""
    mean = model.embedding_mean
    vector = None if mean is None else mean.vector
    centred = subtract_mean(full, vector)
    crop_means = None
    if crops is not None:
        crop_means = np.stack([l2_normalise(subtract_mean(c, vector)).mean(axis=0) for c in crops])
    model_vector, model_crops = enrolment_model(centred, crop_means, f"speaker {name!r}")
    return model_vector, model_crops, float(np.linalg.norm(centred, axis=1).mean())


@dataclass(frozen=True)
class EnrolResult:
    """What :func:`enroll_speaker` did."""

    name: str
    added: list[str]  # recordings added
    already: list[str]  # recordings given that were enrolled already (not added again)
    total: int  # recordings of the speaker now
    new_speaker: bool


def _check_own_directory(register: Path) -> None:
    strangers = sorted(p.name for p in register.iterdir()
                       if p.name not in OWN_NAMES and not (p.name.startswith(".") and p.name.endswith(".tmp")))
    if strangers:
        raise DataError(f"{register}: not a speaker register (no {MANIFEST_NAME}) and not empty (it holds "
                        f"{', '.join(strangers[:5])}); give a new or empty directory")


def enroll_speaker(model: SpeakerModel, register: PathLike, name: str, audio: Sequence[PathLike]) -> EnrolResult:
    """Add speaker ``name`` with the recordings ``audio`` to ``register`` (made when missing), or add the
    recordings to the speaker it holds; recordings enrolled already are not added twice."""
    check_speaker_name(name)
    if not audio:
        raise DataError(f"speaker {name!r}: no recordings to enrol")
    register = Path(register)
    identity = model_identity(model)
    manifest = read_register(register)  # checked before the audio is read; again under the lock
    if manifest is not None:
        check_register_model(manifest, identity, register, model.model_dir)
    speaker_dir = register / SPEAKERS_DIR / name
    enrolled = manifest is not None and name in manifest["speakers"]
    known = set(read_scp(speaker_dir / "wav.scp").values()) if enrolled else set()
    wanted = list(dict.fromkeys(str(Path(a).absolute()) for a in audio))
    if not set(wanted) - known:
        logger.warning("speaker %r: every recording given is enrolled already; the register is unchanged", name)
        return EnrolResult(name, [], wanted, len(known), False)
    embedded = embed_recordings(model, [p for p in wanted if p not in known])
    register.mkdir(parents=True, exist_ok=True)
    with register_lock(register, exclusive=True):
        manifest = read_register(register)
        if manifest is None:
            _check_own_directory(register)
            manifest = {"format": REGISTER_FORMAT, "model": identity, "speakers": {}}
        check_register_model(manifest, identity, register, model.model_dir)
        remove_temporaries(register, ["models", "model_crop_means", MANIFEST_NAME])
        remove_temporaries(speaker_dir, ["xvector", "wav.scp", "utt2dur"])
        new_speaker = name not in manifest["speakers"]
        old_paths: dict[str, str] = {}
        old_full = np.zeros((0, identity["embed_dim"]), np.float32)
        old_crops: list[np.ndarray] = []
        old_durations: dict[str, str] = {}
        if not new_speaker:
            old_paths = read_scp(speaker_dir / "wav.scp")
            old_durations = read_map(speaker_dir / "utt2dur")
            old_full = np.stack(_read_ark(speaker_dir / "xvector.ark", sorted(old_paths), 1))
            if identity["protocol"] == "seed":
                old_crops = _read_ark(speaker_dir / "xvector_crops.ark", sorted(old_paths), 2)
        add = [i for i, p in enumerate(embedded.paths) if p not in set(old_paths.values())]
        already = [p for p in wanted if p not in {embedded.paths[i] for i in add}]
        if not add:
            logger.warning("speaker %r: every recording given is enrolled already; the register is unchanged", name)
            return EnrolResult(name, [], already, len(old_paths), False)
        keys = sorted(old_paths) + [f"{name}-{len(old_paths) + n:05d}" for n in range(1, len(add) + 1)]
        paths = {**old_paths, **{k: embedded.paths[i] for k, i in zip(keys[len(old_paths):], add)}}
        durations = {**old_durations, **{k: f"{embedded.durations[i]:.3f}" for k, i in zip(keys[len(old_paths):], add)}}
        full = np.concatenate([old_full, embedded.full[add].astype(np.float32)])
        crops = None
        if embedded.crops is not None:
            crops = np.stack([*old_crops, *embedded.crops[add].astype(np.float32)])
        vector, crop_side, magnitude = _speaker_vectors(model, full, crops, name)
        # the speaker's own files, then the models, then the manifest that lists the speaker
        _write_rows(speaker_dir / "xvector.scp", keys, list(full))
        if crops is not None:
            _write_rows(speaker_dir / "xvector_crops.scp", keys, list(crops))
        write_table(speaker_dir / "wav.scp", paths)
        write_table(speaker_dir / "utt2dur", durations)
        _replace_row(register / MODELS_SCP, name, vector)
        if crop_side is not None:
            _replace_row(register / MODEL_CROPS_SCP, name, crop_side)
        total = round(sum(float(d) for d in durations.values()), 3)
        manifest["speakers"][name] = {"recordings": len(keys), "duration": total, "magnitude": magnitude}
        manifest["speakers"] = dict(sorted(manifest["speakers"].items()))
        _write_manifest(register, manifest)
    return EnrolResult(name, [embedded.paths[i] for i in add], already, len(keys), new_speaker)


def _ark_table(ark: Path) -> dict[str, np.ndarray]:
    """Every entry of the register's ark ``ark``, read from the ark itself: the scp beside it names the ark
    by absolute path, which a copied register no longer has."""
    if not ark.is_file():
        raise DataError(f"{ark}: file not found; the register is incomplete (enrol the speaker again to rebuild it)")
    try:
        return {key: np.asarray(value) for key, value in kaldiio.load_ark(str(ark))}
    except Exception as err:  # noqa: BLE001 - kaldiio raises many kinds for a bad ark
        raise DataError(f"{ark}: cannot read it ({type(err).__name__}: {err})") from None


def _read_ark(ark: Path, keys: Sequence[str], ndim: int) -> list[np.ndarray]:
    """The arrays of ``keys`` in ``ark`` (:func:`_ark_table`), each checked to be finite with ``ndim`` axes."""
    table = _ark_table(ark)
    out = []
    for key in keys:
        if key not in table:
            raise DataError(f"{ark}: no entry for {key!r}; the register is incomplete (enrol the speaker again)")
        if table[key].ndim != ndim or not np.isfinite(table[key]).all():
            raise DataError(f"{ark}: entry {key!r} is not a finite {'vector' if ndim == 1 else 'matrix'}")
        out.append(table[key])
    return out


def _write_rows(scp: Path, keys: Sequence[str], rows: Sequence[np.ndarray]) -> None:
    with ArkScpWriter(scp.with_suffix(".ark"), scp) as write:
        for key, row in zip(keys, rows):
            write(key, np.asarray(row, dtype=np.float32))


def _replace_row(scp: Path, name: str, vector: np.ndarray) -> None:
    """Rewrite the table ``scp`` with ``name``'s row set to ``vector`` (the other rows kept)."""
    ark = scp.with_suffix(".ark")
    rows = _ark_table(ark) if ark.is_file() else {}
    rows[name] = np.asarray(vector, dtype=np.float32)
    names = sorted(rows)
    _write_rows(scp, names, [rows[n] for n in names])


def _write_manifest(register: Path, manifest: dict[str, Any]) -> None:
    with atomic_open(register / MANIFEST_NAME) as handle:
        handle.write("# A speaker register (python -m pyfunc enroll/identify): the model it was made with and its "
                     "speakers.\n")
        yaml.safe_dump(manifest, handle, sort_keys=False)


@dataclass(frozen=True)
class Candidate:
    """One enrolled speaker's score against the recording, and whether it passes the operating point."""

    name: str
    score: float
    llr: float | None
    passes: bool | None  # None: no operating point


@dataclass(frozen=True)
class Identification:
    """The ranking of :func:`identify_speaker` (best first) and its decision."""

    ranking: list[Candidate]
    threshold: float | None
    threshold_source: str

    @property
    def identified(self) -> str | None:
        """The best-scoring speaker that passes the operating point, or None."""
        return next((c.name for c in self.ranking if c.passes), None)


def _load_models(register: Path, names: list[str], scp_name: str) -> np.ndarray:
    rows = _read_ark((register / scp_name).with_suffix(".ark"), names, 1)
    if len({row.shape for row in rows}) != 1:
        raise DataError(f"{(register / scp_name).with_suffix('.ark')}: vectors of different dimensions")
    return np.stack(rows).astype(np.float64)


def identify_speaker(model: SpeakerModel, register: PathLike, audio: PathLike,
                     threshold: float | None = None) -> Identification:
    """Rank the speakers of ``register`` by their score against ``audio`` (the stage-4 score of an
    enrolled model), each decided as ``verify`` decides: ``threshold`` on the score when given, else the
    model's operating point (quality measures: the speaker's total enrolment duration and mean embedding
    magnitude on the enrolment side), else no decision."""
    register = Path(register)
    point = model.operating_point if threshold is None else None
    if point is not None:
        check_usable_by("identify", point, model.model_dir, model.embedding_mean)
    if not register.is_dir() or not any(register.iterdir()):
        raise DataError(f"{register}: the register is empty: no speaker is enrolled (add speakers with "
                        "python -m pyfunc enroll)")
    with register_lock(register, exclusive=False):
        manifest = read_register(register)
        if manifest is None:
            raise DataError(f"{register}: not a speaker register (no {MANIFEST_NAME})")
        check_register_model(manifest, model_identity(model), register, model.model_dir)
        speakers = manifest["speakers"]
        if not speakers:
            raise DataError(f"{register}: the register is empty: no speaker is enrolled (add speakers with "
                            "python -m pyfunc enroll)")
        names = list(speakers)
        vectors = _load_models(register, names, MODELS_SCP)
        crop_sides = _load_models(register, names, MODEL_CROPS_SCP) if model.protocol == "seed" else None
    test = embed_recordings(model, [audio])
    mean = model.embedding_mean
    centred = subtract_mean(test.full, None if mean is None else mean.vector)[0]
    scores = vectors @ l2_normalise(centred)
    if crop_sides is not None:
        crop_mean = l2_normalise(subtract_mean(test.crops[0], None if mean is None else mean.vector)).mean(axis=0)
        scores = 0.5 * (scores + crop_sides @ crop_mean)
    llrs: np.ndarray | None = None
    if threshold is not None:
        passes, limit, source = list(scores >= threshold), float(threshold), "given"
    elif point is None:
        passes, limit, source = [None] * len(names), None, missing_description(model.model_dir)
    else:
        limit, source = point.threshold, point.describe()
        if point.calibration is None:
            passes = list(scores >= point.threshold)
        else:
            qualities = {"duration": ([speakers[n]["duration"] for n in names], [test.durations[0]] * len(names)),
                         "magnitude": ([speakers[n]["magnitude"] for n in names],
                                       [float(np.linalg.norm(centred))] * len(names))}
            llrs = point.calibration.llrs(quality_features(scores, {m: qualities[m] for m in point.measures},
                                                           point.measures, point.max_duration))
            passes = list(llrs >= point.threshold)
    order = sorted(range(len(names)), key=lambda i: (-scores[i], names[i]))
    ranking = [Candidate(names[i], float(scores[i]), None if llrs is None else float(llrs[i]),
                         None if passes[i] is None else bool(passes[i])) for i in order]
    return Identification(ranking, limit, source)
