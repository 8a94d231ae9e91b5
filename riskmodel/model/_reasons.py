"""Readable reasons: feature values as phrases in Chinese and English.

A reason is one of a case's top risk-raising SHAP contributions (LightGBM's
``pred_contrib``), rendered from the feature's name and value, e.g.
``近30天扬言报复2次 / threat of revenge: 2 in the last 30 days``. Each feature family
phrases its own columns (:meth:`FeatureFamily.template`); the labels are plain data, saved
with the model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..features import feature_families

__all__ = ["ReasonWriter", "top_reasons"]

class ReasonWriter:
    """Render feature names and values as bilingual phrases.

    Parameters
    ----------
    kind_labels : mapping of kind -> (zh, en), optional
        Readable names for event kinds; unknown kinds are shown as they are.
    kind_slugs : mapping of kind -> column fragment
        From the fitted :class:`FeatureBuilder` (``kind_slugs_``).
    column_labels : mapping of column -> (zh, en), optional
        Readable names for entity columns (``category`` -> 纠纷类型 / category).
    value_labels : mapping of column -> mapping of value -> (zh, en), optional
        Readable categorical values (``building`` -> 建房/宅基地 / building).
    """

    def __init__(
        self,
        *,
        kind_slugs: Mapping[str, str],
        kind_labels: Mapping[str, Sequence[str]] | None = None,
        column_labels: Mapping[str, Sequence[str]] | None = None,
        value_labels: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    ):
        self.kind_labels = {k: tuple(v) for k, v in (kind_labels or {}).items()}
        self.slug_to_kind = {slug: kind for kind, slug in kind_slugs.items()}
        self.column_labels = {k: tuple(v) for k, v in (column_labels or {}).items()}
        self.value_labels = {c: {k: tuple(v) for k, v in m.items()} for c, m in (value_labels or {}).items()}

    def to_dict(self) -> dict:
        return {
            "kind_slugs": {k: s for s, k in self.slug_to_kind.items()},
            "kind_labels": {k: list(v) for k, v in self.kind_labels.items()},
            "column_labels": {k: list(v) for k, v in self.column_labels.items()},
            "value_labels": {c: {k: list(v) for k, v in m.items()} for c, m in self.value_labels.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> ReasonWriter:
        return cls(**data)

    def kind_label(self, slug: str) -> tuple[str, str]:
        """(zh, en) name of the kind whose column fragment is ``slug``."""
        kind = self.slug_to_kind.get(slug, slug)
        return self.kind_labels.get(kind, (kind, kind.replace("_", " ")))

    def column_label(self, col: str) -> tuple[str, str]:
        """(zh, en) name of an entities column."""
        return self.column_labels.get(col, (col, col.replace("_", " ")))

    @property
    def slug_pattern(self) -> str:
        """A regular expression matching any kind's column fragment (longest first)."""
        return "|".join(sorted((re.escape(s) for s in self.slug_to_kind), key=len, reverse=True)) or "$^"

    def template(self, feature: str) -> tuple[str, str, str]:
        """(zh, en, format) for a feature; templates hold ``{v}``, format is num, pct or str."""
        cache = self.__dict__.setdefault("_templates", {})
        if feature not in cache:
            cache[feature] = self._template(feature)
        return cache[feature]

    def _template(self, feature: str) -> tuple[str, str, str]:
        # each family phrases its own columns; anything else is shown as "column: value"
        for family in feature_families():
            found = family.template(feature, self)
            if found is not None:
                return found
        cz, ce = self.column_label(feature)
        return f"{cz}: {{v}}", f"{ce}: {{v}}", "str"

    def render(self, feature: str, values: np.ndarray) -> np.ndarray:
        """Vectorised: one ``"zh / en"`` phrase per value of ``feature``."""
        zh, en, fmt = self.template(feature)
        values = np.asarray(values)
        # numpy string operations, not pandas Series: a few cases (one dispute) cost microseconds
        if fmt == "str":
            labels = self.value_labels.get(feature, {})
            as_str = values.astype(object).astype(str).astype(object)
            known = list(labels)
            at = pd.Index(known, dtype=object).get_indexer(as_str) if known else np.full(len(as_str), -1)
            zh_of = np.array([labels[k][0] for k in known] + [""], dtype=object)
            en_of = np.array([labels[k][1] for k in known] + [""], dtype=object)
            vz = np.where(at >= 0, zh_of[at], as_str)
            ve = np.where(at >= 0, en_of[at], as_str)
        else:
            num = values.astype(float) if values.dtype.kind in "fiub" else \
                pd.to_numeric(values.astype(object), errors="coerce").astype(float)
            if fmt == "pct":
                text = np.char.add(np.char.mod("%g", np.round(num * 100, 1)), "%").astype(object)
            else:
                text = np.char.mod("%g", np.round(num, 1)).astype(object)
            vz = ve = text
        zh_a, zh_b = zh.split("{v}")
        en_a, en_b = en.split("{v}")
        return zh_a + vz + zh_b + " / " + en_a + ve + en_b

    def phrase(self, feature: str, value) -> tuple[str, str]:
        """(zh, en) phrase for one feature value."""
        zh_en = self.render(feature, np.array([value], dtype=object))[0]
        zh, en = zh_en.split(" / ", 1)
        return zh, en


def top_reasons(
    contributions: np.ndarray,
    features,
    writer: ReasonWriter,
    *,
    top_k: int = 3,
    rows: np.ndarray | None = None,
    names: Sequence[str] | None = None,
) -> tuple[list[str], list[str]]:
    """Top ``top_k`` risk-raising contributions per row, as phrases and feature names.

    ``contributions`` has one column per feature (the bias column removed). Only
    positive contributions are reasons: a feature that lowers the risk is not one.
    ``rows`` restricts the work to those rows (others get empty strings). ``names``: the
    columns of ``features``, if the caller has them as a list already.
    """
    n, n_features = contributions.shape
    names = list(features.columns) if names is None else names
    phrases = np.full(n, "", dtype=object)
    used = np.full(n, "", dtype=object)
    rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    if len(rows) == 0 or n_features == 0:
        return phrases.tolist(), used.tolist()
    k = min(top_k, n_features)
    sub = contributions[rows]
    top = np.argsort(-sub, axis=1, kind="stable")[:, :k]
    for rank in range(k):  # loop over the k ranks and the features, vectorised over cases
        j = top[:, rank]
        positive = sub[np.arange(len(rows)), j] > 0
        for feature_index in np.unique(j[positive]):
            sel = positive & (j == feature_index)
            target = rows[sel]
            name = names[feature_index]
            values = np.asarray(features[name])[target]
            known = pd.notna(values)
            target, values = target[known], values[known]
            if len(target) == 0:
                continue
            text = writer.render(name, values)
            sep = np.where(phrases[target] == "", "", "; ")
            phrases[target] = phrases[target] + sep + text
            used[target] = used[target] + np.where(used[target] == "", "", ",") + name
    return phrases.tolist(), used.tolist()
