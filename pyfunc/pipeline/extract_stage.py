"""Stage 3 as a whole: split the data directory, embed each part in its own process, merge in order.

With CUDA, job j runs on GPU ``(j - 1) % num_gpus`` (through CUDA_VISIBLE_DEVICES),
so ``--nj`` equal to the number of GPUs uses each once.

Each run writes its arks into a fresh folder ``EMB_DIR/parts.<run>/<job>/`` (one job,
in-process, when ``num_jobs`` is 1 and there is no launcher), then merges the job scps
into ``EMB_DIR/xvector.scp`` (and ``xvector_crops.scp``): until that rename the old
complete output and its arks are untouched, so a failed or killed run leaves the old
output; after a success the arks of earlier runs are removed and the stamp
``EMB_DIR/.extract.stamp`` is written (a rerun with unchanged inputs then does nothing).
"""

from __future__ import annotations

import logging
import secrets
import shutil
from pathlib import Path
from typing import Iterable

import torch

from pyfunc.config import input_table, load_config
from pyfunc.data.arkio import merge_scps
from pyfunc.data.atomic import PathLike, atomic_paths, remove_temporaries
from pyfunc.data.audio import is_pipe
from pyfunc.data.badinput import (
    BAD_LIST_NAME,
    SKIPPED_NAME,
    BadInputs,
    check_trials_need,
    read_bad_list,
    read_skipped,
    write_skipped,
)
from pyfunc.data.datadir import load_data_dir, split_data_dir
from pyfunc.data.dirnames import check_output_dir_name, data_dir_name
from pyfunc.data.tables import read_scp
from pyfunc.errors import DataError, PyfuncError
from pyfunc.features.kaldi_fbank import fbank_option_differences, read_kaldi_conf
from pyfunc.inference.api import fbank_conf_path
from pyfunc.models.model_dir import CONFIG_NAME, MODEL_NAME
from pyfunc.pipeline.extract_job import extract_embeddings
from pyfunc.pipeline.jobs import Job, in_process_job_log, local_thread_env, run_jobs, worker_command
from pyfunc.pipeline.stamps import (
    EXTRACT_STAMP,
    FBANK_STAMP,
    StampSpec,
    changed_files,
    needs_work,
    read_run_stamp,
    refuse_stale,
    write_stamp,
)
from pyfunc.pipeline.vad_stage import VAD_SCP, refuse_stale_vad

logger = logging.getLogger(__name__)

OUTPUT_SCPS = ("xvector.scp", "xvector_crops.scp")


def extract_embeddings_parallel(model_dir: PathLike, data_dir: PathLike, out_dir: PathLike, num_jobs: int = 1,
                                cmd: str = "", protocol: str = "auto", device: str = "auto",
                                batch_frames: int | None = None, onnx: PathLike | None = None,
                                skip_bad: bool = False, resample: bool = False,
                                vad: bool = False) -> tuple[list[Path], dict[str, str]]:
    """Embed ``data_dir`` into job folders ``out_dir/1..N`` with ``num_jobs`` processes (through ``cmd``).

    Returns the job folders (in order) and the inputs left out as bad (``skip_bad``);
    without ``skip_bad`` bad inputs fail the run with the list of all of them.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    total = len(load_data_dir(data_dir).utt2spk)
    parts = split_data_dir(data_dir, num_jobs)
    gpus = torch.cuda.device_count() if device in ("auto", "cuda") else 0
    jobs, job_dirs = [], []
    for job, part in enumerate(parts, start=1):
        job_dir = out_dir / str(job)
        job_dirs.append(job_dir)
        args = ["embed", "--model-dir", str(model_dir), "--protocol", protocol, "--device", device,
                "--progress", str(out_dir / f".progress.{job}"), "--bad-list", str(job_dir / BAD_LIST_NAME)]
        if batch_frames is not None:
            args += ["--batch-frames", str(batch_frames)]
        if onnx is not None:
            args += ["--onnx", str(onnx)]
        if skip_bad:
            args.append("--skip-bad-audio")
        if resample:
            args.append("--resample")
        if vad:
            args.append("--vad")
        if gpus > 1:
            env = {"CUDA_VISIBLE_DEVICES": str((job - 1) % gpus)}
        else:
            env = local_thread_env(len(parts), cmd) if gpus == 0 else None
        jobs.append(Job(worker_command(*args, str(part), str(job_dir)),
                        out_dir.parent / "log" / f"extract.{job}.log", out_dir / f".progress.{job}", env))
    bad = BadInputs()
    try:
        try:
            run_jobs(jobs, cmd, total=total, desc=f"embed {data_dir_name(data_dir)}")
        finally:
            for job_dir in job_dirs:
                bad.update(read_bad_list(job_dir / BAD_LIST_NAME))
    except PyfuncError:
        if bad and not skip_bad:
            raise bad.error(data_dir, total) from None
        raise
    finally:
        for job in jobs:
            job.progress.unlink(missing_ok=True)
    return job_dirs, bad.found


def _deep_inputs(table: dict[str, str], frontend: str) -> list[str]:
    """The files that the entries of wav.scp (audio) or feats.scp (arks) point to."""
    if frontend == "seed":
        return sorted({entry for entry in table.values() if not is_pipe(entry)})
    return sorted({entry.rsplit(":", 1)[0] if ":" in entry else entry for entry in table.values()})


def extract_stamp_spec(model_dir: PathLike, data_dir: PathLike, protocol: str = "auto",
                       batch_frames: int | None = None, onnx: PathLike | None = None, skip_bad: bool = False,
                       trials: Iterable[PathLike] = (), frontend: str | None = None,
                       table: dict[str, str] | None = None, resample: bool = False, vad: bool = False) -> StampSpec:
    """What stage 3's stamp ``EMB_DIR/.extract.stamp`` records for these arguments: the options; the
    model's config.yaml and model.pt, the input table (feats.scp or wav.scp), skipped_utts and the trials;
    the files the table points to. ``frontend`` and ``table``: the model's front end and the input
    table, when the caller has read them. ``resample`` is recorded when it is set and the model reads audio
    (seed front end), so that plain runs' stamps stay valid and fbank models do not redo their work. ``vad``
    (voiced frames only) is recorded when set, with vad.scp as an input and its arks as deep inputs."""
    model_dir, data_dir = Path(model_dir), Path(data_dir)
    frontend = load_config(model_dir / CONFIG_NAME).model.frontend if frontend is None else frontend
    table_path = data_dir / input_table(frontend)
    table = read_scp(table_path) if table is None else table
    trials_files = ([data_dir / "trials"] if (data_dir / "trials").is_file() else []) + [Path(t) for t in trials]
    params = {"protocol": protocol, "batch_frames": batch_frames, "skip_bad_audio": skip_bad,
              "onnx": str(Path(onnx).absolute()) if onnx is not None else None}
    if resample and frontend == "seed":
        params["resample"] = True
    inputs = [model_dir / CONFIG_NAME, model_dir / MODEL_NAME, table_path, data_dir / SKIPPED_NAME, *trials_files]
    inputs += [Path(onnx)] if onnx is not None else []
    deep = _deep_inputs(table, frontend)
    if vad:
        params["vad"] = True
        inputs.append(data_dir / VAD_SCP)
        vad_table = read_scp(data_dir / VAD_SCP) if (data_dir / VAD_SCP).is_file() else {}
        deep = sorted(set(deep) | set(_deep_inputs(vad_table, "fbank")))
    return StampSpec("extract_embeddings", params, inputs, deep)


def refuse_other_fbank_options(model_dir: PathLike, data_dir: PathLike) -> None:
    """DataError when stage 1's stamp says ``data_dir``'s feats.scp was made with other fbank options than the
    model's (``MODEL_DIR/fbank.conf``, else the default), naming each option that differs and both files.
    Features without a stamp (made elsewhere) or whose stamp no longer describes them cannot be checked."""
    data_dir = Path(data_dir)
    stamp = read_run_stamp(data_dir / FBANK_STAMP)
    if stamp is None or changed_files(stamp.outputs) or not isinstance(stamp.params.get("fbank"), dict):
        return
    conf = fbank_conf_path(model_dir)
    differences = fbank_option_differences(stamp.params["fbank"], read_kaldi_conf(conf))
    if differences:
        listed = ", ".join(f"{name}={made} (the model: {name}={wanted})" for name, made, wanted in differences)
        raise DataError(f"{data_dir / 'feats.scp'}: made with other fbank options than the model's {conf} (as "
                        f"{data_dir / FBANK_STAMP} records): {listed}; rerun stage 1 with --conf {conf}, or use a "
                        f"model trained on these features")


def run_extraction(model_dir: PathLike, data_dir: PathLike, out_dir: PathLike, num_jobs: int = 1, cmd: str = "",
                   protocol: str = "auto", device: str = "auto", batch_frames: int | None = None,
                   onnx: PathLike | None = None, skip_bad: bool = False, trials: Iterable[PathLike] = (),
                   force: bool = False, resample: bool = False, vad: bool = False) -> bool:
    """Stage 3: embeddings of ``data_dir`` into ``out_dir/xvector.scp`` (see the module docstring).

    ``trials`` (and ``data_dir/trials`` when present) name utterances that must not be
    skipped: the stage fails when one of them has bad input. Utterances that stage 1
    skipped (``data_dir/skipped_utts``, fbank front end) are carried over into
    ``out_dir/skipped_utts``. Returns False (doing nothing) when the stamp shows the
    output is up to date, unless ``force``. ``resample``: the model's audio (seed front end) at another
    rate is resampled to the model's, instead of being bad input; an fbank model reads stage 1's features.
    ``vad``: only the voiced frames of each utterance, by ``data_dir/vad.scp`` (steps/compute_vad.py; missing or
    stale: a DataError); without it a vad.scp there is ignored (and the log says so). The stamp records it.
    """
    check_output_dir_name(out_dir, "embedding folder")
    model_dir, data_dir, out_dir = Path(model_dir), Path(data_dir), Path(out_dir)
    if not model_dir.is_dir():
        raise PyfuncError(f"{model_dir}: model directory not found")
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: data directory not found")
    frontend = load_config(model_dir / CONFIG_NAME).model.frontend
    table_path = data_dir / input_table(frontend)
    if not table_path.is_file():
        hint = "" if frontend == "seed" else " (the model has the fbank front end; run stage 1 first)"
        raise DataError(f"{table_path}: file not found{hint}")
    if resample and frontend != "seed":
        logger.info("--resample: nothing to resample here, the model reads %s (stage 1 resamples the audio)",
                    table_path)
    carried: dict[str, str] = {}
    if frontend == "fbank":
        refuse_stale(data_dir / FBANK_STAMP, table_path, "rerun stage 1 (steps/make_fbank.py)")
        refuse_other_fbank_options(model_dir, data_dir)
        carried = read_skipped(data_dir)
    if vad:
        refuse_stale_vad(data_dir)
    elif (data_dir / VAD_SCP).is_file():
        logger.info("%s: ignored: all frames are embedded (--vad embeds the voiced frames only)", data_dir / VAD_SCP)
    trials_files = ([data_dir / "trials"] if (data_dir / "trials").is_file() else []) + [Path(t) for t in trials]
    check_trials_need(carried, trials_files)
    table = read_scp(table_path)
    spec = extract_stamp_spec(model_dir, data_dir, protocol, batch_frames, onnx, skip_bad, trials, frontend, table,
                              resample, vad)
    stamp_path = out_dir / EXTRACT_STAMP
    if not needs_work(stamp_path, spec.stage, spec.params, spec.inputs, spec.deep_inputs, out_dir / "xvector.scp",
                      "embeddings", force):
        return False
    # The old stamp stays: it describes the old outputs, which stay until the new ones replace them.
    run_dir = out_dir / f"parts.{secrets.token_hex(4)}"
    try:
        if num_jobs == 1 and not cmd:  # one local job: here, logging to the job log a job process would write

            log = out_dir / "log" / "extract.1.log"
            with in_process_job_log(log, f"extract_embeddings {model_dir} {data_dir} {run_dir / '1'}"):
                bad = extract_embeddings(model_dir, data_dir, run_dir / "1", protocol=protocol, device=device,
                                         batch_frames=batch_frames, onnx=onnx, skip_bad=skip_bad,
                                         resample=resample, vad=vad)
            job_dirs = [run_dir / "1"]
        else:
            job_dirs, bad = extract_embeddings_parallel(model_dir, data_dir, run_dir, num_jobs, cmd, protocol, device,
                                                        batch_frames, onnx, skip_bad, resample, vad)
        skipped = {**carried, **bad}
        check_trials_need(skipped, trials_files)
        scps = [name for name in OUTPUT_SCPS if all((d / name).is_file() for d in job_dirs)]
        outputs = ([out_dir / SKIPPED_NAME] if skipped else []) + [out_dir / name for name in reversed(scps)]
        with atomic_paths(outputs) as temporaries:  # renamed only when all are written; xvector.scp last
            if skipped:
                write_skipped(temporaries[0], skipped, len(table) + len(carried), out_dir / SKIPPED_NAME)
            for name, temporary in zip(reversed(scps), temporaries[-len(scps):]):
                merge_scps([d / name for d in job_dirs], temporary)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    for name in ([] if skipped else [SKIPPED_NAME]) + [n for n in OUTPUT_SCPS if n not in scps]:
        (out_dir / name).unlink(missing_ok=True)
    _remove_earlier_runs(out_dir, keep=run_dir)
    outputs = [out_dir / SKIPPED_NAME] + [out_dir / name for name in OUTPUT_SCPS]
    outputs += [d / name.replace(".scp", ".ark") for d in job_dirs for name in OUTPUT_SCPS]
    write_stamp(stamp_path, spec.stamp(outputs))
    return True


def _remove_earlier_runs(out_dir: Path, keep: Path) -> None:
    """Arks of earlier runs (and of the former layouts), now that the new scps are in place."""
    for path in out_dir.iterdir():
        if path == keep:
            continue
        if path.is_dir() and (path.name.startswith("parts.") or path.name.startswith("split")):
            shutil.rmtree(path, ignore_errors=True)
        elif path.name in ("xvector.ark", "xvector_crops.ark"):
            path.unlink()
    remove_temporaries(out_dir, [*OUTPUT_SCPS, SKIPPED_NAME, EXTRACT_STAMP])
