#!/usr/bin/env python3
"""Stage 0 of egs/real_speech: get the recorded corpora at their pinned commits, check them, and write the
Kaldi data directories (train, train_libri, train_all, dev, test_dsp, test_arabic, test_libri, cohort,
augment) and SOURCES.md under --data.

Usage: local/prepare_data.py [--mirror DIR] [--source NAME=PATH_OR_URL ...] [--download-dir DIR] [--data DIR]
                             [--nj N]
e.g.   local/prepare_data.py --mirror /path/to/mirrors --data data --nj 2

Each corpus is cloned from its public GitHub URL unless --source NAME=... (a git repository or URL holding
the pinned commit, or a plain folder used as it is) or --mirror DIR (DIR/<owner>+<name>/repo,
DIR/<owner>+<name>, DIR/<name>.git or DIR/<name>) says where else; NAME is dsp, arabic, librispeech, esc10,
irs or the repository's name. Rerunning is cheap: checkouts at the commit and data dirs whose .done stamp
matches are reused. See egs/real_speech/README.md.

--status true: fetch nothing, build nothing, write nothing; print one line per folder it would write,
FOLDER<TAB>STATE[: WHY]<TAB>STEP[<TAB>DATA_DIR...] (STATE: up to date, to make, to redo), from the parts'
.done stamps and the parameters they would record (the pinned commits, the checkouts under --download-dir, a
--source folder that is not a git repository as it is), then train_all (and cohort) and, with --mini-data,
train_mixed by content (what steps/run_stages.py --status shows for stage 0).
"""

import argparse
import sys
from pathlib import Path

from pyfunc.cli.runner import run_main

RECIPE = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", default=None, help="folder of local git mirrors of the corpora [none: clone]")
    parser.add_argument("--source", action="append", default=[], metavar="NAME=PATH_OR_URL",
                        help="where one corpus comes from (repeatable)")
    parser.add_argument("--download-dir", default=str(RECIPE / "downloads"),
                        help="where the checkouts go [egs/real_speech/downloads]")
    parser.add_argument("--data", default=str(RECIPE / "data"), help="data root [egs/real_speech/data]")
    parser.add_argument("--nj", type=int, default=2, help="parallel processes making the wavs [2]")
    parser.add_argument("--mini-data", default=None,
                        help="--status only: also report DATA/train_mixed (train_all + MINI/train_wide) []")
    parser.add_argument("--status", default="false", choices=("true", "false"),
                        help="only say what would be made, from the stamps (fetches and writes nothing) [false]")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from real_corpora import CORPORA, fetch_corpus, is_git_repository, parse_sources
    from real_sets import PrepConfig, data_status, prepare_data, status_checkouts

    sources = parse_sources(args.source)
    if args.status == "true":
        plain = {key: Path(s).expanduser() for key, s in sources.items() if "://" not in s and not s.startswith("git@")
                 and Path(s).expanduser().is_dir() and not is_git_repository(Path(s).expanduser())}
        checkouts = status_checkouts(Path(args.download_dir), plain)
        mini = Path(args.mini_data) if args.mini_data else None
        print("\n".join(data_status(Path(args.data), checkouts, PrepConfig(), mini)))
        return
    mirror = Path(args.mirror) if args.mirror else None
    checkouts = {key: fetch_corpus(corpus, Path(args.download_dir), mirror, sources.get(key))
                 for key, corpus in CORPORA.items()}
    for line in prepare_data(Path(args.data), checkouts, PrepConfig(), args.nj):
        print(line)


if __name__ == "__main__":
    run_main(main)
