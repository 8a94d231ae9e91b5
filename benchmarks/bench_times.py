"""Time the reading of a text time column (a CSV export's) against plain pandas and polars.

What is timed, per shape, on the same strings in the same process, ``--repeat`` times:

* ours: :func:`riskmodel.data._schema.parse_times` (every row judged: year-last, Chinese,
  full-width and ``UTC+8`` rows rewritten, times without a year made missing);
* pandas: ``pd.to_datetime(values, format="mixed", errors="coerce", utc=True)``, the call
  a user would write for an export of unknown shape (``utc=True``: without it one ``UTC+8``
  row raises "Mixed timezones detected"; it reads the odd rows each its own way);
* polars: ``str.to_datetime(strict=False)`` (one format inferred from the first value:
  rows of another shape become null).

Values are checked equal to pandas' on the plain ISO shape (where pandas is right). The
shapes: ``iso`` (``2023-11-21 08:05:00``, Python objects as ``pd.read_csv`` gives them),
``iso_arrow`` (the same as Arrow strings, pandas 3's default), ``odd_rows`` (ISO with one
row in a thousand written otherwise: year last, Chinese, ``UTC+8``... a concatenated
export). Medians and per-run ratios are printed; no target is asserted here.

Run: ``python benchmarks/bench_times.py [--rows 1000000] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from riskmodel.data._schema import parse_times

ODD = ["05-03-2024 10:00", "2024年03月14日 01:39", "2024-01-01 10:00 UTC+8", "06:33:02", "２０２４-０３-１４"]


def make(shape: str, rows: int, seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    t = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 3 * 365 * 86400, rows), unit="s")
    text = np.asarray(t.strftime("%Y-%m-%d %H:%M:%S"), dtype=object)
    if shape == "odd_rows":
        at = rng.choice(rows, size=rows // 1000, replace=False)
        text[at] = np.asarray(ODD, dtype=object)[np.arange(len(at)) % len(ODD)]
    return pd.Series(text, dtype="str" if shape == "iso_arrow" else object)


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import polars as pl

    print(f"{args.rows:,} text times per shape, {args.repeat} runs each (medians; ratios per run)")
    print(f"{'shape':10} {'ours s':>7} {'pandas s':>9} {'polars s':>9}  {'vs pandas':>22}  {'vs polars':>22}")
    for shape in ("iso", "iso_arrow", "odd_rows"):
        values = make(shape, args.rows)
        ours, pandas_, polars_ = [], [], []
        for _ in range(args.repeat):
            # the rows warn (a year-last date that does not tell its order); the time is what counts here
            t, (parsed, _) = timed(parse_times, values, "time", "events", stray=[])
            ours.append(t)
            t, want = timed(pd.to_datetime, values, format="mixed", errors="coerce", utc=True)
            pandas_.append(t)
            series = pl.Series(values.to_numpy(dtype=object).astype(str))
            t, _ = timed(series.str.to_datetime, strict=False)
            polars_.append(t)
        if shape != "odd_rows":
            assert parsed.equals(want.dt.tz_localize(None).astype("datetime64[ns]")), shape
        vs_pd = [p / o for o, p in zip(ours, pandas_, strict=True)]
        vs_pl = [p / o for o, p in zip(ours, polars_, strict=True)]
        per = lambda r: f"{statistics.median(r):.1f}x ({', '.join(f'{x:.1f}' for x in r)})"  # noqa: E731
        print(f"{shape:10} {statistics.median(ours):7.2f} {statistics.median(pandas_):9.2f} "
              f"{statistics.median(polars_):9.2f}  {per(vs_pd):>22}  {per(vs_pl):>22}")


if __name__ == "__main__":
    main()
