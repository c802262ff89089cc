#!/usr/bin/env python3
"""Gather every stage-6 results table (exp/*/results) into one Markdown table.

Usage: steps/summarize_results.py [DIR_OR_FILE...] [--out RESULTS.md]     (default: exp)
Columns: system (model directory), test set, score norm, EER (%), minDCF per p_target.
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> int:
    from pyfunc.cli.tools import add_results_args, run_results

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_results_args(parser)
    return run_results(parser.parse_args())


if __name__ == "__main__":
    run_main(main)
