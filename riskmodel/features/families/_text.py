"""Text: narrative keyword groups in look-back windows, and the share of events without a narrative."""

from __future__ import annotations

import re

import numpy as np

from .._family import FeatureFamily, quoted_label, slug, validate_windows, window_text

#: Readable names of the default keyword groups (other groups show their own name).
GROUP_LABELS = {
    "threat": ("威胁/报复言辞", "threat or revenge words"),
    "weapon": ("凶器字眼", "weapon words"),
    "desperate": ("极端言辞", "desperate words"),
    "self_harm": ("自伤言辞", "self-harm words"),
}


class Text(FeatureFamily):
    """``kw_<group>_<w>``: events whose narrative holds any keyword of a group of
    ``keywords``, for each of ``keyword_windows`` and ``"all"``; ``text_missing_share``.
    Needs the schema's ``text_col``."""

    name = "text"
    role = "text_col"

    def validate(self, builder) -> None:
        validate_windows(builder.keyword_windows)

    def columns(self, builder, schema):
        names = []
        for group in builder._lexicon():
            names += [f"kw_{slug(group) or 'group'}_{w}" for w in list(builder.keyword_windows) + ["all"]]
        names.append("text_missing_share")
        return names, []

    def compute(self, comp) -> None:
        text_col = comp.schema.text_col
        windows = list(comp.b.keyword_windows) + ["all"]
        for group, words in comp.b._lexicon().items():
            pattern = "|".join(re.escape(w) for w in words)
            hits = comp.ev.text_matches(text_col, pattern)
            for w, values in comp.windowed_counts(hits, windows).items():
                comp.put(f"kw_{slug(group) or 'group'}_{w}", values)
        n_missing = comp.windowed_counts(comp.ev.text_missing(text_col), ["all"])["all"]
        n_all = comp.windowed_counts(None, ["all"])["all"]
        with np.errstate(invalid="ignore", divide="ignore"):
            comp.put("text_missing_share", np.where(n_all > 0, n_missing / n_all, np.nan).astype(np.float32))

    def template(self, feature, writer):
        v = "{v}"
        m = re.fullmatch(r"kw_(\w+?)_(\d+D|all)", feature)
        if m:
            gz, ge = GROUP_LABELS.get(m.group(1)) or quoted_label(m.group(1))
            wz, we = window_text(m.group(2))
            return f"{wz}警情记录出现{gz}{v}次", f"narratives mention {ge} {v} {{time|times}} {we}", "num"
        if feature == "text_missing_share":
            return f"警情记录缺失{v}", f"{v} of narratives missing", "pct"
        return None

    def context_columns(self, builder, schema) -> list[str]:
        # how well the dispute is recorded, not what happened in it
        return ["text_missing_share"]
