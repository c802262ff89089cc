#!/usr/bin/env bash
# Stage 3 for several data directories: the embeddings of each DATA_DIR with MODEL_DIR into
# MODEL_DIR/embeddings/<name of DATA_DIR> (its name with . and .. resolved: data/x/sub/.. is x; the run.sh files
# call this).
#
#   steps/extract.sh [--nj N] [--cmd LAUNCHER] [--device auto|cpu|cuda] [--opts "EXTRA OPTIONS"] \
#       [--cohort COHORT_DATA] MODEL_DIR DATA_DIR...
#
# --opts passes further options to steps/extract_embeddings.py, e.g. "--force --allow-pipes".
# --cohort: also the AS-norm cohort, with the full-utterance protocol only (no crops, whatever the
# model's extract.protocol), then its speaker means once (steps/cohort_means.py: spk_xvector.scp).
set -euo pipefail
script_path="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

nj=1
cmd=""
device=auto
opts=""
cohort=""
. utils/parse_options.sh
if [ $# -lt 1 ] || { [ $# -lt 2 ] && [ -z "$cohort" ]; }; then
  echo "usage: $0 [options] MODEL_DIR DATA_DIR..." >&2; exit 1
fi
model_dir=$1; shift
read -r -a extra <<< "$opts"

extract() {  # DATA_DIR [more options]
  local data_dir=$1; shift
  steps/extract_embeddings.py --model-dir "$model_dir" --data "$data_dir" \
    --out "$model_dir/embeddings/$(basename "$(cd "$data_dir" && pwd)")" --nj "$nj" --cmd "$cmd" \
    --device "$device" \
    "${extra[@]}" "$@"
}

for data_dir in "$@"; do
  echo "$(date '+%F %T') extract.sh: embeddings of $data_dir with $model_dir"
  extract "$data_dir"
done
if [ -n "$cohort" ]; then
  echo "$(date '+%F %T') extract.sh: AS-norm cohort $cohort with $model_dir (full utterances only)"
  extract "$cohort" --protocol full
  force=()
  [[ " $opts " == *" --force "* ]] && force=(--force)
  steps/cohort_means.py --utt2spk "$cohort/utt2spk" "${force[@]}" \
    "$model_dir/embeddings/$(basename "$(cd "$cohort" && pwd)")"
fi
