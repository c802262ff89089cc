#!/usr/bin/env python3
"""Run the stages of a recipe, or say what each would do: the one driver of every run.sh.

Usage: steps/run_stages.py [options] -- STAGE0_COMMAND...    (a recipe's run.sh calls this once)
       steps/run_stages.py --describe                        (the stage table, for run.sh --help)

The stages and their steps come from pyfunc/pipeline/stage_table.py; the options are the recipe's
settings (pyfunc.pipeline.recipe_plan.RecipeSettings), passed by its run.sh after its own defaults
and option parsing. Every option is checked before any stage runs (one `error:` line, exit 1). Then
the steps of stages --stage..--stop-stage run in order, each logged as `stage N: ...`; the first that
fails stops the run with its exit status. With --status true nothing runs: each step says whether it
is up to date, to make, to redo (and why) or would fail (and why).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from pyfunc.cli.runner import run_main
from pyfunc.errors import ConfigError

if TYPE_CHECKING:
    from pyfunc.pipeline.recipe_plan import RecipeSettings

BOOLEANS = ("status", "skip_bad_audio", "force", "compress", "untrained", "plots", "embedding_mean", "resample",
            "combined_results", "vad")
OFF_BY_DEFAULT = ("status", "skip_bad_audio", "force", "compress", "resample", "vad")  # the other BOOLEANS: true
CHOICES = {"device": ("auto", "cpu", "cuda"), "allow_pipes": ("auto", "true", "false"),
           "eval_features": ("always", "frontend"), "stage0_check": ("dirs", "status")}
MINIMA = {"nj": 1, "nproc_per_node": 1, "nnodes": 1, "node_rank": 0, "aug_subset": 0, "aug_seed": 0,
          "cohort_per_speaker": 0}


def _option(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _integer(name: str, value: str, low: int) -> int:
    """``value`` as an integer >= low, else a ConfigError naming the option."""
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < low:
        raise ConfigError(f"{name}: expected an integer >= {low}, got {value!r}")
    return number


def parse() -> tuple[argparse.Namespace, list[str]]:
    """The driver's options, and the stage-0 command after ``--``."""
    argv = sys.argv[1:]
    stage0 = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--describe", action="store_true", help="print the stage table and exit")
    parser.add_argument("--script", default="run.sh", help="the recipe's name in the log lines [run.sh]")
    for name, default in (("stage", "0"), ("stop-stage", "6"), ("nj", "1"), ("nproc-per-node", "1"),
                          ("nnodes", "1"), ("node-rank", "0"), ("aug-subset", "0"), ("aug-seed", "0"),
                          ("cohort-per-speaker", "0"), ("top-n", "")):
        parser.add_argument(f"--{name}", default=default)
    for name in BOOLEANS:
        parser.add_argument(_option(name), default="false" if name in OFF_BY_DEFAULT else "true")
    for name, choices in CHOICES.items():
        parser.add_argument(_option(name), default=choices[0] if name != "allow_pipes" else "false")
    for name in ("data", "exp", "config", "train-data", "cohort-data", "fbank-conf", "feat-dir", "musan-dir",
                 "rir-dir"):
        parser.add_argument(f"--{name}", default="")
    for name in ("lm-config", "overrides", "embedding-set", "dev-data", "model-dir", "aug-kinds", "cmd",
                 "pipe-note"):
        parser.add_argument(f"--{name}", default="")
    parser.add_argument("--rdzv-endpoint", default="localhost:29400")
    parser.add_argument("--vad-conf", default="conf/vad.conf", help="the VAD options of --vad true [conf/vad.conf]")
    parser.add_argument("--test-data", nargs="*", default=[], help="data dirs with trials")
    parser.add_argument("--stage0-makes", nargs="*", default=[], help="the data dirs stage 0 writes (--status)")
    parser.add_argument("--enroll-set", nargs=3, action="append", default=[], metavar=("SRC", "OUT", "PER_MODEL"),
                        help="stage 0, after its command: steps/make_enroll_trials.py --per-model PER_MODEL SRC OUT "
                             "(a test set of enrolled models; repeatable)")
    parser.add_argument("--recipe-int", action="append", default=[], metavar="NAME=VALUE",
                        help="a recipe option of its own (--NAME) that must be an integer >= 0 (checked first)")
    return parser.parse_args(argv), stage0


def checked(args: argparse.Namespace, stage0: list[str]) -> dict:
    """Every option checked (before the stage table and torch are imported): the numbers and flags by name."""
    for item in args.recipe_int:
        name, _, value = item.partition("=")
        _integer(f"--{name}", value, 0)
    numbers = {name: _integer(_option(name), getattr(args, name), low) for name, low in MINIMA.items()}
    numbers["stage"] = _integer("--stage", args.stage, 0)
    numbers["stop_stage"] = _integer("--stop-stage", args.stop_stage, 0)
    if numbers["stage"] > numbers["stop_stage"]:
        raise ConfigError(f"--stage {numbers['stage']} is after --stop-stage {numbers['stop_stage']}: no stage to run")
    if args.model_dir and numbers["stage"] <= 2 <= numbers["stop_stage"]:
        span = f"{numbers['stage']}-{numbers['stop_stage']}"
        raise ConfigError(f"--model-dir {args.model_dir}: stages 3-6 evaluate that model, but stages {span} include "
                          f"stage 2, which would train {args.exp or 'EXP'}; "
                          "give --stage 3 (data and features first: --stop-stage 1)")
    if numbers["node_rank"] >= numbers["nnodes"]:
        raise ConfigError(f"--node-rank: expected 0 to {numbers['nnodes'] - 1} (--nnodes {numbers['nnodes']}), "
                          f"got {numbers['node_rank']}")
    numbers["top_n"] = _integer("--top-n", args.top_n, 1) if args.top_n != "" else None
    numbers["enroll_sets"] = [(src, out, _integer("--enroll-set PER_MODEL", per_model, 1))
                              for src, out, per_model in args.enroll_set]
    for name in BOOLEANS:
        value = getattr(args, name)
        if value not in ("true", "false"):
            raise ConfigError(f"{_option(name)}: expected true or false, got {value!r}")
        numbers[name] = value == "true"
    for name, choices in CHOICES.items():
        if getattr(args, name) not in choices:
            raise ConfigError(f"{_option(name)}: expected {' or '.join(choices)}, got {getattr(args, name)!r}")
    for name in ("data", "exp", "config", "train_data", "cohort_data", "fbank_conf", "feat_dir", "musan_dir",
                 "rir_dir"):
        if not getattr(args, name):
            raise ConfigError(f"{_option(name)} is empty")
    if numbers["vad"] and not Path(args.vad_conf).is_file():
        raise ConfigError(f"--vad-conf: {args.vad_conf!r}: file not found (--vad true reads it)")
    if not args.test_data:
        raise ConfigError("no test sets (--test-data, or the recipe's test sets) to evaluate")
    if not stage0:
        raise ConfigError("no stage-0 command (give it after --)")
    return numbers


def settings_from(args: argparse.Namespace, stage0: list[str], numbers: dict) -> RecipeSettings:
    """The checked options as RecipeSettings."""
    from pyfunc.pipeline.recipe_plan import EnrollSet, RecipeSettings
    from pyfunc.pipeline.stage_table import LAST_STAGE

    for name in ("stage", "stop_stage"):
        if numbers[name] > LAST_STAGE:
            raise ConfigError(f"{_option(name)}: expected an integer from 0 to {LAST_STAGE}, got {numbers[name]}")

    def path(value: str) -> Path | None:
        return Path(value) if value else None

    settings = RecipeSettings(
        data=Path(args.data), exp=Path(args.exp), config=Path(args.config), train_data=Path(args.train_data),
        tests=[Path(d) for d in args.test_data], cohort=Path(args.cohort_data), fbank_conf=Path(args.fbank_conf),
        feat_dir=Path(args.feat_dir), musan_dir=Path(args.musan_dir), rir_dir=Path(args.rir_dir), stage0=stage0,
        stage0_check=args.stage0_check, stage0_makes=[Path(d) for d in args.stage0_makes],
        enroll_sets=[EnrollSet(Path(src), Path(out), n) for src, out, n in numbers["enroll_sets"]],
        lm_config=path(args.lm_config), overrides=args.overrides.split(), embedding_set=path(args.embedding_set),
        dev=path(args.dev_data), cohort_per_speaker=numbers["cohort_per_speaker"], model_dir=path(args.model_dir),
        untrained=numbers["untrained"], eval_features=args.eval_features, embedding_mean=numbers["embedding_mean"],
        aug_kinds=[k for k in args.aug_kinds.split(",") if k], aug_subset=numbers["aug_subset"],
        aug_seed=numbers["aug_seed"], nj=numbers["nj"], cmd=args.cmd, device=args.device,
        nproc_per_node=numbers["nproc_per_node"], nnodes=numbers["nnodes"], node_rank=numbers["node_rank"],
        rdzv_endpoint=args.rdzv_endpoint, skip_bad_audio=numbers["skip_bad_audio"], force=numbers["force"],
        resample=numbers["resample"], combined_results=numbers["combined_results"], vad=numbers["vad"],
        vad_conf=Path(args.vad_conf),
        allow_pipes=args.allow_pipes, compress=numbers["compress"], top_n=numbers["top_n"], plots=numbers["plots"],
        script=args.script)
    return settings


def check_pipes(settings: RecipeSettings, log: Callable[[str], None], note: str) -> None:
    """When the training set's wav.scp holds pipe commands that will run: the recipe's note, and their program."""
    from pyfunc.pipeline.recipe_plan import allows_pipes, pipe_commands, pipe_program

    commands = pipe_commands(settings.train_data)
    if not commands or not allows_pipes(settings):
        return
    program = pipe_program(commands[0])
    if program and shutil.which(program) is None:
        raise ConfigError(f"{settings.train_data / 'wav.scp'} runs {program} in its pipe commands, which is not "
                          "installed; install it or convert the audio first")
    if note:
        log(note)


def main() -> int:
    args, stage0 = parse()
    numbers = None if args.describe else checked(args, stage0)
    from pyfunc.pipeline.stage_table import describe_stages, recipe_status, stage_steps

    if numbers is None:
        print(describe_stages(), end="")
        return 0
    settings = settings_from(args, stage0, numbers)
    stage, stop_stage = numbers["stage"], numbers["stop_stage"]
    if numbers["status"]:
        print(recipe_status(settings, stage, stop_stage).text(), end="")
        return 0

    def log(message: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {settings.script}: {message}", flush=True)

    ran: set[tuple[str, ...]] = set()  # a step already run (the effective config of stages 1 and 2) runs once
    for number in range(stage, stop_stage + 1):
        if number in (1, 2, 3) and number == max(stage, 1):  # after stage 0 made the data dirs
            check_pipes(settings, log, args.pipe_note)
        for step in stage_steps(settings, number):
            if step.argv is not None and tuple(step.argv) in ran:
                continue
            if step.log:
                log(step.log)
            if step.argv is None:
                continue
            ran.add(tuple(step.argv))
            code = subprocess.run(step.argv, check=False).returncode
            if code != 0:
                return code
    return 0


if __name__ == "__main__":
    run_main(main)
