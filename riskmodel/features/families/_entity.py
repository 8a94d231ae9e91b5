"""Entity: the dispute's own attributes from the entities table (category, numbers, days
since its dates), as known at ``as_of``."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd

from ..._errors import DataWarning, format_examples
from ...data import NAT_NS
from .._family import FeatureFamily


class Entity(FeatureFamily):
    """The schema's ``entity_categorical_cols`` (categorical, training vocabulary; unseen
    values become missing), ``entity_numeric_cols``, and ``days_since_<c>`` for each of
    ``entity_time_cols`` (missing when the date is at or after ``as_of``). Needs an
    entities table at ``fit``."""

    name = "entity"
    needs_entities = True
    in_cutoff_order = True

    def active(self, builder, schema) -> bool:
        return builder.has_entities_ and bool(schema.entity_feature_columns)

    def why_inactive(self, builder, schema) -> str:
        if not builder.has_entities_:
            return "no entities table"
        return "no entity columns (entity_categorical_cols, entity_numeric_cols, entity_time_cols are empty)"

    def columns(self, builder, schema):
        names = list(schema.entity_categorical_cols) + list(schema.entity_numeric_cols)
        names += [f"days_since_{c}" for c in schema.entity_time_cols]
        return names, list(schema.entity_categorical_cols)

    def compute(self, comp) -> dict:
        schema = comp.schema
        ents = comp.entities
        rows = comp.entity_rows()
        unknown = rows < 0
        if unknown.any() and len(ents):
            ids = comp.cutoffs[schema.entity_col]
            warnings.warn(
                f"{int(unknown.sum())} cutoff(s) have no entities row; their attributes are missing "
                f"(e.g. {format_examples(pd.unique(ids[unknown]))}).",
                DataWarning,
                stacklevel=4,
            )
        # a cutoff's value is its row's; row -1 (no row, or an empty table) reads the missing
        # value appended after the table's
        categorical: dict[str, object] = {}
        for col in schema.entity_categorical_cols:
            row_vocab_codes, row_codes, categories = comp.entity_codes(col)
            # codes of each cutoff's value in the training vocabulary; -1 missing or unseen
            codes, vocab_codes = np.append(row_codes, -1)[rows], np.append(row_vocab_codes, -1)[rows]
            unseen = (codes >= 0) & (vocab_codes < 0)
            if unseen.any():
                names = categories[np.unique(codes[unseen])]
                warnings.warn(
                    f"entities column {col!r}: {int(unseen.sum())} value(s) not seen at fit become "
                    f"missing: {format_examples(names)}.",
                    DataWarning,
                    stacklevel=4,
                )
            categorical[col] = comp.b._vocabulary(col).categorical(vocab_codes)
        for col in schema.entity_numeric_cols:
            comp.put(col, np.append(ents[col].to_numpy(dtype=np.float64), np.nan)[rows].astype(np.float32))
        as_of = comp.as_of_ns
        for col in schema.entity_time_cols:
            t = np.append(ents[col].to_numpy().view(np.int64), NAT_NS)[rows]
            valid = (t != NAT_NS) & (t < as_of)  # a date at or after as_of is not yet known
            comp.put(f"days_since_{col}", comp.days_between(as_of, t, valid))
        return categorical

    def template(self, feature, writer):
        m = re.fullmatch(r"days_since_(\w+)", feature)
        if m:
            cz, ce = writer.column_label(m.group(1))
            return f"{cz}距今{{v}}天", f"{ce}: {{v}} {{day|days}} ago", "days"
        return None

    def context_columns(self, builder, schema) -> list[str]:
        # what kind of dispute and where: fixed facts shown beside the case, not reasons
        return list(schema.entity_categorical_cols)
