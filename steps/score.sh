#!/usr/bin/env bash
# Stage 4 for several trial lists: cosine scores of DATA_DIR/trials with the embeddings of MODEL_DIR
# into MODEL_DIR/scores/<name of DATA_DIR>_cosine (both run.sh files call this).
#
#   steps/score.sh [--embeddings NAME] MODEL_DIR DATA_DIR...
#
# The embeddings are MODEL_DIR/embeddings/<name of DATA_DIR>, or MODEL_DIR/embeddings/NAME for all
# lists when --embeddings is given (e.g. the embeddings of all of VoxCeleb1 for Vox1-O, -E and -H).
set -euo pipefail
script_path="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

embeddings=""
. utils/parse_options.sh
if [ $# -lt 2 ]; then
  echo "usage: $0 [options] MODEL_DIR DATA_DIR..." >&2; exit 1
fi
model_dir=$1; shift

for data_dir in "$@"; do
  name=$(basename "$data_dir")
  echo "$(date '+%F %T') score.sh: cosine scoring of $data_dir/trials with $model_dir"
  steps/score_cosine.py --trials "$data_dir/trials" --embeddings "$model_dir/embeddings/${embeddings:-$name}" \
    --out "$model_dir/scores/${name}_cosine"
done
