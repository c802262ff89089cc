"""Stage 0 building blocks the recipes share: simulated rooms, synthetic noise and music, part stamps, the
process pool and the random streams (the espeak-ng mini corpus itself is local/mini_corpus/)."""
