"""Party: the dispute's parties and their histories in other disputes (cross-dispute)."""

from __future__ import annotations

import numpy as np

from ...data import NAT_NS, Clock, Timeline, expand_ranges, run_starts
from .._family import ContextNeed, FeatureFamily


class Party(FeatureFamily):
    """``party_count`` (parties seen before ``as_of``), ``party_other_disputes`` and
    ``party_max_other_disputes`` (their other disputes started before ``as_of``: sum and
    maximum over the parties), ``party_past_escalations`` (those disputes' escalations
    known before ``as_of``). Needs the schema's ``party_col``."""

    name = "party"
    role = "party_col"

    def columns(self, builder, schema):
        return ["party_count", "party_other_disputes", "party_max_other_disputes", "party_past_escalations"], []

    def context_need(self, builder) -> ContextNeed:
        return ContextNeed(parties=True)

    def compute(self, comp) -> None:
        cx = comp.cx
        all_party_codes, parties = cx.codes(comp.schema.party_col)
        n_parties = len(parties)
        # only the parties of the cutoffs' disputes are ever counted: keep just their rows
        queried = np.zeros(len(cx.entity_ids) + 1, dtype=bool)
        queried[comp.cx_q_codes] = True
        wanted = np.zeros(n_parties + 1, dtype=bool)  # the last slot: no party (code -1)
        wanted[all_party_codes[queried[cx.entity_codes]]] = True
        wanted[-1] = False
        present = wanted[all_party_codes]
        party_codes = all_party_codes[present]
        e_codes = cx.entity_codes[present]
        times = cx.times_ns[present]
        # first appearance of each (party, dispute): events are time-sorted within dispute
        pair = e_codes * max(n_parties, 1) + party_codes
        order = np.argsort(pair, kind="stable")
        f_rows = order[run_starts(pair[order])]
        f_party, f_entity, f_time = party_codes[f_rows], e_codes[f_rows], times[f_rows]  # sorted by entity
        clock = Clock.for_range(max(n_parties, len(cx.entity_ids)) + 2, comp.t_min, comp.t_max)

        # party's disputes, sorted by (party, first appearance)
        known = Timeline.of(clock, f_party, f_time)
        esc = comp.escalation_times()[f_entity]
        has_esc = esc != NAT_NS
        esc_known = np.maximum(f_time, esc)  # an escalation is attributable once both are known
        escalated = Timeline.of(clock, f_party[has_esc], esc_known[has_esc])

        # expand each cutoff to its dispute's parties seen before as_of
        lo = np.searchsorted(f_entity, comp.cx_q_codes, side="left")
        hi = np.searchsorted(f_entity, comp.cx_q_codes, side="right")
        owner, rows = expand_ranges(lo, hi)
        seen = f_time[rows] < comp.q_as_of[owner]
        owner, rows = owner[seen], rows[seen]
        p, as_of = f_party[rows], comp.q_as_of[owner]
        other = known.position(p, as_of) - known.start(p) - 1
        own_esc = has_esc[rows] & (esc_known[rows] < as_of)
        escalations = escalated.position(p, as_of) - escalated.start(p) - own_esc
        n_q = len(comp.q_codes)
        comp.put("party_count", np.bincount(owner, minlength=n_q).astype(np.float32))
        comp.put("party_other_disputes", np.bincount(owner, other, minlength=n_q).astype(np.float32))
        max_other = np.zeros(n_q, dtype=np.float32)
        np.maximum.at(max_other, owner, other.astype(np.float32))
        comp.put("party_max_other_disputes", max_other)
        comp.put("party_past_escalations", np.bincount(owner, escalations, minlength=n_q).astype(np.float32))

    def template(self, feature, writer):
        v = "{v}"
        if feature == "party_count":
            return f"涉及当事人{v}人", f"{v} {{party|parties}} involved", "num"
        if feature == "party_other_disputes":
            return f"当事人共另涉{v}起纠纷", f"the parties are in {v} other {{dispute|disputes}}", "num"
        if feature == "party_max_other_disputes":
            return (f"单个当事人最多另涉{v}起纠纷", f"one party is in {v} other {{dispute|disputes}}", "num")
        if feature == "party_past_escalations":
            return (f"当事人的其他纠纷既往民转刑{v}起",
                    f"{v} past {{escalation|escalations}} in the parties' other disputes", "num")
        return None
