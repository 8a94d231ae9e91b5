"""Readable reasons: feature values as phrases in Chinese and English.

A reason is one of a case's top risk-raising SHAP contributions (LightGBM's
``pred_contrib``), rendered from the feature's name and value, e.g.
``近30天扬言报复2次 / threat of revenge: 2 in the last 30 days``. Phrases are plain data
(templates and labels), saved with the model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["ReasonWriter", "top_reasons"]

_GROUP_LABELS = {
    "threat": ("威胁/报复言辞", "threat or revenge words"),
    "weapon": ("凶器字眼", "weapon words"),
    "desperate": ("极端言辞", "desperate words"),
    "self_harm": ("自伤言辞", "self-harm words"),
}


def _window_text(window: str) -> tuple[str, str]:
    if window == "all":
        return "累计", "in total"
    days = pd.Timedelta(window) / pd.Timedelta(days=1)
    n = f"{days:g}"
    return f"近{n}天", f"in the last {n} days"


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "未知"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


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

    def _kind(self, slug: str) -> tuple[str, str]:
        kind = self.slug_to_kind.get(slug, slug)
        return self.kind_labels.get(kind, (kind, kind.replace("_", " ")))

    def _column(self, col: str) -> tuple[str, str]:
        return self.column_labels.get(col, (col, col.replace("_", " ")))

    def template(self, feature: str) -> tuple[str, str, str]:
        """(zh, en, format) for a feature; templates hold ``{v}``, format is num, pct or str."""
        cache = self.__dict__.setdefault("_templates", {})
        if feature not in cache:
            cache[feature] = self._template(feature)
        return cache[feature]

    def _template(self, feature: str) -> tuple[str, str, str]:
        slugs = "|".join(sorted((re.escape(s) for s in self.slug_to_kind), key=len, reverse=True)) or "$^"
        v = "{v}"
        m = re.fullmatch(r"count_all_(\w+)", feature)
        if m:
            wz, we = _window_text(m.group(1))
            return f"{wz}共{v}起事件", f"{v} events {we}", "num"
        m = re.fullmatch(rf"count_({slugs})_(\w+)", feature)
        if m:
            (kz, ke), (wz, we) = self._kind(m.group(1)), _window_text(m.group(2))
            return f"{wz}{kz}{v}次", f"{ke}: {v} {we}", "num"
        if feature == "days_since_last_event":
            return f"距上次事件{v}天", f"{v} days since the last event", "num"
        if feature == "days_since_first_event":
            return f"纠纷已持续{v}天", f"dispute active for {v} days", "num"
        m = re.fullmatch(rf"days_since_last_({slugs})", feature)
        if m:
            kz, ke = self._kind(m.group(1))
            return f"距上次{kz}{v}天", f"{v} days since the last {ke}", "num"
        m = re.fullmatch(r"trend_(\w+)_vs_(\w+)", feature)
        if m:
            return f"事件频率变化{v}起/天", f"event rate change {v}/day ({m.group(1)} vs {m.group(2)})", "num"
        if feature == "night_share":
            return f"夜间事件占比{v}", f"{v} of events at night", "pct"
        if feature == "mean_gap_days":
            return f"事件平均间隔{v}天", f"{v} days between events on average", "num"
        if feature == "last_gap_days":
            return f"最近两次事件间隔{v}天", f"{v} days between the last two events", "num"
        m = re.fullmatch(rf"streak_({slugs})_since_({slugs})", feature)
        if m:
            (kz, ke), (rz, r_en) = self._kind(m.group(1)), self._kind(m.group(2))
            return f"自上次{rz}以来{kz}{v}次", f"{ke}: {v} since the last {r_en}", "num"
        m = re.fullmatch(r"kw_(\w+?)_(\d+D|all)", feature)
        if m:
            gz, ge = _GROUP_LABELS.get(m.group(1), (m.group(1), m.group(1).replace("_", " ")))
            wz, we = _window_text(m.group(2))
            return f"{wz}警情记录出现{gz}{v}次", f"narratives mention {ge} {v} times {we}", "num"
        if feature == "text_missing_share":
            return f"警情记录缺失{v}", f"{v} of narratives missing", "pct"
        if feature == "party_count":
            return f"涉及当事人{v}人", f"{v} parties involved", "num"
        if feature in ("party_other_disputes", "party_max_other_disputes"):
            return f"当事人另涉{v}起纠纷", f"parties involved in {v} other disputes", "num"
        if feature == "party_past_escalations":
            return f"当事人既往民转刑{v}起", f"parties had {v} past escalations", "num"
        m = re.fullmatch(r"ctx_(\w+)_escalations_(\w+)", feature)
        if m:
            (gz, ge), (wz, we) = self._column(m.group(1)), _window_text(m.group(2))
            return f"所在{gz}{wz}民转刑{v}起", f"{v} escalations in this {ge} {we}", "num"
        m = re.fullmatch(r"ctx_(\w+)_escalation_rate_(\w+)", feature)
        if m:
            gz, ge = self._column(m.group(1))
            return f"所在{gz}民转刑率{v}", f"escalation rate {v} in this {ge}", "pct"
        m = re.fullmatch(r"days_since_(\w+)", feature)
        if m:
            cz, ce = self._column(m.group(1))
            return f"{cz}距今{v}天", f"{ce}: {v} days ago", "num"
        cz, ce = self._column(feature)
        return f"{cz}: {v}", f"{ce}: {v}", "str"

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
