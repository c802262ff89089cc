"""pyfunc: a Kaldi-style ECAPA-TDNN speaker-verification toolkit.

The Python API (:mod:`pyfunc.inference.api`) is importable from here, loaded on first use:
``pyfunc.load_model(model_dir)``, ``pyfunc.embed(model, audio)``, ``pyfunc.score(model, a, b)``.
"""

__version__ = "0.1.0"

_API = ("load_model", "embed", "score", "SpeakerModel", "Verification")


def __getattr__(name: str):
    if name in _API:  # imported lazily: `import pyfunc` stays free of torch for the light tools
        from pyfunc.inference import api  # noqa: PLC0415 (lazy: the light tools need no torch)

        return getattr(api, name)
    raise AttributeError(f"module 'pyfunc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))
