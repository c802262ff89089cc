#!/usr/bin/env bash
# Set up everything the recipes and tests need, skipping what is already done:
#   - espeak-ng (for the mini corpus) and ffmpeg (VoxCeleb2's m4a files, and the tests that make
#     them), through apt-get, with sudo when not root;
#   - a C compiler, for the test that checks the seed log-mel bit for bit on non-Intel
#     CPUs (tests/mkl_intel_cpu_shim.c); without one, only that test is skipped;
#   - .venv with the pinned runtime requirements (requirements.txt) and the test and lint ones
#     (requirements-dev.txt), redone only when either file changes.
# Usage: bash tools/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
  echo "setup: $python not found; install Python 3.10 or newer (apt-get install python3 python3-venv)" >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "setup: $("$python" --version 2>&1) is too old; Python 3.10 or newer is needed" >&2
  exit 1
fi

apt_install() {
  local runner=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      runner=(sudo)
    else
      echo "setup: '$*' is missing and I am not root and sudo is not installed;" \
           "ask an administrator to run: apt-get install -y $*" >&2
      return 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: '$*' is missing and apt-get is not available; install it with your package manager" >&2
    return 1
  fi
  echo "setup: installing $* with apt-get"
  if ! { "${runner[@]}" apt-get update -qq && \
         DEBIAN_FRONTEND=noninteractive "${runner[@]}" apt-get install -y -qq "$@" >/dev/null; }; then
    echo "setup: apt-get could not install $*; install it by hand: apt-get install -y $*" >&2
    return 1
  fi
}

if ! command -v espeak-ng >/dev/null 2>&1; then
  apt_install espeak-ng
fi
if ! command -v ffmpeg >/dev/null 2>&1; then
  apt_install ffmpeg
fi
if ! command -v cc >/dev/null 2>&1; then
  apt_install gcc libc6-dev || echo "setup: going on without a C compiler; one seed-reference test will be skipped" >&2
fi

stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt requirements-dev.txt | sha256sum | cut -d" " -f1)  # both files, each by name
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/python ]; then
  echo "setup: .venv is up to date with requirements.txt and requirements-dev.txt"
else
  if [ ! -x .venv/bin/python ]; then
    if ! "$python" -m venv .venv 2>/dev/null; then
      rm -rf .venv
      ver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
      apt_install "python${ver}-venv" || apt_install python3-venv
      "$python" -m venv .venv
    fi
  fi
  echo "setup: installing requirements.txt and requirements-dev.txt into .venv (torch is large: a few minutes the first time)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt -r requirements-dev.txt
  echo "$want" > "$stamp"
fi
.venv/bin/python -c 'import torch, torchaudio, kaldiio, soundfile; print("setup: torch", torch.__version__, "torchaudio", torchaudio.__version__, "cuda" if torch.cuda.is_available() else "cpu")'
