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

from .._errors import DataError, DataWarning, format_examples
from ..data import EventSchema, ids_of_one_type
from ..model import TIERS

__all__ = ["NightlyOutput", "concat_scores", "read_nightly"]

#: Columns every scores frame must have (the batch writes more).
SCORE_COLUMNS = ("as_of", "probability", "tier")
_KNOWN_SCORE_COLUMNS = frozenset((*SCORE_COLUMNS, "reasons", "reason_features", "overrides", "model_name",
                                  "model_version", "run_id", "rank"))


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

    @property
    def schema(self) -> EventSchema | None:
        """The column names of the model that scored the night (from the manifest), if known."""
        data = self.manifest.get("schema")
        if not isinstance(data, dict):
            return None
        try:
            return EventSchema.from_dict(data)
        except (DataError, TypeError):
            return None

    @property
    def id_col(self) -> str | None:
        """The scores' dispute id column: the model's ``entity_col`` (manifest), else
        ``dispute_id`` if present, else the first column when it is not a score column
        (the batch writes the id first); ``None`` if none of these applies."""
        schema = self.schema
        if schema is not None and schema.entity_col in self.scores.columns:
            return schema.entity_col
        if "dispute_id" in self.scores.columns:
            return "dispute_id"
        first = self.scores.columns[0] if len(self.scores.columns) else None
        return first if first is not None and first not in _KNOWN_SCORE_COLUMNS else None

    def rejected(self, dispute_id: str) -> pd.Series:
        """The reasons the night rejected event rows of ``dispute_id`` (its id as text), one
        per row, from the folder's ``rejects.parquet`` (empty when there is none)."""
        path, ent = (self.path / "rejects.parquet") if self.path is not None else None, self.id_col
        if path is None or ent is None or not path.exists():
            return pd.Series([], dtype=object)
        try:
            rejects = pd.read_parquet(path, columns=[ent, "reject_reason"])
        except Exception:  # noqa: BLE001 - an older or foreign rejects file: nothing to say
            return pd.Series([], dtype=object)
        return rejects.loc[rejects[ent].astype(str) == str(dispute_id), "reject_reason"].reset_index(drop=True)

    @property
    def model_uri(self) -> str | None:
        """The model that scored the night: ``models:/NAME/VERSION`` for a registered version
        (whichever alias loaded it then: the alias may have moved since), else the folder or
        ``runs:/`` URI the manifest records; ``None`` when it records none."""
        info = self.manifest.get("model") or {}
        uri, name, version = info.get("uri"), info.get("name"), str(info.get("version") or "")
        if uri and str(uri).startswith("models:/") and name and version.isdigit():
            return f"models:/{name}/{version}"
        return str(uri) if uri else None

    @property
    def model_store(self) -> str | None:
        """The MLflow tracking store the night's model was loaded from, when the manifest
        records it (nights scored from a folder or a given Predictor, and older nights, do not)."""
        return (self.manifest.get("model") or {}).get("tracking_uri") or None

    @property
    def area(self) -> str | None:
        """The area column of the night's work lists: the manifest's ``area`` (the model's
        first group column, e.g. ``station``; ``None`` for a model without one), else
        ``station`` when the scores have it, else ``None`` (city-wide)."""
        if "area" in self.manifest:
            area = self.manifest["area"]
            return area if area in self.scores.columns else None
        schema = self.schema
        if schema is not None:
            return next((g for g in schema.group_cols if g in self.scores.columns), None)
        return "station" if "station" in self.scores.columns else None


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
        The folder or its ``scores.parquet`` is missing or unreadable, a file its
        ``manifest.json`` lists is missing, or the night was refused (its manifest's
        ``status``).
    """
    path = Path(path)
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise DataError(f"score output folder {path} {what} (expected the --out folder of `riskmodel score`).")
    if not (path / "scores.parquet").exists():
        found = sorted(p.name for p in path.iterdir())
        raise DataError(f"{path} has no scores.parquet; it holds {format_examples(found)}. "
                        "Pass the --out folder of `riskmodel score`.")
    manifest = {}
    if (path / "manifest.json").exists():
        try:
            manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"could not read {path / 'manifest.json'}: {exc}") from exc
        if manifest.get("status") == "refused":
            raise DataError(f"{path} is a night `riskmodel score` refused ({manifest.get('refused_because')}); its "
                            "scores must not be used. Leave it out, or score the night again from a fixed export.")
        # a copy onto storage without atomic renames (an object store) can be caught half done
        missing = [name for name in manifest.get("files", []) if not (path / name).exists()]
        if missing:
            raise DataError(f"{path} is incomplete: its manifest.json lists {format_examples(missing)}, which "
                            "are missing (a copy still in progress, or an interrupted one).")
    scores = check_scores(_read_parquet(path / "scores.parquet"), where=str(path / "scores.parquet"))
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


def as_nightly_list(items, *, history: bool = False) -> list[NightlyOutput]:
    """One item or a sequence of them (see :func:`as_nightly`), as a list of NightlyOutput.

    A folder of a night ``riskmodel score`` refused (its manifest's ``status``) is left out
    with a :class:`~riskmodel.DataWarning` naming it (a ``nights/*`` listing spans it). When
    every item is such a folder, the first is refused as :func:`read_nightly` refuses it,
    unless ``history`` (earlier nights beside the one read: then none is fine).
    """
    import warnings

    if isinstance(items, pd.DataFrame | NightlyOutput | str | Path):
        items = [items]
    items = list(items)
    refused = [item for item in items if isinstance(item, str | Path) and _refused(Path(item))]
    if refused and (history or len(refused) < len(items)):
        warnings.warn(f"{len(refused)} night(s) `riskmodel score` refused are left out: "
                      f"{format_examples([str(p) for p in refused])}.", DataWarning, stacklevel=3)
        items = [item for item in items if not any(item is r for r in refused)]
    return [as_nightly(item) for item in items]


def _refused(path: Path) -> bool:
    """Whether ``path`` is the folder of a night ``riskmodel score`` refused."""
    try:
        return json.loads((path / "manifest.json").read_text(encoding="utf-8")).get("status") == "refused"
    except (OSError, ValueError, AttributeError):
        return False


def concat_scores(items: Sequence | Iterable) -> pd.DataFrame:
    """One scores frame from several nights (folders, NightlyOutputs or frames), each night
    counted once.

    A single DataFrame is accepted as is (it may already hold several ``as_of`` days). A
    day given more than once (the same night scored into two folders, or a folder listed
    twice) keeps the rows of the item given last for that day, with a
    :class:`~riskmodel.DataWarning` naming the day; within a frame, a dispute scored twice
    on one day keeps its last row.
    """
    return dedupe_nights(as_nightly_list(items))[0]


def dedupe_nights(outputs: list[NightlyOutput]) -> tuple[pd.DataFrame, list[NightlyOutput]]:
    """The nights' scores as one frame with every (day, dispute) once (see
    :func:`concat_scores`), and the outputs that still contribute rows."""
    import warnings

    if not outputs:
        raise DataError("no score outputs given; pass at least one `riskmodel score` folder.")
    labels = [str(o.path) if o.path is not None else f"frame {i + 1}" for i, o in enumerate(outputs)]
    named = {}
    for label, o in zip(labels, outputs, strict=True):
        if o.id_col is not None:
            named.setdefault(o.id_col, []).append(label)
    if len(named) > 1:  # the rows of one would count as a few disputes of the other (no id column)
        shown = "; ".join(f"{col!r} in {format_examples(where)}" for col, where in named.items())
        raise DataError(f"the nights name their disputes by different id columns ({shown}): they were scored by "
                        "models of different schemas, so their disputes cannot be counted together. Read the nights "
                        "of one model at a time.")
    days = [set(o.scores["as_of"].dt.normalize().unique()) for o in outputs]
    frames, repeated = [], {}
    for i, o in enumerate(outputs):
        later = set().union(*days[i + 1:]) if i + 1 < len(outputs) else set()
        again = days[i] & later
        frame = o.scores
        if again:
            for day in again:
                repeated[pd.Timestamp(day).date()] = [labels[j] for j in range(len(outputs)) if day in days[j]]
            frame = frame[~frame["as_of"].dt.normalize().isin(list(again))]
        frames.append(frame)
    if repeated:
        listed = "; ".join(f"{day} in {', '.join(where)}" for day, where in sorted(repeated.items()))
        warnings.warn(f"the same night was given more than once; each day is counted once, from the output "
                      f"given last: {listed}.", DataWarning, stacklevel=3)
    kept = [o for o, f in zip(outputs, frames, strict=True) if len(f) or not len(o.scores)]
    scores = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    id_col = next((o.id_col for o in outputs if o.id_col is not None), None)
    if id_col is not None and id_col in scores.columns:
        scores = ids_of_one_type(scores, id_col)  # a CSV night's 100004 beside a parquet night's "100004": one id
        key = pd.DataFrame({"id": scores[id_col], "day": scores["as_of"].dt.normalize()})
        twice = key.duplicated(keep="last").to_numpy()
        if twice.any():
            warnings.warn(f"{int(twice.sum())} dispute(s) scored twice on one day; each is counted once (its last "
                          "row).", DataWarning, stacklevel=3)
            scores = scores[~twice].reset_index(drop=True)
    return scores, kept
