"""Counts: events in each look-back window, in total and per kind (``count_threat_30D``)."""

from __future__ import annotations

import re

from .._family import FeatureFamily, kind_slug_list, validate_windows, window_text


class Counts(FeatureFamily):
    """``count_all_<w>`` and ``count_<kind>_<w>`` for every window ``w`` of ``windows``
    and ``"all"``: events with ``as_of - w <= time < as_of``."""

    name = "counts"
    uses_kinds = True

    def validate(self, builder) -> None:
        validate_windows(builder.windows)

    def columns(self, builder, schema):
        names = []
        slugs = kind_slug_list(builder)
        for w in builder._window_labels():
            names.append(f"count_all_{w}")
            names += [f"count_{s}_{w}" for s in slugs]
        return names, []

    def compute(self, comp) -> None:
        comp.add_counts_and_recency()  # one pass shared with the recency family

    def template(self, feature, writer):
        v = "{v}"
        m = re.fullmatch(r"count_all_(\w+)", feature)
        if m:
            wz, we = window_text(m.group(1))
            return f"{wz}共{v}起事件", f"{v} {{event|events}} {we}", "num"
        m = re.fullmatch(rf"count_({writer.slug_pattern})_(\w+)", feature)
        if m:
            (kz, ke), (wz, we) = writer.kind_label(m.group(1)), window_text(m.group(2))
            return f"{wz}{kz}{v}次", f"{ke}: {v} {{time|times}} {we}", "num"
        return None
