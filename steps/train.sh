#!/usr/bin/env bash
# Stage 2 launcher: steps/train.py under torchrun, on one node or several (both run.sh files call this).
#
#   steps/train.sh [--nproc-per-node N] [--nnodes N] [--node-rank R] [--rdzv-endpoint HOST:PORT] \
#       -- --config CONF --data DATA --exp EXP [other steps/train.py options]
#
# With --nnodes 1 (the default) torchrun runs --standalone; otherwise every node runs this same
# command with its own --node-rank and the c10d rendezvous at --rdzv-endpoint.
set -euo pipefail
script_path="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

nproc_per_node=1
nnodes=1
node_rank=0
rdzv_endpoint=localhost:29400
. utils/parse_options.sh

if [ "$nnodes" -eq 1 ]; then
  rdzv=(--standalone)
else
  rdzv=(--nnodes "$nnodes" --node-rank "$node_rank" --rdzv-backend c10d --rdzv-endpoint "$rdzv_endpoint")
fi
exec torchrun "${rdzv[@]}" --nproc-per-node "$nproc_per_node" steps/train.py "$@"
