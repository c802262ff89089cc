"""Exceptions that carry a user-facing message naming the culprit."""


class PyfuncError(Exception):
    """Base class: any error whose message is meant for the user as it is."""


class DataError(PyfuncError, ValueError):
    """Bad input data: a file, line or key that is not what was expected."""


class ConfigError(PyfuncError, ValueError):
    """A configuration file or option that does not pass the schema check."""
