#!/usr/bin/env bash
# Stage 0 of egs/real_speech/run.sh: the recorded corpora as Kaldi data dirs (local/prepare_data.py), and,
# when the mini corpus is given, DATA/train_mixed = DATA/train_all + MINI/train_wide (real and synthetic
# speakers together, for conf/ecapa_real_mixed.yaml); the mini corpus's train_wide and test_unseen are
# synthesised there first (../../local/make_mini_corpus.py) when absent, and DATA/test_unseen lists the latter.
#
#   local/prepare_data.sh --data DIR [--nj N] [--mirror DIR] [--sources "NAME=PATH_OR_URL ..."]
#       [--download-dir DIR] [--mini-data DIR] [--status true|false]
#
# --status true: make nothing, print what each folder needs (local/prepare_data.py --status true, train_mixed too).
set -euo pipefail
script_path="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

data=""
nj=2
mirror=""
sources=""
download_dir=downloads
mini_data=""
status=false
. utils/parse_options.sh
die() { echo "$(date '+%F %T') prepare_data.sh: error: $*" >&2; exit 1; }

[ -n "$data" ] || die "--data is empty"
args=(--data "$data" --nj "$nj" --download-dir "$download_dir")
[ -n "$mirror" ] && args+=(--mirror "$mirror")
for s in $sources; do args+=(--source "$s"); done
if [ "$status" = true ]; then
  exec local/prepare_data.py "${args[@]}" --status true ${mini_data:+--mini-data "$mini_data"}
fi
local/prepare_data.py "${args[@]}"
if [ -n "$mini_data" ]; then
  # The mini corpus's training voices (and its test_unseen, which this recipe can score too): made here, with
  # the mini recipe's defaults, only when absent; a mini corpus already there is used as it is.
  missing=()
  for part in train_wide test_unseen; do [ -f "$mini_data/$part/wav.scp" ] || missing+=("$part"); done
  if [ ${#missing[@]} -gt 0 ]; then
    ../../local/make_mini_corpus.py --data-root "$mini_data" --nj "$nj" --parts "$(IFS=,; echo "${missing[*]}")"
  fi
  steps/combine_data_dirs.py "$data/train_mixed" "$data/train_all" "$mini_data/train_wide"
  # DATA/test_unseen: the mini test_unseen's lists (its wavs stay where they are), so that this recipe's features
  # and stamps of it live in this recipe's data dir, not in the mini recipe's; files rewritten only when changed.
  mkdir -p "$data/test_unseen"
  for f in wav.scp utt2spk spk2utt utt2dur trials; do
    cmp -s "$mini_data/test_unseen/$f" "$data/test_unseen/$f" || cp "$mini_data/test_unseen/$f" "$data/test_unseen/$f"
  done
fi
