"""barometer: counts and shares by area and day add up to the scores; weekly change; plots."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from riskmodel import (
    DataError,
    DataWarning,
    barometer,
    plot_barometer_heatmap,
    plot_tier_trend,
    read_nightly,
    render_report,
)
from riskmodel.cli import main
from riskmodel.ops._barometer import CITY


def _night(day: str, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    prob = rng.beta(1, 20, n)
    tier = np.where(prob > 0.12, "red", np.where(prob > 0.06, "yellow", "blue"))
    station = rng.choice(["S01", "S02", "S03", None], n, p=[0.4, 0.3, 0.25, 0.05])
    return pd.DataFrame({"dispute_id": [f"D{i:05d}" for i in range(n)], "as_of": pd.Timestamp(day),
                         "probability": prob, "tier": pd.Categorical(tier, categories=["red", "yellow", "blue"]),
                         "station": station, "category": rng.choice(["building", "debt"], n)})


@pytest.fixture(scope="module")
def nights() -> list[pd.DataFrame]:
    days = pd.date_range("2024-06-01", periods=10, freq="D")
    return [_night(str(d.date()), 200 + 10 * i, i) for i, d in enumerate(days)]


@pytest.fixture(scope="module", params=["frames", "folders", "one_frame"])
def source(request, nights, tmp_path_factory):
    if request.param == "frames":
        return nights
    if request.param == "one_frame":
        return pd.concat(nights, ignore_index=True)
    root = tmp_path_factory.mktemp("nights")
    dirs = []
    for frame in nights:
        d = root / f"night-{frame['as_of'].iloc[0].date()}"
        d.mkdir()
        frame.to_parquet(d / "scores.parquet", index=False)
        dirs.append(d)
    return dirs


def test_sums_match_the_scores(source, nights):
    table = barometer(source)
    allscores = pd.concat(nights, ignore_index=True)
    assert table["n"].sum() == len(allscores)
    for t in ("red", "yellow", "blue"):
        assert table[t].sum() == (allscores["tier"] == t).sum()
    assert (table[["red", "yellow", "blue"]].sum(axis=1) == table["n"]).all()
    np.testing.assert_allclose(table[["red_share", "yellow_share", "blue_share"]].sum(axis=1), 1.0)
    # against a plain reference: one groupby per day and station
    ref = allscores.assign(station=allscores["station"].fillna("(unknown)"), day=allscores["as_of"].dt.normalize())
    ref = ref.groupby(["station", "day"]).agg(n=("probability", "size"), mean_probability=("probability", "mean"),
                                              red=("tier", lambda t: int((t == "red").sum())))
    got = table.set_index(["station", "day"]).loc[ref.index]
    np.testing.assert_array_equal(got["n"], ref["n"])
    np.testing.assert_array_equal(got["red"], ref["red"])
    np.testing.assert_allclose(got["mean_probability"], ref["mean_probability"])
    assert "(unknown)" in set(table["station"])


def test_city_rows_and_weekly_change(nights):
    city = barometer(nights, area=None)
    assert list(city["area"].unique()) == [CITY]
    assert len(city) == 10
    assert city["n"].tolist() == [len(f) for f in nights]
    assert city["n_change"].iloc[:7].isna().all()
    red_share = [float((night["tier"] == "red").mean()) for night in nights]  # from the scores themselves
    assert city["red_share"].tolist() == pytest.approx(red_share)
    for i in range(7, 10):
        assert city["n_change"].iloc[i] == len(nights[i]) - len(nights[i - 7])
        assert city["red_share_change"].iloc[i] == pytest.approx(red_share[i] - red_share[i - 7])
    by_cat = barometer(nights, area="category")
    assert set(by_cat["category"]) == {"building", "debt"}


def test_missing_night_gives_nan_change(nights):
    table = barometer([nights[0], nights[8]], area=None)
    assert table["n_change"].isna().all()  # 8 days apart, not 7


def test_errors(nights, tmp_path):
    with pytest.raises(DataError, match="no area column 'district'"):
        barometer(nights, area="district")
    with pytest.raises(DataError, match="missing column"):
        barometer(nights[0].drop(columns="tier"))
    with pytest.raises(DataError, match="does not exist"):
        barometer([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no scores.parquet"):
        read_nightly(tmp_path / "empty")
    bad = nights[0].astype({"tier": object})
    bad.loc[0, "tier"] = "green"
    with pytest.raises(DataError, match="tier outside"):
        barometer(bad)


def _png_is_not_blank(fig: Figure) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    import matplotlib.image as mpimg

    buf.seek(0)
    pixels = mpimg.imread(buf, format="png")
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels[..., :3].std() > 0.05


def test_plots(nights):
    table = barometer(nights)
    heat = plot_barometer_heatmap(table)
    assert isinstance(heat, Figure)
    assert len(heat.axes[0].get_yticklabels()) == table["station"].nunique()
    _png_is_not_blank(heat)
    trend = plot_tier_trend(table)
    assert [line.get_label() for line in trend.axes[0].get_lines()] == ["red share", "yellow share", "blue share"]
    _png_is_not_blank(trend)
    small = plot_barometer_heatmap(table, value="red", max_areas=2)
    assert len(small.axes[0].get_yticklabels()) == 2
    with pytest.raises(DataError, match="no column 'nope'"):
        plot_barometer_heatmap(table, value="nope")


@pytest.mark.parametrize("n_nights", [1, 3, 10])
def test_plots_stay_readable_with_few_or_many_nights(nights, n_nights):
    """One night: no -0.1..0.1 colour bar painting 0% orange, no hours on the trend's axis;
    every night labelled once (never two labels on one spot); the grey bars in the legend."""
    table = barometer(nights[-n_nights:])
    heat = plot_barometer_heatmap(table)
    image = heat.axes[0].get_images()[0]
    low, high = image.get_clim()
    assert low == 0 and high >= table["flagged_share"].max()
    zero_colour = image.cmap(image.norm(0.0))
    assert zero_colour[0] > 0.95 and zero_colour[1] > 0.95  # 0% is the palest colour, not orange
    labels = [t.get_text() for t in heat.axes[0].get_xticklabels()]
    assert labels == [d.strftime("%m-%d") for d in sorted(table["day"].unique())][:len(labels)]
    trend = plot_tier_trend(table)
    ax = trend.axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    days = sorted(pd.to_datetime(table["day"].unique()))
    assert [t for t in ticks if t] == [d.strftime("%m-%d") for d in days]  # the nights, as dates
    assert not any(":" in t for t in ticks)  # never hours
    left, right = ax.get_xlim()
    assert right - left >= 2  # at least a day on either side of a lone night
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "open disputes (right axis)" in legend and "red share" in legend
    _png_is_not_blank(trend)


def test_a_night_given_twice_counts_once(nights):
    with pytest.warns(DataWarning, match=r"same night was given more than once.*2024-06-01"):
        twice = barometer([nights[0], nights[1], nights[0]])
    pd.testing.assert_frame_equal(twice, barometer(nights[:2]))


def test_nights_naming_their_disputes_by_other_id_columns_are_refused(nights):
    """Two models' nights (ids in 'dispute_id', in 'case_no'): the rows of one were counted as
    a few disputes of the other, silently; now refused, naming both columns."""
    other = nights[1].rename(columns={"dispute_id": "case_no"})
    with pytest.raises(DataError, match=r"different id columns \('dispute_id' in \['frame 1'\]; 'case_no' in "):
        barometer([nights[0], other])


def test_scores_without_an_area_column_are_city_wide(nights):
    own = [n.drop(columns="station").rename(columns={"dispute_id": "case_no"}) for n in nights[:2]]
    table = barometer(own)  # area="auto": nothing to group by
    assert table.columns[0] == "area" and set(table["area"]) == {CITY}
    assert table["n"].tolist() == [len(n) for n in own]
    with pytest.raises(DataError, match="no area column 'station'.*area=None for the city") as info:
        barometer(own, area="station")
    assert "--area none" in info.value.for_cli()


def test_a_night_with_no_open_dispute_is_a_day_at_zero(nights, tmp_path, capsys):
    """A night scored with no open dispute has no score row: the barometer left its day out
    (7 nights for 8, none for it alone) and the report showed the night before as its last.
    Its manifest gives the day: every area at 0."""
    dirs = []
    for frame in nights[-2:]:
        dirs.append(tmp_path / str(frame["as_of"].iloc[0].date()))
        dirs[-1].mkdir()
        frame.to_parquet(dirs[-1] / "scores.parquet", index=False)
    quiet = tmp_path / "quiet"
    quiet.mkdir()
    nights[0].iloc[:0].to_parquet(quiet / "scores.parquet", index=False)
    (quiet / "manifest.json").write_text(json.dumps({"as_of": "2024-06-11 00:00:00", "area": "station"}))
    table = barometer([*dirs, quiet])
    day = table[table["day"] == pd.Timestamp("2024-06-11")]
    assert set(day["station"]) == set(table.loc[table["day"] == pd.Timestamp("2024-06-10"), "station"])
    assert (day[["n", "red", "yellow", "blue"]] == 0).all().all() and day["flagged_share"].isna().all()
    alone = barometer(quiet)
    assert alone["day"].tolist() == [pd.Timestamp("2024-06-11")] and alone["n"].tolist() == [0]
    assert main(["barometer", "--scores", *map(str, dirs), str(quiet)]) == 0
    assert "3 night(s)" in capsys.readouterr().out
    text = render_report(quiet, history=dirs)
    assert "3 night(s), 2024-06-09 to 2024-06-11" in text and "By station on 2024-06-11" in text
