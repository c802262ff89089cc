"""Stage 1, voice activity: Kaldi's energy VAD (``compute-vad``) of a data directory into ``vad.scp``.

Each utterance's decision is a Kaldi float vector of 1.0/0.0 per frame, with the frames of its fbank features
(the framing of the recipe's ``fbank.conf``; :mod:`pyfunc.features.vad`). Like stage 1's features, the jobs
write ``VAD_DIR/vad_<name>.<run>.<job>.{ark,scp}``, then ``DATA/vad.scp`` is renamed into place and the stamp
``DATA/.vad.stamp`` written; a rerun with unchanged inputs does nothing. The decision is made on each entry's
audio without the offline augmentation of ``utt2aug`` (an augmented copy keeps the clean recording's decision,
as in Kaldi's VoxCeleb recipe, where the augmented copies take the clean ``vad.scp``).
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
from tqdm import tqdm

from pyfunc.data.arkio import merge_scps
from pyfunc.data.atomic import PathLike, atomic_path, remove_temporaries
from pyfunc.data.audio import is_pipe
from pyfunc.data.badinput import BAD_LIST_NAME, SHOW, BadInputs, read_bad_list, read_skipped, write_bad_list
from pyfunc.data.datadir import VAD_SCP, load_data_dir, split_data_dir, validate_data_dir
from pyfunc.data.dirnames import check_output_dir_name, data_dir_name
from pyfunc.data.tables import read_map, read_scp
from pyfunc.data.vectors import open_scp
from pyfunc.errors import DataError, PyfuncError
from pyfunc.features.kaldi_fbank import count_frames, read_kaldi_conf
from pyfunc.features.vad import compute_vad, read_vad_conf, vad_options_dict
from pyfunc.pipeline.jobs import Job, in_process_job_log, local_thread_env, run_jobs
from pyfunc.pipeline.stamps import (
    FBANK_STAMP,
    StampSpec,
    changed_files,
    needs_work,
    read_run_stamp,
    refuse_stale,
    write_stamp,
)
from pyfunc.pipeline.utterance_arks import write_utterance_arks

logger = logging.getLogger(__name__)

VAD_STAMP = ".vad.stamp"  # in the data directory, beside the vad.scp it describes

UNVOICED_NAME = "unvoiced_utts"  # per job: the keys whose decision has no voiced frame


def make_vad_job(data_dir: PathLike, vad_conf: PathLike, fbank_conf: PathLike, ark_path: PathLike,
                 scp_path: PathLike, progress: Callable[[int], None] | None = None, skip_bad: bool = False,
                 bad_list: PathLike | None = None, resample: bool = False) -> dict[str, int]:
    """The decisions of every utterance of ``data_dir`` (but those stage 1 skipped) into one ark/scp pair.

    Returns utt -> number of voiced frames. Bad audio (unreadable, another rate unless ``resample``, several
    channels, shorter than one frame) is collected over all utterances: without ``skip_bad`` the job then
    fails with the whole list and writes nothing; with it those utterances are left out. ``bad_list``
    receives ``utt reason`` lines either way. A decision without a voiced frame is written, as Kaldi's
    ``compute-vad`` does; its consumers refuse it (or skip it with ``--skip-bad-audio``).
    """
    options, fbank = read_vad_conf(vad_conf), read_kaldi_conf(fbank_conf)

    def check(samples: np.ndarray, where: str) -> None:
        if count_frames(len(samples), fbank) == 0:
            raise DataError(f"{where}: audio too short: {len(samples)} samples give no frame")

    done = write_utterance_arks(load_data_dir(data_dir, features=False), Path(data_dir) / "wav.scp", ark_path,
                                scp_path, int(fbank.get("sample_frequency", 16000.0)), check,
                                lambda utt, samples: compute_vad(samples, fbank, options),
                                lambda decision: int(decision.sum()), progress, skip_bad, bad_list,
                                resample=resample, leave_out=read_skipped(data_dir))
    return done.measures


def make_vad_part(part_dir: PathLike, vad_conf: PathLike, fbank_conf: PathLike, ark: PathLike, scp: PathLike,
                  progress: Callable[[int], None] | None = None, skip_bad: bool = False,
                  resample: bool = False) -> None:
    """One job (in process, or ``python -m pyfunc.cli.vad_worker``): :func:`make_vad_job` on a split of the
    data dir, its bad audio in ``part_dir/bad_inputs`` and the keys with no voiced frame in
    ``part_dir/unvoiced_utts``."""
    voiced = make_vad_job(part_dir, vad_conf, fbank_conf, ark, scp, progress, skip_bad,
                          Path(part_dir) / BAD_LIST_NAME, resample)
    write_bad_list(Path(part_dir) / UNVOICED_NAME, {utt: "no voiced frame" for utt, n in voiced.items() if n == 0})


def vad_stamp_spec(data_dir: PathLike, vad_conf: PathLike, fbank_conf: PathLike, vad_dir: PathLike,
                   skip_bad: bool = False, resample: bool = False,
                   wav_scp: Mapping[str, str] | None = None) -> StampSpec:
    """What ``DATA/.vad.stamp`` records: the VAD and fbank options, the ark folder, ``skip_bad`` (``resample``
    when set); wav.scp, utt2spk, skipped_utts and both confs; the audio files."""
    data_dir = Path(data_dir)
    wav_scp = read_scp(data_dir / "wav.scp") if wav_scp is None else wav_scp
    params = {"vad": vad_options_dict(read_vad_conf(vad_conf)), "fbank": read_kaldi_conf(fbank_conf),
              "vad_dir": str(Path(vad_dir).resolve()), "skip_bad_audio": skip_bad}
    if resample:
        params["resample"] = True
    inputs = [data_dir / "wav.scp", data_dir / "utt2spk", data_dir / "skipped_utts", Path(vad_conf), Path(fbank_conf)]
    audio = sorted({entry for entry in wav_scp.values() if not is_pipe(entry)})
    return StampSpec("compute_vad", params, inputs, audio)


def make_vad(data_dir: PathLike, vad_conf: PathLike, fbank_conf: PathLike, vad_dir: PathLike | None = None,
             log_dir: PathLike | None = None, num_jobs: int = 1, cmd: str = "", skip_bad: bool = False,
             force: bool = False, resample: bool = False) -> bool:
    """Stage 1's voice activity: ``data_dir/vad.scp`` in ``num_jobs`` parallel jobs (see the module docstring).

    ``vad_dir`` (default ``DATA/vad``) holds the arks, ``log_dir`` (default ``VAD_DIR/log``) the job logs.
    Utterances stage 1 skipped (``skipped_utts``) get no decision. When stage 1's features are current
    (``utt2num_frames`` and its stamp), every decision must have the utterance's frame count (a DataError names
    the key and both counts: the fbank conf differs from stage 1's). Utterances with no voiced frame are
    listed in a warning. Returns False (doing nothing) when the stamp shows vad.scp is up to date, unless
    ``force``.
    """
    check_output_dir_name(vad_dir if vad_dir is not None else "vad", "VAD folder")
    name = data_dir_name(data_dir)
    data_dir = Path(data_dir)
    vad_dir = (Path(vad_dir) if vad_dir is not None else data_dir / "vad").resolve()
    log_dir = Path(log_dir) if log_dir is not None else vad_dir / "log"
    read_vad_conf(vad_conf)  # fail here, not in every job
    read_kaldi_conf(fbank_conf)
    data = validate_data_dir(data_dir, check_wavs=False, check_features=False)
    spec = vad_stamp_spec(data_dir, vad_conf, fbank_conf, vad_dir, skip_bad, resample, data.wav_scp)
    if not needs_work(data_dir / VAD_STAMP, spec.stage, spec.params, spec.inputs, spec.deep_inputs,
                      data_dir / VAD_SCP, "voice-activity decisions", force):
        return False
    parts = split_data_dir(data_dir, num_jobs, features=False)
    vad_dir.mkdir(parents=True, exist_ok=True)
    run = secrets.token_hex(4)
    arks = [vad_dir / f"vad_{name}.{run}.{job}.ark" for job in range(1, len(parts) + 1)]
    scps = [ark.with_suffix(".scp") for ark in arks]
    bad, unvoiced = BadInputs(), BadInputs()
    try:
        try:
            if len(parts) == 1 and not cmd:
                with in_process_job_log(log_dir / f"compute_vad_{name}.1.log", f"compute_vad {parts[0]}"), \
                        tqdm(total=len(data.utt2spk), desc=f"vad {name}", unit="utt", disable=None) as bar:
                    make_vad_part(parts[0], vad_conf, fbank_conf, arks[0], scps[0], lambda n: bar.update(n - bar.n),
                              skip_bad, resample)
            else:
                jobs = []
                for job, part in enumerate(parts, start=1):
                    progress = log_dir / f".progress.vad.{name}.{job}"
                    args = [sys.executable, "-m", "pyfunc.cli.vad_worker", "--vad-conf", str(vad_conf),
                            "--fbank-conf", str(fbank_conf), "--progress", str(progress)]
                    args += (["--skip-bad-audio"] if skip_bad else []) + (["--resample"] if resample else [])
                    jobs.append(Job([*args, str(part), str(arks[job - 1]), str(scps[job - 1])],
                                    log_dir / f"compute_vad_{name}.{job}.log", progress,
                                    local_thread_env(len(parts), cmd)))
                try:
                    run_jobs(jobs, cmd, total=len(data.utt2spk), desc=f"vad {name}")
                finally:
                    for job in jobs:
                        job.progress.unlink(missing_ok=True)
        finally:
            for part in parts:
                bad.update(read_bad_list(part / BAD_LIST_NAME))
                unvoiced.update(read_bad_list(part / UNVOICED_NAME))
        _check_frame_counts(data_dir, scps)
        with atomic_path(data_dir / VAD_SCP) as temporary:
            merge_scps(scps, temporary)
    except BaseException as err:
        for path in arks + scps:
            path.unlink(missing_ok=True)
        if isinstance(err, PyfuncError) and bad and not skip_bad:
            raise bad.error(data_dir / "wav.scp", len(data.utt2spk)) from None
        raise
    if bad:
        logger.warning("%s: left out %d utterance(s) with bad audio (--skip-bad-audio): %s%s", data_dir / VAD_SCP,
                       len(bad), ", ".join(sorted(bad.found)[:SHOW]), " ..." if len(bad) > SHOW else "")
    if unvoiced:
        logger.warning("%s: %d utterance(s) have no voiced frame (stage 3 with --vad refuses them, or skips them "
                       "with --skip-bad-audio): %s%s", data_dir / VAD_SCP, len(unvoiced),
                       ", ".join(sorted(unvoiced.found)[:SHOW]), " ..." if len(unvoiced) > SHOW else "")
    for path in vad_dir.glob(f"vad_{name}.*"):
        match = re.fullmatch(rf"vad_{re.escape(name)}\.([0-9a-f]{{8}})\.\d+\.(?:ark|scp)", path.name)
        if match is not None and match.group(1) != run:
            path.unlink(missing_ok=True)
    remove_temporaries(vad_dir, [f"vad_{name}."])
    remove_temporaries(data_dir, [VAD_SCP, VAD_STAMP])
    write_stamp(data_dir / VAD_STAMP, spec.stamp([data_dir / VAD_SCP, *arks, *scps]))
    return True


def _check_frame_counts(data_dir: Path, scps: list[Path]) -> None:
    """DataError when a decision's length differs from the utterance's ``utt2num_frames`` (features current)."""
    stamp = read_run_stamp(data_dir / FBANK_STAMP)
    counts_path = data_dir / "utt2num_frames"
    if not counts_path.is_file() or stamp is None or changed_files(stamp.outputs):
        return
    counts = read_map(counts_path)
    for scp in scps:
        for utt, frames in read_vector_lengths(scp).items():
            if utt in counts and int(counts[utt]) != frames:
                raise DataError(f"{scp}: {utt}: the decision has {frames} frames, {counts_path} says {counts[utt]}: "
                                "the fbank conf of the VAD differs from stage 1's (--fbank-conf)")


def read_vector_lengths(scp: PathLike) -> dict[str, int]:
    """``key -> length`` of the vectors of an scp (kaldiio)."""
    return {key: int(np.asarray(array).shape[0]) for key, array in open_scp(scp).items()}


def refuse_stale_vad(data_dir: PathLike) -> Path:
    """``DATA/vad.scp``, checked: DataError when it is missing, or made from inputs that changed since."""
    scp = Path(data_dir) / VAD_SCP
    if not scp.is_file():
        raise DataError(f"{scp}: file not found; --vad uses the voice-activity decisions of steps/compute_vad.py "
                        f"{data_dir}")
    refuse_stale(Path(data_dir) / VAD_STAMP, scp, f"rerun steps/compute_vad.py {data_dir}")
    return scp
