"""The labelled training snapshots several benchmarks start from."""

from __future__ import annotations

from riskmodel import make_cutoffs, make_labels, prepare_events, simulate_disputes


def simulated_snapshots(n_disputes: int, *, start: str, end: str, seed: int, horizon: str = "90D"):
    """Simulate a city; return (simulation, prepared events, labelled monthly cutoffs incl. censored)."""
    sim = simulate_disputes(n_disputes, start=start, end=end, seed=seed)
    events = prepare_events(sim.events, sim.schema)
    cutoffs = make_cutoffs(events, sim.schema, entities=sim.entities)
    return sim, events, make_labels(events, cutoffs, sim.schema, horizon=horizon)
