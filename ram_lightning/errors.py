"""Errors that describe a user's mistake (bad input, bad config, missing data).

The ``ram`` command prints these as one line, without a traceback; everything else is a bug
and keeps its traceback.
"""


class UserError(ValueError):
    """A mistake in the user's input, configuration or data: the message says what was wrong
    and what was expected."""


class DataError(UserError):
    """A data file or directory is missing, truncated, corrupt or malformed."""
