"""Cosine and AS-norm scoring, score files, EER/minDCF, thresholds, plots, results tables."""
