"""``python -m pyfunc verify|embed|export-onnx|results|info|copy-vector|... ...`` (see :mod:`pyfunc.cli.tools`)."""

from pyfunc.cli.runner import run_main
from pyfunc.cli.tools import main

if __name__ == "__main__":
    run_main(main)
