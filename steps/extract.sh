#!/usr/bin/env bash
# Stage 3 for several data directories: the embeddings of each DATA_DIR with MODEL_DIR into
# MODEL_DIR/embeddings/<name of DATA_DIR> (both run.sh files call this).
#
#   steps/extract.sh [--nj N] [--cmd LAUNCHER] [--device auto|cpu|cuda] [--opts "EXTRA OPTIONS"] \
#       MODEL_DIR DATA_DIR...
#
# --opts passes further options to steps/extract_embeddings.py, e.g. "--force --allow-pipes".
set -euo pipefail
script_path="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

nj=1
cmd=""
device=auto
opts=""
. utils/parse_options.sh
if [ $# -lt 2 ]; then
  echo "usage: $0 [options] MODEL_DIR DATA_DIR..." >&2; exit 1
fi
model_dir=$1; shift
read -r -a extra <<< "$opts"

for data_dir in "$@"; do
  echo "$(date '+%F %T') extract.sh: embeddings of $data_dir with $model_dir"
  steps/extract_embeddings.py --model-dir "$model_dir" --data "$data_dir" \
    --out "$model_dir/embeddings/$(basename "$data_dir")" --nj "$nj" --cmd "$cmd" --device "$device" "${extra[@]}"
done
