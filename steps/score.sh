#!/usr/bin/env bash
# Stage 4 for several trial lists: cosine scores of DATA_DIR/trials with the embeddings of MODEL_DIR
# into MODEL_DIR/scores/<name of DATA_DIR>_cosine (both run.sh files call this).
#
#   steps/score.sh [--embeddings NAME] [--subtract-mean auto|true|false] MODEL_DIR DATA_DIR...
#
# The embeddings are MODEL_DIR/embeddings/<name of DATA_DIR>, or MODEL_DIR/embeddings/NAME for all
# lists when --embeddings is given (e.g. the embeddings of all of VoxCeleb1 for Vox1-O, -E and -H).
# --subtract-mean: subtract MODEL_DIR/embedding_mean.vec (steps/compute_embedding_mean.py) from every
# embedding first; auto (the default) follows the model's score.subtract_mean.
set -euo pipefail
script_path="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

embeddings=""
subtract_mean=auto
. utils/parse_options.sh
if [ $# -lt 2 ]; then
  echo "usage: $0 [options] MODEL_DIR DATA_DIR..." >&2; exit 1
fi
model_dir=$1; shift

for data_dir in "$@"; do
  name=$(basename "$(cd "$data_dir" && pwd)")
  echo "$(date '+%F %T') score.sh: cosine scoring of $data_dir/trials with $model_dir"
  steps/score_cosine.py --trials "$data_dir/trials" --embeddings "$model_dir/embeddings/${embeddings:-$name}" \
    --model-dir "$model_dir" --subtract-mean "$subtract_mean" --out "$model_dir/scores/${name}_cosine"
done
