"""Front ends (Kaldi fbank, the seed log-mel), mean normalisation, SpecAugment, waveform augmentation."""
