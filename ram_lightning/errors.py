"""Errors that describe a user's mistake (bad input, bad config, missing data) or a training
run that diverged (a non-finite loss, metric or gradient).

The ``ram`` command prints these as one line, without a traceback; everything else is a bug
and keeps its traceback.
"""


class UserError(ValueError):
    """A mistake in the user's input, configuration or data: the message says what was wrong
    and what was expected.

    ``UserError.last`` is the most recent one raised in this process: jsonargparse turns an
    error raised while it instantiates a class (an estimator given by ``class_path``) into a
    message string, and the ``ram`` CLI uses this to report the original in one line.
    """

    last: "UserError | None" = None

    def __init__(self, *args) -> None:
        super().__init__(*args)
        UserError.last = self


class DataError(UserError):
    """A data file or directory is missing, truncated, corrupt or malformed."""


class NonFiniteError(FloatingPointError):
    """Training produced a non-finite loss, estimator metric, gradient or weight.

    Raised before the optimizer step and before any checkpoint is written from that state, so
    the last checkpoint on disk stays finite. The message names the step, the estimator and
    the quantity. The ``ram`` command prints it as one line ``ram: error: ...`` (exit status 1).
    """
