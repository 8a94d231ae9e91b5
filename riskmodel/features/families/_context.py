"""Context: escalations among the disputes of the dispute's group (e.g. its station) in a
look-back window (cross-dispute)."""

from __future__ import annotations

import re
import warnings

import numpy as np

from ..._errors import DataWarning
from ...data import NAT_NS, Clock, Timeline, lookup_positions, run_starts, window_ns
from .._family import GROUP_PREFIX, ContextNeed, FeatureFamily, window_days, window_text


class Context(FeatureFamily):
    """For each of the schema's ``group_cols`` ``g``: ``ctx_<g>_escalations_<w>``, the
    escalations in the dispute's group within ``context_window`` before ``as_of``, and
    ``ctx_<g>_escalation_rate_<w>``, those per dispute started in the group in that window.
    Needs an entities table at ``fit``."""

    name = "context"
    needs_entities = True

    def validate(self, builder) -> None:
        window_days(builder.context_window)

    def active(self, builder, schema) -> bool:
        return builder.has_entities_ and bool(schema.group_cols)

    def why_inactive(self, builder, schema) -> str:
        return "no entities table" if not builder.has_entities_ else "no group columns (group_cols is empty)"

    def columns(self, builder, schema):
        w = builder.context_window
        names = []
        for g in schema.group_cols:
            names += [f"ctx_{g}_escalations_{w}", f"ctx_{g}_escalation_rate_{w}"]
        return names, []

    def context_need(self, builder) -> ContextNeed:
        return ContextNeed(window=builder.context_window)

    def compute(self, comp) -> None:
        cx = comp.cx
        ents = comp.entities
        id_col = comp.schema.entities_id
        window = window_ns(comp.b.context_window)
        w = comp.b.context_window
        first_time = cx.first_times()
        starts = run_starts(cx.entity_codes)
        esc_time = comp.escalation_times()
        q_rows = comp.entity_rows()[comp.order]  # each sorted cutoff's entities row
        for g in comp.schema.group_cols:
            vocab = comp.b._vocabulary(g)
            g_of_entity = comp.entity_codes(g)[0]
            if GROUP_PREFIX + g in cx._raw:  # each context dispute's group rides along
                g_codes, g_values = cx.codes(GROUP_PREFIX + g)
                g_of_row = np.append(vocab.codes(g_values.to_numpy(dtype=object)), -1)[g_codes]  # -1: missing
                e_codes, e_groups = cx.entity_codes[starts], g_of_row[starts]
            else:
                e_codes = lookup_positions(cx.entity_ids, ents[id_col])
                e_groups = np.where(e_codes >= 0, g_of_entity, -1)
                if cx is not comp.ev and g == comp.schema.group_cols[0]:
                    _warn_groupless(cx, e_codes, esc_time, g)
            known = (e_codes >= 0) & (e_groups >= 0)
            e_codes, e_groups = e_codes[known], e_groups[known]
            clock = Clock.for_range(len(vocab) + 2, comp.t_min, comp.t_max)
            started = first_time[e_codes] != NAT_NS
            starts_by_group = Timeline.of(clock, e_groups[started], first_time[e_codes][started])
            escalated = esc_time[e_codes] != NAT_NS
            escalations = Timeline.of(clock, e_groups[escalated], esc_time[e_codes][escalated])
            q_group = np.append(g_of_entity, -1)[q_rows]  # row -1 (no entities row): no group
            valid = q_group >= 0
            qg = np.where(valid, q_group, 0)
            upper, lower = comp.q_as_of, comp.q_as_of - window
            n_esc = (escalations.position(qg, upper) - escalations.position(qg, lower)).astype(np.float32)
            n_new = (starts_by_group.position(qg, upper) - starts_by_group.position(qg, lower)).astype(np.float32)
            n_esc[~valid] = np.nan
            with np.errstate(invalid="ignore", divide="ignore"):
                rate = np.where(valid, n_esc / np.maximum(n_new, 1), np.nan).astype(np.float32)
            comp.put(f"ctx_{g}_escalations_{w}", n_esc)
            comp.put(f"ctx_{g}_escalation_rate_{w}", rate)

    def template(self, feature, writer):
        v = "{v}"
        m = re.fullmatch(r"ctx_(\w+)_escalations_(\w+)", feature)
        if m:
            (gz, ge), (wz, we) = writer.column_label(m.group(1)), window_text(m.group(2))
            return f"所在{gz}{wz}民转刑{v}起", f"{v} {{escalation|escalations}} in this {ge} {we}", "num"
        m = re.fullmatch(r"ctx_(\w+)_escalation_rate_(\w+)", feature)
        if m:
            gz, ge = writer.column_label(m.group(1))
            return f"所在{gz}民转刑率{v}", f"escalation rate {v} in this {ge}", "pct"
        return None

    def context_columns(self, builder, schema) -> list[str]:
        # the dispute's area, not the dispute: a station cannot act on its own base rate
        return self.columns(builder, schema)[0]


def _warn_groupless(cx, e_codes: np.ndarray, esc_time: np.ndarray, group: str) -> None:
    """A :class:`DataWarning` when escalated disputes of ``context_events`` have no row in the
    entities table: their group is unknown, so the group features leave them out (a table
    holding only the scored disputes' rows reads as quiet stations)."""
    n = len(cx.entity_ids)
    has_row = np.zeros(n, dtype=bool)
    has_row[e_codes[e_codes >= 0]] = True
    lost = (esc_time[:n] != NAT_NS) & ~has_row
    if lost.any():
        warnings.warn(f"{int(lost.sum()):,} of the {int((esc_time[:n] != NAT_NS).sum()):,} escalated disputes in "
                      f"context_events have no row in entities=, so their {group!r} is unknown and the {group} "
                      f"escalation features leave them out: pass the whole entities table (or the column "
                      f"'{GROUP_PREFIX}{group}' in context_events).", DataWarning, stacklevel=6)
