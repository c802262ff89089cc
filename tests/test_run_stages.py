"""The one stage table (pyfunc/pipeline/stage_table.py) and its driver steps/run_stages.py: the options every
run.sh passes are checked before any stage runs, the recipes' steps come from the table (fine-tuning is stage 2
again with another config), a failing step stops the run with its exit status, --help prints the table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyfunc.pipeline.recipe_plan import EnrollSet, RecipeSettings
from pyfunc.pipeline.stage_table import STAGES, describe_stages, stage_steps

REPO = Path(__file__).resolve().parents[1]
RECIPES = {"mini": REPO / "run.sh", "voxceleb": REPO / "egs" / "voxceleb" / "run.sh",
           "real_speech": REPO / "egs" / "real_speech" / "run.sh"}


def _recipe(recipe: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(RECIPES[recipe]), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _driver(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "steps" / "run_stages.py"), *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("recipe", list(RECIPES))
@pytest.mark.parametrize("args, message", [
    (["--stage", "abc"], "error: --stage: expected an integer >= 0, got 'abc'"),
    (["--stage", "6", "--stop-stage", "3"], "error: --stage 6 is after --stop-stage 3: no stage to run"),
    (["--nj", "0"], "error: --nj: expected an integer >= 1, got '0'"),
    (["--stop-stage", "7"], "error: --stop-stage: expected an integer from 0 to 6, got 7"),
    (["--device", "gpu"], "error: --device: expected auto or cpu or cuda, got 'gpu'"),
    (["--top-n", "ten"], "error: --top-n: expected an integer >= 1, got 'ten'"),
    (["--nnodes", "2", "--node-rank", "2"], "error: --node-rank: expected 0 to 1 (--nnodes 2), got 2"),
])
def test_bad_options_are_one_error_line_before_any_stage(recipe: str, args: list[str], message: str,
                                                         tmp_path: Path) -> None:
    """Each bad value: exit 1, one `error:` line on stderr, nothing on stdout (no stage started), nothing written."""
    proc = _recipe(recipe, *args, "--data", str(tmp_path / "data"), "--exp", str(tmp_path / "exp"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [message] and proc.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_recipe_own_integer_options_are_checked_first(tmp_path: Path) -> None:
    proc = _recipe("mini", "--wide-speakers", "many", "--data", str(tmp_path / "data"))
    assert proc.returncode == 1 and proc.stderr.splitlines() == ["error: --wide-speakers: expected an integer >= 0, "
                                                                 "got 'many'"]
    proc = _recipe("voxceleb", "--cohort-per-spk", "-2", "--allow-pipes", "auto")
    assert proc.returncode == 1 and proc.stderr.splitlines() == ["error: --cohort-per-spk: expected an integer >= 0, "
                                                                 "got '-2'"]
    proc = _recipe("voxceleb", "--allow-pipes", "maybe")
    assert proc.returncode == 1 and proc.stderr.splitlines() == ["error: --allow-pipes: expected auto or true or "
                                                                 "false, got 'maybe'"]


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_help_is_the_recipe_header_and_the_one_stage_table(recipe: str) -> None:
    proc = _recipe(recipe, "--help")
    assert proc.returncode == 0 and proc.stdout.endswith(describe_stages())
    assert "--stage N --stop-stage M" in proc.stdout  # the recipe's own options come first
    for stage in STAGES:
        assert f"  {stage.number}  {stage.name}: " in proc.stdout


def test_the_table_numbers_its_stages_in_order() -> None:
    assert [stage.number for stage in STAGES] == list(range(len(STAGES)))
    assert len({stage.name for stage in STAGES}) == len(STAGES)


def _settings(tmp_path: Path, **changes) -> RecipeSettings:
    config = tmp_path / "c.yaml"
    config.write_text("model: {frontend: fbank}\ntrain: {on_the_fly_features: false}\n")
    lm = tmp_path / "lm.yaml"
    lm.write_text("model: {frontend: fbank}\ntrain: {epochs: 1}\nloss: {margin: 0.5}\n")
    data, exp = tmp_path / "data", tmp_path / "exp"
    base = dict(data=data, exp=exp, config=config, lm_config=lm, train_data=data / "train",
                tests=[data / "o", data / "h"], embedding_set=data / "eval", cohort=data / "train",
                fbank_conf=tmp_path / "fbank.conf", feat_dir=tmp_path / "fbank", musan_dir=data, rir_dir=data / "rirs",
                stage0=["local/prepare.sh"], aug_kinds=["noise", "reverb"], aug_subset=5, overrides=["train.lr=0.5"],
                untrained=False, eval_features="frontend", embedding_mean=False, nj=3)
    return RecipeSettings(**{**base, **changes})


def test_fine_tuning_is_the_training_stage_again_with_another_config(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    steps = [step.argv for step in stage_steps(s, 2)]
    assert [argv[0] for argv in steps] == ["steps/make_config.py", "steps/train.sh"] * 2
    (make_main, train_main, make_lm, train_lm) = steps
    data, exp = tmp_path / "data", tmp_path / "exp"
    sets = [f"train.augment.musan_dir={data}", f"train.augment.rir_dir={data / 'rirs'}"]
    assert make_main == ["steps/make_config.py", "--set", sets[0], "--set", sets[1], "--set", "train.lr=0.5",
                         str(tmp_path / "c.yaml"), str(exp / "conf" / "train.yaml")]
    assert make_lm == ["steps/make_config.py", "--set", sets[0], "--set", sets[1], "--set", f"train.init_model={exp}",
                       "--set", "train.lr=0.5", str(tmp_path / "lm.yaml"), str(exp / "lm" / "conf" / "train.yaml")]
    # the same training command, with the other config and experiment dir
    swap = {str(exp / "conf" / "train.yaml"): str(exp / "lm" / "conf" / "train.yaml"), str(exp): str(exp / "lm")}
    assert train_lm == [swap.get(arg, arg) for arg in train_main]
    assert train_main[train_main.index("--data") + 1] == str(data / "train_combined")  # the augmented copies


def test_steps_of_a_recipe_with_augmented_copies_and_one_embedding_set(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    data, exp, feats = tmp_path / "data", tmp_path / "exp", tmp_path / "fbank"
    stage1 = [step.argv for step in stage_steps(s, 1)]
    assert [(argv[0], argv[-3] if argv[0] == "steps/make_fbank.py" else None) for argv in stage1] == [
        ("steps/make_fbank.py", str(data / "train")), ("steps/make_config.py", None),
        ("steps/augment_data_dir.py", None), ("steps/combine_data_dirs.py", None),
        ("steps/make_fbank.py", str(data / "train_aug")), ("steps/combine_data_dirs.py", None),
        ("steps/make_fbank.py", str(data / "eval"))]  # the cohort is the training set: its fbank once
    assert stage1[0] == ["steps/make_fbank.py", "--nj", "3", "--cmd", "", "--conf", str(tmp_path / "fbank.conf"),
                         "--compress", "false", str(data / "train"), str(feats / "train"), str(feats / "log")]
    assert stage1[1] == stage_steps(s, 2)[0].argv  # the effective config: one command (the driver runs it once)
    stage3 = [step.argv for step in stage_steps(s, 3)]
    assert stage3 == [["steps/extract.sh", "--nj", "3", "--cmd", "", "--device", "auto", "--opts", "", "--cohort",
                       str(data / "train"), str(exp / "lm"), str(data / "eval")]]
    assert [step.argv for step in stage_steps(s, 4)] == [
        ["steps/score.sh", "--embeddings", "eval", str(exp / "lm"), str(data / "o"), str(data / "h")]]
    stage6 = [step.argv for step in stage_steps(s, 6)]
    assert stage6 == [["steps/results_table.py", "--lists", f"{data / 'o'},{data / 'h'}", "--scorings", "cosine,asnorm",
                       "--plot-dir", str(exp / "lm" / "plots"), "--out", str(exp / "lm" / "results"), str(exp / "lm")]]
    # the seed front end: no features at all, and stage 1 says so
    seed = _settings(tmp_path, overrides=["model.frontend=seed", "train.on_the_fly_features=true"])
    (nothing,) = stage_steps(seed, 1)
    assert nothing.argv is None and nothing.log.startswith("stage 1: nothing to do (the seed front end")


def _driver_options(tmp_path: Path) -> list[str]:
    """The settings options every run.sh gives the driver, for a recipe in ``tmp_path``."""
    (tmp_path / "c.yaml").write_text("model: {frontend: fbank}\n")
    return ["--data", str(tmp_path / "data"), "--exp", str(tmp_path / "exp"), "--config", str(tmp_path / "c.yaml"),
            "--train-data", str(tmp_path / "data" / "train"), "--test-data", str(tmp_path / "data" / "test"),
            "--cohort-data", str(tmp_path / "data" / "cohort"), "--fbank-conf", "conf/fbank.conf", "--feat-dir",
            str(tmp_path / "fbank"), "--musan-dir", str(tmp_path), "--rir-dir", str(tmp_path), "--script", "x.sh"]


@pytest.mark.parametrize("args, message", [
    (["--resample", "yes"], "error: --resample: expected true or false, got 'yes'"),
    (["--combined-results", "no"], "error: --combined-results: expected true or false, got 'no'"),
    (["--vad", "on"], "error: --vad: expected true or false, got 'on'"),
    (["--vad", "true", "--vad-conf", "no/such.conf"],
     "error: --vad-conf: 'no/such.conf': file not found (--vad true reads it)"),
])
def test_driver_checks_the_options_of_new_features(tmp_path: Path, args: list[str], message: str) -> None:
    """Bad values of the feature options (run.sh's parse_options checks its booleans too): one error line, exit 1,
    nothing run or written."""
    proc = _driver(*_driver_options(tmp_path), *args, "--", "bash", "-c", "echo ran")
    assert proc.returncode == 1 and proc.stderr.splitlines() == [message] and proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_driver_stops_at_the_first_failing_step_with_its_status(tmp_path: Path) -> None:
    """Stage 0's command fails with 3: the run exits 3 after logging stage 0, and stage 1 never starts."""
    common = _driver_options(tmp_path)
    proc = _driver(*common, "--stop-stage", "1", "--", "bash", "-c", "echo preparing; exit 3")
    assert proc.returncode == 3, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].endswith(f"x.sh: stage 0: data preparation ({tmp_path / 'data'})") and lines[1] == "preparing"
    assert "stage 1" not in proc.stdout and not (tmp_path / "fbank").exists()
    proc = _driver(*common, "--stop-stage", "0", "--", "bash", "-c", "echo prepared")
    assert proc.returncode == 0 and proc.stdout.splitlines()[1:] == ["prepared"]
    proc = _driver(*common)
    assert proc.returncode == 1 and proc.stderr.splitlines() == ["error: no stage-0 command (give it after --)"]


def _tiny_data_dir(data_dir: Path) -> None:
    """A data dir of two 0.1 s recordings, enough for stamps (their wav files are deep inputs)."""
    import numpy as np
    import soundfile

    data_dir.mkdir(parents=True)
    lines = []
    for utt in ("s1-a", "s1-b"):
        soundfile.write(data_dir / f"{utt}.wav", np.zeros(1600, dtype=np.int16), 16000)
        lines.append(f"{utt} {data_dir / f'{utt}.wav'}")
    (data_dir / "wav.scp").write_text("\n".join(lines) + "\n")
    (data_dir / "utt2spk").write_text("s1-a s1\ns1-b s1\n")


def _states(status_text: str, step: str, target: str) -> list[str]:
    """The state column of the --status rows of ``step`` on ``target``."""
    return [line.split(target, 1)[1].strip() for line in status_text.splitlines()
            if f" {step} " in line and f" {target} " in line]


def test_resample_reaches_stages_1_and_3_and_their_stamps(tmp_path: Path) -> None:
    """--resample true: make_fbank and extract_embeddings (through extract.sh --opts) get --resample, and --status
    judges stage 1's stamp with it: a stamp written with --resample is current with it and to redo without."""
    from pyfunc.pipeline.fbank_stage import fbank_stamp_spec
    from pyfunc.pipeline.stage_table import recipe_status
    from pyfunc.pipeline.stamps import FBANK_STAMP, write_stamp

    s = _settings(tmp_path, resample=True, aug_kinds=[], force=True)
    data, feats = tmp_path / "data", tmp_path / "fbank"
    stage1 = [step.argv for step in stage_steps(s, 1)]
    assert stage1[0] == ["steps/make_fbank.py", "--nj", "3", "--cmd", "", "--conf", str(tmp_path / "fbank.conf"),
                         "--compress", "false", "--force", "--resample", str(data / "train"), str(feats / "train"),
                         str(feats / "log")]
    (extract,) = [step.argv for step in stage_steps(s, 3)]
    assert extract[extract.index("--opts") + 1] == "--force --resample"
    (tmp_path / "fbank.conf").write_text("--sample-frequency=16000\n")
    _tiny_data_dir(data / "eval")
    spec = fbank_stamp_spec(data / "eval", tmp_path / "fbank.conf", feats / "eval", resample=True)
    (data / "eval" / "feats.scp").write_text("")
    write_stamp(data / "eval" / FBANK_STAMP, spec.stamp([data / "eval" / "feats.scp"]))
    for resample, state in ((True, "up to date"), (False, "to redo")):
        text = recipe_status(_settings(tmp_path, resample=resample, aug_kinds=[]), 1, 1).text()
        assert [row.split(":")[0] for row in _states(text, "fbank", str(data / "eval"))] == [state], text


def test_a_data_dir_given_with_dot_dot_names_its_outputs_by_its_own_name(tmp_path: Path) -> None:
    """--test-data data/x/sub/..: features, embeddings, scores and results are named x (not '..'), stage 6 reads
    the trials from data/x; steps/score.sh names the embedding dir and score file x too."""
    from pyfunc.pipeline.stage_table import recipe_status

    data, exp, feats = tmp_path / "data", tmp_path / "exp", tmp_path / "fbank"
    odd = data / "x" / "sub" / ".."
    s = _settings(tmp_path, tests=[odd], embedding_set=None, aug_kinds=[], eval_features="always")
    assert [step.argv[-2] for step in stage_steps(s, 1)] == [str(feats / "train"), str(feats / "x")]
    (stage6,) = [step.argv for step in stage_steps(s, 6)]
    assert "--data" not in stage6 and stage6[stage6.index("--lists") + 1] == str(odd)  # results_table names it x
    checks = recipe_status(s, 0, 6).checks
    made = {str(path) for c in checks for path in c.makes}
    assert {str(feats.parent / "data" / "x" / "feats.scp"), str(exp / "lm" / "embeddings" / "x" / "xvector.scp"),
            str(exp / "lm" / "scores" / "x_cosine"), str(exp / "lm" / "scores" / "x_asnorm"),
            str(exp / "lm" / "results_x")} <= {str(Path(os.path.normpath(m))) for m in made}
    assert not any(Path(m).name == ".." or "/../" in m for m in made if "embeddings" in m or "scores" in m)
    (data / "x" / "sub").mkdir(parents=True)
    (data / "c" / "sub").mkdir(parents=True)
    work = tmp_path / "work"  # the shell steps, with their python steps replaced by ones that print their argv
    (work / "steps").mkdir(parents=True)
    (work / "utils").symlink_to(REPO / "utils")
    for script in ("score.sh", "score_norm.sh", "extract.sh", "calibrate.sh"):
        (work / "steps" / script).symlink_to(REPO / "steps" / script)
    for script in ("score_cosine.py", "score_asnorm.py", "extract_embeddings.py", "cohort_means.py", "calibrate.py",
                   "apply_calibration.py"):
        (work / "steps" / script).write_text(f'#!/usr/bin/env bash\necho {script} "$@"\n')
        (work / "steps" / script).chmod(0o755)
    model, cohort = exp / "m", data / "c" / "sub" / ".."
    printed = ""
    for command in (["score.sh", model, odd], ["score_norm.sh", "--cohort", cohort, model, odd],
                    ["extract.sh", "--cohort", cohort, model, odd], ["calibrate.sh", model, odd, odd]):
        proc = subprocess.run(["bash", f"steps/{command[0]}", *map(str, command[1:])], capture_output=True,
                              text=True, cwd=work, timeout=60)
        assert proc.returncode == 0, proc.stderr
        printed += proc.stdout
    assert "embeddings/.." not in printed and "scores/.." not in printed
    for made in ("embeddings/x --", "scores/x_cosine", "scores/x_asnorm", "embeddings/c --", "embeddings/c\n",
                 "scores/x_cosine-cal"):
        assert f"{model}/{made}" in printed + "\n", (made, printed)


def test_a_test_data_run_leaves_the_combined_results_table_alone(tmp_path: Path) -> None:
    """--combined-results false (run.sh --test-data DIR): stage 6 passes --combined false and writes results_<list>
    only; --status (the driver's, as run.sh asks it) does not list MODEL/results."""
    s = _settings(tmp_path, combined_results=False, tests=[tmp_path / "data" / "o"])
    lm = tmp_path / "exp" / "lm"
    (stage6,) = [step.argv for step in stage_steps(s, 6)]
    assert stage6[stage6.index("--combined"):] == ["--combined", "false", "--out", str(lm / "results"), str(lm)]
    proc = _driver(*_driver_options(tmp_path), "--status", "true", "--combined-results", "false", "--stage0-makes",
                   str(tmp_path / "data" / "test"), "--", "true")
    assert proc.returncode == 0, proc.stderr
    (row,) = [line for line in proc.stdout.splitlines() if line.startswith("stage 6")]
    exp = tmp_path / "exp"
    assert f"{exp / 'results_test'} " in row and "(and" not in row, row
    proc = _driver(*_driver_options(tmp_path), "--status", "true", "--stage0-makes", str(tmp_path / "data" / "test"),
                   "--", "true")
    (row,) = [line for line in proc.stdout.splitlines() if line.startswith("stage 6")]
    assert f"{exp / 'results_test'} (and 1 more)" in row, row


def test_vad_is_a_stage_1_step_after_the_fbank_of_every_set_trained_on_or_evaluated(tmp_path: Path) -> None:
    """vad: steps/compute_vad.py of the combined training dir, the embedding set and the cohort, after their fbank;
    --status reads DATA/.vad.stamp: current when vad_stamp_spec matches it, to redo with --force or another conf."""
    from pyfunc.pipeline.fbank_stage import fbank_stamp_spec
    from pyfunc.pipeline.stage_table import recipe_status
    from pyfunc.pipeline.stamps import FBANK_STAMP, write_stamp
    from pyfunc.pipeline.vad_stage import VAD_STAMP, vad_stamp_spec

    data = tmp_path / "data"
    vad_conf = tmp_path / "vad.conf"
    s = _settings(tmp_path, vad=True, vad_conf=vad_conf, cohort=data / "cohort", skip_bad_audio=True)
    stage1 = [step.argv for step in stage_steps(s, 1)]
    vads = [argv for argv in stage1 if argv[0] == "steps/compute_vad.py"]
    assert stage1[-len(vads):] == vads and [argv[-1] for argv in vads] == [
        str(data / "train_combined"), str(data / "eval"), str(data / "cohort")]
    assert vads[0] == ["steps/compute_vad.py", "--conf", str(vad_conf), "--fbank-conf", str(tmp_path / "fbank.conf"),
                       "--nj", "3", "--cmd", "", "--skip-bad-audio", str(data / "train_combined")]
    assert not any(argv[0] == "steps/compute_vad.py" for argv in
                   (step.argv for step in stage_steps(_settings(tmp_path), 1)))
    vad_conf.write_text("--vad-energy-threshold=5.5\n--vad-energy-mean-scale=0.5\n")
    (tmp_path / "fbank.conf").write_text("--sample-frequency=16000\n")
    _tiny_data_dir(data / "eval")
    fbank = fbank_stamp_spec(data / "eval", tmp_path / "fbank.conf", tmp_path / "fbank" / "eval", True)
    (data / "eval" / "feats.scp").write_text("")
    write_stamp(data / "eval" / FBANK_STAMP, fbank.stamp([data / "eval" / "feats.scp"]))  # stage 1's fbank: current
    spec = vad_stamp_spec(data / "eval", vad_conf, tmp_path / "fbank.conf", data / "eval" / "vad", True)
    (data / "eval" / "vad.scp").write_text("")
    write_stamp(data / "eval" / VAD_STAMP, spec.stamp([data / "eval" / "vad.scp"]))

    def state(**changes: object) -> str:
        text = recipe_status(_settings(tmp_path, vad=True, vad_conf=vad_conf, aug_kinds=[], skip_bad_audio=True,
                                       **changes), 1, 1).text()
        (row,) = _states(text, "voice activity", str(data / "eval"))
        return row
    assert state() == "up to date"
    assert state(force=True).startswith("to redo")  # (the fbank before it is redone too)
    vad_conf.write_text("--vad-energy-threshold=4.0\n--vad-energy-mean-scale=0.5\n")
    assert state().startswith("to redo")


def test_vad_reaches_training_and_embeddings(tmp_path: Path) -> None:
    """vad: train.vad=true in both effective configs (a --set before the recipe's overrides), --vad in stage 3's
    --opts; --status redoes training and embeddings when stage 1 remakes a vad.scp they read."""
    from pyfunc.pipeline.stage_table import recipe_status

    s = _settings(tmp_path, vad=True, resample=True)
    make_main, _, make_lm, _ = [step.argv for step in stage_steps(s, 2)]
    for argv in (make_main, make_lm):
        assert argv[argv.index("train.vad=true") - 1] == "--set" and argv.index("train.vad=true") < argv.index(
            "train.lr=0.5")
    assert "train.vad=true" not in stage_steps(_settings(tmp_path), 2)[0].argv
    (extract,) = [step.argv for step in stage_steps(s, 3)]
    assert extract[extract.index("--opts") + 1] == "--resample --vad"
    checks = recipe_status(s, 1, 3).checks
    vad_scp = str(tmp_path / "data" / "train_combined" / "vad.scp")
    training = [c for c in checks if c.stage == 2]
    assert training[0].reason == f"stage 1 remakes {vad_scp}" and training[0].state == "to make"


def _trials_dir(data_dir: Path, speakers: int = 3, utts: int = 4) -> None:
    """A data dir of ``speakers`` x ``utts`` recordings (not read: the enrolment set needs only the lists) and
    trials naming all of them."""
    data_dir.mkdir(parents=True)
    names = [f"s{s}-u{u}" for s in range(speakers) for u in range(utts)]
    (data_dir / "wav.scp").write_text("".join(f"{n} {data_dir / n}.wav\n" for n in names))
    (data_dir / "utt2spk").write_text("".join(f"{n} {n.split('-')[0]}\n" for n in names))
    (data_dir / "utt2dur").write_text("".join(f"{n} 1.500\n" for n in names))
    (data_dir / "trials").write_text("".join(f"{a} {b} {'target' if a[:2] == b[:2] else 'nontarget'}\n"
                                             for a in names for b in names if a < b))


def test_stage_0_derives_the_enrolment_sets_after_its_command_and_a_rerun_rewrites_nothing(tmp_path: Path) -> None:
    """--enroll-set SRC OUT 3 (the mini recipe's test_enroll3): a stage-0 step after the recipe's command,
    steps/make_enroll_trials.py; --status compares what it would write with what is there; a second run leaves
    every file of OUT (and its time) as it was."""
    src, out = tmp_path / "data" / "test", tmp_path / "data" / "test_enroll3"
    s = _settings(tmp_path, enroll_sets=[EnrollSet(src, out, 3)], cohort_per_speaker=2)
    assert [step.argv for step in stage_steps(s, 0)] == [
        ["local/prepare.sh"], ["steps/make_enroll_trials.py", "--per-model", "3", str(src), str(out)],
        ["steps/subset_data_dir.py", "--per-speaker", "2", str(data_dir := tmp_path / "data" / "train"),
         str(data_dir)]]

    _trials_dir(src)
    common = [*_driver_options(tmp_path), "--stop-stage", "0", "--enroll-set", str(src), str(out), "3"]

    def driver(*args: str) -> subprocess.CompletedProcess:  # the steps' python3 is this one, as path.sh makes it
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        return subprocess.run([sys.executable, str(REPO / "steps" / "run_stages.py"), *args], capture_output=True,
                              text=True, cwd=REPO, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO),
                                                                     "PATH": path})

    def enrol_rows() -> list[str]:
        proc = driver(*common, "--status", "true", "--", "true")
        assert proc.returncode == 0, proc.stderr
        return _states(proc.stdout, "enrolled models", str(out))

    assert enrol_rows() == [f"to make: {out / 'utt2spk'} is missing"]
    proc = driver(*common, "--", "true")
    assert proc.returncode == 0, proc.stderr
    assert f"stage 0: enrolled models of {out} (3 utterances each, from {src})" in proc.stdout
    assert (out / "enroll").read_text().splitlines() == [f"s{s}-enroll1 s{s}-u0 s{s}-u1 s{s}-u2" for s in range(3)]
    assert len((out / "trials").read_text().splitlines()) == 3 * 9
    files = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
    assert set(files) >= {"wav.scp", "utt2spk", "spk2utt", "utt2dur", "enroll", "trials"}
    assert enrol_rows() == ["up to date"]
    trials = (src / "trials").stat()
    os.utime(src / "trials", ns=(trials.st_atime_ns, trials.st_mtime_ns + 10**9))  # the content is what counts
    assert enrol_rows() == ["up to date"]

    proc = driver(*common, "--", "true")  # the second run: nothing rewritten
    assert proc.returncode == 0, proc.stderr
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()} == files

    lines = (src / "trials").read_text().splitlines()
    (src / "trials").write_text("\n".join(line for line in lines if "s2-" not in line) + "\n")
    assert enrol_rows() == [f"to redo: {out}: its utterances (wav.scp, utt2spk, utt2dur) differ from those of "
                            f"{src}'s trials"]


@pytest.mark.parametrize("stage, scoring", [(4, "cosine"), (5, "asnorm")])
def test_status_redoes_scores_older_than_the_models_config_or_embedding_mean(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: int, scoring: str) -> None:
    """Stages 4-5 subtract MODEL/embedding_mean.vec when MODEL/config.yaml says score.subtract_mean: --status
    called their score files up to date after either changed (stage 4 read neither), though a rerun scores
    differently."""
    import pyfunc.pipeline.status as status_module
    from pyfunc.pipeline.status import TO_REDO, UP_TO_DATE, RecipeStatus

    monkeypatch.setattr(status_module, "_embeddings_ready", lambda emb_dir: None)  # no stage-3 stamps here
    s = _settings(tmp_path, tests=[tmp_path / "data" / "o"], embedding_set=None)
    model = tmp_path / "exp" / "lm"
    (tmp_path / "data" / "o").mkdir(parents=True)
    (tmp_path / "data" / "o" / "trials").write_text("a b target\n")
    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "data" / "train" / "utt2spk").write_text("a s\n")
    (model / "scores").mkdir(parents=True)
    (model / "config.yaml").write_text("score: {subtract_mean: true}\n")
    (model / "embedding_mean.vec").write_bytes(b"")
    scores = model / "scores" / f"o_{scoring}"
    scores.write_text("a b 0.5\n")

    def state() -> tuple[str, str]:
        st = RecipeStatus(0, 6)
        for step in stage_steps(s, stage):
            step.check(st)
        (check,) = [c for c in st.checks if c.target == str(scores)]
        return check.state, check.reason

    assert state() == (UP_TO_DATE, "")
    for changed in (model / "embedding_mean.vec", model / "config.yaml"):
        newer = scores.stat().st_mtime_ns + 10**9
        os.utime(changed, ns=(newer, newer))
        assert state() == (TO_REDO, f"{changed} is newer than {scores}")
        os.utime(scores, ns=(newer + 10**9, newer + 10**9))


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_model_dir_with_stage_2_in_range_is_refused_before_any_stage(recipe: str, tmp_path: Path) -> None:
    """--model-dir names a trained model for stages 3-6; with stage 2 in the range run.sh went on to train EXP."""
    exp = tmp_path / "exp"
    proc = _recipe(recipe, "--stage", "1", "--model-dir", str(tmp_path / "m"), "--data", str(tmp_path / "data"),
                   "--exp", str(exp))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: --model-dir {tmp_path / 'm'}: stages 3-6 evaluate that model, but stages 1-6 include stage 2, which "
        f"would train {exp}; give --stage 3 (data and features first: --stop-stage 1)"] and proc.stdout == ""
    assert list(tmp_path.iterdir()) == []
