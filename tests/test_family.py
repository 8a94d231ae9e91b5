"""A feature family is one module: a toy family added through the registry flows through the
builder, the reasons, the artifact and the nightly batch's chunk context."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskmodel import (
    DataError,
    FeatureBuilder,
    RiskModel,
    make_cutoffs,
    make_labels,
    open_disputes,
    prepare_events,
)
from riskmodel._simulate import simulate_disputes
from riskmodel.batch._job import score_batch
from riskmodel.features import (
    FEATURE_FAMILIES,
    ContextNeed,
    FeatureFamily,
    feature_families,
    register_family,
    unregister_family,
)
from riskmodel.lifecycle import load
from riskmodel.model import save_model_dir

AS_OF = "2024-06-01"
WINDOW = pd.Timedelta("30D").value


class CityNew(FeatureFamily):
    """Disputes (city-wide) whose first event falls in the 30 days before ``as_of``: it reads
    every other dispute's first event, so chunked scoring needs its context rows."""

    name = "toy_city_new"

    def __init__(self, need: bool = True):
        self.need = need

    def columns(self, builder, schema):
        return ["toy_city_new_30D"], []

    def compute(self, comp) -> None:
        cx = comp.cx
        starts = np.r_[True, cx.entity_codes[1:] != cx.entity_codes[:-1]] if len(cx) else np.zeros(0, bool)
        first = np.sort(cx.times_ns[starts])
        upper = np.searchsorted(first, comp.q_as_of, side="left")  # strictly before as_of
        lower = np.searchsorted(first, comp.q_as_of - WINDOW, side="left")
        comp.put("toy_city_new_30D", (upper - lower).astype(np.float32))

    def template(self, feature, writer):
        if feature == "toy_city_new_30D":
            return "近30天全市新增纠纷{v}起", "{v} new disputes city-wide in the last 30 days", "num"
        return None

    def context_need(self, builder):
        return ContextNeed(window="30D") if self.need else None


@pytest.fixture
def toy():
    family = register_family(CityNew(), replace=True)
    yield family
    unregister_family(family.name)


@pytest.fixture(scope="module")
def sim():
    return simulate_disputes(1500, start="2022-01-01", end="2024-12-31", seed=3)


def _fit(sim, families) -> RiskModel:
    ev = prepare_events(sim.events, sim.schema)
    lab = make_labels(ev, make_cutoffs(ev, sim.schema, entities=sim.entities), sim.schema)
    model = RiskModel(schema=sim.schema, features=FeatureBuilder(schema=sim.schema, families=families))
    return model.fit(ev, lab[~lab.censored], entities=sim.entities)


def test_registry_lists_the_built_in_families_in_column_order():
    assert tuple(f.name for f in feature_families())[:len(FEATURE_FAMILIES)] == FEATURE_FAMILIES
    with pytest.raises(DataError, match="already registered"):
        register_family(feature_families()[0])
    with pytest.raises(DataError, match=r"unknown feature families \['nope'\]"):
        FeatureBuilder(families=("counts", "nope")).fit(simulate_disputes(50, seed=0).events)


def test_toy_family_columns_values_and_phrase(toy, sim):
    fb = FeatureBuilder(schema=sim.schema, families=("counts", "toy_city_new"))
    cut = pd.DataFrame({"dispute_id": sim.events["dispute_id"].unique()[:50], "as_of": pd.Timestamp(AS_OF)})
    X = fb.fit(sim.events).transform(sim.events, cut)
    assert X.columns[-1] == "toy_city_new_30D"
    first = sim.events.groupby("dispute_id")["time"].min()
    as_of = pd.Timestamp(AS_OF)
    expected = int(((first >= as_of - pd.Timedelta("30D")) & (first < as_of)).sum())
    assert (X["toy_city_new_30D"] == expected).all()
    model = _fit(sim, ("counts", "toy_city_new"))
    zh, en = model.reason_writer_.phrase("toy_city_new_30D", 12)
    assert (zh, en) == ("近30天全市新增纠纷12起", "12 new disputes city-wide in the last 30 days")


@pytest.mark.parametrize("need", [True, False])
def test_chunked_nightly_scores_equal_direct_with_the_family_context(sim, tmp_path, need):
    """The batch gives each chunk the rows the family declares it reads. Declaring nothing
    leaves each chunk with its own disputes only, and the scores differ: the check can fail."""
    register_family(CityNew(need=need), replace=True)
    try:
        model = _fit(sim, ("counts", "recency", "toy_city_new"))
        model_dir = save_model_dir(model, tmp_path / "model")
        out = tmp_path / "out"
        m = score_batch(model=str(model_dir), events=sim.events, entities=sim.entities, as_of=AS_OF, out=out,
                        chunk_disputes=400, reasons="all")
        assert m["parameters"]["n_chunks"] >= 3
        got = pd.read_parquet(out / "scores.parquet")
        cut = open_disputes(sim.events, AS_OF, sim.schema, entities=sim.entities)
        ref = load(str(model_dir)).predict(sim.events, cutoffs=cut, entities=sim.entities, reasons="all")
        ref = ref.sort_values("dispute_id").reset_index(drop=True)
        assert got["dispute_id"].tolist() == ref["dispute_id"].tolist()
        same = bool(np.allclose(got["probability"], ref["probability"], rtol=1e-9)) and \
            bool((got["reasons"] == ref["reasons"]).all())
        assert same is need
    finally:
        unregister_family("toy_city_new")
