# Source this file: puts the project's virtual environment and package on the path.
PYFUNC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYFUNC_ROOT
if [ -f "$PYFUNC_ROOT/.venv/bin/activate" ]; then
  # shellcheck disable=SC1091
  . "$PYFUNC_ROOT/.venv/bin/activate"
fi
export PYTHONPATH="$PYFUNC_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$PATH:$PYFUNC_ROOT/utils/bin"  # copy-vector, copy-feats, feat-to-dim, feat-to-len; last: Kaldi's win
export PYTHONUNBUFFERED=1
export LC_ALL=C
