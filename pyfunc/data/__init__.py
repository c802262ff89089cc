"""Kaldi data directories, trials, ark/scp tables, audio reading, the bad-input policy, atomic writing."""
