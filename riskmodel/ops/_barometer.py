"""The barometer (晴雨表): dispute risk by area and day, for the command centre's screen.

From a series of nightly score outputs, :func:`barometer` counts the open disputes of
every area (station by default) and day by tier, with tier shares, the mean probability
and the change against the same area one week earlier. :func:`plot_barometer_heatmap`
and :func:`plot_tier_trend` draw it (matplotlib, Agg canvas, no ``pyplot``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from .._errors import ConfigError, DataError
from ..batch import CITY, as_nightly_list, dedupe_nights
from ..evaluation import TIER_COLOURS, finish_figure, new_figure
from ..model import TIERS, UNKNOWN_AREA

__all__ = ["barometer", "plot_barometer_heatmap", "plot_tier_trend"]

_CHANGE_COLS = ("n", "red", "red_share", "flagged_share", "mean_probability")
_VALUE_WORDS = {"flagged_share": "flagged share (red + yellow)", "red_share": "red share",
                "yellow_share": "yellow share", "blue_share": "blue share", "mean_probability": "mean p",
                "n": "open disputes", "red": "red disputes", "yellow": "yellow disputes"}


def barometer(scores, *, area: str | None = "auto", change_days: int = 7) -> pd.DataFrame:
    """Risk by area and day: counts and shares by tier, mean probability, weekly change.

    Parameters
    ----------
    scores : DataFrame, path or sequence of them
        Nightly score outputs: ``riskmodel score`` folders, :class:`NightlyOutput`, or
        scores frames (``as_of``, ``probability``, ``tier`` and the ``area`` column).
        The day of a row is its ``as_of`` date. A night given twice counts once (see
        :func:`~riskmodel.batch.concat_scores`). A night with no open dispute (a folder
        whose manifest gives its ``as_of``) is a day with ``n`` 0 in every area (the
        areas of the other nights; one ``"(city)"`` row when there are none).
    area : str or None, default="auto"
        Column to aggregate by; ``None`` for one city-wide row per day (area ``"(city)"``).
        ``"auto"``: the nights' own area column (the model's first group column, e.g.
        ``station``, recorded in the manifest; ``station`` for frames that have it),
        city-wide when they have none. Disputes with a missing area count under
        ``"(unknown)"``.
    change_days : int, default=7
        The ``*_change`` columns compare each area and day with the same area
        ``change_days`` days earlier (NaN when that night is missing).

    Returns
    -------
    DataFrame
        One row per (area, day), sorted by day then area: ``area`` (named after the
        column), ``day``, ``n``, ``red``, ``yellow``, ``blue``, ``red_share``,
        ``yellow_share``, ``blue_share``, ``flagged_share`` (red + yellow),
        ``mean_probability``, and ``n_change``, ``red_change``, ``red_share_change``,
        ``flagged_share_change``, ``mean_probability_change``.

    Raises
    ------
    DataError
        A missing output folder, or a scores frame without the needed columns.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"as_of": ["2024-06-01"] * 3, "probability": [0.3, 0.1, 0.01],
    ...                   "tier": ["red", "yellow", "blue"], "station": ["S1", "S1", "S2"]})
    >>> barometer(s)[["station", "n", "red", "red_share"]]
      station  n  red  red_share
    0      S1  2    1        0.5
    1      S2  1    0        0.0
    >>> barometer(s, area="district")
    Traceback (most recent call last):
    ...
    riskmodel._errors.DataError: scores have no area column 'district'; columns: ['as_of', 'probability', 'tier', 'station']. Pass area= one of them, or area=None for the city.
    """
    if not isinstance(change_days, int | np.integer) or change_days < 1:
        raise ConfigError(f"change_days must be a positive integer, got {change_days!r}.")
    outputs = as_nightly_list(scores)
    frame, _ = dedupe_nights(outputs)
    area = resolve_area(area, outputs, frame)
    name = area or "area"
    keys = pd.DataFrame({
        name: area_keys(frame, area).astype(str),
        "day": frame["as_of"].dt.normalize(),
    })
    tier = frame["tier"].astype(object)
    parts = keys.assign(n=1, probability=frame["probability"].to_numpy(dtype=float),
                        **{t: (tier == t).to_numpy(dtype=np.int64) for t in TIERS})
    table = parts.groupby([name, "day"], sort=False).agg(
        n=("n", "sum"), red=("red", "sum"), yellow=("yellow", "sum"), blue=("blue", "sum"),
        mean_probability=("probability", "mean")).reset_index()
    # a night with no open dispute has no score row: its day from the manifest, every area at 0
    empty = sorted({o.as_of.normalize() for o in outputs if not len(o.scores) and o.as_of is not None}
                   - set(table["day"]))
    if empty:
        areas = table[name].unique() if len(table) else [CITY]
        zero = pd.MultiIndex.from_product([areas, pd.DatetimeIndex(empty)], names=[name, "day"]).to_frame(index=False)
        table = pd.concat([table, zero.assign(n=0, red=0, yellow=0, blue=0, mean_probability=np.nan)],
                          ignore_index=True)
    for t in TIERS:
        table[f"{t}_share"] = table[t] / table["n"]
    table["flagged_share"] = (table["red"] + table["yellow"]) / table["n"]
    previous = table[[name, "day", *_CHANGE_COLS]].copy()
    previous["day"] = previous["day"] + pd.Timedelta(days=int(change_days))
    table = table.merge(previous, on=[name, "day"], how="left", suffixes=("", "_previous"))
    for col in _CHANGE_COLS:
        table[f"{col}_change"] = table[col] - table.pop(f"{col}_previous")
    order = [name, "day", "n", *TIERS, *(f"{t}_share" for t in TIERS), "flagged_share", "mean_probability",
             *(f"{c}_change" for c in _CHANGE_COLS)]
    return table[order].sort_values(["day", name], kind="stable").reset_index(drop=True)


def resolve_area(area: str | None, outputs, frame: pd.DataFrame) -> str | None:
    """The area column to use: ``"auto"`` is the nights' own (see :attr:`NightlyOutput.area`,
    ``None`` when they have none); an explicit column must be in the scores."""
    if area == "auto":
        return next((o.area for o in outputs if o.area is not None and o.area in frame.columns), None)
    if area is not None and area not in frame.columns:
        head = f"scores have no area column {area!r}; columns: {list(frame.columns)}."
        raise DataError(f"{head} Pass area= one of them, or area=None for the city.",
                        cli=f"{head} Pass --area with one of them, or --area none for the city.")
    return area


def area_keys(frame: pd.DataFrame, area: str | None) -> pd.Series:
    """Each row's area as the barometer and the work lists group it: its ``area`` value,
    ``UNKNOWN_AREA`` where it has none (as the tiers ranked it), :data:`~riskmodel.batch.CITY`
    for every row when ``area`` is None or not a column."""
    if area is None or area not in frame.columns:
        return pd.Series(CITY, index=frame.index, dtype=object)
    return frame[area].astype(object).fillna(UNKNOWN_AREA)


def _area_col(table: pd.DataFrame) -> str:
    if not isinstance(table, pd.DataFrame) or "day" not in table.columns or "n" not in table.columns:
        raise DataError("expected the table returned by barometer(...) (columns area, day, n, ...).")
    return table.columns[0]


def plot_barometer_heatmap(table: pd.DataFrame, *, value: str = "flagged_share", max_areas: int = 40,
                           title: str | None = None) -> Figure:
    """Heat map of areas (rows) by days (columns) of one barometer value.

    Parameters
    ----------
    table : DataFrame
        The output of :func:`barometer`.
    value : str, default="flagged_share"
        Column to colour by, e.g. ``"red_share"``, ``"mean_probability"``, ``"red"``.
    max_areas : int, default=40
        Areas shown: the ones with the highest value on the last day (the rest are
        summarised in the title).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    area = _area_col(table)
    if value not in table.columns:
        raise DataError(f"barometer table has no column {value!r}; choose one of {list(table.columns[2:])}.")
    grid = table.pivot(index=area, columns="day", values=value).sort_index(axis=1)
    n_areas = len(grid)
    if len(grid.columns):
        grid = grid.sort_values(grid.columns[-1], ascending=False, na_position="last", kind="stable")
    grid = grid.head(max_areas)
    days = [pd.Timestamp(d) for d in grid.columns]
    fig = new_figure(min(4.5 + 0.35 * len(days), 14.0), min(2.0 + 0.28 * len(grid), 14.0))
    ax = fig.add_subplot()
    values = grid.to_numpy(dtype=float)
    data = np.ma.masked_invalid(values)
    # Fixed, meaningful limits: autoscaling one night (or equal values) would centre a
    # -0.1..0.1 bar on them and paint 0% orange. Shares start at 0%, changes centre on 0.
    finite = values[np.isfinite(values)]
    top = float(np.abs(finite).max()) if finite.size else 0.0
    share = value.endswith("_share") or value == "mean_probability"
    if value.endswith("_change"):
        limit = max(top, 0.01 if "share" in value else 1.0)
        cmap, vmin, vmax = "RdBu_r", -limit, limit
    else:
        cmap, vmin, vmax = "YlOrRd", 0.0, max(top, 0.05 if share else 1.0)
    image = ax.imshow(data, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_yticks(np.arange(len(grid)), labels=[str(a) for a in grid.index])
    step = max(1, int(np.ceil(len(days) / 16)))
    ticks = np.arange(0, len(days), step)
    ax.set_xticks(ticks, labels=[days[i].strftime("%m-%d") for i in ticks], rotation=45, ha="right")
    ax.set_xlabel("night")
    ax.set_ylabel(area)
    label = _VALUE_WORDS.get(value, value.replace("_", " "))
    bar = fig.colorbar(image, ax=ax, label=label)
    if share or "share" in value:
        bar.ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    shown = f" (top {len(grid)} of {n_areas} by the last night)" if n_areas > len(grid) else ""
    ax.set_title(title or f"{label} by {area} and night{shown}")
    return finish_figure(fig)


def plot_tier_trend(table: pd.DataFrame, *, title: str | None = None) -> Figure:
    """City-wide tier shares by day (one line per tier), with the open-dispute count.

    Parameters
    ----------
    table : DataFrame
        The output of :func:`barometer` (any area: rows are summed per day).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    _area_col(table)
    daily = table.groupby("day", sort=True)[["n", *TIERS]].sum()
    days = pd.DatetimeIndex(daily.index)
    fig = new_figure(8.0, 4.0)
    ax = fig.add_subplot()
    counts = ax.twinx()
    # the nights' own dates as ticks (never hours, never two labels on one spot): bars one
    # night wide at most, and a label on every k-th night when there are many
    gap = float(np.diff(days.asi8).min()) / 86_400e9 if len(days) > 1 else 1.0
    width = min(0.8, 0.8 * gap)
    bars = counts.bar(days, daily["n"], color="grey", alpha=0.25, width=width, label="open disputes (right axis)")
    counts.set_ylabel("open disputes")
    counts.set_ylim(0, max(1, int(daily["n"].max())) * 1.15)
    lines = []
    for t in TIERS:
        share = daily[t] / daily["n"].where(daily["n"] > 0)
        lines += ax.plot(days, share, marker="o", markersize=4, color=TIER_COLOURS[t], label=f"{t} share")
    ax.set_ylabel("share of open disputes")
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.grid(alpha=0.3)
    ax.set_zorder(counts.get_zorder() + 1)
    ax.patch.set_visible(False)
    span = (days[-1] - days[0]) / pd.Timedelta(days=1) if len(days) else 0.0
    pad = pd.Timedelta(days=max(1.0, 0.04 * span))
    ax.set_xlim(days[0] - pad, days[-1] + pad)
    label_every = max(1, int(np.ceil(len(days) / 12)))
    shown = days[::-1][::label_every][::-1]  # the last night always labelled
    ax.set_xticks(days, labels=[d.strftime("%m-%d") if d in shown else "" for d in days], rotation=45, ha="right")
    ax.set_xticks([], minor=True)
    ax.set_xlabel(f"night ({days[0]:%Y-%m-%d} to {days[-1]:%Y-%m-%d})" if len(days) > 1 else
                  f"night ({days[0]:%Y-%m-%d}; one night: no trend yet)" if len(days) else "night")
    ax.legend(handles=[*lines, bars], loc="upper left", fontsize=8, ncols=2)
    ax.set_title(title or "tier shares by night")
    return finish_figure(fig)
