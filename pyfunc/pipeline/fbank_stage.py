"""Stage 1: Kaldi fbank features of a data directory, in parallel jobs, merged into feats.scp."""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
from tqdm import tqdm

from pyfunc.data.arkio import merge_scps
from pyfunc.data.atomic import PathLike, atomic_paths, remove_temporaries
from pyfunc.data.audio import is_pipe
from pyfunc.data.badinput import (
    BAD_LIST_NAME,
    SKIPPED_NAME,
    BadInputs,
    check_trials_need,
    read_bad_list,
    write_skipped,
)
from pyfunc.data.datadir import load_data_dir, split_data_dir, validate_data_dir
from pyfunc.data.dirnames import check_output_dir_name, data_dir_name
from pyfunc.data.tables import read_map, read_scp, write_table
from pyfunc.errors import DataError, PyfuncError
from pyfunc.features.augment_offline import apply_augment_spec, read_utt2aug, split_utt2aug
from pyfunc.features.kaldi_fbank import compute_fbank, count_frames, read_kaldi_conf
from pyfunc.pipeline.jobs import Job, in_process_job_log, local_thread_env, run_jobs, worker_command
from pyfunc.pipeline.stamps import FBANK_STAMP, StampSpec, needs_work, write_stamp
from pyfunc.pipeline.utterance_arks import write_utterance_arks

logger = logging.getLogger(__name__)

MIN_FRAMES = 10  # shorter audio (under about 0.1 s) is bad input: too short to say anything about a voice


def make_fbank_job(data_dir: PathLike, conf: PathLike, ark_path: PathLike, scp_path: PathLike,
                   progress: Callable[[int], None] | None = None, skip_bad: bool = False,
                   bad_list: PathLike | None = None, compress: bool = False,
                   resample: bool = False) -> dict[str, int]:
    """Compute features for every utterance of ``data_dir`` into one ark/scp pair (Kaldi-compressed
    matrices with ``compress``; audio at another rate than the conf's resampled with ``resample``).

    Returns utt -> number of frames. ``progress`` is called with the count done so far.
    Bad audio (unreadable, truncated, fewer than MIN_FRAMES frames, another rate unless ``resample``,
    several channels, non-finite samples) is collected over all utterances: without
    ``skip_bad`` the job then fails with the whole list and writes nothing; with it
    those utterances are left out. ``bad_list`` receives ``utt reason`` lines either way.
    """
    options = read_kaldi_conf(conf)
    data = load_data_dir(data_dir, features=False)
    utt2aug = read_utt2aug(data_dir, data.utts)  # Kaldi-style offline augmentation, applied before fbank

    def check(samples: np.ndarray, where: str) -> None:
        frames = count_frames(len(samples), options)
        if frames < MIN_FRAMES:
            raise DataError(f"{where}: audio too short: {len(samples)} samples give {frames} frame(s), at least "
                            f"{MIN_FRAMES} are needed")

    def features(utt: str, samples: np.ndarray) -> np.ndarray:
        return compute_fbank(apply_augment_spec(samples, utt2aug[utt]) if utt in utt2aug else samples, options)

    done = write_utterance_arks(data, Path(data_dir) / "wav.scp", ark_path, scp_path,
                                int(options.get("sample_frequency", 16000.0)), check, features,
                                lambda feats: int(feats.shape[0]), progress, skip_bad, bad_list, compress, resample)
    logger.info("%d utterances, %.1f s of audio in %.1f s (%.0fx real time)%s", len(done.measures),
                done.audio_seconds, done.elapsed, done.audio_seconds / max(done.elapsed, 1e-9),
                f"; skipped {len(done.bad)} with bad audio" if done.bad else "")
    return done.measures


def write_utt2num_frames(path: PathLike, num_frames: dict[str, int]) -> None:
    write_table(path, num_frames)


def make_fbank_part(part_dir: PathLike, conf: PathLike, ark_path: PathLike, scp_path: PathLike,
                    progress: Callable[[int], None] | None = None, skip_bad: bool = False,
                    bad_list: PathLike | None = None, compress: bool = False, resample: bool = False) -> None:
    """One stage-1 job: :func:`make_fbank_job` on a split of the data dir, plus its ``utt2num_frames``."""
    num_frames = make_fbank_job(part_dir, conf, ark_path, scp_path, progress=progress, skip_bad=skip_bad,
                                bad_list=bad_list, compress=compress, resample=resample)
    write_utt2num_frames(Path(part_dir) / "utt2num_frames", num_frames)


def fbank_stamp_spec(data_dir: PathLike, conf: PathLike, feat_dir: PathLike, skip_bad: bool = False,
                     wav_scp: Mapping[str, str] | None = None, options: Mapping | None = None,
                     compress: bool = False, resample: bool = False) -> StampSpec:
    """What stage 1's stamp ``DATA/.fbank.stamp`` records for these arguments: the fbank options, the
    feature folder, ``skip_bad``, ``compress``, ``resample``; wav.scp, utt2spk, utt2aug, the conf and the trials;
    the audio files.
    ``wav_scp`` and ``options``: the data dir's wav.scp and the conf, when the caller has read them."""
    data_dir = Path(data_dir)
    options = read_kaldi_conf(conf) if options is None else options
    wav_scp = read_scp(data_dir / "wav.scp") if wav_scp is None else wav_scp
    trials = [data_dir / "trials"] if (data_dir / "trials").is_file() else []
    params = {"fbank": options, "skip_bad_audio": skip_bad, "feat_dir": str(Path(feat_dir).resolve()),
              "min_frames": MIN_FRAMES}
    if compress:  # only when set, so that the stamps of plain runs stay valid
        params["compress"] = True
    if resample:  # likewise
        params["resample"] = True
    inputs = [data_dir / "wav.scp", data_dir / "utt2spk", data_dir / "utt2aug", Path(conf), *trials]
    audio = sorted({entry for entry in wav_scp.values() if not is_pipe(entry)})
    return StampSpec("make_fbank", params, inputs, audio)


def make_fbank(data_dir: PathLike, conf: PathLike, feat_dir: PathLike, log_dir: PathLike, num_jobs: int = 1,
               cmd: str = "", skip_bad: bool = False, force: bool = False, compress: bool = False,
               resample: bool = False) -> bool:
    """Stage 1: features of ``data_dir`` in ``num_jobs`` parallel jobs, merged into its feats.scp.

    One local job (``num_jobs`` 1, no ``cmd``) runs in this process, logging to the same
    ``log_dir/make_fbank_<name>.1.log``; others run as processes (``pyfunc.pipeline.jobs.run_jobs``).

    Writes ``feat_dir/raw_fbank_<name>.<run>.<job>.{ark,scp}`` (``<run>``: a fresh id per
    run), then ``data_dir/utt2num_frames`` and ``data_dir/feats.scp`` in utterance order
    (the same for any ``num_jobs``), then the stamp ``data_dir/.fbank.stamp``. Until the
    new feats.scp is in place the old one, its arks and its stamp are untouched, so a
    failed or killed run leaves the old complete output; the arks of earlier runs are
    removed after a success. Returns False (doing nothing) when the stamp shows the features
    are up to date, unless ``force``.

    Bad audio: see :func:`make_fbank_job`; with ``skip_bad`` the skipped keys go to
    ``data_dir/skipped_utts``, and the stage still fails if ``data_dir/trials`` needs one.

    ``compress``: Kaldi-compressed matrices (``--compress true``, as Kaldi's make_fbank.sh), about a
    quarter of the float32 size; training decodes only the rows of each chunk
    (:func:`pyfunc.data.arkio.read_matrix_rows`), as it reads only those rows of a plain ark.

    ``resample``: audio at another rate than the conf's ``--sample-frequency`` is resampled to it
    (``--resample``), instead of being bad input; the stamp records it, so toggling it recomputes.
    """

    check_output_dir_name(feat_dir, "feature folder")
    name = data_dir_name(data_dir)  # data/x/sub/.. is data/x: its arks are raw_fbank_x.*
    data_dir, feat_dir, log_dir = Path(data_dir), Path(feat_dir).resolve(), Path(log_dir)
    options = read_kaldi_conf(conf)  # fail here, not in every job
    data = validate_data_dir(data_dir, check_wavs=False, check_features=False)  # audio: read by the jobs
    trials = [data_dir / "trials"] if (data_dir / "trials").is_file() else []
    stamp_path = data_dir / FBANK_STAMP
    spec = fbank_stamp_spec(data_dir, conf, feat_dir, skip_bad, data.wav_scp, options, compress, resample)
    if not needs_work(stamp_path, spec.stage, spec.params, spec.inputs, spec.deep_inputs, data_dir / "feats.scp",
                      "features", force):
        return False
    # The old stamp stays: it describes the old outputs, which stay until the new ones replace them.
    parts = split_data_dir(data_dir, num_jobs, features=False)  # the old features are being replaced
    split_utt2aug(data_dir, parts)
    feat_dir.mkdir(parents=True, exist_ok=True)
    run = secrets.token_hex(4)
    jobs, arks, scps = [], [], []
    for job, part in enumerate(parts, start=1):
        ark, scp = feat_dir / f"raw_fbank_{name}.{run}.{job}.ark", feat_dir / f"raw_fbank_{name}.{run}.{job}.scp"
        arks.append(ark)
        scps.append(scp)
        progress = log_dir / f".progress.{name}.{job}"
        args = ["fbank", "--conf", str(conf), "--progress", str(progress), "--bad-list", str(part / BAD_LIST_NAME)]
        flags = ((["--skip-bad-audio"] if skip_bad else []) + (["--compress"] if compress else [])
                 + (["--resample"] if resample else []))
        jobs.append(Job(worker_command(*args, *flags, str(part), str(ark), str(scp)),
                        log_dir / f"make_fbank_{name}.{job}.log", progress, local_thread_env(len(parts), cmd)))
    bad = BadInputs()
    try:
        try:
            if len(parts) == 1 and not cmd:  # one local job: here, without a process that imports torch again
                with in_process_job_log(jobs[0].log, f"make_fbank_part {parts[0]} {arks[0]} {scps[0]}"), \
                        tqdm(total=len(data.utt2spk), desc=f"fbank {name}", unit="utt", disable=None) as bar:
                    make_fbank_part(parts[0], conf, arks[0], scps[0], progress=lambda done: bar.update(done - bar.n),
                                    skip_bad=skip_bad, bad_list=parts[0] / BAD_LIST_NAME, compress=compress,
                                    resample=resample)
            else:
                run_jobs(jobs, cmd, total=len(data.utt2spk), desc=f"fbank {name}")
        finally:
            for job in jobs:
                job.progress.unlink(missing_ok=True)
            for part in parts:
                bad.update(read_bad_list(part / BAD_LIST_NAME))
        check_trials_need(bad.found, trials)
        num_frames: dict[str, int] = {}
        for part in parts:
            num_frames.update({k: int(v) for k, v in read_map(part / "utt2num_frames").items()})
        outputs = [data_dir / "utt2num_frames"] + ([data_dir / SKIPPED_NAME] if bad else []) + [data_dir / "feats.scp"]
        with atomic_paths(outputs) as temporaries:  # renamed only when all are written; feats.scp last
            write_utt2num_frames(temporaries[0], num_frames)
            if bad:
                write_skipped(temporaries[1], bad.found, len(data.utt2spk), data_dir / SKIPPED_NAME)
            merge_scps(scps, temporaries[-1])
    except BaseException as err:
        _remove(arks + scps)
        if isinstance(err, PyfuncError) and bad and not skip_bad:  # a job found bad audio: list all of it
            raise bad.error(data_dir / "wav.scp", len(data.utt2spk)) from None
        raise
    if not bad:
        (data_dir / SKIPPED_NAME).unlink(missing_ok=True)
    _remove(p for p in feat_dir.glob(f"raw_fbank_{name}.*") if _is_old_output(p.name, name, run))
    remove_temporaries(feat_dir, [f"raw_fbank_{name}."])
    remove_temporaries(data_dir, ["feats.scp", "utt2num_frames", SKIPPED_NAME, FBANK_STAMP])
    outputs = [data_dir / "feats.scp", data_dir / "utt2num_frames", data_dir / SKIPPED_NAME, *arks, *scps]
    write_stamp(stamp_path, spec.stamp(outputs))
    return True


def _is_old_output(filename: str, name: str, run: str) -> bool:
    """An ark/scp of an earlier stage-1 run on data dir ``name`` (not of run ``run``)."""
    match = re.fullmatch(rf"raw_fbank_{re.escape(name)}\.(?:([0-9a-f]{{8}})\.)?\d+\.(?:ark|scp)", filename)
    return match is not None and match.group(1) != run


def _remove(paths) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)
