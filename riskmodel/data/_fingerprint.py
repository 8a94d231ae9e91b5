"""Content fingerprints of frames: the one owner (training runs tag their data with it,
the nightly job records its input with it and discards stale work when it changes)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["frame_fingerprint"]


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """``frame:<hash>-<rows>``: a hash of every cell (row order ignored), the row count.

    Values are hashed as text, so any column pandas or Arrow produces (objects mixing
    types included) has a fingerprint.
    """
    hashed = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy()
    return f"frame:{np.bitwise_xor.reduce(hashed) if len(hashed) else 0:016x}-{len(frame)}"
