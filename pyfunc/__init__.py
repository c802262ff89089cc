"""pyfunc: a Kaldi-style ECAPA-TDNN speaker-verification toolkit."""

__version__ = "0.1.0"
