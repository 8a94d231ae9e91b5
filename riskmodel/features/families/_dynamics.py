"""Dynamics: the trend of the event rate, the night-time share, the gaps between events,
and streaks of one kind since the last of another."""

from __future__ import annotations

import re

import numpy as np

from ..._errors import DataError
from ...data import local_hours
from .._family import FeatureFamily, slug, validate_windows, window_days, window_text


def _streak_name(kind: str, reset: str) -> str:
    return f"streak_{slug(kind) or 'kind'}_since_{slug(reset) or 'reset'}"


class Dynamics(FeatureFamily):
    """``trend_<short>_vs_<long>`` (events per day in the short window minus per day in the
    rest of the long one), ``night_share`` (``night_hours``), ``mean_gap_days``,
    ``last_gap_days`` and one ``streak_<kind>_since_<reset>`` per entry of ``streaks``."""

    name = "dynamics"
    uses_kinds = True

    def validate(self, builder) -> None:
        validate_windows(builder.trend_windows)
        if len(builder.trend_windows) != 2 or window_days(builder.trend_windows[0]) >= window_days(
            builder.trend_windows[1]
        ):
            raise DataError("trend_windows must be (short, long) with short < long, e.g. ('30D', '90D').")

    def columns(self, builder, schema):
        short, long = builder.trend_windows
        names = [f"trend_{short}_vs_{long}", "night_share", "mean_gap_days", "last_gap_days"]
        names += [_streak_name(kind, reset) for kind, reset in builder.streaks]
        return names, []

    def compute(self, comp) -> None:
        b = comp.b
        short, long = b.trend_windows
        counts = comp.windowed_counts(None, [short, long, "all"])
        d_short, d_long = window_days(short), window_days(long)
        comp.put(
            f"trend_{short}_vs_{long}",
            (counts[short] / d_short - (counts[long] - counts[short]) / (d_long - d_short)).astype(np.float32),
        )

        start_h, end_h = int(b.night_hours[0]), int(b.night_hours[1])
        # on the clock the times were written in (aware times were converted to UTC)
        hours = local_hours(comp.ev.times_ns, getattr(b, "zone_", None))
        night = (hours >= start_h) | (hours < end_h) if start_h > end_h else (hours >= start_h) & (hours < end_h)
        night_counts = comp.windowed_counts(night, ["all"])["all"]
        total = counts["all"]
        with np.errstate(invalid="ignore", divide="ignore"):
            comp.put("night_share", np.where(total > 0, night_counts / total, np.nan).astype(np.float32))

        upper, start = comp.position(None), comp.position("all")
        n = upper - start
        has2 = n >= 2
        last, first, before_last = comp.time_at(upper - 1), comp.time_at(start), comp.time_at(upper - 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_gap = comp.days_between(last, first, has2) / np.maximum(n - 1, 1)
        comp.put("mean_gap_days", mean_gap.astype(np.float32))
        comp.put("last_gap_days", comp.days_between(last, before_last, has2))

        for kind, reset in b.streaks:
            tl_kind = comp.timeline(comp.ev.is_kind([kind]))
            tl_reset = comp.timeline(comp.ev.is_kind([reset]))
            up_r = tl_reset.position(comp.q_codes, comp.q_as_of)
            has_r = up_r > tl_reset.start(comp.q_codes)
            # the kind's events after the last reset event before as_of are the streak
            reset_times = tl_reset.times_ns if len(tl_reset.times_ns) else np.zeros(1, dtype=np.int64)
            last_reset = reset_times[np.maximum(up_r - 1, 0)]
            since = np.where(has_r, tl_kind.position(comp.q_codes, last_reset, side="right"), tl_kind.start(comp.q_codes))
            streak = tl_kind.position(comp.q_codes, comp.q_as_of) - since
            comp.put(_streak_name(kind, reset), np.maximum(streak, 0).astype(np.float32))

    def template(self, feature, writer):
        v = "{v}"
        m = re.fullmatch(r"trend_(\w+)_vs_(\w+)", feature)
        if m:
            (sz, se), rest = window_text(m.group(1)), f"{window_days(m.group(2)) - window_days(m.group(1)):g}"
            return (f"{sz}日均事件数较此前{rest}天变化{v}起",
                    f"events per day {se} against the {rest} days before: {v}", "signed")
        if feature == "night_share":
            return f"夜间事件占比{v}", f"{v} of events at night", "pct"
        if feature == "mean_gap_days":
            return f"事件平均间隔{v}天", f"{v} {{day|days}} between events on average", "days"
        if feature == "last_gap_days":
            return f"最近两次事件间隔{v}天", f"{v} {{day|days}} between the last two events", "days"
        m = re.fullmatch(rf"streak_({writer.slug_pattern})_since_({writer.slug_pattern})", feature)
        if m:
            (kz, ke), (rz, r_en) = writer.kind_label(m.group(1)), writer.kind_label(m.group(2))
            return f"自上次{rz}以来{kz}{v}次", f"{ke}: {v} {{time|times}} since the last {r_en}", "num"
        return None
