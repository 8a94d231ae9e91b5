"""Crash points for tests: a process killed at a named point of a job (``RISKMODEL_DIE_AT``).

The nightly batch and ``riskmodel train`` promise that a run killed at any moment (even with
``kill -9``) leaves no partial output and no half-registered model, and that a rerun gives
what an uninterrupted run gives. The tests prove it by killing a real process at each of
the points the jobs name with :func:`crash_point`.

``RISKMODEL_DIE_AT`` holds ``<point>`` or ``<point>:<n>``: the process sends itself
``SIGKILL`` the ``n``-th time (default: the first) it reaches ``<point>``. Unset, as in
production, :func:`crash_point` costs one dictionary lookup.

Points (see the code that names them):

``batch.partition``
    the input's parts are written, the partition marker is not;
``batch.write``
    inside the work folder's parquet writer: the temporary file is written, not renamed
    (every chunk's outputs and the final outputs go through it);
``batch.prepare`` / ``batch.score``
    a chunk's prepare / score task is complete (its ``.done`` marker written);
``batch.finalize``
    the final outputs are written into the work folder, the manifest is not;
``batch.rename``
    the previous output is moved aside, the new one not yet renamed onto ``out``;
``batch.cleanup``
    the new output is in place, the work folder not yet removed;
``train.run``
    the MLflow run is started, nothing logged to it;
``train.logged``
    the model is logged to the run, the run is not ended;
``train.ended``
    the run is ended, no model version is registered;
``train.registered``
    the model version is registered (with its tags), the ``challenger`` alias not moved.
"""

from __future__ import annotations

import os
import signal

__all__ = ["DIE_AT_ENV", "crash_point"]

#: The environment variable naming the point to die at.
DIE_AT_ENV = "RISKMODEL_DIE_AT"

_reached: dict[str, int] = {}


def _die() -> None:
    """What a crash point does: a real ``kill -9`` of this process (tests may replace it)."""
    os.kill(os.getpid(), signal.SIGKILL)


def crash_point(name: str) -> None:
    """Kill this process with ``SIGKILL`` if ``RISKMODEL_DIE_AT`` names this visit of ``name``.

    Parameters
    ----------
    name : str
        The point reached, e.g. ``"batch.score"``.
    """
    target = os.environ.get(DIE_AT_ENV)
    if not target:
        return
    point, _, nth = target.partition(":")
    if point != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] >= int(nth or 1):
        _die()
