"""Command-line entry points: the shared runner, ``python -m pyfunc`` tools, the job processes."""
