"""Simulated dispute histories with a known ground truth: :func:`simulate_disputes`.

The mechanism (see ``docs/simulator.md`` for the full description) is a self-exciting
process in discrete daily steps, vectorised over the disputes active on a day. Each
dispute carries a small Markov state at every midnight:

* ``excite`` - exponentially decaying sum of past events' excitation weights; scales the
  intensity of further events;
* ``hazard`` - exponentially decaying sum of past events' hazard weights (threats, fights,
  failed mediations, self-harm threats, weapon and revenge keywords raise it, successful
  mediations lower it); drives the daily escalation hazard and the share of risky kinds;
* ``last_day`` - the day of its last event (a dispute quiet for ``dormant_days`` is closed).

Together with the static attributes (category, station, opening day, the parties' earlier
escalations counted at opening) this state is a deterministic function of the dispute's
own events before the midnight, so :meth:`Simulation.true_probability` can rebuild it for
any cutoff and run Monte Carlo continuations with the very same step function
(:func:`_step`) the forward simulation uses. There are no hidden latent variables.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ._errors import ConfigError, DataError
from .data import EventSchema, parse_duration

__all__ = ["CATEGORIES", "EVENT_KINDS", "Simulation", "SimulationParams", "simulate_disputes"]

# --------------------------------------------------------------------------------------
# vocabulary

#: Dispute categories: English code -> Chinese label.
CATEGORIES: Mapping[str, str] = types.MappingProxyType(
    {
        "neighbour": "邻里",
        "building": "建房/宅基地",
        "family": "婚姻家庭",
        "relationship": "情感",
        "debt": "债务",
        "wages": "劳资",
        "property_mgmt": "物业",
        "medical": "医患",
        "school": "校园",
    }
)
_CAT_CODES = tuple(CATEGORIES)

#: Event kinds; the last two are the outcomes (escalation, 民转刑).
EVENT_KINDS: tuple[str, ...] = (
    "call_110",
    "quarrel",
    "threat",
    "fight",
    "property_damage",
    "mediation_success",
    "mediation_failed",
    "petition",
    "follow_up",
    "self_harm_threat",
    "criminal_case",
    "injury",
)
_K = {kind: code for code, kind in enumerate(EVENT_KINDS)}
_STEP_KINDS = EVENT_KINDS[:10]  # kinds drawn by the daily step (outcomes are separate)
_RISKY = ("threat", "fight", "property_damage", "self_harm_threat")
_OFFICE = ("mediation_success", "mediation_failed", "petition", "follow_up")
_CRIMINAL, _INJURY = _K["criminal_case"], _K["injury"]
_SUCCESS, _FAILED = _K["mediation_success"], _K["mediation_failed"]


def _frozen(mapping: Mapping) -> Mapping:
    return types.MappingProxyType(dict(mapping))


def _per_kind(**values: float) -> Mapping[str, float]:
    return _frozen(values)


# --------------------------------------------------------------------------------------
# parameters


@dataclass(frozen=True, kw_only=True)
class SimulationParams:
    """Every parameter of the simulated mechanism, with its default.

    Rates are per day, hazards are log daily hazards, time constants are in days.
    Mapping-valued parameters may be overridden partially (only the keys given change).
    See ``docs/simulator.md`` for the role of each parameter.

    Parameters
    ----------
    category_share : mapping
        Share of disputes per category (normalised).
    category_event_rate : mapping
        Multiplier of all event intensities per category.
    category_escalation : mapping
        Additive shift of the log escalation hazard per category.
    n_stations : int
        Number of police stations ("S01", ...).
    station_volume_sd, station_event_rate_sd, station_escalation_sd : float
        Standard deviations of the stations' log dispute volume, log event-rate multiplier
        and log escalation-hazard shift (drawn once per seed).
    party_pool_ratio : float
        People in the pool per dispute.
    party_propensity_sd : float
        Log-normal spread of a person's propensity to be involved in disputes; larger
        means more people recurring across disputes.
    party_count_probs : mapping
        Distribution of the number of parties per dispute.
    summer_amplitude : float
        Relative amplitude of the yearly cycle of openings (peak at ``peak_day_of_year``).
    peak_day_of_year : int
        Day of the year with the most openings.
    opening_kind_probs : mapping
        Kind of the first event of a dispute.
    event_rates : mapping
        Base intensity of each non-mediation kind for a fresh dispute.
    mediation_rate : float
        Base intensity of mediations (success or failure).
    age_tau_days, age_floor : float
        Intensities decay with the dispute's age as
        ``age_floor + (1 - age_floor) * exp(-age / age_tau_days)``.
    weekend_office_factor : float
        Multiplier of office kinds (mediations, petitions, follow-ups) on weekends.
    excite_tau_days : float
        Decay time constant of the excitation.
    excite_weights : mapping
        Excitation added by each kind; intensities scale with ``1 + excite``.
    excite_floor, excite_cap : float
        Bounds of the ``1 + excite`` multiplier.
    hazard_tau_days : float
        Decay time constant of the hazard state.
    hazard_weights : mapping
        Hazard state added by each kind (negative lowers it).
    weapon_weight, revenge_weight : float
        Hazard state added by a weapon keyword / a revenge or desperation keyword.
    hazard_min, hazard_max : float
        Bounds of the hazard state where it is used (the state itself is not clipped).
    risky_sensitivity : float
        Risky kinds' intensities scale with ``exp(risky_sensitivity * hazard)``.
    escalation_base : float
        Log daily escalation hazard of a neutral dispute.
    escalation_trend : float
        Change of the log escalation hazard per year (365.25 days) since ``start``, for a
        drifting city: ``log(0.5)`` (about -0.69) halves every dispute's escalation hazard
        each year; 0 (default) keeps it stationary.
    escalation_hazard_coef : float
        Log hazard per unit of hazard state.
    escalation_prior_coef : float
        Log hazard per earlier escalation of the parties (counted at opening).
    prior_cap : int
        Earlier escalations beyond this count add nothing.
    success_logit, success_hazard_coef : float
        A mediation succeeds with probability
        ``expit(success_logit - success_hazard_coef * hazard)``.
    close_on_success : float
        Probability that a successful mediation closes the dispute.
    dormant_days : int
        A dispute with no event for more than this many days is closed at midnight.
    weapon_logits, revenge_logits : mapping
        Per kind, logit of mentioning a weapon / a revenge keyword at zero hazard.
    keyword_hazard_coef : float
        Keyword logits increase by this much per unit of hazard state.
    injury_share : float
        Share of escalations recorded as ``injury`` (the rest ``criminal_case``).
    missing_narrative_rate, typo_rate, duplicate_rate : float
        Noise: narratives missing, narratives with a typo, and calls recorded twice a few
        minutes apart (duplicates are noise: they do not enter the mechanism).
    """

    category_share: Mapping[str, float] = field(
        default_factory=lambda: _frozen(
            dict(
                neighbour=0.25,
                building=0.10,
                family=0.18,
                relationship=0.08,
                debt=0.12,
                wages=0.10,
                property_mgmt=0.09,
                medical=0.04,
                school=0.04,
            )
        )
    )
    category_event_rate: Mapping[str, float] = field(
        default_factory=lambda: _frozen(
            dict(
                neighbour=1.0,
                building=1.0,
                family=1.15,
                relationship=1.05,
                debt=0.9,
                wages=0.95,
                property_mgmt=0.85,
                medical=0.9,
                school=0.8,
            )
        )
    )
    category_escalation: Mapping[str, float] = field(
        default_factory=lambda: _frozen(
            dict(
                neighbour=0.0,
                building=0.6,
                family=0.35,
                relationship=0.5,
                debt=0.2,
                wages=0.0,
                property_mgmt=-0.6,
                medical=-0.2,
                school=-0.7,
            )
        )
    )
    n_stations: int = 30
    station_volume_sd: float = 0.5
    station_event_rate_sd: float = 0.2
    station_escalation_sd: float = 0.3
    party_pool_ratio: float = 1.6
    party_propensity_sd: float = 1.0
    party_count_probs: Mapping[int, float] = field(
        default_factory=lambda: _frozen({2: 0.72, 3: 0.2, 4: 0.08})
    )
    summer_amplitude: float = 0.3
    peak_day_of_year: int = 196
    opening_kind_probs: Mapping[str, float] = field(
        default_factory=lambda: _per_kind(call_110=0.7, quarrel=0.15, petition=0.15)
    )
    event_rates: Mapping[str, float] = field(
        default_factory=lambda: _per_kind(
            call_110=0.028,
            quarrel=0.026,
            threat=0.007,
            fight=0.004,
            property_damage=0.004,
            petition=0.006,
            follow_up=0.02,
            self_harm_threat=0.0015,
        )
    )
    mediation_rate: float = 0.03
    age_tau_days: float = 45.0
    age_floor: float = 0.15
    weekend_office_factor: float = 0.1
    excite_tau_days: float = 14.0
    excite_weights: Mapping[str, float] = field(
        default_factory=lambda: _per_kind(
            call_110=0.3,
            quarrel=0.3,
            threat=0.45,
            fight=0.5,
            property_damage=0.35,
            mediation_success=-0.4,
            mediation_failed=0.35,
            petition=0.2,
            follow_up=0.0,
            self_harm_threat=0.45,
        )
    )
    excite_floor: float = 0.2
    excite_cap: float = 5.0
    hazard_tau_days: float = 42.0
    hazard_weights: Mapping[str, float] = field(
        default_factory=lambda: _per_kind(
            call_110=0.1,
            quarrel=0.15,
            threat=1.0,
            fight=1.0,
            property_damage=0.5,
            mediation_success=-0.8,
            mediation_failed=0.6,
            petition=0.2,
            follow_up=-0.1,
            self_harm_threat=1.0,
        )
    )
    weapon_weight: float = 0.8
    revenge_weight: float = 0.6
    hazard_min: float = -2.0
    hazard_max: float = 8.0
    risky_sensitivity: float = 0.3
    escalation_base: float = -8.8
    escalation_trend: float = 0.0
    escalation_hazard_coef: float = 0.55
    escalation_prior_coef: float = 0.5
    prior_cap: int = 3
    success_logit: float = 0.8
    success_hazard_coef: float = 0.5
    close_on_success: float = 0.5
    dormant_days: int = 90
    weapon_logits: Mapping[str, float] = field(
        default_factory=lambda: _per_kind(
            call_110=-3.5,
            quarrel=-3.5,
            threat=-1.5,
            fight=-1.0,
            property_damage=-1.5,
            mediation_success=-7.0,
            mediation_failed=-4.0,
            petition=-5.0,
            follow_up=-6.0,
            self_harm_threat=-2.5,
        )
    )
    revenge_logits: Mapping[str, float] = field(
        default_factory=lambda: _per_kind(
            call_110=-3.0,
            quarrel=-3.0,
            threat=-0.5,
            fight=-2.0,
            property_damage=-2.5,
            mediation_success=-7.0,
            mediation_failed=-2.5,
            petition=-2.5,
            follow_up=-5.0,
            self_harm_threat=0.5,
        )
    )
    keyword_hazard_coef: float = 0.35
    injury_share: float = 0.4
    missing_narrative_rate: float = 0.10
    typo_rate: float = 0.03
    duplicate_rate: float = 0.03

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any]) -> SimulationParams:
        """Defaults with ``overrides`` applied; unknown or ill-typed keys raise ConfigError."""
        defaults = cls()
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(
                f"simulate_disputes got unknown parameter(s) {unknown}; known parameters: "
                f"{sorted(known)}."
            )
        values = {}
        for name, value in overrides.items():
            default = getattr(defaults, name)
            if isinstance(default, Mapping):
                if not isinstance(value, Mapping):
                    raise ConfigError(f"parameter {name!r} must be a mapping, got {value!r}.")
                bad = sorted(set(value) - set(default), key=str)
                if bad:
                    raise ConfigError(
                        f"parameter {name!r} got unknown key(s) {bad}; known keys: "
                        f"{sorted(default, key=str)}."
                    )
                values[name] = _frozen({**default, **{k: float(v) for k, v in value.items()}})
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"parameter {name!r} must be a number, got {value!r}.")
                values[name] = type(default)(value)
        params = dataclasses.replace(defaults, **values)
        params._check()
        return params

    def _check(self) -> None:
        positive = (
            "n_stations",
            "party_pool_ratio",
            "mediation_rate",
            "age_tau_days",
            "excite_tau_days",
            "hazard_tau_days",
            "dormant_days",
            "excite_cap",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"parameter {name!r} must be > 0, got {getattr(self, name)!r}.")
        probabilities = (
            "age_floor",
            "close_on_success",
            "injury_share",
            "missing_narrative_rate",
            "typo_rate",
            "duplicate_rate",
            "summer_amplitude",
        )
        for name in probabilities:
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(
                    f"parameter {name!r} must be in [0, 1], got {getattr(self, name)!r}."
                )
        if self.n_stations > 99:
            raise ConfigError(f"parameter 'n_stations' must be at most 99, got {self.n_stations}.")
        for name in ("category_share", "party_count_probs", "opening_kind_probs"):
            weights = np.array(list(getattr(self, name).values()), dtype=float)
            if (weights < 0).any() or weights.sum() <= 0:
                raise ConfigError(f"parameter {name!r} must hold non-negative weights, not all 0.")
        if any(not 1 <= int(k) <= 8 for k in self.party_count_probs):
            raise ConfigError("parameter 'party_count_probs' keys must be party counts 1..8.")

    def to_dict(self) -> dict:
        """Plain-data form (JSON / MLflow params)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = (
                {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else value
            )
        return out


class _Tables(NamedTuple):
    """Parameters turned into the arrays the daily step indexes."""

    kind_rate: np.ndarray  # (10,) intensity weight per step kind (mediations share the rate)
    risky_cols: np.ndarray
    office_cols: np.ndarray
    plain_total: float
    risky_total: float
    office_total: float
    excite_weight: np.ndarray  # (10,)
    hazard_weight: np.ndarray  # (10,)
    weapon_logit: np.ndarray  # (10,)
    revenge_logit: np.ndarray  # (10,)
    cat_rate: np.ndarray  # (9,)
    cat_escalation: np.ndarray  # (9,)
    station_rate: np.ndarray  # (n_stations,)
    station_escalation: np.ndarray  # (n_stations,)
    age_factor: np.ndarray  # by dispute age in days (the last entry holds for older ones)
    excite_decay: float
    hazard_decay: float
    first_weekday: int
    p: SimulationParams


def _make_tables(params: SimulationParams, station_rate, station_escalation, first_weekday):
    rates = dict(
        params.event_rates,
        mediation_success=params.mediation_rate,
        mediation_failed=params.mediation_rate,
    )
    kind_rate = np.array([rates.get(k, 0.0) for k in _STEP_KINDS])
    risky = np.array([_K[k] for k in _RISKY])
    office = np.array([_K[k] for k in _OFFICE])
    plain = np.setdiff1d(np.arange(10), np.concatenate([risky, office]))

    def per_kind(mapping):
        return np.array([mapping.get(k, 0.0) for k in _STEP_KINDS])

    return _Tables(
        kind_rate=kind_rate,
        risky_cols=risky,
        office_cols=office,
        plain_total=float(kind_rate[plain].sum()),
        risky_total=float(kind_rate[risky].sum()),
        # the two mediation kinds split one rate, so count it once
        office_total=float(kind_rate[office].sum() - params.mediation_rate),
        excite_weight=per_kind(params.excite_weights),
        hazard_weight=per_kind(params.hazard_weights),
        weapon_logit=per_kind(params.weapon_logits),
        revenge_logit=per_kind(params.revenge_logits),
        cat_rate=np.array([params.category_event_rate[c] for c in _CAT_CODES]),
        cat_escalation=np.array([params.category_escalation[c] for c in _CAT_CODES]),
        station_rate=np.asarray(station_rate, dtype=float),
        station_escalation=np.asarray(station_escalation, dtype=float),
        age_factor=params.age_floor
        + (1.0 - params.age_floor)
        * np.exp(-np.arange(int(50 * params.age_tau_days) + 2) / params.age_tau_days),
        excite_decay=math.exp(-1.0 / params.excite_tau_days),
        hazard_decay=math.exp(-1.0 / params.hazard_tau_days),
        first_weekday=int(first_weekday),
        p=params,
    )


# --------------------------------------------------------------------------------------
# the daily step (shared by the forward simulation and the oracle)


@dataclass
class _Rows:
    """Static attributes and Markov state of the rows stepped together (one per dispute
    in the forward simulation, one per cutoff x simulation in the oracle)."""

    rate: np.ndarray  # static event-rate multiplier (category x station)
    risk: np.ndarray  # static part of the log escalation hazard
    open_day: np.ndarray
    excite: np.ndarray
    hazard: np.ndarray
    last_day: np.ndarray

    @classmethod
    def start(cls, cat, station, prior, open_day, excite, hazard, last_day, tab: _Tables) -> _Rows:
        """Rows from static attributes and a state (the one constructor both sides use)."""
        p = tab.p
        return cls(
            rate=tab.cat_rate[cat] * tab.station_rate[station],
            risk=(
                p.escalation_base
                + tab.cat_escalation[cat]
                + tab.station_escalation[station]
                + p.escalation_prior_coef * np.minimum(prior, p.prior_cap)
            ),
            open_day=np.asarray(open_day, dtype=np.int64),
            excite=np.asarray(excite, dtype=float),
            hazard=np.asarray(hazard, dtype=float),
            last_day=np.asarray(last_day, dtype=np.int64),
        )

    def take(self, index: np.ndarray, append: _Rows | None = None) -> _Rows:
        """Rows ``index`` (followed by ``append``'s rows), copied."""
        names = [f.name for f in dataclasses.fields(self)]
        if append is None:
            return _Rows(*(getattr(self, name)[index] for name in names))
        return _Rows(
            *(np.concatenate([getattr(self, name)[index], getattr(append, name)]) for name in names)
        )


class _DayDraw(NamedTuple):
    escalated: np.ndarray  # (n,) bool
    dormant: np.ndarray  # (n,) bool, closed at this midnight
    mediated: np.ndarray  # (n,) bool, closed by a successful mediation (not escalated)
    event_row: np.ndarray  # (m,) row of each event of the day
    kind: np.ndarray  # (m,) int8 kind code
    weapon: np.ndarray  # (m,) bool
    revenge: np.ndarray  # (m,) bool
    closing: np.ndarray  # (m,) bool, a successful mediation that closes the dispute


def _expit(x):
    return 1.0 / (1.0 + np.exp(-x))


def _increments(kind, weapon, revenge, tab: _Tables):
    """Hazard and excitation added by events (the mechanism's only memory of them)."""
    hazard = tab.hazard_weight[kind] + tab.p.weapon_weight * weapon + tab.p.revenge_weight * revenge
    return hazard, tab.excite_weight[kind]


def _draw_keywords(kind, hazard, tab: _Tables, rng: np.random.Generator):
    h = np.clip(hazard, tab.p.hazard_min, tab.p.hazard_max) * tab.p.keyword_hazard_coef
    weapon = rng.random(kind.size) < _expit(tab.weapon_logit[kind] + h)
    revenge = rng.random(kind.size) < _expit(tab.revenge_logit[kind] + h)
    return weapon, revenge


def _step(rows: _Rows, day, tab: _Tables, rng: np.random.Generator) -> _DayDraw:
    """Advance every row through one day; update its state in place; return the draws.

    ``day`` is the day index (scalar, or one per row). Everything the day's probabilities
    depend on is in ``rows`` (state at the start of the day) and the calendar.
    """
    p = tab.p
    n = rows.excite.size
    dormant = (day - rows.last_day) > p.dormant_days
    age_factor = tab.age_factor[np.minimum(day - rows.open_day, tab.age_factor.size - 1)]
    weekday = (np.asarray(day) + tab.first_weekday) % 7 < 5
    office = np.broadcast_to(np.where(weekday, 1.0, p.weekend_office_factor), (n,))
    hazard = np.clip(rows.hazard, p.hazard_min, p.hazard_max)
    scale = np.clip(1.0 + rows.excite, p.excite_floor, p.excite_cap) * age_factor * rows.rate
    risky = np.exp(p.risky_sensitivity * hazard)
    intensity = scale * (tab.plain_total + risky * tab.risky_total + office * tab.office_total)
    log_hazard = rows.risk + p.escalation_hazard_coef * hazard
    if p.escalation_trend:
        log_hazard = log_hazard + p.escalation_trend * (np.asarray(day) / 365.25)
    escalated = (rng.random(n) < -np.expm1(-np.exp(log_hazard))) & ~dormant
    counts = rng.poisson(np.where(dormant, 0.0, intensity))

    event_row = np.repeat(np.arange(n), counts)
    row_hazard = hazard[event_row]
    weights = np.tile(tab.kind_rate, (event_row.size, 1))
    weights[:, tab.risky_cols] *= risky[event_row, None]
    weights[:, tab.office_cols] *= office[event_row, None]
    success = _expit(p.success_logit - p.success_hazard_coef * row_hazard)
    weights[:, _SUCCESS] *= success
    weights[:, _FAILED] *= 1.0 - success
    cumulative = weights.cumsum(axis=1)
    u = rng.random(event_row.size) * cumulative[:, -1]
    kind = np.minimum((u[:, None] > cumulative).sum(axis=1), 9).astype(np.int8)
    weapon, revenge = _draw_keywords(kind, rows.hazard[event_row], tab, rng)
    closing = (kind == _SUCCESS) & (rng.random(kind.size) < p.close_on_success)

    d_hazard, d_excite = _increments(kind, weapon, revenge, tab)
    rows.hazard *= tab.hazard_decay
    rows.hazard += np.bincount(event_row, weights=d_hazard, minlength=n)
    rows.excite *= tab.excite_decay
    rows.excite += np.bincount(event_row, weights=d_excite, minlength=n)
    rows.last_day[event_row] = np.broadcast_to(day, (n,))[event_row]
    mediated = np.zeros(n, dtype=bool)
    mediated[event_row[closing]] = True
    mediated &= ~escalated
    return _DayDraw(escalated, dormant, mediated, event_row, kind, weapon, revenge, closing)


# --------------------------------------------------------------------------------------
# time of day

_NIGHT = np.array([6, 5, 4, 2, 1, 1, 1, 1, 2, 2, 3, 3, 3, 3, 3, 3, 4, 4, 5, 6, 7, 8, 8, 7], float)
_DAY = np.array([2, 1, 1, 1, 1, 1, 2, 4, 6, 7, 7, 6, 5, 5, 6, 6, 6, 6, 7, 7, 6, 5, 4, 3], float)
_OFFICE_HOURS = (
    np.array([0, 0, 0, 0, 0, 0, 0, 0, 2, 9, 10, 8, 2, 2, 8, 9, 9, 6, 1, 0, 0, 0, 0, 0], float)
    + 0.02
)
_HOUR_PROFILE = {
    "call_110": _DAY,
    "quarrel": _DAY,
    "threat": _NIGHT,
    "fight": _NIGHT,
    "property_damage": _NIGHT,
    "mediation_success": _OFFICE_HOURS,
    "mediation_failed": _OFFICE_HOURS,
    "petition": _OFFICE_HOURS,
    "follow_up": _OFFICE_HOURS,
    "self_harm_threat": _NIGHT,
    "criminal_case": _NIGHT,
    "injury": _NIGHT,
}
_HOUR_CDF = np.array([np.cumsum(_HOUR_PROFILE[k]) / _HOUR_PROFILE[k].sum() for k in EVENT_KINDS])


def _seconds_of_day(kind: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random second of the day for each event, from its kind's hour profile."""
    u = rng.random(kind.size)
    hour = np.empty(kind.size, dtype=np.int64)
    for code in np.unique(kind):  # loop over kinds (12), vectorised within
        mask = kind == code
        hour[mask] = np.searchsorted(_HOUR_CDF[code], u[mask], side="right")
    hour = np.minimum(hour, 23)
    return hour * 3600 + rng.integers(0, 3600, kind.size)


def _escalation_second(n: int, rng: np.random.Generator) -> np.ndarray:
    return _seconds_of_day(np.full(n, _CRIMINAL, dtype=np.int8), rng)


# --------------------------------------------------------------------------------------
# narratives

_SURNAMES = ("张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴", "徐", "孙")
_WEAPON_PHRASES = ("持菜刀威胁对方", "扬言要砍人", "手持砍刀", "拿着水果刀比划")
_REVENGE_PHRASES = ("扬言要报复", "称要同归于尽", "扬言要跟对方拼命", "扬言要喝农药")
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "call_110": (
        "{who}某报警称与邻居发生纠纷{kw}，请求民警到场处理。",
        "报警人{who}某称对方在其家门口吵闹{kw}，民警已到场。",
        "{who}某来电反映双方因琐事产生矛盾{kw}，要求出警。",
        "110指令：{who}某称有人上门闹事{kw}，民警前往处置。",
        "{who}某报警称被对方堵在小区门口{kw}，现场情绪激动。",
        "{who}某电话报警，称纠纷再次发生{kw}，请求派出所介入。",
    ),
    "quarrel": (
        "双方在{who}某家门口发生口角{kw}，经民警劝说后离开。",
        "{who}某与对方因旧账在村口争吵{kw}，围观群众较多。",
        "{who}某与对方在工地发生争执{kw}，未造成人员受伤。",
        "{who}某称对方当众辱骂{kw}，双方互不相让。",
        "因噪音问题{who}某与楼上住户发生争吵{kw}，民警到场调处。",
        "{who}某与家人因财产分配吵闹{kw}，邻居报警。",
    ),
    "threat": (
        "{who}某称被对方当面威胁{kw}，要求民警处理。",
        "{who}某收到对方发来的威胁短信{kw}，已截图留存。",
        "对方在微信群中辱骂{who}某{kw}，{who}某担心人身安全。",
        "{who}某反映对方多次上门恐吓{kw}，家人不敢出门。",
        "{who}某称对方醉酒后打电话威胁{kw}。",
        "对方在{who}某店门口放狠话{kw}，情绪激动。",
    ),
    "fight": (
        "{who}某与对方发生肢体冲突{kw}，双方均有轻微擦伤。",
        "双方在{who}某家中推搡厮打{kw}，民警到场制止。",
        "{who}某称被对方殴打{kw}，现场已被群众拉开。",
        "{who}某与对方在路边互殴{kw}，民警将双方带回所里。",
        "{who}某一方多人与对方发生打斗{kw}，现场混乱。",
        "{who}某与对方因口角动手{kw}，经劝阻后停止。",
    ),
    "property_damage": (
        "{who}某称家中门窗被对方砸坏{kw}，要求赔偿。",
        "{who}某的车辆被划伤{kw}，怀疑系对方所为。",
        "对方将{who}某院墙推倒{kw}，双方僵持不下。",
        "{who}某店铺招牌被砸{kw}，民警到场取证。",
        "{who}某称地里庄稼被对方毁坏{kw}。",
        "{who}某的电动车被对方故意损坏{kw}。",
    ),
    "mediation_success": (
        "经人民调解委员会调解，{who}某与对方达成和解{kw}，签订协议。",
        "民警组织双方调解，{who}某同意赔偿，矛盾已化解{kw}。",
        "在村委会主持下{who}某与对方握手言和{kw}。",
        "经司法所调解，{who}某与对方达成一致{kw}，纠纷化解。",
        "派出所调解成功，{who}某当场履行协议{kw}。",
        "双方在社区调解室达成谅解{kw}，{who}某表示不再追究。",
    ),
    "mediation_failed": (
        "组织{who}某与对方调解，双方分歧较大，调解未果{kw}。",
        "{who}某拒绝调解方案{kw}，调解失败。",
        "调解过程中{who}某情绪激动{kw}，调解中止。",
        "{who}某与对方对赔偿金额分歧大{kw}，未能达成协议。",
        "对方未到场，{who}某不接受调解结果{kw}。",
        "经多次调解{who}某仍不满意{kw}，建议通过诉讼解决。",
    ),
    "petition": (
        "{who}某到派出所反映问题{kw}，要求尽快解决。",
        "{who}某到信访部门上访{kw}，反映纠纷长期未处理。",
        "{who}某向街道递交材料{kw}，要求主持公道。",
        "{who}某拨打热线投诉处理不公{kw}。",
        "{who}某到镇政府反映情况{kw}，情绪激动。",
        "{who}某多次到所里求助{kw}，要求追究对方责任。",
    ),
    "follow_up": (
        "民警回访{who}某，双方近期未再发生冲突{kw}。",
        "社区网格员走访{who}某，了解纠纷进展{kw}。",
        "民警电话回访{who}某，其表示情况稳定{kw}。",
        "对{who}某纠纷进行跟踪回访{kw}，继续关注。",
        "回访中{who}某反映对方仍有不满{kw}。",
        "民警上门走访{who}某，做好稳控工作{kw}。",
    ),
    "self_harm_threat": (
        "{who}某情绪低落，称不想活了{kw}，民警到场劝导。",
        "{who}某站在楼顶情绪激动{kw}，经劝说后下来。",
        "{who}某给家人发消息称要轻生{kw}，家属报警。",
        "{who}某因纠纷未解决扬言轻生{kw}，已通知家属看护。",
        "{who}某在派出所门口以死相逼{kw}。",
        "{who}某称走投无路{kw}，民警联系心理疏导。",
    ),
    "criminal_case": (
        "{who}某持械伤人{kw}，已立为刑事案件。",
        "{who}某涉嫌故意伤害{kw}，已被刑事拘留。",
        "纠纷升级，{who}某纵火烧毁对方财物{kw}，已立案侦查。",
        "{who}某涉嫌寻衅滋事{kw}，转刑事案件办理。",
        "{who}某非法侵入对方住宅并伤人{kw}，已立刑事案件。",
        "{who}某雇人殴打对方{kw}，已立案。",
    ),
    "injury": (
        "{who}某被打伤送医{kw}，经鉴定为轻伤。",
        "{who}某与对方冲突中受伤{kw}，已送医院救治。",
        "{who}某头部被砸伤{kw}，伤情较重。",
        "冲突中{who}某被刺伤{kw}，已送医抢救。",
        "{who}某被对方推倒摔伤{kw}，住院治疗。",
        "{who}某在冲突中多处受伤{kw}，正在鉴定伤情。",
    ),
}
_N_TEMPLATES = 6
_N_KW = len(_WEAPON_PHRASES) + 1  # variant 0 = no keyword
_TYPOS = (
    ("民警", "民井"),
    ("调解", "调节"),
    ("纠纷", "纠份"),
    ("的", "得"),
    ("在", "再"),
    ("对方", "队方"),
    ("报警", "报经"),
    ("双方", "双放"),
    ("情绪", "情续"),
    ("。", "。。"),
)


def _keyword_clause(weapon: int, revenge: int) -> str:
    phrases = []
    if weapon:
        phrases.append(_WEAPON_PHRASES[weapon - 1])
    if revenge:
        phrases.append(_REVENGE_PHRASES[revenge - 1])
    return "，对方" + "，".join(phrases) if phrases else ""


def _with_typo(text: str, index: int) -> str:
    for offset in range(len(_TYPOS)):
        right, wrong = _TYPOS[(index + offset) % len(_TYPOS)]
        if right in text:
            return text.replace(right, wrong, 1)
    return text + "。"


def _narrative_table() -> list[str]:
    """Every narrative the simulator can write, indexed by :func:`_narrative_code`."""
    table = []
    for kind in EVENT_KINDS:
        for template in _TEMPLATES[kind]:
            for who in _SURNAMES:
                for weapon in range(_N_KW):
                    for revenge in range(_N_KW):
                        text = template.format(who=who, kw=_keyword_clause(weapon, revenge))
                        table += [text, _with_typo(text, len(table))]
    return table


def _narrative_code(kind, template, surname, weapon_variant, revenge_variant, typo):
    code = kind.astype(np.int64) * _N_TEMPLATES + template
    code = code * len(_SURNAMES) + surname
    code = (code * _N_KW + weapon_variant) * _N_KW + revenge_variant
    return code * 2 + typo


_NARRATIVES: pa.Array | None = None


def _narratives() -> pa.Array:
    global _NARRATIVES
    if _NARRATIVES is None:
        _NARRATIVES = pa.array(_narrative_table(), type=pa.large_string())
    return _NARRATIVES


def _numbered_ids(prefix: str, count: int) -> pa.Array:
    """``prefix`` + 1-based zero-padded numbers ("D0000001", ...), built in Arrow."""
    width = max(7, len(str(count)))
    numbers = pc.utf8_lpad(pa.array(np.arange(1, count + 1)).cast(pa.large_string()), width, "0")
    return pc.binary_join_element_wise(
        pa.scalar(prefix, pa.large_string()), numbers, pa.scalar("", pa.large_string())
    )


def _take_strings(table: pa.Array, codes: np.ndarray, missing: np.ndarray | None = None):
    """``table[codes]`` as a pandas ``str`` array (missing where ``missing``), in C."""
    indices = pa.array(codes, mask=missing)
    return pd.array(table.take(indices), dtype="str")


# --------------------------------------------------------------------------------------
# the simulation result


@dataclass(frozen=True, eq=False, repr=False)
class Simulation:
    """A simulated dispute history and its ground truth.

    Attributes
    ----------
    events : DataFrame
        ``dispute_id``, ``time``, ``kind``, ``narrative``, ``party_id``; sorted by dispute
        then time.
    entities : DataFrame
        One row per dispute: ``dispute_id``, ``category``, ``category_zh``, ``station``,
        ``opened_at``, ``closed_at``, ``n_parties``, ``close_reason``.
    schema : EventSchema
        The schema describing both frames (the defaults).
    params : SimulationParams
        The mechanism's parameters.
    start, end : Timestamp
        First and last simulated day.
    seed : int
        Seed of the generator.
    """

    events: pd.DataFrame
    entities: pd.DataFrame
    schema: EventSchema
    params: SimulationParams
    start: pd.Timestamp
    end: pd.Timestamp
    seed: int
    _truth: _Truth = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"Simulation(n_disputes={len(self.entities):,}, n_events={len(self.events):,}, "
            f"start={self.start.date()}, end={self.end.date()}, seed={self.seed})"
        )

    # ----------------------------------------------------------------------------------
    def true_probability(
        self,
        cutoffs: pd.DataFrame,
        horizon: str | pd.Timedelta = "90D",
        *,
        n_sims: int = 200,
        seed: int = 0,
    ) -> pd.DataFrame:
        """The true probability of an escalation in ``[as_of, as_of + horizon)``.

        For each cutoff the dispute's Markov state is rebuilt from its events before the
        cutoff and ``n_sims`` continuations are run with the simulator's own daily step.

        Parameters
        ----------
        cutoffs : DataFrame
            Columns ``dispute_id`` and ``as_of`` (any order, any number per dispute).
        horizon : str or Timedelta, default="90D"
            Length of the outcome window.
        n_sims : int, default=200
            Monte Carlo continuations per cutoff.
        seed : int, default=0
            Seed of the Monte Carlo generator.

        Returns
        -------
        DataFrame
            Aligned with ``cutoffs``' rows: ``dispute_id``, ``as_of``, ``probability``,
            ``std_error`` (binomial standard error of the estimate). Disputes closed or
            escalated before ``as_of`` get 0 (standard error 0). Cutoffs at or before the
            dispute's opening, or after the last simulated day (history unknown), get NaN.

        Notes
        -----
        A cutoff at midnight is exact up to Monte Carlo error. For a cutoff inside a day
        the state is rebuilt at the preceding midnight (the day's own events before
        ``as_of`` are ignored), an escalation counts if its simulated time falls in the
        window, and continuations that escalate between that midnight and ``as_of`` are
        discarded (the data show none did); on the opening day the state after the
        opening event is used.

        Examples
        --------
        >>> from riskmodel import simulate_disputes
        >>> sim = simulate_disputes(200, seed=1)
        >>> cut = sim.entities[["dispute_id"]].head(2).assign(as_of=pd.Timestamp("2024-03-01"))
        >>> list(sim.true_probability(cut, n_sims=20).columns)
        ['dispute_id', 'as_of', 'probability', 'std_error']
        """
        if not isinstance(cutoffs, pd.DataFrame):
            raise DataError(f"cutoffs must be a DataFrame, got {type(cutoffs).__name__}.")
        missing = [c for c in ("dispute_id", "as_of") if c not in cutoffs.columns]
        if missing:
            raise DataError(
                f"cutoffs is missing column(s) {missing}; it has {list(cutoffs.columns)}."
            )
        if int(n_sims) < 1:
            raise ConfigError(f"n_sims must be >= 1, got {n_sims!r}.")
        horizon = parse_duration(horizon, "horizon")
        truth = self._truth
        ids = cutoffs["dispute_id"].astype(str).to_numpy()
        index = pd.Index(self.entities["dispute_id"].astype(str)).get_indexer(ids)
        if (index < 0).any():
            unknown = pd.unique(ids[index < 0])[:5].tolist()
            raise DataError(
                f"cutoffs: {int((index < 0).sum())} row(s) name disputes that are not in this "
                f"simulation, e.g. {unknown}."
            )
        try:
            as_of = pd.to_datetime(cutoffs["as_of"])
        except (ValueError, TypeError) as exc:
            raise DataError(f"cutoffs: 'as_of' could not be parsed as times: {exc}") from exc
        if isinstance(as_of.dtype, pd.DatetimeTZDtype):
            raise DataError(
                "cutoffs: 'as_of' is timezone-aware but the simulation's clock is naive local "
                "time; pass naive times (e.g. as_of.dt.tz_localize(None))."
            )
        if as_of.isna().any():
            raise DataError("cutoffs: 'as_of' has missing or unparseable values.")
        days = ((as_of - self.start) / pd.Timedelta(days=1)).to_numpy(dtype=float)
        result = _oracle(
            truth,
            index,
            days,
            horizon / pd.Timedelta(days=1),
            int(n_sims),
            np.random.default_rng(seed),
        )
        return pd.DataFrame(
            {
                "dispute_id": cutoffs["dispute_id"].to_numpy(),
                "as_of": as_of.to_numpy(),
                "probability": result[0],
                "std_error": result[1],
            },
            index=cutoffs.index,
        )

    # ----------------------------------------------------------------------------------
    def snapshots(self, horizon: str | pd.Timedelta = "90D", *, freq: str = "MS") -> pd.DataFrame:
        """Open-dispute snapshots with their observed labels.

        One cutoff per dispute open at each midnight of ``pd.date_range(start, end,
        freq=freq)`` whose window ``[as_of, as_of + horizon)`` ends by the end of the
        simulation, labelled 1 if the dispute has an outcome event in the window.

        Returns
        -------
        DataFrame
            ``dispute_id``, ``as_of``, ``label`` (int8).
        """
        horizon = pd.Timedelta(horizon)
        stop = self.end + pd.Timedelta(days=1)
        dates = pd.date_range(self.start, self.end, freq=freq)
        dates = dates[dates + horizon <= stop]
        ent = self.entities
        opened = ent["opened_at"].to_numpy()
        closed = ent["closed_at"].to_numpy()
        escalated = (ent["close_reason"] == "escalated").to_numpy()
        frames = []
        for date in dates.to_numpy():  # one per month, vectorised over disputes
            is_open = (opened < date) & ~(closed < date)
            label = escalated & (closed >= date) & (closed < date + horizon.to_timedelta64())
            frames.append(
                pd.DataFrame(
                    {
                        "dispute_id": ent["dispute_id"].to_numpy()[is_open],
                        "as_of": date,
                        "label": label[is_open].astype("int8"),
                    }
                )
            )
        if not frames:
            return pd.DataFrame(
                {
                    "dispute_id": pd.Series(dtype="str"),
                    "as_of": pd.Series(dtype="datetime64[ns]"),
                    "label": pd.Series(dtype="int8"),
                }
            )
        out = pd.concat(frames, ignore_index=True)
        out["as_of"] = out["as_of"].astype("datetime64[ns]")
        return out

    # ----------------------------------------------------------------------------------
    def summary(self) -> str:
        """A printable multi-line summary of the simulated data."""
        ev, ent = self.events, self.entities
        escalated = (ent["close_reason"] == "escalated").mean()
        snaps = self.snapshots("90D")
        snap_rate = snaps["label"].mean() if len(snaps) else float("nan")
        lines = [
            f"Simulation(seed={self.seed}): {len(ent):,} disputes, {len(ev):,} events, "
            f"{ev['party_id'].nunique():,} people",
            f"period: {self.start.date()} .. {self.end.date()}; events "
            f"{ev['time'].min()} .. {ev['time'].max()}",
            f"events per dispute: {len(ev) / max(len(ent), 1):.2f}; missing narratives: "
            f"{ev['narrative'].isna().mean():.1%}",
            f"escalation rate (share of disputes escalating): {escalated:.2%}",
            f"90-day escalation rate of monthly open-dispute snapshots: {snap_rate:.2%} "
            f"({len(snaps):,} snapshots)",
            f"closed: {ent['close_reason'].value_counts().to_dict()}",
            "",
            "disputes by category:",
        ]
        by_cat = ent.groupby("category", observed=True).agg(
            n=("dispute_id", "size"),
            escalated=("close_reason", lambda s: (s == "escalated").mean()),
        )
        for code, row in by_cat.iterrows():
            lines.append(
                f"  {code:<14}{CATEGORIES[code]:<8}{int(row['n']):>10,}  escalated {row['escalated']:.2%}"
            )
        lines.append("events by kind:")
        for kind, count in ev["kind"].value_counts().items():
            lines.append(f"  {kind:<20}{count:>12,}")
        lines.append("disputes by station:")
        counts = ent["station"].value_counts().sort_index()
        for start in range(0, len(counts), 6):
            chunk = counts.iloc[start : start + 6]
            lines.append("  " + "  ".join(f"{s}:{c:,}" for s, c in chunk.items()))
        return "\n".join(lines)


@dataclass(frozen=True)
class _Truth:
    """What the oracle needs: static attributes and the mechanism's own event record."""

    tables: _Tables
    n_days: int
    cat: np.ndarray
    station: np.ndarray
    prior: np.ndarray
    open_day: np.ndarray
    opened_sec: np.ndarray  # seconds since start of the opening event
    ended_sec: np.ndarray  # seconds since start of closure/escalation, inf if open at end
    ev_ptr: np.ndarray  # events of dispute i are ev_*[ev_ptr[i]:ev_ptr[i + 1]]
    ev_day: np.ndarray
    ev_kind: np.ndarray
    ev_weapon: np.ndarray
    ev_revenge: np.ndarray
    _state: dict = field(default_factory=dict, repr=False)

    def event_states(self) -> tuple[np.ndarray, np.ndarray]:
        """Hazard and excitation right after each event's day (start of the next day).

        Rebuilt from the events alone: ``V_k = V_{k-1} * decay ** (day_k - day_{k-1}) + inc_k``
        within each dispute, vectorised over disputes by the event's rank.
        """
        if "hazard" not in self._state:
            tab = self.tables
            inc_h, inc_e = _increments(self.ev_kind, self.ev_weapon, self.ev_revenge, tab)
            n_events = np.diff(self.ev_ptr)
            rank = np.arange(self.ev_day.size) - np.repeat(self.ev_ptr[:-1], n_events)
            hazard, excite = inc_h.astype(float), inc_e.astype(float)
            order = np.argsort(rank, kind="stable")
            bounds = np.searchsorted(rank[order], np.arange(1, int(n_events.max(initial=0)) + 1))
            bounds = np.append(bounds, order.size)
            for k in range(len(bounds) - 1):  # loop over ranks, vectorised over disputes
                idx = order[bounds[k] : bounds[k + 1]]
                gap = self.ev_day[idx] - self.ev_day[idx - 1]
                hazard[idx] += hazard[idx - 1] * tab.hazard_decay**gap
                excite[idx] += excite[idx - 1] * tab.excite_decay**gap
            self._state["hazard"], self._state["excite"] = hazard, excite
        return self._state["hazard"], self._state["excite"]


def _oracle(
    truth: _Truth,
    dispute: np.ndarray,
    as_of_day: np.ndarray,
    horizon_days: float,
    n_sims: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo estimate of P(escalation in [as_of, as_of + horizon) | history)."""
    tab = truth.tables
    n_cut = dispute.size
    probability = np.full(n_cut, np.nan)
    std_error = np.full(n_cut, np.nan)
    as_of_sec = as_of_day * 86400.0
    ended = truth.ended_sec[dispute] < as_of_sec
    probability[ended], std_error[ended] = 0.0, 0.0
    start_day = np.maximum(np.floor(as_of_day), truth.open_day[dispute] + 1).astype(np.int64)
    known = as_of_sec > truth.opened_sec[dispute]
    todo = np.flatnonzero(known & ~ended & (np.floor(as_of_day) <= truth.n_days))
    if todo.size == 0:
        return probability, std_error

    # rebuild the state at the midnight starting day `start_day` from events before it
    hazard_after, excite_after = truth.event_states()
    d, s = dispute[todo], start_day[todo]
    lo, hi = truth.ev_ptr[d], truth.ev_ptr[d + 1]
    # events of one dispute are sorted by day: count those before day s
    key = truth.ev_day.astype(np.int64) + np.repeat(
        np.arange(truth.ev_ptr.size - 1, dtype=np.int64), np.diff(truth.ev_ptr)
    ) * (1 << 32)
    last = np.searchsorted(key, d.astype(np.int64) * (1 << 32) + s) - 1
    if (last < lo).any() or (last >= hi).any():  # cannot happen: the opening event precedes s
        raise RuntimeError("simulator bug: a cutoff's dispute has no event before its start day")
    gap = s - 1 - truth.ev_day[last]
    base = _Rows.start(
        truth.cat[d],
        truth.station[d],
        truth.prior[d],
        truth.open_day[d],
        excite=excite_after[last] * tab.excite_decay**gap,
        hazard=hazard_after[last] * tab.hazard_decay**gap,
        last_day=truth.ev_day[last],
        tab=tab,
    )
    window_start = as_of_day[todo] - s  # relative to the start midnight, may be < 0
    window_end = window_start + horizon_days
    n_steps = np.ceil(window_end).astype(np.int64)

    hits = np.zeros(todo.size)
    valid = np.zeros(todo.size)
    chunk = max(1, 2_000_000 // n_sims)  # cutoffs per batch, bounds memory
    for begin in range(0, todo.size, chunk):
        sel = np.arange(begin, min(begin + chunk, todo.size))
        cut = np.repeat(sel, n_sims)  # row -> cutoff position in `todo`
        rows = base.take(cut)
        row_hit = np.zeros(cut.size, dtype=bool)
        row_invalid = np.zeros(cut.size, dtype=bool)
        alive = np.arange(cut.size)
        for k in range(int(n_steps[sel].max())):
            keep = k < n_steps[cut[alive]]
            if not keep.all():
                alive, rows = alive[keep], rows.take(np.flatnonzero(keep))
            if alive.size == 0:
                break
            draw = _step(rows, s[cut[alive]] + k, tab, rng)
            esc = np.flatnonzero(draw.escalated)
            when = k + _escalation_second(esc.size, rng) / 86400.0
            row = alive[esc]
            row_hit[row] = (when >= window_start[cut[row]]) & (when < window_end[cut[row]])
            row_invalid[row] = when < window_start[cut[row]]
            stay = ~(draw.escalated | draw.dormant | draw.mediated)
            if not stay.all():
                alive, rows = alive[stay], rows.take(np.flatnonzero(stay))
        hits[sel] = np.bincount(cut, weights=row_hit, minlength=todo.size)[sel]
        valid[sel] = np.bincount(cut, weights=~row_invalid, minlength=todo.size)[sel]
    with np.errstate(invalid="ignore", divide="ignore"):
        p_hat = hits / valid
        se = np.sqrt(p_hat * (1.0 - p_hat) / valid)
    probability[todo], std_error[todo] = p_hat, se
    return probability, std_error


# --------------------------------------------------------------------------------------
# the forward simulation


def simulate_disputes(
    n_disputes: int = 5000,
    *,
    start: str | pd.Timestamp = "2023-01-01",
    end: str | pd.Timestamp = "2025-12-31",
    seed: int = 0,
    **params: Any,
) -> Simulation:
    """Simulate dispute histories whose escalation probability is known exactly.

    Parameters
    ----------
    n_disputes : int, default=5000
        Number of disputes opened over the period.
    start, end : str or Timestamp
        First and last simulated day (naive dates).
    seed : int, default=0
        Seed of the numpy generator; the same seed gives the same data.
    **params
        Overrides of :class:`SimulationParams` fields; mapping-valued ones may be partial.

    Returns
    -------
    Simulation
        The events, the entities, the schema, the parameters and the oracle
        :meth:`Simulation.true_probability`.

    Raises
    ------
    ConfigError
        For an unknown parameter, a value out of range, or an empty period.

    Examples
    --------
    >>> from riskmodel import simulate_disputes
    >>> sim = simulate_disputes(300, seed=3)
    >>> sim.entities["category"].nunique()
    9
    >>> simulate_disputes(10, rate=1.0)
    Traceback (most recent call last):
    ...
    riskmodel._errors.ConfigError: simulate_disputes got unknown parameter(s) ['rate']; ...
    """
    p = SimulationParams.from_overrides(params)
    n = int(n_disputes)
    if n < 1:
        raise ConfigError(f"n_disputes must be >= 1, got {n_disputes!r}.")
    try:
        start_ts, end_ts = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"start/end must be dates, got {start!r} and {end!r}.") from exc
    if start_ts.tzinfo is not None or end_ts.tzinfo is not None:
        raise ConfigError("start and end must be naive dates (the simulator's clock is local).")
    n_days = (end_ts - start_ts).days + 1
    if n_days < 2:
        raise ConfigError(f"end ({end_ts.date()}) must be after start ({start_ts.date()}).")
    rng = np.random.default_rng(seed)

    # static world: stations, disputes, parties
    n_st = p.n_stations
    station_volume = np.exp(rng.normal(0, p.station_volume_sd, n_st))
    station_rate = np.exp(rng.normal(0, p.station_event_rate_sd, n_st))
    station_escalation = rng.normal(0, p.station_escalation_sd, n_st)
    tab = _make_tables(p, station_rate, station_escalation, start_ts.day_of_week)

    dates = start_ts + pd.to_timedelta(np.arange(n_days), unit="D")
    season = 1 + p.summer_amplitude * np.cos(
        2 * np.pi * (dates.day_of_year.to_numpy() - p.peak_day_of_year) / 365.25
    )
    open_day = np.sort(rng.choice(n_days, size=n, p=season / season.sum()))
    cat_share = np.array([p.category_share[c] for c in _CAT_CODES])
    cat = rng.choice(9, size=n, p=cat_share / cat_share.sum()).astype(np.int8)
    station = rng.choice(n_st, size=n, p=station_volume / station_volume.sum()).astype(np.int16)
    parties, n_parties, n_people = _draw_parties(n, p, rng)

    # daily loop
    person_escalations = np.zeros(n_people, dtype=np.int32)
    prior = np.zeros(n, dtype=np.int16)
    day_ptr = np.searchsorted(open_day, np.arange(n_days + 1))
    opening_kinds = np.array([_K[k] for k in p.opening_kind_probs])
    opening_p = np.array(list(p.opening_kind_probs.values()), dtype=float)
    active_id = np.zeros(0, dtype=np.int64)
    active = _Rows.start(cat[:0], station[:0], prior[:0], open_day[:0], [], [], [], tab)
    ev_parts: list[tuple] = []
    esc_parts, dormant_parts, mediated_parts = [], [], []
    for t in range(n_days):
        if active_id.size:
            draw = _step(active, t, tab, rng)
            ev_parts.append(
                (
                    active_id[draw.event_row],
                    np.full(draw.kind.size, t, np.int32),
                    draw.kind,
                    draw.weapon,
                    draw.revenge,
                    draw.closing,
                )
            )
            esc = active_id[draw.escalated]
            esc_parts.append((esc, t))
            dormant_parts.append((active_id[draw.dormant], t))
            mediated_parts.append((active_id[draw.mediated], t))
            if esc.size:
                people = parties[esc].ravel()
                np.add.at(person_escalations, people[people >= 0], 1)
            stay = np.flatnonzero(~(draw.escalated | draw.dormant | draw.mediated))
        else:
            stay = np.arange(0)
        new = np.arange(day_ptr[t], day_ptr[t + 1])
        opened = None
        if new.size:
            # parties' escalations before the opening day (today's are not counted)
            counts = np.where(parties[new] >= 0, person_escalations[parties[new]], 0)
            prior[new] = counts.sum(axis=1)
            kind = opening_kinds[
                rng.choice(opening_kinds.size, size=new.size, p=opening_p / opening_p.sum())
            ].astype(np.int8)
            weapon, revenge = _draw_keywords(kind, np.zeros(new.size), tab, rng)
            d_hazard, d_excite = _increments(kind, weapon, revenge, tab)
            ev_parts.append(
                (
                    new,
                    np.full(new.size, t, np.int32),
                    kind,
                    weapon,
                    revenge,
                    np.zeros(new.size, bool),
                )
            )
            opened = _Rows.start(
                cat[new],
                station[new],
                prior[new],
                open_day[new],
                d_excite,
                d_hazard,
                np.full(new.size, t),
                tab,
            )
        if opened is not None or stay.size < active_id.size:
            active_id = np.concatenate([active_id[stay], new])
            active = active.take(stay, append=opened)

    return _assemble(
        n,
        n_days,
        start_ts,
        end_ts,
        seed,
        p,
        tab,
        cat,
        station,
        prior,
        open_day,
        parties,
        n_parties,
        n_people,
        ev_parts,
        esc_parts,
        dormant_parts,
        mediated_parts,
        rng,
    )


def _draw_parties(n: int, p: SimulationParams, rng: np.random.Generator):
    """Parties of each dispute from a pool where some people recur."""
    counts = np.array(sorted(int(k) for k in p.party_count_probs))
    probs = np.array([p.party_count_probs[k] for k in sorted(p.party_count_probs, key=int)])
    n_parties = rng.choice(counts, size=n, p=probs / probs.sum()).astype(np.int8)
    pool = max(10, int(math.ceil(p.party_pool_ratio * n)))
    propensity = np.exp(rng.normal(0, p.party_propensity_sd, pool))
    width = int(counts.max())
    cdf = np.cumsum(propensity)
    u = rng.random(n * width) * cdf[-1]
    order = np.argsort(u)  # sorted needles make the search cache-friendly
    parties = np.empty(n * width, dtype=np.int64)
    parties[order] = np.searchsorted(cdf, u[order], side="right")
    parties = np.minimum(parties, pool - 1).reshape(n, width)
    parties[np.arange(width)[None, :] >= n_parties[:, None]] = -1
    next_id = pool
    for j in range(1, width):  # a person is a party of a dispute at most once
        clash = np.zeros(n, dtype=bool)
        for i in range(j):
            clash |= (parties[:, j] == parties[:, i]) & (parties[:, j] >= 0)
        n_clash = int(clash.sum())
        parties[clash, j] = np.arange(next_id, next_id + n_clash)
        next_id += n_clash
    return parties, n_parties, next_id


def _concat(parts, position, dtype):
    arrays = [part[position] for part in parts]
    return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype)


def _assemble(
    n,
    n_days,
    start_ts,
    end_ts,
    seed,
    p,
    tab,
    cat,
    station,
    prior,
    open_day,
    parties,
    n_parties,
    n_people,
    ev_parts,
    esc_parts,
    dormant_parts,
    mediated_parts,
    rng,
):
    """Turn the day-by-day draws into the events and entities frames and the oracle's record."""
    ev_d = _concat(ev_parts, 0, np.int64)
    ev_day = _concat(ev_parts, 1, np.int64)
    ev_kind = _concat(ev_parts, 2, np.int8)
    ev_weapon = _concat(ev_parts, 3, bool)
    ev_revenge = _concat(ev_parts, 4, bool)
    ev_closing = _concat(ev_parts, 5, bool)
    order = np.argsort(ev_d, kind="stable")  # days are already in order within a dispute
    ev_d, ev_day, ev_kind = ev_d[order], ev_day[order], ev_kind[order]
    ev_weapon, ev_revenge, ev_closing = ev_weapon[order], ev_revenge[order], ev_closing[order]
    ev_ptr = np.searchsorted(ev_d, np.arange(n + 1))

    def ends(parts):
        ids = np.concatenate([q[0] for q in parts]) if parts else np.zeros(0, np.int64)
        days = np.concatenate([np.full(q[0].size, q[1]) for q in parts]) if parts else ids
        return ids.astype(np.int64), days.astype(np.int64)

    esc_id, esc_day = ends(esc_parts)
    dormant_id, dormant_day = ends(dormant_parts)
    mediated_id, _ = ends(mediated_parts)

    # times of day, then cut the last day of ended disputes at the ending moment
    ev_sec = ev_day * 86400 + _seconds_of_day(ev_kind, rng)
    ended_sec = np.full(n, np.inf)
    reason = np.full(n, 0, np.int8)  # 0 open, 1 mediated, 2 dormant, 3 escalated
    esc_sec = esc_day * 86400 + _escalation_second(esc_id.size, rng)
    ended_sec[esc_id] = esc_sec
    reason[esc_id] = 3
    ended_sec[dormant_id] = dormant_day * 86400.0
    reason[dormant_id] = 2
    is_mediated = np.zeros(n, dtype=bool)
    is_mediated[mediated_id] = True
    closing = ev_closing & is_mediated[ev_d]
    close_sec = np.full(n, np.inf)
    np.minimum.at(close_sec, ev_d[closing], ev_sec[closing].astype(float))
    ended_sec[mediated_id] = close_sec[mediated_id]
    reason[mediated_id] = 1
    is_escalated = reason[ev_d] == 3
    keep = np.where(is_escalated, ev_sec < ended_sec[ev_d], ev_sec <= ended_sec[ev_d])
    # the opening event always stays (it defines the dispute), even if an escalation
    # on the opening day is impossible anyway
    truth = _Truth(
        tables=tab,
        n_days=n_days,
        cat=cat,
        station=station,
        prior=prior,
        open_day=open_day.astype(np.int64),
        opened_sec=(ev_sec[ev_ptr[:-1]]).astype(float),
        ended_sec=ended_sec,
        ev_ptr=ev_ptr,
        ev_day=ev_day,
        ev_kind=ev_kind,
        ev_weapon=ev_weapon,
        ev_revenge=ev_revenge,
    )

    # observed events: kept step events + outcome events + near-duplicate records
    out_d = np.concatenate([ev_d[keep], esc_id])
    out_sec = np.concatenate([ev_sec[keep], esc_sec])
    out_kind = np.concatenate(
        [
            ev_kind[keep],
            np.where(rng.random(esc_id.size) < p.injury_share, _INJURY, _CRIMINAL).astype(np.int8),
        ]
    )
    out_weapon = np.concatenate([ev_weapon[keep], rng.random(esc_id.size) < 0.5])
    out_revenge = np.concatenate([ev_revenge[keep], np.zeros(esc_id.size, bool)])
    m = out_d.size
    narrative = _narrative_code(
        out_kind,
        rng.integers(0, _N_TEMPLATES, m),
        rng.integers(0, len(_SURNAMES), m),
        np.where(out_weapon, rng.integers(1, _N_KW, m), 0),
        np.where(out_revenge, rng.integers(1, _N_KW, m), 0),
        (rng.random(m) < p.typo_rate).astype(np.int64),
    )
    width = parties.shape[1]
    slot = np.minimum((rng.random(m) * n_parties[out_d]).astype(np.int64), width - 1)
    party = parties[out_d, slot]

    dup_kinds = np.array(
        [_K[k] for k in ("call_110", "quarrel", "threat", "fight", "property_damage")]
    )
    dup = np.flatnonzero(np.isin(out_kind, dup_kinds) & (rng.random(m) < p.duplicate_rate))
    dup_sec = out_sec[dup] + rng.integers(60, 15 * 60, dup.size)
    fits = (dup_sec < ended_sec[out_d[dup]]) & (dup_sec < n_days * 86400)
    dup, dup_sec = dup[fits], dup_sec[fits]
    out_d = np.concatenate([out_d, out_d[dup]])
    out_sec = np.concatenate([out_sec, dup_sec])
    out_kind = np.concatenate([out_kind, out_kind[dup]])
    narrative = np.concatenate([narrative, narrative[dup]])
    party = np.concatenate([party, party[dup]])
    missing = rng.random(out_d.size) < p.missing_narrative_rate

    order = np.lexsort((out_sec, out_d))
    out_d, out_sec, out_kind = out_d[order], out_sec[order], out_kind[order]
    narrative, party, missing = narrative[order], party[order], missing[order]

    dispute_ids = _numbered_ids("D", n)
    person_ids = _numbered_ids("P", n_people)
    kinds = pa.array(list(EVENT_KINDS), type=pa.large_string())
    start_ns = start_ts.to_datetime64().astype("datetime64[s]")
    events = pd.DataFrame(
        {
            "dispute_id": _take_strings(dispute_ids, out_d),
            "time": (start_ns + out_sec.astype("timedelta64[s]")).astype("datetime64[ns]"),
            "kind": _take_strings(kinds, out_kind.astype(np.int64)),
            "narrative": _take_strings(_narratives(), narrative, missing),
            "party_id": _take_strings(person_ids, party),
        }
    )

    def to_time(seconds):
        finite = np.isfinite(seconds)
        values = start_ns + np.where(finite, seconds, 0).astype(np.int64).astype("timedelta64[s]")
        return pd.Series(values.astype("datetime64[ns]")).where(finite)

    reasons = np.array([None, "mediated", "dormant", "escalated"], dtype=object)
    entities = pd.DataFrame(
        {
            "dispute_id": _take_strings(dispute_ids, np.arange(n)),
            "category": pd.Categorical.from_codes(cat, categories=list(_CAT_CODES)),
            "category_zh": pd.Categorical.from_codes(cat, categories=list(CATEGORIES.values())),
            "station": pd.Categorical.from_codes(
                station, categories=[f"S{i + 1:02d}" for i in range(p.n_stations)]
            ),
            "opened_at": to_time(truth.opened_sec),
            "closed_at": to_time(ended_sec),
            "n_parties": n_parties.astype(np.int64),
            "close_reason": pd.array(reasons[reason], dtype="str"),
        }
    )
    return Simulation(
        events=events,
        entities=entities,
        schema=EventSchema(),
        params=p,
        start=start_ts,
        end=end_ts,
        seed=seed,
        _truth=truth,
    )
