"""Time :func:`riskmodel.simulate_disputes` at scale.

Usage::

    python benchmarks/bench_simulate.py --disputes 1000000 --repeat 3

Prints the median wall time, the number of events, events per second and the peak
resident memory of the process. The baseline for comparison is the same run on the
same machine (see the ratio printed against a 10x smaller run, which shows how the
simulation scales).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time

from riskmodel._simulate import simulate_disputes


def peak_rss_gb() -> float:
    """Peak resident set size of this process in GB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024**3 if sys.platform == "darwin" else 1024**2)


def time_run(n_disputes: int, seed: int) -> tuple[float, int]:
    began = time.perf_counter()
    sim = simulate_disputes(n_disputes, seed=seed)
    return time.perf_counter() - began, len(sim.events)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disputes", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    small = max(1, args.disputes // 10)
    small_seconds, small_events = time_run(small, args.seed)
    runs = [time_run(args.disputes, args.seed + i) for i in range(args.repeat)]
    seconds = statistics.median(r[0] for r in runs)
    events = int(statistics.median(r[1] for r in runs))
    print(
        f"simulate_disputes({args.disputes:,}) x {args.repeat}: "
        f"runs {', '.join(f'{r[0]:.1f}s' for r in runs)}"
    )
    print(f"median seconds: {seconds:.2f}")
    print(f"events: {events:,} ({events / args.disputes:.2f} per dispute)")
    print(f"events/s: {events / seconds:,.0f}")
    print(
        f"baseline {small:,} disputes: {small_seconds:.2f}s, {small_events:,} events; "
        f"time ratio {seconds / small_seconds:.1f}x for {args.disputes / small:.0f}x the disputes"
    )
    print(f"peak RSS: {peak_rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
