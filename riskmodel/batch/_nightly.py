"""Reading the nightly batch outputs (``riskmodel score --out DIR``) back in.

The operations modules (barometer, sweep, audit, report) are pure functions of frames;
this module is their one I/O edge for score outputs: a folder becomes a
:class:`NightlyOutput`, a list of folders or frames one long scores frame.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .._errors import DataError, format_examples
from ..model import TIERS

__all__ = ["NightlyOutput", "concat_scores", "read_nightly"]

#: Columns every scores frame must have (the batch writes more).
SCORE_COLUMNS = ("as_of", "probability", "tier")


@dataclass
class NightlyOutput:
    """One night's batch output.

    Attributes
    ----------
    path : Path or None
    scores : DataFrame
        One row per scored dispute (``scores.parquet``).
    manifest : dict
        ``manifest.json`` (empty when absent).
    worklists, not_scored : DataFrame or None
        ``worklists.parquet`` and ``not_scored.parquet`` when present.
    """

    path: Path | None
    scores: pd.DataFrame
    manifest: dict = field(default_factory=dict)
    worklists: pd.DataFrame | None = None
    not_scored: pd.DataFrame | None = None

    @property
    def as_of(self) -> pd.Timestamp | None:
        if self.manifest.get("as_of"):
            return pd.Timestamp(self.manifest["as_of"])
        if len(self.scores):
            return pd.Timestamp(self.scores["as_of"].max())
        return None


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a data problem
        raise DataError(f"could not read {path}: {type(exc).__name__}: {exc}") from exc


def read_nightly(path) -> NightlyOutput:
    """Read a ``riskmodel score`` output folder.

    Parameters
    ----------
    path : str or Path
        The folder holding ``scores.parquet`` (and normally ``manifest.json``,
        ``worklists.parquet``, ``not_scored.parquet``).

    Returns
    -------
    NightlyOutput

    Raises
    ------
    DataError
        The folder or its ``scores.parquet`` is missing or unreadable, or a file its
        ``manifest.json`` lists is missing.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"score output folder {path} does not exist (expected the --out folder of "
                        "`riskmodel score`).")
    if not (path / "scores.parquet").exists():
        found = sorted(p.name for p in path.iterdir())
        raise DataError(f"{path} has no scores.parquet; it holds {format_examples(found)}. "
                        "Pass the --out folder of `riskmodel score`.")
    scores = check_scores(_read_parquet(path / "scores.parquet"), where=str(path / "scores.parquet"))
    manifest = {}
    if (path / "manifest.json").exists():
        try:
            manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"could not read {path / 'manifest.json'}: {exc}") from exc
        # a copy onto storage without atomic renames (an object store) can be caught half done
        missing = [name for name in manifest.get("files", []) if not (path / name).exists()]
        if missing:
            raise DataError(f"{path} is incomplete: its manifest.json lists {format_examples(missing)}, which "
                            "are missing (a copy still in progress, or an interrupted one).")
    optional = {name: _read_parquet(path / f"{name}.parquet") if (path / f"{name}.parquet").exists() else None
                for name in ("worklists", "not_scored")}
    return NightlyOutput(path=path, scores=scores, manifest=manifest, **optional)


def check_scores(scores, *, where: str = "scores") -> pd.DataFrame:
    """Check a scores frame has the columns the operations modules read; tier as category."""
    if not isinstance(scores, pd.DataFrame):
        raise DataError(f"{where} must be a DataFrame, got {type(scores).__name__}.")
    missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise DataError(f"{where} is missing column(s) {missing}; it has {list(scores.columns)[:20]}. "
                        "Pass the output of `riskmodel score` / score_batch.")
    bad = ~scores["tier"].astype(object).isin(TIERS) & scores["tier"].notna()
    if bad.any():
        raise DataError(f"{where}: {int(bad.sum())} row(s) have a tier outside {list(TIERS)}, e.g. "
                        f"{format_examples(pd.unique(scores.loc[bad, 'tier'].astype(object)))}.")
    out = scores.copy()
    out["tier"] = pd.Categorical(out["tier"].astype(object), categories=list(TIERS))
    out["as_of"] = pd.to_datetime(out["as_of"])
    return out


def as_nightly(item) -> NightlyOutput:
    """A folder path, a :class:`NightlyOutput` or a scores frame, as a NightlyOutput."""
    if isinstance(item, NightlyOutput):
        return item
    if isinstance(item, pd.DataFrame):
        return NightlyOutput(path=None, scores=check_scores(item))
    if isinstance(item, str | Path):
        return read_nightly(item)
    raise DataError(f"expected a score output folder, a NightlyOutput or a scores DataFrame, got "
                    f"{type(item).__name__}.")


def as_nightly_list(items) -> list[NightlyOutput]:
    """One item or a sequence of them (see :func:`as_nightly`), as a list of NightlyOutput."""
    if isinstance(items, pd.DataFrame | NightlyOutput | str | Path):
        items = [items]
    return [as_nightly(item) for item in items]


def concat_scores(items: Sequence | Iterable) -> pd.DataFrame:
    """One scores frame from several nights (folders, NightlyOutputs or frames).

    A single DataFrame is accepted as is (it may already hold several ``as_of`` days).
    """
    frames = [o.scores for o in as_nightly_list(items)]
    if not frames:
        raise DataError("no score outputs given; pass at least one `riskmodel score` folder.")
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
