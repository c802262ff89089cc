"""``python -m pyfunc verify|embed|export-onnx|results ...`` (see :mod:`pyfunc.commands`)."""

from pyfunc.cli import run_main
from pyfunc.commands import main

if __name__ == "__main__":
    run_main(main)
