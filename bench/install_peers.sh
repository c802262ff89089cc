#!/usr/bin/env bash
# Install the peer systems of the benchmarks (bench/requirements-peers.txt) into bench/.peers, outside .venv:
# they are not dependencies of the toolkit. The peer scripts put bench/.peers on sys.path themselves.
#   bash bench/install_peers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=bench/.peers/.requirements.sha256
want=$(sha256sum < bench/requirements-peers.txt | cut -d" " -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "install_peers: bench/.peers is up to date"
  exit 0
fi
rm -rf bench/.peers
.venv/bin/python -m pip install -q --target bench/.peers --no-deps -r bench/requirements-peers.txt
echo "$want" > "$stamp"
echo "install_peers: installed $(grep -c '^[a-z]' bench/requirements-peers.txt) packages into bench/.peers"
