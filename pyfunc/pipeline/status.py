"""What each stage of a recipe would do if it ran now (``bash run.sh --status true``), without doing it.

A :class:`RecipeStatus` collects one :class:`StageCheck` per step, in the order the recipe
runs them, each in one of four states:

- ``up to date``: the stage would find nothing to do (stages 1 and 3: the stamp matches,
  as the stage itself checks; stage 2: training complete and the model directory written
  after it; stage 0: as its command's ``--status true`` answer says, e.g. the mini corpus's ``.done``
  stamps match). Stages 4-6 keep no stamp and
  recompute whenever they run (seconds); for them it means the outputs are newer than
  every input, as ``make`` decides;
- ``to make``: the outputs are missing;
- ``to redo``: the outputs are there but an input, a parameter or an output changed, or an
  earlier stage in the range will remake an input (``stage 1 remakes data/mini/test/feats.scp``);
- ``would fail``: the stage would stop with an error (stale inputs an earlier stage outside
  the range would have to remake, a missing model, checkpoints of another run).

Reading is all it does: it opens lists, stamps and configs, and writes nothing (no
stamps, no logs, no temporaries). Stages outside ``--stage``/``--stop-stage`` are shown
with their state but remake nothing for the later ones.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from pyfunc.config import Config, input_table, load_config, training_table
from pyfunc.data.atomic import PathLike
from pyfunc.data.badinput import SKIPPED_NAME
from pyfunc.data.vectors import CROPS_SCP, XVECTOR_SCP
from pyfunc.errors import PyfuncError
from pyfunc.features.kaldi_fbank import read_kaldi_conf
from pyfunc.models.checkpoint import latest_checkpoint
from pyfunc.models.model_dir import CONFIG_NAME, MODEL_NAME
from pyfunc.pipeline.extract_stage import extract_stamp_spec
from pyfunc.pipeline.fbank_stage import fbank_stamp_spec
from pyfunc.pipeline.score_stage import asnorm_top_n_of
from pyfunc.pipeline.stamps import (
    EXTRACT_STAMP,
    FBANK_STAMP,
    Stamp,
    stale_inputs,
)
from pyfunc.pipeline.train_stage import why_not_resumable, why_training_not_complete

UP_TO_DATE = "up to date"
TO_MAKE = "to make"
TO_REDO = "to redo"
WOULD_FAIL = "would fail"

DATA_FILES = ("wav.scp", "utt2spk", "spk2utt", "utt2dur", "trials", "utt2aug", "text")


@dataclass
class StageCheck:
    """One step of a stage: what it is about, what it would do and why, and the files it would write."""

    stage: int
    step: str
    target: str
    state: str
    reason: str = ""
    makes: tuple[Path, ...] = ()
    runs: bool = True  # inside --stage .. --stop-stage


def _key(path: PathLike) -> str:
    return os.path.abspath(path)


class RecipeStatus:
    """The checks of one recipe run from ``stage`` to ``stop_stage``, in the order the recipe runs them."""

    def __init__(self, stage: int, stop_stage: int) -> None:
        self.stage, self.stop_stage = stage, stop_stage
        self.checks: list[StageCheck] = []
        self._remade: dict[str, StageCheck] = {}
        self.fbank_stamps: dict[str, Stamp] = {}  # the stamps stage 1 is about to write, by data dir

    def runs(self, stage: int) -> bool:
        return self.stage <= stage <= self.stop_stage

    def add(self, check: StageCheck) -> StageCheck:
        """Record ``check``; when it runs and writes, later checks reading its files are redone."""
        check.runs = self.runs(check.stage)
        self.checks.append(check)
        if check.runs and check.state in (TO_MAKE, TO_REDO):
            for path in check.makes:
                self._remade.setdefault(_key(path), check)
        return check

    def remaker(self, paths: Iterable[PathLike]) -> tuple[StageCheck, Path] | None:
        """The earlier check (in the range) that rewrites one of ``paths``, and that path."""
        for path in paths:
            check = self._remade.get(_key(path))
            if check is not None:
                return check, Path(path)
        return None

    def check(self, stage: int, step: str, target: str, reads: Sequence[PathLike], makes: Sequence[PathLike],
              own: Callable[[], tuple[str, str]]) -> StageCheck:
        """A step that reads ``reads`` and writes ``makes``: redone when an earlier stage remakes what it
        reads, else as ``own()`` says (``(state, reason)``; a PyfuncError from it means it would fail)."""
        makes = tuple(Path(p) for p in makes)
        found = self.remaker(reads)
        if found is not None:
            by, path = found
            state = TO_REDO if any(p.exists() for p in makes) else TO_MAKE
            reason = f"stage {by.stage} remakes {path}"
        else:
            try:
                state, reason = own()
            except PyfuncError as err:
                state, reason = WOULD_FAIL, str(err)
        return self.add(StageCheck(stage, step, target, state, reason, makes))

    def text(self) -> str:
        """The table ``stage N  step  target  state: reason``, and a summary line."""
        cwd = str(Path.cwd()) + os.sep
        rows = []
        for c in self.checks:
            state = c.state if c.runs else f"outside the stages run: {c.state}"
            reason = c.reason.replace(cwd, "")
            rows.append((f"stage {c.stage}", c.step, c.target, state + (f": {reason}" if reason else "")))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = ["  ".join(row[i].ljust(widths[i]) for i in range(3)) + "  " + row[3] for row in rows]
        counts = {state: [c for c in self.checks if c.runs and c.state == state]
                  for state in (UP_TO_DATE, TO_MAKE, TO_REDO, WOULD_FAIL)}
        summary = ", ".join(f"{len(found)} {state}" + (f" (stages {_stages(found)})" if state != UP_TO_DATE else "")
                            for state, found in counts.items() if found)
        lines.append(f"stages {self.stage}-{self.stop_stage}: {summary or 'nothing in the range'}; "
                     "nothing was run or written")
        return "\n".join(lines) + "\n"


def _stages(checks: Sequence[StageCheck]) -> str:
    return ", ".join(str(n) for n in sorted({c.stage for c in checks}))


def _made(makes: Sequence[PathLike], reason: str | None) -> tuple[str, str]:
    """The state of a stamped step from its stamp's ``reason`` (None: matches) and whether its outputs exist."""
    if reason is None:
        return UP_TO_DATE, ""
    if not Path(makes[0]).exists():
        return TO_MAKE, f"{makes[0]} is missing"
    return TO_REDO, reason


def _newer_than(outputs: Sequence[PathLike], inputs: Sequence[PathLike]) -> tuple[str, str]:
    """``make``'s rule for the steps without a stamp: outputs missing, older than an input, or up to date."""
    missing = [p for p in outputs if not Path(p).exists()]
    if missing:
        return TO_MAKE if len(missing) == len(outputs) else TO_REDO, f"{missing[0]} is missing"
    oldest = min(Path(p).stat().st_mtime_ns for p in outputs)
    for path in inputs:
        if Path(path).exists() and Path(path).stat().st_mtime_ns > oldest:
            return TO_REDO, f"{path} is newer than {min(outputs, key=lambda p: Path(p).stat().st_mtime_ns)}"
    return UP_TO_DATE, ""


# ---------------------------------------------------------------------------------------------
# Stage 0


STAGE0_STEP = "data preparation"
STATUS_OPTION = ("--status", "true")  # appended to a stage-0 command that answers --status (see check_stage0_command)


def check_reported(status: RecipeStatus, stage: int, line: str) -> StageCheck:
    """One line of a command's ``--status true`` answer, ``TARGET<TAB>STATE[: WHY][<TAB>STEP[<TAB>DIR...]]``,
    as a check: STATE is ``up to date``, ``to make``, ``to redo`` or ``would fail``; STEP defaults to
    ``data preparation``; the DIRs are the data dirs it writes (default: TARGET), whose lists later stages read."""
    fields = line.rstrip("\n").split("\t")
    target = fields[0]
    state, _, reason = (fields[1] if len(fields) > 1 else "").partition(": ")
    step = fields[2] if len(fields) > 2 and fields[2] else STAGE0_STEP
    made = [Path(d) for d in fields[3:] if d] or [Path(target)]
    makes = [d / name for d in made for name in DATA_FILES]
    if state not in (UP_TO_DATE, TO_MAKE, TO_REDO, WOULD_FAIL):
        state, reason = WOULD_FAIL, f"unreadable --status line {line!r}"
    return status.check(stage, step, target, [], makes, lambda: (state, reason))


def check_stage0_command(status: RecipeStatus, argv: Sequence[str], target: str) -> None:
    """Stage 0 by its own answer: run ``argv --status true`` (the command writes nothing then) and turn each line
    it prints into a check (:func:`check_reported`); one ``would fail`` check when it fails or prints nothing."""
    try:
        proc = subprocess.run([*argv, *STATUS_OPTION], capture_output=True, text=True, check=False)
    except OSError as err:
        status.add(StageCheck(0, STAGE0_STEP, target, WOULD_FAIL, f"{argv[0]}: {err}"))
        return
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        said = proc.stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}, no status lines"]
        status.add(StageCheck(0, STAGE0_STEP, target, WOULD_FAIL, f"{argv[0]} --status true: {said[0]}"))
        return
    for line in lines:
        check_reported(status, 0, line)


def check_unstamped(status: RecipeStatus, stage: int, step: str, target: str, dirs: Sequence[PathLike],
                    fails: str = "") -> StageCheck:
    """A step without a stamp that rewrites the data dirs ``dirs`` whenever its stage runs."""
    makes = [Path(d) / name for d in dirs for name in DATA_FILES + ("feats.scp", "utt2num_frames")]

    def own() -> tuple[str, str]:
        there = [d for d in dirs if (Path(d) / "utt2spk").is_file()]
        if not status.runs(stage):  # not run: only whether its output is there
            return (UP_TO_DATE, "") if len(there) == len(dirs) else (TO_MAKE, f"{dirs[len(there)]} is missing")
        if fails:
            return WOULD_FAIL, fails
        if not there:
            return TO_MAKE, ""
        return TO_REDO, f"no stamp: stage {stage} writes {', '.join(map(str, dirs))} again whenever it runs"
    return status.check(stage, step, target, [], makes, own)


# ---------------------------------------------------------------------------------------------
# Stage 1


def check_fbank(status: RecipeStatus, data_dir: PathLike, feat_dir: PathLike, conf: PathLike,
                skip_bad: bool = False, force: bool = False, compress: bool = False,
                resample: bool = False) -> StageCheck:
    """Stage 1 of one data dir (steps/make_fbank.py): its stamp, as make_fbank reads it (``resample``: run with
    ``--resample``, which its stamp records)."""
    data_dir = Path(data_dir)
    makes = [data_dir / "feats.scp", data_dir / "utt2num_frames", data_dir / SKIPPED_NAME]
    reads = [data_dir / name for name in ("wav.scp", "utt2spk", "utt2aug", "trials")] + [Path(conf)]

    def own() -> tuple[str, str]:
        spec = fbank_stamp_spec(data_dir, conf, feat_dir, skip_bad, compress=compress, resample=resample)
        status.fbank_stamps[_key(data_dir)] = spec.stamp([])
        if force:
            return (TO_REDO if makes[0].exists() else TO_MAKE), "--force true"
        return _made(makes, spec.why_not_current(data_dir / FBANK_STAMP))
    return status.check(1, "fbank", str(data_dir), reads, makes, own)


def check_nothing(status: RecipeStatus, stage: int, step: str, why: str) -> StageCheck:
    """A stage with nothing to do (e.g. stage 1 for the seed front end)."""
    return status.add(StageCheck(stage, step, "-", UP_TO_DATE, why))


# ---------------------------------------------------------------------------------------------
# Stage 2


def check_training(status: RecipeStatus, config: Config | PathLike, train_data: PathLike, exp: PathLike,
                   fbank_conf: PathLike | None = None, reads: Sequence[PathLike] = ()) -> StageCheck:
    """Stage 2 (steps/train.py): refused resumption, complete training, or what is left to train.
    ``reads``: further inputs (the model a fine-tuning starts from), redone when an earlier step remakes them."""
    train_data, exp = Path(train_data), Path(exp)
    makes = [exp / MODEL_NAME, exp / CONFIG_NAME]
    init = (config if isinstance(config, Config) else load_config(config)).train.init_model
    if not init and not (exp / "untrained" / MODEL_NAME).is_file():
        makes += [exp / "untrained" / MODEL_NAME, exp / "untrained" / CONFIG_NAME]
    checkpoint = latest_checkpoint(exp / "models") if (exp / "models").is_dir() else None
    refusal = (f"stage 2 resumes only the run its checkpoints ({checkpoint}) were made with; remove {exp / 'models'} "
               "or use another --exp to train again")

    def own() -> tuple[str, str]:
        loaded = config if isinstance(config, Config) else load_config(config)
        table = train_data / training_table(loaded)
        before = status.remaker([train_data / n for n in ("wav.scp", "utt2spk", "utt2aug")])
        if checkpoint is not None and before is not None:
            return WOULD_FAIL, f"stage {before[0].stage} remakes {before[1]}; {refusal}"
        by_fbank = status.remaker([table]) if table.name == "feats.scp" else None
        stamp = status.fbank_stamps.get(_key(train_data)) if by_fbank is not None else None
        if by_fbank is not None and stamp is None and checkpoint is not None:  # remade without a stamp: new data
            return WOULD_FAIL, f"stage {by_fbank[0].stage} remakes {by_fbank[1]}; {refusal}"
        if by_fbank is None:
            stale = stale_inputs(train_data / FBANK_STAMP) if table.name == "feats.scp" else []
            if stale:
                return WOULD_FAIL, f"{table}: out of date: {stale[0]} changed after it was made; rerun stage 1"
            if not table.is_file():
                return WOULD_FAIL, f"{table}: file not found" + (" (run stage 1)" if table.name == "feats.scp" else "")
        if by_fbank is None or stamp is not None:
            options = read_kaldi_conf(fbank_conf) if fbank_conf else None
            refused, _, _ = why_not_resumable(loaded, train_data, exp, stamp, options)
            if refused is not None:
                return WOULD_FAIL, (f"after stage 1 remakes {by_fbank[1]}: " if by_fbank else "") + refused
        reason = why_training_not_complete(loaded, exp, fbank_conf)
        if reason is None:
            epochs = loaded.train.epochs
            done = f"{epochs} epoch{'s' if epochs != 1 else ''}"
            return UP_TO_DATE, f"{done} done, the model directory written after them"
        return (TO_MAKE if checkpoint is None else TO_REDO), reason
    return status.check(2, "training", str(exp), reads, makes, own)


# ---------------------------------------------------------------------------------------------
# Stage 3


def check_extraction(status: RecipeStatus, model_dir: PathLike, data_dir: PathLike, out_dir: PathLike,
                     skip_bad: bool = False, force: bool = False, protocol: str = "auto",
                     resample: bool = False, vad: bool = False) -> StageCheck:
    """Stage 3 of one data dir with one model (steps/extract_embeddings.py): its stamp, as run_extraction reads it
    (``protocol``: as given to it; ``full`` for the AS-norm cohort; ``resample``, ``vad``: run with ``--resample``,
    ``--vad``)."""
    model_dir, data_dir, out_dir = Path(model_dir), Path(data_dir), Path(out_dir)
    makes = [out_dir / XVECTOR_SCP, out_dir / CROPS_SCP]
    reads = [model_dir / CONFIG_NAME, model_dir / MODEL_NAME, data_dir / "feats.scp", data_dir / "wav.scp",
             data_dir / "trials", data_dir / SKIPPED_NAME] + ([data_dir / "vad.scp"] if vad else [])

    def own() -> tuple[str, str]:
        if not (model_dir / MODEL_NAME).is_file():
            return WOULD_FAIL, f"{model_dir}: no model.pt (stage 2 makes it)"
        frontend = load_config(model_dir / CONFIG_NAME).model.frontend
        table = data_dir / input_table(frontend)
        if not table.is_file():
            return WOULD_FAIL, f"{table}: file not found" + (" (run stage 1)" if frontend == "fbank" else "")
        stale = stale_inputs(data_dir / FBANK_STAMP) if frontend == "fbank" else []
        if stale:
            return WOULD_FAIL, f"{table}: out of date: {stale[0]} changed after it was made; rerun stage 1"
        if force:
            return (TO_REDO if makes[0].exists() else TO_MAKE), "--force true"
        spec = extract_stamp_spec(model_dir, data_dir, protocol=protocol, skip_bad=skip_bad, frontend=frontend,
                                  resample=resample, vad=vad)
        return _made(makes, spec.why_not_current(out_dir / EXTRACT_STAMP))
    return status.check(3, "embeddings", f"{model_dir} <- {data_dir}", reads, makes, own)


# ---------------------------------------------------------------------------------------------
# Stages 4-6: no stamps


def _embeddings_ready(emb_dir: Path) -> None:
    if not (emb_dir / XVECTOR_SCP).is_file():
        raise PyfuncError(f"{emb_dir / XVECTOR_SCP}: file not found (run stage 3)")
    stale = stale_inputs(emb_dir / EXTRACT_STAMP)
    if stale:
        raise PyfuncError(f"{emb_dir / XVECTOR_SCP}: out of date: {stale[0]} changed after it was made; rerun stage 3")


def check_scoring(status: RecipeStatus, stage: int, trials: PathLike, emb_dirs: Sequence[PathLike], out: PathLike,
                  other_inputs: Sequence[PathLike] = (), top_n: int | None = None) -> StageCheck:
    """Stage 4 (``emb_dirs``: the embeddings) or 5 (also the cohort's, its utt2spk and the model config; ``top_n``:
    the AS-norm top N the stage would use now, compared with the one the score file records)."""
    emb_dirs = [Path(d) for d in emb_dirs]
    reads = [Path(trials), *(d / name for d in emb_dirs for name in (XVECTOR_SCP, CROPS_SCP)), *map(Path, other_inputs)]

    def own() -> tuple[str, str]:
        if not Path(trials).is_file():
            return WOULD_FAIL, f"{trials}: file not found"
        for emb_dir in emb_dirs:
            _embeddings_ready(emb_dir)
        state, reason = _newer_than([out], reads)
        recorded = asnorm_top_n_of(out) if state == UP_TO_DATE and top_n is not None else None
        if recorded is not None and recorded != top_n:
            return TO_REDO, f"scored with the top {recorded} of the cohort, now top {top_n}"
        return state, reason
    step = "cosine scores" if stage == 4 else "AS-norm scores"
    return status.check(stage, step, str(out), reads, [out], own)


def check_derived(status: RecipeStatus, stage: int, step: str, reads: Sequence[PathLike],
                  makes: Sequence[PathLike]) -> StageCheck:
    """A step without a stamp that makes ``makes`` from ``reads`` (make's rule; it fails on a missing input)."""
    def own() -> tuple[str, str]:
        missing = [p for p in reads if not Path(p).exists()]
        if missing:
            return WOULD_FAIL, f"{missing[0]}: file not found"
        return _newer_than(list(makes), list(reads))
    target = str(makes[0]) + (f" (and {len(makes) - 1} more)" if len(makes) > 1 else "")
    return status.check(stage, step, target, reads, makes, own)


def check_metrics(status: RecipeStatus, trials: Sequence[PathLike], score_files: Sequence[PathLike],
                  results: Sequence[PathLike], thresholds: Sequence[PathLike] = ()) -> StageCheck:
    """Stage 6: the results tables (and the stored thresholds) against the trials and score files."""
    reads = [*map(Path, trials), *map(Path, score_files)]

    def own() -> tuple[str, str]:
        missing = [p for p in reads if not p.exists()]
        if missing:
            return WOULD_FAIL, f"{missing[0]}: file not found"
        return _newer_than(list(results), reads)
    target = str(results[-1]) + (f" (and {len(results) - 1} more)" if len(results) > 1 else "")
    return status.check(6, "EER and minDCF", target, reads, [*map(Path, results), *map(Path, thresholds)], own)
