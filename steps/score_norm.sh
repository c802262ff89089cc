#!/usr/bin/env bash
# Stage 5 for several trial lists: AS-norm scores of DATA_DIR/trials with the embeddings of MODEL_DIR,
# normalised against the speakers of COHORT_DATA, into MODEL_DIR/scores/<name of DATA_DIR>_asnorm
# (both run.sh files call this).
#
#   steps/score_norm.sh --cohort COHORT_DATA [--embeddings NAME] [--top-n N] [--subtract-mean auto|true|false] \
#     MODEL_DIR DATA_DIR...
#
# The cohort embeddings are MODEL_DIR/embeddings/<name of COHORT_DATA> (stage 3), their speakers
# COHORT_DATA/utt2spk; the top N is --top-n, else the model config's score.asnorm_top_n.
# --embeddings, --subtract-mean: as in steps/score.sh (the mean is subtracted from the cohort embeddings too).
set -euo pipefail
script_path="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

cohort=""
embeddings=""
top_n=""
subtract_mean=auto
. utils/parse_options.sh
if [ $# -lt 2 ] || [ -z "$cohort" ]; then
  echo "usage: $0 --cohort COHORT_DATA [options] MODEL_DIR DATA_DIR..." >&2; exit 1
fi
model_dir=$1; shift

for data_dir in "$@"; do
  name=$(basename "$(cd "$data_dir" && pwd)")
  echo "$(date '+%F %T') score_norm.sh: AS-norm scoring of $data_dir/trials with $model_dir" \
    "(cohort: the speakers of $cohort)"
  steps/score_asnorm.py --trials "$data_dir/trials" --embeddings "$model_dir/embeddings/${embeddings:-$name}" \
    --cohort "$model_dir/embeddings/$(basename "$(cd "$cohort" && pwd)")" --cohort-utt2spk "$cohort/utt2spk" \
    --config "$model_dir/config.yaml" ${top_n:+--top-n "$top_n"} --model-dir "$model_dir" \
    --subtract-mean "$subtract_mean" --out "$model_dir/scores/${name}_asnorm"
done
