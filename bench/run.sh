#!/usr/bin/env bash
# Run the benchmarks (see bench/run.py --help):  bash bench/run.sh [--quick|--tiny] [--only GROUPS] ...
set -euo pipefail
cd "$(dirname "$0")/.."
. ./path.sh
exec python bench/run.py "$@"
