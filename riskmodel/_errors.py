"""Exceptions and warnings raised by riskmodel.

Every error a user can trigger with bad input is a :class:`DataError`; every
problem with a stored model or the registry is a :class:`ModelError`. Both
carry a message saying what was wrong, where, and what to do.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["ConfigError", "DataError", "DataWarning", "ModelError"]


class DataError(ValueError):
    """Input data violates the event-data contract (see :class:`EventSchema`)."""


class ConfigError(ValueError):
    """An experiment configuration or a parameter is invalid."""


class ModelError(RuntimeError):
    """A model is missing, incompatible with this library, or not fitted."""


class DataWarning(UserWarning):
    """Input data was usable but something was repaired or ignored (with a count)."""


def format_examples(values: Iterable, limit: int = 5) -> str:
    """Render the first ``limit`` offending values for an error message."""
    values = list(values)
    shown = ", ".join(repr(v) for v in values[:limit])
    more = f", ... ({len(values) - limit} more)" if len(values) > limit else ""
    return f"[{shown}{more}]"
