"""Progress of a training run, for people waiting on it.

A run is a few steps of very different lengths (load the data, each backtest fold, the
final fit, logging to MLflow); :class:`TrainProgress` weighs them in units, so the ETA is
the elapsed time per unit done times the units left. On a terminal one status line is
rewritten in place; anywhere else (a log file, CI, a notebook) each step is one plain,
timestamped line, never a control character.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["TrainProgress", "clock"]


def clock(seconds: float) -> str:
    """Seconds as ``m:ss`` (or ``h:mm:ss``)."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class TrainProgress:
    """Weighted steps with elapsed time and an ETA.

    Parameters
    ----------
    total : float
        Units of the whole run.
    stream : file, optional
        Default ``sys.stderr``.
    live : bool, optional
        Rewrite one line in place (default: when ``stream`` is a terminal).
    prefix : str, default="[riskmodel train]"
    """

    def __init__(self, total: float, *, stream: TextIO | None = None, live: bool | None = None,
                 prefix: str = "[riskmodel train]"):
        self.total = float(total)
        self.stream = stream if stream is not None else sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)()) if live is None else live
        self.prefix = prefix
        self.t0 = time.perf_counter()
        self.done = 0.0
        self._width = 0

    def eta(self) -> float | None:
        """Seconds left, from the pace so far (``None`` before the first unit is done)."""
        if self.done <= 0:
            return None
        elapsed = time.perf_counter() - self.t0
        return elapsed / self.done * max(self.total - self.done, 0.0)

    def update(self, done: float, message: str) -> None:
        """``done`` units of the run are finished; ``message`` says what happens now."""
        self.done = min(max(done, self.done), self.total)
        elapsed = clock(time.perf_counter() - self.t0)
        eta = self.eta()
        share = f"{100 * self.done / self.total:3.0f}%" if self.total else ""
        tail = f"{elapsed} elapsed" + (f", about {clock(eta)} left" if eta is not None and self.done < self.total
                                       else "")
        if self.live:
            line = f"\r{self.prefix} {share} {message} ({tail})"
            pad = max(self._width - len(line), 0)
            self._width = len(line)
            self.stream.write(line + " " * pad)
        else:
            self.stream.write(f"{self.prefix} {time.strftime('%H:%M:%S')} {share} {message} ({tail})\n")
        self.stream.flush()

    def close(self, message: str | None = None) -> None:
        """End the display (a final line on a terminal)."""
        if message is not None:
            self.update(self.total, message)
        if self.live:
            self.stream.write("\n")
            self.stream.flush()
