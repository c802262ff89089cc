#!/usr/bin/env python3
"""What each stage of a recipe would do now, and why; runs nothing and writes nothing.

Usage: steps/recipe_status.py mini [options]        (run.sh --status true calls this)
       steps/recipe_status.py voxceleb [options]    (egs/voxceleb/run.sh --status true calls this)

The options are the recipe's own, passed by its run.sh (see pyfunc/pipeline/recipe_status.py).
Per step: up to date, to make, to redo (and why: a changed input or parameter, a missing
output, an earlier stage remaking an input) or would fail (and why).
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    recipes = parser.add_subparsers(dest="recipe", required=True)
    for name in ("mini", "voxceleb"):
        sub = recipes.add_parser(name)
        sub.add_argument("--stage", type=int, default=0)
        sub.add_argument("--stop-stage", type=int, default=6)
        sub.add_argument("--data", required=True)
        sub.add_argument("--exp", required=True)
        sub.add_argument("--config", required=True)
        sub.add_argument("--fbank-conf", required=True)
    mini = recipes.choices["mini"]
    mini.add_argument("--models", nargs="+", required=True, help="model dirs of stages 3-6")
    mini.add_argument("--test-data", nargs="+", required=True, help="test data dirs with trials (stages 3-6)")
    mini.add_argument("--dev-data", default="", help="the dev set (calibration); '' for none")
    mini.add_argument("--cohort-data", required=True)
    mini.add_argument("--train-set", default="train_wide")
    mini.add_argument("--overrides", default="", help="config overrides, KEY=VALUE separated by spaces")
    for name, default in (("wide-speakers", 300), ("wide-utts-per-speaker", 6), ("unseen-speakers", 24),
                          ("dev-speakers", 16)):
        mini.add_argument(f"--{name}", type=int, default=default)
    for sub in recipes.choices.values():
        sub.add_argument("--compress", choices=["true", "false"], default="false")
        sub.add_argument("--lm-config", default="")
    mini.add_argument("--skip-bad-audio", choices=["true", "false"], default="false")
    mini.add_argument("--force", choices=["true", "false"], default="false")
    mini.add_argument("--random-seed", type=int, default=777)
    mini.add_argument("--train-speakers", type=int, default=100)
    mini.add_argument("--test-speakers", type=int, default=20)
    mini.add_argument("--utts-per-speaker", type=int, default=20)
    vox = recipes.choices["voxceleb"]
    vox.add_argument("--overrides", default="", help="config overrides, KEY=VALUE separated by spaces")
    vox.add_argument("--feat-dir", required=True)
    vox.add_argument("--lists", required=True, help="trial lists, comma-separated")
    vox.add_argument("--aug-kinds", default="", help="offline augmentation kinds, comma-separated")
    vox.add_argument("--cohort-per-spk", type=int, default=0)
    vox.add_argument("--model-dir", default="")
    for corpus in ("vox1", "vox2", "musan", "rirs"):
        vox.add_argument(f"--{corpus}-root", default="")
    args = parser.parse_args()

    from pyfunc.pipeline.recipe_status import mini_recipe_status, voxceleb_recipe_status

    if args.recipe == "mini":
        corpus = {"num_train_speakers": args.train_speakers, "num_test_speakers": args.test_speakers,
                  "utts_per_speaker": args.utts_per_speaker, "random_seed": args.random_seed}
        parts = {"wide_speakers": args.wide_speakers, "wide_utts_per_speaker": args.wide_utts_per_speaker,
                 "unseen_speakers": args.unseen_speakers, "dev_speakers": args.dev_speakers}
        status = mini_recipe_status(args.stage, args.stop_stage, args.data, args.exp, args.config, args.fbank_conf,
                                    args.models, args.test_data, args.cohort_data, args.train_set,
                                    args.dev_data or None, args.lm_config or None, args.overrides.split(), corpus,
                                    parts, args.skip_bad_audio == "true", args.force == "true",
                                    args.compress == "true")
    else:
        status = voxceleb_recipe_status(
            args.stage, args.stop_stage, args.data, args.exp, args.config, args.overrides.split(), args.feat_dir,
            args.fbank_conf, [n for n in args.lists.split(",") if n], [k for k in args.aug_kinds.split(",") if k],
            args.cohort_per_spk, args.model_dir or None,
            {"vox1": args.vox1_root, "vox2": args.vox2_root, "musan": args.musan_root, "rirs": args.rirs_root},
            args.lm_config or None, args.compress == "true")
    print(status.text(), end="")


if __name__ == "__main__":
    run_main(main)
