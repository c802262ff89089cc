"""Stage 0: data preparation of the corpora (the espeak-ng mini corpus, VoxCeleb, MUSAN, RIRS_NOISES)."""
