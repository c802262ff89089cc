"""Stage 0 of the mini recipe: the espeak-ng mini corpus (voices, texts, synthesis, noise banks, degraded sets).

Run by ``local/make_mini_corpus.py``, which puts this folder's parent (``local/``) on ``sys.path`` and
imports ``mini_corpus``; the core package never imports it. What other recipes reuse (simulated rooms,
synthetic noise and music, part stamps, the process pool, the random streams) is in :mod:`pyfunc.corpora`.
See docs/mini-corpus.md.
"""
