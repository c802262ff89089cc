"""Benchmarks of the pipeline's stages against straightforward baselines (``python bench/run.py``)."""
