#!/usr/bin/env python3
"""AS-norm cohort: the speaker means of a cohort's embeddings, once, into EMB_DIR/spk_xvector.scp.

Usage: steps/cohort_means.py --utt2spk DATA/utt2spk [--force] EMB_DIR
Per speaker of utt2spk, the L2-normalised mean of the L2-normalised embeddings of EMB_DIR/xvector.scp
(stage 3, full-utterance protocol), written to EMB_DIR/spk_xvector.{ark,scp} with the stamp
EMB_DIR/.cohort.stamp. Stage 5 (steps/score_asnorm.py) reads them while they are current, so every
trial list reuses them. A rerun with unchanged inputs does nothing; --force redoes it.
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utt2spk", required=True, help="utt2spk of the cohort data directory")
    parser.add_argument("--force", action="store_true", help="recompute even when the stamp says up to date")
    parser.add_argument("emb_dir", help="embedding directory of the cohort (xvector.scp)")
    args = parser.parse_args()

    from pyfunc.pipeline.cohort_stage import write_cohort_means

    write_cohort_means(args.emb_dir, args.utt2spk, force=args.force)


if __name__ == "__main__":
    run_main(main)
