"""Exceptions and warnings raised by riskmodel.

Every error a user can trigger with bad input is a :class:`DataError`; every
problem with a stored model or the registry is a :class:`ModelError`. Both
carry a message saying what was wrong, where, and what to do.

What to do depends on the interface: a Python caller passes a keyword
(``entities=...``), a command-line user a flag (``--entities PATH``) or a TOML key.
``str(error)`` is the Python wording; an error raised where the two differ also
carries the command line's in ``error.cli_message``, which ``riskmodel`` prints
(:meth:`for_cli`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sklearn.exceptions import NotFittedError as _SklearnNotFitted

__all__ = ["ConfigError", "DataError", "DataWarning", "ModelError", "NotFittedError"]


class _Worded:
    """The two wordings of an error: ``str(error)`` for Python, :meth:`for_cli` for the CLI."""

    def __init__(self, message: str = "", *, cli: str | None = None):
        super().__init__(message)
        #: The message in the command line's words (flags, TOML keys), if they differ.
        self.cli_message = cli

    def for_cli(self) -> str:
        """The message as the command line prints it."""
        return self.cli_message or str(self)


class DataError(_Worded, ValueError):
    """Input data violates the event-data contract (see :class:`EventSchema`)."""


class ConfigError(_Worded, ValueError):
    """An experiment configuration or a parameter is invalid."""


class ModelError(_Worded, RuntimeError):
    """A model is missing, incompatible with this library, or not fitted."""


class NotFittedError(ModelError, _SklearnNotFitted):
    """An estimator used before ``fit``: a :class:`ModelError`, and scikit-learn's
    ``NotFittedError`` for code written against scikit-learn's conventions."""


class DataWarning(UserWarning):
    """Input data was usable but something was repaired or ignored (with a count)."""


def format_examples(values: Iterable, limit: int = 5) -> str:
    """Render the first ``limit`` offending values for an error message."""
    values = [v.item() if isinstance(v, np.generic) else v for v in values]  # 7, not np.int64(7)
    shown = ", ".join(repr(v) for v in values[:limit])
    more = f", ... ({len(values) - limit} more)" if len(values) > limit else ""
    return f"[{shown}{more}]"
