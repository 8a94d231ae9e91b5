"""Reasons a station can act on: every feature family's phrases, on the simulator's vocabulary
and on a foreign one, with no configured labels; context (area, category) is never a reason,
nor is a zero, absent or missing value; English singular and plural."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from riskmodel import (
    ConfigError,
    DataWarning,
    EventSchema,
    FeatureBuilder,
    RiskModel,
    make_cutoffs,
    make_labels,
    prepare_events,
    simulate_disputes,
)
from riskmodel.features import FEATURE_FAMILIES
from riskmodel.model._artifact import load_model_dir, save_model_dir
from riskmodel.model._reasons import ReasonWriter

LGBM = {"num_threads": 1}
RAW_NAME = re.compile(r"\b(count|kw|days_since|ctx|streak|party|trend|text|night|mean|last)_[A-Za-z0-9_]+")
CJK = re.compile(r"[\u4e00-\u9fff]")
BAD_PLURAL = re.compile(r"(?<![\d.])1 (times|events|days|parties|escalations|disputes)\b")
BAD_SINGULAR = re.compile(r"(?<![\d.])(0|[2-9]|\d{2,}|\d+\.\d+) (time|event|day|party|escalation|dispute)\b")

#: A foreign extract: other column names, kinds with capitals, dashes and spaces, a group
#: column named "precinct", a category named "case_type", a numeric attribute, a keyword
#: group of its own: no label configured for any of it.
FOREIGN_KINDS = {"call_110": "Call-Received", "quarrel": "verbal dispute", "follow_up": "FOLLOW_UP_VISIT",
                 "mediation_success": "mediation_ok", "mediation_failed": "mediation_failed",
                 "threat": "Threat Made", "property_damage": "vandalism", "fight": "physical_fight",
                 "petition": "petition", "self_harm_threat": "self-harm", "criminal_case": "ARREST",
                 "injury": "hospitalised"}


def _fit(events, entities, schema, **params):
    ev = prepare_events(events, schema)
    lab = make_labels(ev, make_cutoffs(ev, schema, entities=entities), schema)
    lab = lab[~lab["censored"]].reset_index(drop=True)
    features = params.pop("features", None) or FeatureBuilder(schema=schema)
    model = RiskModel(schema=schema, features=features, lgbm_params=LGBM, n_estimators=60, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        model.fit(ev, lab, entities=entities)
    cut = lab[lab["as_of"] >= lab["as_of"].max() - pd.Timedelta("120D")].reset_index(drop=True)
    return model, ev, cut


@pytest.fixture(scope="module")
def simulated():
    sim = simulate_disputes(1500, start="2022-01-01", end="2024-12-31", seed=11)
    features = FeatureBuilder(schema=sim.schema, streaks=(("mediation_failed", "mediation_success"),))
    model, ev, cut = _fit(sim.events, sim.entities, sim.schema, features=features)
    return {"model": model, "ev": ev, "cut": cut, "entities": sim.entities}


@pytest.fixture(scope="module")
def foreign():
    sim = simulate_disputes(1500, start="2022-01-01", end="2024-12-31", seed=12)
    events = sim.events.rename(columns={"dispute_id": "case_no", "time": "reported", "kind": "event_type",
                                        "narrative": "notes", "party_id": "person"})
    events["event_type"] = events["event_type"].map(FOREIGN_KINDS)
    entities = sim.entities.rename(columns={"dispute_id": "case_no", "category": "case_type",
                                            "station": "precinct", "opened_at": "filed_on"})
    entities["claim_amount"] = np.random.default_rng(0).gamma(2.0, 5000.0, len(entities)).round()
    schema = EventSchema(entity_col="case_no", time_col="reported", kind_col="event_type", text_col="notes",
                         party_col="person", entity_categorical_cols=("case_type", "precinct"),
                         entity_numeric_cols=("claim_amount",), entity_time_cols=("filed_on",),
                         group_cols=("precinct",), closed_col="closed_at",
                         outcome_kinds=("ARREST", "hospitalised"))
    features = FeatureBuilder(schema=schema, streaks=(("Threat Made", "mediation_ok"),),
                              keywords={"blade_terms": ("刀", "砍"), "threat": ("报复",)})
    model, ev, cut = _fit(events, entities, schema, features=features)
    return {"model": model, "ev": ev, "cut": cut, "entities": entities}


def _families_of(model) -> set[str]:
    return {f.name for f in model.features_._active_families()}


@pytest.mark.parametrize("which", ["simulated", "foreign"])
def test_every_feature_has_a_readable_bilingual_phrase(which, request):
    model = request.getfixturevalue(which)["model"]
    assert _families_of(model) == set(FEATURE_FAMILIES)  # every built-in family is exercised
    writer = model.reason_writer_
    assert not writer.kind_labels and not writer.column_labels  # nothing configured
    for name in model.feature_names_:
        fmt = writer.template(name)[2]
        for value in ([0, 1, 2, 2.5, 17] if fmt != "str" else ["S03", "neighbour"]):
            zh, en = writer.phrase(name, value)
            for text in (zh, en):
                # a one-word column (category) may read as itself; a feature name never
                assert ("_" not in name or name not in text) and not RAW_NAME.search(text), (name, text)
                assert not re.search(r"[{}|]", text.replace("/", "")), (name, text)
            assert "_" not in en, (name, en)
            assert CJK.search(zh) or "：" in zh, (name, zh)
            # a foreign token sits quoted in Chinese, never bare mid-sentence
            bare = re.sub(r"「[^」]*」", "", zh)
            assert not re.search(r"[A-Za-z]{3,}", bare.replace(str(value), "")), (name, zh)
            assert not BAD_PLURAL.search(en) and not BAD_SINGULAR.search(en), (name, en)


def test_phrases_of_unlabelled_kinds():
    writer = ReasonWriter(kind_slugs={"mediation_failed": "mediation_failed", "Threat Made": "threat_made",
                                      "other": "other"})
    assert writer.phrase("count_mediation_failed_30D", 1) == (
        "近30天「mediation failed」事件1次", "mediation failed: 1 time in the last 30 days")
    assert writer.phrase("count_threat_made_all", 2) == ("累计「Threat Made」事件2次", "Threat Made: 2 times in total")
    assert writer.phrase("days_since_last_threat_made", 1.02) == (
        "距上次「Threat Made」事件1天", "1 day since the last Threat Made")
    assert writer.phrase("count_other_7D", 3)[1] == "events of other kinds: 3 times in the last 7 days"
    assert writer.phrase("party_past_escalations", 1)[1] == "1 past escalation in the parties' other disputes"
    assert writer.phrase("party_past_escalations", 2)[1] == "2 past escalations in the parties' other disputes"
    assert writer.phrase("kw_weapon_30D", 1)[1] == "narratives mention weapon words 1 time in the last 30 days"
    assert writer.phrase("claim_amount", 5000.0) == ("「claim amount」：5000", "claim amount: 5000")
    assert writer.is_reason("claim_amount", np.array([0.0, 5000.0])).tolist() == [False, True]
    labelled = ReasonWriter(kind_slugs={"threat": "threat"}, kind_labels={"threat": ("扬言报复", "threat of revenge")})
    assert labelled.phrase("count_threat_30D", 2) == ("近30天扬言报复2次", "threat of revenge: 2 times in the last 30 days")
    # a missing value reads as none recorded (explanations show it; reasons never do)
    assert writer.phrase("days_since_last_threat_made", np.nan)[1].endswith("(none recorded)")


def test_zero_absent_and_missing_values_are_never_reasons():
    writer = ReasonWriter(kind_slugs={"threat": "threat"})
    assert writer.is_reason("count_threat_30D", [0, 1, np.nan, 0.01]).tolist() == [False, True, False, False]
    assert writer.is_reason("text_missing_share", [0.0, 0.0004, 0.4]).tolist() == [False, False, True]
    assert writer.is_reason("trend_30D_vs_90D", [0.0, -0.2, 0.3]).tolist() == [False, True, True]
    # a duration of zero is a value (an event today); a missing one is no event at all
    assert writer.is_reason("days_since_last_threat", [0.0, 3.0, np.nan]).tolist() == [True, True, False]


@pytest.mark.parametrize("which", ["simulated", "foreign"])
def test_reasons_skip_context_and_zero_values(which, request):
    d = request.getfixturevalue(which)
    model = d["model"]
    writer = model.reason_writer_
    schema = model._schema()
    context = set(writer.context_features)
    assert set(schema.group_cols) | set(schema.entity_categorical_cols) <= context
    assert {n for n in model.feature_names_ if n.startswith("ctx_")} <= context
    assert "text_missing_share" in context
    out = model.predict(d["ev"], d["cut"], entities=d["entities"], reasons="all")
    X = model.transform_features(d["ev"], d["cut"], entities=d["entities"])
    assert (out["reasons"] != "").mean() > 0.9
    used = out["reason_features"].str.split(",").explode()
    used = used[used.fillna("") != ""]
    assert len(used) > len(out)
    assert not set(used) & context
    for row, name in used.items():
        value = X.at[row, name]
        assert pd.notna(value), (row, name)
        if writer.template(name)[2] in ("num", "pct", "signed"):
            assert round(float(value), 1) != 0 or writer.template(name)[2] == "signed", (row, name, value)
    text = out["reasons"].str.cat(sep="; ")
    for col in (*schema.group_cols, *schema.entity_categorical_cols):
        zh, en = writer.column_label(col)
        assert f"{en}:" not in text and f"{zh}：" not in text
    assert "0% of narratives missing" not in text and "narratives missing" not in text
    assert not BAD_PLURAL.search(text) and not BAD_SINGULAR.search(text)


def test_context_features_are_configurable_and_saved(simulated, tmp_path):
    model = simulated["model"]
    folder = save_model_dir(model, tmp_path / "m")
    again = load_model_dir(folder)
    assert again.reason_writer_.context_features == model.reason_writer_.context_features
    # an artifact written before context features loads with the default
    spec_file = folder / "riskmodel.json"
    spec = json.loads(spec_file.read_text(encoding="utf-8"))
    del spec["reasons"]["context_features"]
    spec_file.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    old = load_model_dir(folder)
    assert old.reason_writer_.context_features == model.reason_writer_.context_features
    rows = simulated["cut"].head(300)
    a = model.predict(simulated["ev"], rows, entities=simulated["entities"], reasons="all")
    b = old.predict(simulated["ev"], rows, entities=simulated["entities"], reasons="all")
    pd.testing.assert_frame_equal(a, b)

    sim = simulate_disputes(800, start="2022-01-01", end="2024-12-31", seed=13)
    everything, ev, cut = _fit(sim.events, sim.entities, sim.schema, context_features=())
    assert everything.reason_writer_.context_features == ()
    assert not everything.reason_writer_.is_context("station")
    with pytest.raises(ConfigError, match=r"context_features \['nope'\] are not features"):
        _fit(sim.events, sim.entities, sim.schema, context_features=["nope"])
