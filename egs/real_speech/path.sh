# Source this file: the toolkit's environment (its .venv, PYTHONPATH with pyfunc), from the repository root.
# shellcheck disable=SC1091
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../path.sh"
