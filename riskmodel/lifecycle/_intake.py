"""The training run's data intake: every event row read is used, rejected (with its reason and
its place in the file) or dropped as an exact duplicate, and counted.

An extract with bad rows is refused, listing each problem with its count and the first
offending file lines, unless the run is told to drop them (``drop_invalid``); then the
rejects are kept for the run's record. Nothing is dropped without being counted.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._errors import DataWarning
from ..data import BY_POSITION, EventSchema, raise_rejects, screen_events
from ..features import PreparedEvents, index_screened

__all__ = ["Intake", "take_in"]


@dataclass
class Intake:
    """The valid events of a training run and the account of every row read.

    Attributes
    ----------
    prepared : PreparedEvents
        The valid rows, duplicates removed, indexed for features.
    rejects : DataFrame
        The rejected rows: their place in the input (``line`` of a CSV file, ``row`` of a
        parquet file counted from 1, else ``row``, the frame's index), the values as read
        and ``reject_reason``.
    counts : dict
        ``rows_read``, ``rows_used``, ``rows_rejected``, ``duplicates_dropped``,
        ``disputes_used``, ``disputes_rejected`` (disputes whose every row was rejected)
        and ``rejected_by_reason``. ``rows_read == rows_used + rows_rejected +
        duplicates_dropped``.
    """

    prepared: PreparedEvents
    rejects: pd.DataFrame
    counts: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the console: rows read, used, rejected (by reason), duplicates."""
        c = self.counts
        text = (f"events: {c['rows_read']:,} rows read, {c['rows_used']:,} used, {c['rows_rejected']:,} rejected, "
                f"{c['duplicates_dropped']:,} exact duplicate(s) dropped; {c['disputes_used']:,} disputes")
        if c["disputes_rejected"]:
            text += f" ({c['disputes_rejected']:,} more lost every row)"
        if c["rejected_by_reason"]:
            text += "; rejected: " + ", ".join(f"{n:,} {reason}" for reason, n in c["rejected_by_reason"].items())
        return text


def take_in(events: pd.DataFrame, schema: EventSchema, *, drop_invalid: bool = False, source: str = "events",
            locate=None) -> Intake:
    """Screen a training extract: refuse it if it has bad rows, or drop and record them.

    Parameters
    ----------
    events : DataFrame
    schema : EventSchema
    drop_invalid : bool, default=False
        Train on the valid rows instead of refusing; the rejects are in the result.
    source : str
        How to name the input in messages (e.g. the file name).
    locate : callable, optional
        ``locate(n_rows) -> (numbers, word)``: where each row is in the file (e.g. file
        lines, see :func:`~riskmodel.lifecycle.row_numbers`); called only when rows are
        rejected. Default: the frame's index labels, as ``"row"``.

    Raises
    ------
    DataError
        Rows are invalid and ``drop_invalid`` is false: one phrase per problem (count,
        first offending lines, example values) and the two ways forward.
    """
    if locate is not None:  # the rejects' index then holds positions in the file
        events = events.reset_index(drop=True)
    with warnings.catch_warnings():  # duplicates are counted below instead
        warnings.filterwarnings("ignore", message=r"dropped \d+ exact duplicate", category=DataWarning)
        screened = screen_events(events, schema, sort_ids=False, stray_times=True)  # a dirty time row: a reject
    rejects = screened.rejects
    word = "row"
    if len(rejects):
        if locate is not None:
            numbers, word = locate(len(events))
            where = np.asarray(numbers)[rejects.index.to_numpy()]
        else:  # labels, or positions where the index repeats a label (see split_invalid_events)
            where = rejects.index.to_numpy()
        if not drop_invalid:
            raise_rejects(
                rejects, f"{source}: {len(rejects):,} of {len(events):,} event rows are invalid"
                + (f" ({BY_POSITION})" if screened.by_position else ""), numbers=where,
                word=word,
                fix="Fix those rows, or train on the valid ones with train(config, drop_invalid=True) (or "
                    "config.data.drop_invalid = True): the rejects are then recorded in the MLflow run with their "
                    "reasons",
                cli_fix="Fix those rows, or train on the valid ones with `riskmodel train --drop-invalid` (or "
                        "drop_invalid = true in the config's [data]): the rejects are then written to the MLflow "
                        "run (data/rejects.csv) with their reasons",
            )
        rejects = rejects.reset_index(drop=True)
        rejects.insert(0, word, where)
    else:
        rejects = rejects.reset_index(drop=True)
        rejects.insert(0, word, np.zeros(0, dtype=np.int64))
    prepared = index_screened(screened, schema)
    ids = events[schema.entity_col]
    n_ids = int(ids.nunique(dropna=True))
    by_reason = rejects["reject_reason"].value_counts(sort=True)
    counts = {
        "rows_read": len(events),
        "rows_used": len(prepared),
        "rows_rejected": len(rejects),
        "duplicates_dropped": int(screened.duplicates_dropped),
        "disputes_used": len(prepared.entity_ids),
        "disputes_rejected": n_ids - len(prepared.entity_ids),
        "rejected_by_reason": {str(k): int(v) for k, v in by_reason.items()},
    }
    return Intake(prepared=prepared, rejects=rejects, counts=counts)
