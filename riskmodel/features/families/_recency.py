"""Recency: days since the dispute's first and last event, and since the last event of each kind."""

from __future__ import annotations

import re

from .._family import FeatureFamily, kind_slug_list


class Recency(FeatureFamily):
    """``days_since_last_event``, ``days_since_first_event``, ``days_since_last_<kind>``
    (missing where there is no such event before ``as_of``)."""

    name = "recency"
    uses_kinds = True

    def columns(self, builder, schema):
        names = ["days_since_last_event", "days_since_first_event"]
        names += [f"days_since_last_{s}" for s in kind_slug_list(builder)]
        return names, []

    def compute(self, comp) -> None:
        comp.add_counts_and_recency()  # one pass shared with the counts family

    def template(self, feature, writer):
        v = "{v}"
        if feature == "days_since_last_event":
            return f"距上次事件{v}天", f"{v} {{day|days}} since the last event", "days"
        if feature == "days_since_first_event":
            return f"纠纷已持续{v}天", f"dispute active for {v} {{day|days}}", "days"
        m = re.fullmatch(rf"days_since_last_({writer.slug_pattern})", feature)
        if m:
            kz, ke = writer.kind_label(m.group(1))
            return f"距上次{kz}{v}天", f"{v} {{day|days}} since the last {ke}", "days"
        return None
