"""Readable reasons: feature values as phrases in Chinese and English.

A reason is one of a case's top risk-raising SHAP contributions (LightGBM's
``pred_contrib``), rendered from the feature's name and value, e.g.
``近30天扬言报复2次 / threat of revenge: 2 times in the last 30 days``. Each feature family
phrases its own columns (:meth:`FeatureFamily.template`); the labels are plain data, saved
with the model.

Only what a station can act on is a reason: a feature the model is told is context (by
default the dispute's category and area and the area's escalation figures, see
:meth:`FeatureFamily.context_columns`) is shown beside the case instead, and a missing
value, or a zero count or share (``0% of narratives missing``), is never a reason. Kinds,
columns and keyword groups without configured labels read as their words, quoted in
Chinese (``mediation_failed`` -> 「mediation failed」事件 / mediation failed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..features import OTHER_KIND, feature_families, quoted_label

__all__ = ["ReasonWriter", "top_reasons"]

#: ``{one|many}`` in an English template: the singular when the value shows as 1.
_PLURAL = re.compile(r"\{([^{}|]*)\|([^{}|]*)\}")
#: Formats whose zero means "nothing happened" (no reason); ``days`` and ``str`` have none.
_ZERO_IS_NOTHING = ("num", "pct", "signed")
_FORMATS = ("num", "days", "pct", "signed", "str")
#: How a missing value reads when a phrase is asked for one (never in reasons).
_MISSING = ("—", "—")
_MISSING_NOTE = ("（无记录）", " (none recorded)")
_OTHER_LABEL = ("其他类型事件", "events of other kinds")


def _shown(num: np.ndarray, fmt: str) -> np.ndarray:
    """The numbers as they will be printed (rounded), so "0" is judged as the reader sees it."""
    with np.errstate(invalid="ignore"):
        if fmt == "pct":
            shown = np.round(num * 100, 1)
        elif fmt == "signed":
            shown = np.round(num, 2)
        else:
            shown = np.round(num, 1)
    return shown + 0.0  # -0.0 -> 0.0


def _as_float(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "fiub":
        return values.astype(float)
    return pd.to_numeric(pd.Series(values.astype(object)), errors="coerce").to_numpy(dtype=float)


class ReasonWriter:
    """Render feature names and values as bilingual phrases, and say which are reasons.

    Parameters
    ----------
    kind_slugs : mapping of kind -> column fragment
        From the fitted :class:`FeatureBuilder` (``kind_slugs_``).
    kind_labels : mapping of kind -> (zh, en), optional
        Readable names for event kinds; a kind without one reads as its words
        (``mediation_failed`` -> 「mediation failed」事件 / mediation failed).
    column_labels : mapping of column -> (zh, en), optional
        Readable names for entity columns (``category`` -> 纠纷类型 / category).
    value_labels : mapping of column -> mapping of value -> (zh, en), optional
        Readable categorical values (``building`` -> 建房/宅基地 / building).
    context_features : sequence of str, default=()
        Features shown beside a case as context, never given as its reasons.

    Examples
    --------
    >>> w = ReasonWriter(kind_slugs={"mediation_failed": "mediation_failed", "other": "other"})
    >>> w.phrase("count_mediation_failed_30D", 1)
    ('近30天「mediation failed」事件1次', 'mediation failed: 1 time in the last 30 days')
    >>> w.phrase("days_since_last_mediation_failed", 2.04)
    ('距上次「mediation failed」事件2天', '2 days since the last mediation failed')
    >>> w.is_reason("count_mediation_failed_30D", [0, 2, np.nan]).tolist()
    [False, True, False]
    """

    def __init__(
        self,
        *,
        kind_slugs: Mapping[str, str],
        kind_labels: Mapping[str, Sequence[str]] | None = None,
        column_labels: Mapping[str, Sequence[str]] | None = None,
        value_labels: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
        context_features: Sequence[str] = (),
    ):
        self.kind_labels = {k: tuple(v) for k, v in (kind_labels or {}).items()}
        self.slug_to_kind = {slug: kind for kind, slug in kind_slugs.items()}
        self.column_labels = {k: tuple(v) for k, v in (column_labels or {}).items()}
        self.value_labels = {c: {k: tuple(v) for k, v in m.items()} for c, m in (value_labels or {}).items()}
        self.context_features = tuple(context_features or ())
        self._context = frozenset(self.context_features)

    def to_dict(self) -> dict:
        return {
            "kind_slugs": {k: s for s, k in self.slug_to_kind.items()},
            "kind_labels": {k: list(v) for k, v in self.kind_labels.items()},
            "column_labels": {k: list(v) for k, v in self.column_labels.items()},
            "value_labels": {c: {k: list(v) for k, v in m.items()} for c, m in self.value_labels.items()},
            "context_features": list(self.context_features),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ReasonWriter:
        return cls(**data)

    @classmethod
    def for_names(cls, names: Sequence[str]) -> ReasonWriter:
        """A writer for feature names alone, when the model is not at hand (e.g. a drift
        table): the kinds' column fragments are read off the per-kind count and recency columns."""
        found = [re.fullmatch(r"count_(\w+?)_(?:\d+[A-Za-z]+|all)|days_since_last_(\w+)", str(n)) for n in names]
        slugs = {m.group(1) or m.group(2) for m in found if m} - {"all", "event"}
        return cls(kind_slugs={s: s for s in sorted(slugs)} | {OTHER_KIND: OTHER_KIND})

    def name(self, feature: str) -> tuple[str, str]:
        """(zh, en) of what ``feature`` measures, its value as N: "threat: N times in the last 30 days"."""
        zh, en, fmt = self.template(feature)
        if fmt == "str":
            return self.column_label(feature)
        n = {"pct": "N%", "signed": "±N"}.get(fmt, "N")
        return zh.replace("{v}", n), _PLURAL.sub(r"\2", en).replace("{v}", n)

    def kind_label(self, slug: str) -> tuple[str, str]:
        """(zh, en) name of the kind whose column fragment is ``slug``."""
        kind = self.slug_to_kind.get(slug, slug)
        if kind in self.kind_labels:
            return self.kind_labels[kind]
        if kind == OTHER_KIND:
            return _OTHER_LABEL
        zh, en = quoted_label(kind)
        return f"{zh}事件", en

    def column_label(self, col: str) -> tuple[str, str]:
        """(zh, en) name of an entities column."""
        return self.column_labels.get(col) or quoted_label(col)

    def is_context(self, feature: str) -> bool:
        """Whether ``feature`` is context: shown beside a case, never one of its reasons."""
        return feature in self._context

    @property
    def slug_pattern(self) -> str:
        """A regular expression matching any kind's column fragment (longest first)."""
        return "|".join(sorted((re.escape(s) for s in self.slug_to_kind), key=len, reverse=True)) or "$^"

    def template(self, feature: str) -> tuple[str, str, str]:
        """(zh, en, format) for a feature; see :meth:`FeatureFamily.template`."""
        cache = self.__dict__.setdefault("_templates", {})
        if feature not in cache:
            cache[feature] = self._template(feature)
        return cache[feature]

    def _template(self, feature: str) -> tuple[str, str, str]:
        # each family phrases its own columns; anything else is shown as "column: value"
        for family in feature_families():
            found = family.template(feature, self)
            if found is not None:
                zh, en, fmt = found
                if fmt not in _FORMATS:
                    raise ValueError(f"feature family {family.name!r}: template format {fmt!r} of "
                                     f"{feature!r} must be one of {_FORMATS}.")
                return found
        cz, ce = self.column_label(feature)
        return f"{cz}：{{v}}", f"{ce}: {{v}}", "str"

    def _format(self, feature: str, values: np.ndarray) -> str:
        # a column no family phrases ("column: value") holding numbers reads as a number
        fmt = self.template(feature)[2]
        return "num" if fmt == "str" and values.dtype.kind in "fiu" else fmt

    def is_reason(self, feature: str, values) -> np.ndarray:
        """Vectorised: which values of ``feature`` may be given as a reason.

        Not a context feature, not missing, and not a zero count, share or change (as
        printed: 0.04% shows as 0%).
        """
        values = np.asarray(values)
        if feature in self._context:
            return np.zeros(len(values), dtype=bool)
        fmt = self._format(feature, values)
        if fmt == "str":
            return pd.notna(values) & (values.astype(object).astype(str) != "")
        num = _as_float(values)
        ok = np.isfinite(num)
        if fmt in _ZERO_IS_NOTHING:
            ok &= _shown(num, fmt) != 0
        return ok

    def render_parts(self, feature: str, values) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised: the Chinese and the English phrase of each value of ``feature``.

        A missing value reads as "—" followed by "(none recorded)".
        """
        zh, en, _ = self.template(feature)
        values = np.asarray(values)
        fmt = self._format(feature, values)
        # numpy string operations, not pandas Series: a few cases (one dispute) cost microseconds
        missing = ~np.asarray(pd.notna(values), dtype=bool)
        one = np.zeros(len(values), dtype=bool)
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
            shown = _shown(_as_float(values), fmt)
            one = shown == 1
            spec = "%+g" if fmt == "signed" else "%g"
            text = np.char.mod(spec, np.where(np.isfinite(shown), shown, 0.0)).astype(object)
            if fmt == "pct":
                text = text + "%"
            vz = ve = text
        vz = np.where(missing, _MISSING[0], vz)
        ve = np.where(missing, _MISSING[1], ve)
        zh_a, zh_b = zh.split("{v}")
        out_zh = zh_a + vz + zh_b
        en_one, en_many = _PLURAL.sub(r"\1", en), _PLURAL.sub(r"\2", en)
        (one_a, one_b), (many_a, many_b) = en_one.split("{v}"), en_many.split("{v}")
        out_en = np.where(one, one_a + ve + one_b, many_a + ve + many_b)
        if missing.any():
            out_zh = np.where(missing, out_zh + _MISSING_NOTE[0], out_zh)
            out_en = np.where(missing, out_en + _MISSING_NOTE[1], out_en)
        return out_zh.astype(object), out_en.astype(object)

    def render(self, feature: str, values) -> np.ndarray:
        """Vectorised: one ``"zh / en"`` phrase per value of ``feature``."""
        zh, en = self.render_parts(feature, values)
        return zh + " / " + en

    def phrase(self, feature: str, value) -> tuple[str, str]:
        """(zh, en) phrase for one feature value."""
        number = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
        zh, en = self.render_parts(feature, np.array([value], dtype=float if number else object))
        return str(zh[0]), str(en[0])


def top_reasons(
    contributions: np.ndarray,
    features,
    writer: ReasonWriter,
    *,
    top_k: int = 3,
    rows: np.ndarray | None = None,
    names: Sequence[str] | None = None,
) -> tuple[list[str], list[str]]:
    """Top ``top_k`` risk-raising reasons per row, as phrases and feature names.

    ``contributions`` has one column per feature (the bias column removed). A reason is
    a positive contribution (a feature that lowers the risk is not one) of a feature
    that is not context, whose value is a reason (:meth:`ReasonWriter.is_reason`: not
    missing, not a zero count); the largest ``top_k`` of those, in order. ``rows``
    restricts the work to those rows (others get empty strings). ``names``: the columns of
    ``features``, if the caller has them as a list already.
    """
    n, n_features = contributions.shape
    names = list(features.columns) if names is None else names
    phrases = np.full(n, "", dtype=object)
    used = np.full(n, "", dtype=object)
    rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    if len(rows) == 0 or n_features == 0 or top_k < 1:
        return phrases.tolist(), used.tolist()
    sub = np.array(contributions[rows], dtype=float)
    context = np.array([writer.is_context(name) for name in names], dtype=bool)
    sub[:, context] = -np.inf
    order = np.argsort(-sub, axis=1, kind="stable")
    found = np.zeros(len(rows), dtype=np.int64)
    active = np.arange(len(rows))
    values_of: dict[int, np.ndarray] = {}
    # walk down each row's ranking until it has top_k reasons or its contributions stop
    # raising the risk: a loop over ranks (a few) and features, vectorised over cases
    for rank in range(n_features):
        j = order[active, rank]
        raising = sub[active, j] > 0
        active, j = active[raising], j[raising]
        if len(active) == 0:
            break
        for feature_index in np.unique(j):
            sel = active[j == feature_index]
            name = names[feature_index]
            if feature_index not in values_of:
                values_of[feature_index] = np.asarray(features[name])
            values = values_of[feature_index][rows[sel]]
            ok = writer.is_reason(name, values)
            sel, values = sel[ok], values[ok]
            if len(sel) == 0:
                continue
            target = rows[sel]
            text = writer.render(name, values)
            sep = np.where(phrases[target] == "", "", "; ")
            phrases[target] = phrases[target] + sep + text
            used[target] = used[target] + np.where(used[target] == "", "", ",") + name
            found[sel] += 1
        active = active[found[active] < top_k]
        if len(active) == 0:
            break
    return phrases.tolist(), used.tolist()
