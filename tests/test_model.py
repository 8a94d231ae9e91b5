"""RiskModel: end-to-end fit / predict, tiers, overrides, reasons vs SHAP, time order, generality."""

from __future__ import annotations

import copy
import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import riskmodel.data._schema
import riskmodel.features._builder
import riskmodel.model._model
from riskmodel import (
    ConfigError,
    DataError,
    DataWarning,
    EventSchema,
    FeatureBuilder,
    ModelError,
    Override,
    RiskModel,
    TierPolicy,
    make_cutoffs,
    make_labels,
    prepare_events,
    validate_cutoffs,
)
from riskmodel._simulate import simulate_disputes
from riskmodel.evaluation._metrics import score_metrics
from riskmodel.lifecycle._pyfunc import score_all
from riskmodel.model._artifact import load_model_dir, save_model_dir
from riskmodel.model._calibration import Calibrator
from riskmodel.model._protocol import (
    BAGGING_POSITIVES,
    BAGGING_SEEDS,
    average_boosters,
    bagging_seeds,
    size_aware_params,
)

HORIZON = "90D"
# one thread: robust and fast enough when other jobs share the two cores
LGBM = {"num_threads": 1}
KIND_LABELS = {
    "call_110": ("110报警", "110 call"),
    "quarrel": ("争吵", "quarrel"),
    "follow_up": ("回访", "follow-up"),
    "mediation_success": ("调解成功", "successful mediation"),
    "mediation_failed": ("调解失败", "failed mediation"),
    "threat": ("扬言报复", "threat of revenge"),
    "property_damage": ("毁坏财物", "property damage"),
    "fight": ("打架", "fight"),
    "petition": ("信访", "petition"),
    "self_harm_threat": ("扬言自伤", "self-harm threat"),
    "criminal_case": ("刑事案件", "criminal case"),
    "injury": ("伤害", "injury"),
    "other": ("其他事件", "other events"),
}
COLUMN_LABELS = {"category": ("纠纷类型", "dispute type"), "station": ("派出所", "station"),
                 "opened_at": ("立案", "opened")}  # fmt: skip
OVERRIDE = Override(
    name="threat_weapon_7d",
    conditions=(("count_threat_7D", ">", 0), ("kw_weapon_7D", ">", 0)),
    tier="red",
    reason_zh="近7天扬言报复且提及凶器",
    reason_en="threat and weapon words in the last 7 days",
)
RAW_NAME = re.compile(r"\b(count|kw|days_since|ctx|streak|party|trend)_[a-z0-9_]+")


def _model(schema, **params) -> RiskModel:
    features = FeatureBuilder(
        schema=schema,
        streaks=(("mediation_failed", "mediation_success"),),
        keyword_windows=("7D", "30D", "365D"),
    )
    defaults = dict(
        schema=schema,
        features=features,
        lgbm_params=LGBM,
        kind_labels=KIND_LABELS,
        column_labels=COLUMN_LABELS,
        tier_policy=TierPolicy(method="share", red=0.05, yellow=0.15, overrides=(OVERRIDE,)),
    )
    defaults.update(params)
    return RiskModel(**defaults)


@pytest.fixture(scope="module")
def data():
    sim = simulate_disputes(5000, start="2023-01-01", end="2025-12-31", seed=1)
    ev = prepare_events(sim.events, sim.schema)
    cut = make_cutoffs(ev, sim.schema, entities=sim.entities)
    lab = make_labels(ev, cut, sim.schema, horizon=HORIZON)
    end = pd.Timestamp(ev.times_ns.max())
    # complete outcome windows only (positives of partial windows would bias the rates)
    lab = lab[lab["as_of"] + pd.Timedelta(HORIZON) <= end].reset_index(drop=True)
    ids = sim.entities["dispute_id"]
    holdout = set(ids.iloc[::10])  # 10% of disputes never seen in training
    seen = ~lab["dispute_id"].isin(holdout)
    return {
        "sim": sim,
        "ev": ev,
        "train": lab[seen].reset_index(drop=True),
        "unseen": lab[~seen].reset_index(drop=True),
    }


@pytest.fixture(scope="module")
def calibrator_fits():
    """The arguments of every ``Calibrator.fit`` call made while ``fitted`` was fitted."""
    return []


@pytest.fixture(scope="module")
def fitted(data, calibrator_fits):
    sim = data["sim"]
    fit = Calibrator.fit

    def recorded(self, raw, y, order=None, **kwargs):
        calibrator_fits.append({"n": len(raw), "order": None if order is None else np.asarray(order), **kwargs})
        return fit(self, raw, y, order, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Calibrator, "fit", recorded)
        return _model(sim.schema).fit(data["ev"], data["train"], entities=sim.entities)


@pytest.fixture(scope="module")
def scored(data, fitted):
    """Predictions and features for the latest 3 months of training cutoffs (with reasons)."""
    sim, train = data["sim"], data["train"]
    rows = train[train["as_of"] >= train["as_of"].max() - pd.Timedelta("80D")]
    out = fitted.predict(data["ev"], rows, entities=sim.entities)
    X = fitted.transform_features(data["ev"], rows, entities=sim.entities)
    return rows, out, X


# ------------------------------------------------------------------------------------------
# end to end


def test_predict_columns_and_tiers(data, fitted, scored):
    rows, out, _ = scored
    assert list(out.columns) == [
        "dispute_id", "as_of", "probability", "tier", "reasons", "reason_features", "overrides",
    ]  # fmt: skip
    assert out.index.equals(rows.index)
    assert (out["dispute_id"].to_numpy() == rows["dispute_id"].to_numpy()).all()
    assert out["probability"].between(0, 1).all()
    assert list(out["tier"].cat.categories) == ["red", "yellow", "blue"]
    assert set(out["tier"]) == {"red", "yellow", "blue"}
    flagged = out["tier"] != "blue"
    assert (out.loc[flagged, "reasons"] != "").all()
    # a reasonable model on held-out later rows
    assert score_metrics(rows["label"].astype(int), out["probability"])["roc_auc"] > 0.7
    assert fitted.training_summary_["n_cutoffs"] == len(data["train"])
    assert set(fitted.timings_) == {"features", "lightgbm", "calibration"}


def test_tier_policy_share_matches_targets_on_reference(fitted):
    ref = np.asarray(fitted.reference_["probability"])
    tiers = fitted.tier_policy_.assign(ref)
    red, yellow = np.mean(tiers == "red"), np.mean(tiers == "yellow")
    assert red <= 0.05 and red == pytest.approx(0.05, abs=0.01)
    assert red + yellow <= 0.20 and red + yellow == pytest.approx(0.20, abs=0.01)


def test_tier_policy_probability_cutoffs(data, fitted, scored):
    rows, _, _ = scored
    model = copy.deepcopy(fitted)
    model.tier_policy_ = TierPolicy(method="probability", red=0.15, yellow=0.05).fit(
        np.asarray(fitted.reference_["probability"])
    )
    out = model.predict(data["ev"], rows, entities=data["sim"].entities, reasons="none")
    p = out["probability"].to_numpy()
    expected = np.where(p >= 0.15, "red", np.where(p >= 0.05, "yellow", "blue"))
    assert (out["tier"].astype(str).to_numpy() == expected).all()


def test_tier_policy_precision_and_determinism(data, fitted, scored):
    """Refit with a precision policy: same seed -> identical probabilities; precision met."""
    rows, out, _ = scored
    policy = TierPolicy(method="precision", red=0.3, yellow=0.1)
    model = clone(fitted).set_params(tier_policy=policy)
    model.fit(data["ev"], data["train"], entities=data["sim"].entities)
    again = model.predict(data["ev"], rows, entities=data["sim"].entities, reasons="none")
    np.testing.assert_array_equal(again["probability"].to_numpy(), out["probability"].to_numpy())

    ref_p = np.asarray(model.reference_["probability"])
    ref_y = np.asarray(model.reference_["label"])
    for target, threshold in ((0.3, model.tier_policy_.red_threshold_), (0.1, model.tier_policy_.yellow_threshold_)):
        assert np.isfinite(threshold), target  # this city reaches both precisions
        flagged = ref_p >= threshold
        assert flagged.any() and ref_y[flagged].mean() >= target
        # the lowest such cut: every lower one misses the target
        for cut in np.unique(ref_p[ref_p < threshold]):
            assert ref_y[ref_p >= cut].mean() < target, (target, cut)


def test_override_lifts_to_red_and_says_so(data, fitted):
    train = data["train"]
    X = fitted.transform_features(data["ev"], train, entities=data["sim"].entities)
    hit = (X["count_threat_7D"] > 0) & (X["kw_weapon_7D"] > 0)
    assert hit.sum() > 0, "the simulation should contain threat + weapon cases"
    rows = train[hit.to_numpy()]
    out = fitted.predict(data["ev"], rows, entities=data["sim"].entities)
    assert (out["tier"] == "red").all()
    assert (out["overrides"] == "threat_weapon_7d").all()
    assert out["reasons"].str.startswith("[规则] 近7天扬言报复且提及凶器 / [rule] threat and weapon").all()
    # it is a lift: at least some of these were not red by probability alone
    by_prob = fitted.tier_policy_.assign(out["probability"].to_numpy())
    assert (by_prob != "red").any()


# ------------------------------------------------------------------------------------------
# calibration


def _hand_calibrated(stored: dict, raw: np.ndarray) -> np.ndarray:
    """The stored calibrator's map, applied by hand: isotonic interpolation, or Platt
    scaling on the logit (raw clipped to [1e-7, 1 - 1e-7])."""
    params = stored["params"]
    if stored["chosen"] == "isotonic":
        return np.interp(raw, params["x"], params["y"])
    assert stored["chosen"] == "sigmoid"
    r = np.clip(raw, 1e-7, 1 - 1e-7)
    return 1.0 / (1.0 + np.exp(-(params["a"] * np.log(r / (1 - r)) + params["b"])))


@pytest.mark.parametrize("calibrator", ["fitted", "isotonic", "sigmoid"])
def test_scoring_applies_the_stored_calibrator(data, fitted, scored, calibrator, tmp_path):
    """Probabilities and tiers are the stored calibrator's map of LightGBM's own output: the
    fitted one, or another put in its place, after a round trip through the artifact."""
    rows, _, X = scored
    model = copy.deepcopy(fitted)
    if calibrator == "isotonic":
        model.calibrator_ = Calibrator.from_dict({"method": "isotonic", "chosen": "isotonic",
                                                  "params": {"x": [0.0, 0.02, 0.1, 1.0], "y": [0.01, 0.05, 0.4, 0.9]}})
    elif calibrator == "sigmoid":
        model.calibrator_ = Calibrator.from_dict({"method": "sigmoid", "chosen": "sigmoid",
                                                  "params": {"a": 0.7, "b": -0.4}})
    folder = save_model_dir(model, tmp_path / "model")
    stored = json.loads((folder / "riskmodel.json").read_text(encoding="utf-8"))["calibrator"]
    model = load_model_dir(folder)
    raw = fitted.booster_.predict(X[fitted.feature_names_])  # LightGBM's own scores, uncalibrated
    expected = _hand_calibrated(stored, raw)
    assert np.abs(expected - raw).max() > 0.02  # the map matters: skipping it would show
    out = model.predict(data["ev"], rows, entities=data["sim"].entities, reasons="none")
    np.testing.assert_allclose(out["probability"].to_numpy(), expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(model.predict_proba(data["ev"], rows, entities=data["sim"].entities)[:, 1],
                               expected, rtol=1e-12, atol=1e-15)
    tiers, _ = model.tier_policy_.apply(expected, X)
    assert (out["tier"].astype(str).to_numpy() == tiers).all()


def _later_half_log_loss(raw: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Each method fitted on the earlier half, its log loss on the later half."""
    half = len(raw) // 2
    losses = {}
    for method in ("isotonic", "sigmoid"):
        p = np.clip(Calibrator(method).fit(raw[:half], y[:half]).transform(raw[half:]), 1e-7, 1 - 1e-7)
        losses[method] = float(-np.mean(y[half:] * np.log(p) + (1 - y[half:]) * np.log(1 - p)))
    return losses


@pytest.mark.parametrize(("link", "winner"), [("logistic", "sigmoid"), ("step", "isotonic")])
def test_auto_calibration_keeps_the_lower_log_loss_on_later_data(link, winner):
    """A logistic link on few rows (isotonic overfits) and a step on many (no logistic
    curve fits it): each time the method with the lower log loss on the later half wins,
    refitted on the whole slice (the holdout protocol's calibration)."""
    rng = np.random.default_rng(0)
    n = 400 if link == "logistic" else 20_000
    raw = rng.uniform(0.01, 0.6, n)
    true = 1 / (1 + np.exp(-(1.3 * np.log(raw / (1 - raw)) - 0.5))) if link == "logistic" else np.where(raw < 0.3, 0.03, 0.5)
    y = (rng.random(n) < true).astype(int)
    losses = _later_half_log_loss(raw, y)
    cal = Calibrator("auto").fit_holdout(raw, y)
    assert min(losses, key=losses.get) == winner  # the two cases do differ
    assert cal.chosen_ == winner == min(cal.selection_, key=cal.selection_.get)
    assert cal.params_ == Calibrator(winner).fit_holdout(raw, y).params_


def test_forward_calibration_keeps_the_map_with_the_lower_latest_log_loss():
    """The forward protocol's calibration compares the maps on the latest rows (fitted on the
    earlier ones) and keeps the lower log loss: a step link with many positives picks
    isotonic, a logistic one the sigmoid."""
    rng = np.random.default_rng(0)
    for link, winner in (("step", "isotonic"), ("logistic", "sigmoid")):
        raw = rng.uniform(0.01, 0.6, 20_000)
        true = np.where(raw < 0.3, 0.03, 0.5) if link == "step" else raw
        y = (rng.random(len(raw)) < true).astype(int)
        cal = Calibrator("auto").fit(raw, y)
        losses = cal.selection_["latest_log_loss"]
        assert cal.chosen_ == min(losses, key=losses.get) == winner, (link, losses)


def test_auto_calibration_judges_on_the_later_rows_in_time():
    """``order`` (the rows' time order) decides which half is 'later', not the row order."""
    rng = np.random.default_rng(1)
    raw = rng.uniform(0.01, 0.6, 2000)
    y = (rng.random(2000) < raw).astype(int)
    order = rng.permutation(2000)
    by_time = Calibrator("auto").fit_holdout(raw, y, order=order)
    assert by_time.selection_ == Calibrator("auto").fit_holdout(raw[order], y[order]).selection_
    assert by_time.selection_ != Calibrator("auto").fit_holdout(raw, y).selection_


def test_forward_calibrator_is_judged_on_the_latest_fold(fitted, calibrator_fits):
    """The forward protocol's 'later data', on which auto calibration compares its maps, is
    the last fold's validation block: the latest out-of-fold rows in time, not another fold."""
    (call,) = calibrator_fits
    latest = np.asarray(call["latest"], dtype=bool)
    folds = fitted.training_summary_["folds"]
    assert len(latest) == call["n"] == fitted.training_summary_["n_calibration"]
    assert latest.sum() == folds[-1]["valid_rows"] < call["n"]
    order = call["order"]  # the out-of-fold rows, in time order
    assert set(np.flatnonzero(latest)) == set(order[len(order) - latest.sum():])


def test_fitted_model_kept_its_lower_log_loss_calibrator(fitted):
    selection = fitted.calibrator_.selection_
    losses = selection.get("latest_log_loss")
    if losses:
        assert fitted.calibrator_.chosen_ == min(losses, key=losses.get)
    else:  # too few positives for isotonic: the sigmoid, and why
        assert fitted.calibrator_.chosen_ == "sigmoid" and "isotonic_skipped" in selection
    assert fitted.training_summary_["calibration_method"] == fitted.calibrator_.chosen_


# ------------------------------------------------------------------------------------------
# reasons


def test_reasons_are_readable_phrases(scored):
    _, out, _ = scored
    flagged = out[out["tier"] != "blue"]
    for text in flagged["reasons"].head(200):
        for phrase in text.split("; "):
            zh, en = phrase.split(" / ", 1)
            assert re.search(r"[\u4e00-\u9fff]", zh), phrase
            assert re.search(r"[a-z]", en), phrase
            assert not RAW_NAME.search(phrase), phrase
    assert flagged["reasons"].str.contains("扬言报复").any()


def test_reasons_agree_with_shap(fitted, scored):
    _, out, X = scored
    contrib = fitted.explain(X)
    raw = fitted.predict_raw(X)
    np.testing.assert_allclose(contrib.sum(axis=1).to_numpy(), np.log(raw / (1 - raw)), atol=1e-6)
    flagged = np.flatnonzero((out["tier"] != "blue").to_numpy())
    values = contrib.drop(columns="bias")
    writer = fitted.reason_writer_
    # a reason is one of the largest positive contributions among the features that may be
    # reasons for this case: not context (station, category), not a zero count, not missing
    may = pd.DataFrame({n: writer.is_reason(n, X[n].to_numpy()) for n in values.columns}, index=X.index)
    eligible = values.where(may & (values > 0)).to_numpy()
    k = fitted.top_k_reasons
    checked = 0
    for i in flagged[:300]:
        names = [n for n in out["reason_features"].iloc[i].split(",") if n]
        candidates = np.sort(eligible[i][np.isfinite(eligible[i])])[::-1]
        assert len(names) == min(k, len(candidates))
        assert names == sorted(names, key=lambda n: -contrib[n].iloc[i])
        kth = candidates[len(names) - 1] if names else np.inf
        for name in names:
            c = contrib[name].iloc[i]
            assert c > 0 and c >= kth - 1e-12, (name, c, kth)
            assert not writer.is_context(name)
            checked += 1
    assert checked > 0


def test_scores_equal_lightgbm_on_the_dataframe(fitted, scored):
    """Our array conversion (fast for one dispute) gives LightGBM's own scores, any size."""
    _, _, X = scored
    X = X.copy()
    X.loc[X.index[:3], "station"] = np.nan  # missing category
    for rows in (X.iloc[:1], X.iloc[:40], X, X[X.columns[::-1]].iloc[:5]):
        reference = fitted.booster_.predict(rows[fitted.feature_names_])
        assert np.array_equal(fitted.predict_raw(rows), reference)
        contrib = fitted.booster_.predict(rows[fitted.feature_names_], pred_contrib=True)
        # many rows: summed tree by tree (model._shap), in another order than LightGBM's
        np.testing.assert_allclose(fitted.explain(rows).to_numpy(), contrib, rtol=0, atol=1e-12)
    with pytest.raises(ModelError, match="categorical column"):
        fitted.predict_raw(X.astype({"station": str}))


def test_small_input_shortcuts_change_nothing(data, fitted, monkeypatch):
    """Scoring a few disputes takes plain-array shortcuts (dict lookups, no DataFrame round
    trip); forcing the general paths, and scoring through the DataFrame, give the same output."""
    sim = data["sim"]
    ids = data["unseen"]["dispute_id"].drop_duplicates().iloc[:3].to_numpy()
    events = sim.events[sim.events["dispute_id"].isin(ids)]
    entities = sim.entities[sim.entities["dispute_id"].isin(ids)]
    cut = pd.DataFrame({"dispute_id": ids, "as_of": pd.Timestamp("2025-06-01")})
    shortcut = fitted.predict(events, cut, entities=entities, reasons="all")
    X = fitted.transform_features(events, cut, entities=entities)
    assert (shortcut["reasons"] != "").any()
    valid_cut = validate_cutoffs(cut, sim.schema)
    pd.testing.assert_frame_equal(shortcut, fitted.score_features(X, valid_cut, reasons="all"))
    for module in (riskmodel.data._schema, riskmodel.features._builder):
        monkeypatch.setattr(module, "FEW_VALUES", 0)
    monkeypatch.setattr(riskmodel.model._model, "_FEW_ROWS", 0)
    pd.testing.assert_frame_equal(shortcut, fitted.predict(events, cut, entities=entities, reasons="all"))
    pd.testing.assert_frame_equal(X, fitted.transform_features(events, cut, entities=entities))


def test_prediction_runs_on_the_threads_lgbm_params_sets_and_one_for_a_few_rows(data, fitted):
    """LightGBM predicts on ``lgbm_params['num_threads']`` if set, else on its default
    (0: every core), and on one thread for a few rows; ``set_params`` on a fitted model
    changes it (what a Spark task does) without changing a probability."""
    seen = []
    booster = fitted.booster_

    class Recording:
        pandas_categorical = booster.pandas_categorical

        def predict(self, matrix, **kwargs):
            seen.append((len(matrix), kwargs["num_threads"]))
            return booster.predict(matrix, **kwargs)

    rows = data["unseen"].iloc[:600][["dispute_id", "as_of"]]
    X = fitted.transform_features(data["ev"], rows, entities=data["sim"].entities)
    model = copy.copy(fitted).set_params(lgbm_params=None)  # the fitted trees, default parameters
    model.booster_ = Recording()
    default = model.predict_raw(X)
    model.predict_raw(X.iloc[:5])
    model.set_params(lgbm_params={"num_threads": 1})
    np.testing.assert_array_equal(model.predict_raw(X), default)
    assert seen == [(600, 0), (5, 1), (600, 1)]


@pytest.mark.parametrize("general_paths", [False, True])
def test_scoring_every_dispute_at_one_time_equals_predict_with_cutoffs(data, fitted, monkeypatch, general_paths):
    """``score_all`` (what ``Predictor.predict(events, as_of=...)`` and the pyfunc run)
    builds its cutoffs without a frame; it must score exactly as ``predict`` does, also
    with missing narratives and parties, a duplicated event row and an unseen kind."""
    sim = data["sim"]
    ids = data["unseen"]["dispute_id"].drop_duplicates().iloc[:2].to_numpy()
    events = sim.events[sim.events["dispute_id"].isin(ids)].reset_index(drop=True)
    events.loc[0, "narrative"] = None
    events.loc[1, "party_id"] = None
    events.loc[2, "kind"] = "never_seen_kind"
    events = pd.concat([events, events.iloc[[3]]], ignore_index=True).set_index(np.arange(len(events) + 1) * 7)
    entities = sim.entities[sim.entities["dispute_id"].isin(ids)]
    if general_paths:
        for module in (riskmodel.data._schema, riskmodel.features._builder):
            monkeypatch.setattr(module, "FEW_VALUES", 0)
        monkeypatch.setattr(riskmodel.model._model, "_FEW_ROWS", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        every = score_all(fitted, events, "2025-06-01", entities=entities, reasons="all")
        cut = pd.DataFrame({"dispute_id": events["dispute_id"].unique(), "as_of": pd.Timestamp("2025-06-01")})
        expected = fitted.predict(events, cut, entities=entities, reasons="all")
    pd.testing.assert_frame_equal(every, expected)


@pytest.mark.parametrize(
    ("as_of", "message"),
    [("not a date", "as_of='not a date' is not a date or time"), (None, "as_of=None is not a date or time"),
     (1_700_000_000, "as_of=1700000000 is a number, not a date"),
     ("1850-01-01", "not plausible"), ("2025-06-01T00:00:00+08:00", "timezone conventions")],
)
def test_scoring_at_a_bad_time_names_the_problem(data, fitted, as_of, message):
    events = data["sim"].events.iloc[:30]
    with pytest.raises(DataError, match=message):
        score_all(fitted, events, as_of, entities=data["sim"].entities)


def test_predict_names_cutoffs_without_history(data, fitted):
    """A cutoff whose id has no event (a typo) or whose as_of is before its dispute began is
    still scored, with a DataWarning naming it (the nightly job does not score such disputes)."""
    sim = data["sim"]
    first = data["ev"].frame.groupby("dispute_id")["time"].min()
    d = first.index[0]
    cutoffs = pd.DataFrame({"dispute_id": [d, d, "NO_SUCH_ID"],
                            "as_of": [first[d] - pd.Timedelta("1D"), first[d] + pd.Timedelta("1D"), first[d]]})
    with pytest.warns(DataWarning, match=r"2 cutoff\(s\) have no event before their as_of") as caught:
        out = fitted.predict(data["ev"], cutoffs, entities=sim.entities)
    assert len(out) == 3 and "NO_SUCH_ID" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        fitted.predict(data["ev"], cutoffs.iloc[[1]], entities=sim.entities)


def test_tiers_of_the_night_warn_once(data, fitted):
    """Ranking a request as one night scores the newly flagged cases again for their reasons:
    that second pass gives no warning the first did not (the no-history one came twice)."""
    from riskmodel import Predictor

    sim = data["sim"]
    ids = list(sim.events["dispute_id"].drop_duplicates().iloc[:30]) + ["NO_SUCH_ID"]
    cutoffs = pd.DataFrame({"dispute_id": ids, "as_of": pd.Timestamp(sim.events["time"].max()).normalize()})
    predictor = Predictor(fitted, model_name="m", model_version="1", run_id="", uri="test")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = predictor.predict(data["ev"], cutoffs=cutoffs, entities=sim.entities, tiers={"red": 0.4, "yellow": 0.4})
    no_history = [w for w in caught if "have no event before" in str(w.message)]
    assert len(no_history) == 1, [str(w.message) for w in caught]
    flagged = out["tier"].astype(str) != "blue"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        every = fitted.predict(data["ev"], cutoffs, entities=sim.entities, reasons="all")
    assert (flagged & (every["tier"].astype(str) == "blue")).any()  # the second pass ran
    assert out.loc[flagged, "reasons"].tolist() == every.loc[flagged, "reasons"].tolist()


def test_fit_warns_when_the_labels_horizon_is_lost(data):
    """Labels that lost make_labels' horizon (a merge, a CSV round trip) train with no gap
    between a fold's rows and its validation block: fit says so."""
    labels = data["train"].head(40).copy()
    labels.attrs = {}
    with pytest.warns(DataWarning, match="horizon is unknown"), pytest.raises(DataError):
        _model(data["sim"].schema).fit(data["ev"], labels, entities=data["sim"].entities)


def test_as_of_in_the_other_convention_names_the_training_data(data, fitted):
    """A naive-trained model given aware as_of says the model was trained on naive times."""
    rows = data["train"].head(3).assign(as_of=lambda f: f["as_of"].dt.tz_localize("Asia/Shanghai"))
    with pytest.raises(DataError, match="the model was trained on naive times"):
        fitted.predict(data["ev"], rows, entities=data["sim"].entities)


def test_the_same_rows_in_another_order_train_the_same_model(data):
    """Training reads the cutoffs in one order (as_of, then id) whatever the caller's: the
    same labelled rows sorted by id or reversed gave another number of rounds and other
    probabilities with the same random_state."""
    sim = data["sim"]
    rows = data["train"].iloc[: len(data["train"]) // 3]
    scored = rows.iloc[::40][["dispute_id", "as_of"]]
    probabilities = []
    for order in (rows, rows.sort_values(["dispute_id", "as_of"]), rows.iloc[::-1]):
        model = RiskModel(schema=sim.schema, lgbm_params=LGBM, seed_bagging=1, n_estimators=60, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            model.fit(data["ev"], order, entities=sim.entities)
            probabilities.append(model.predict(data["ev"], scored, entities=sim.entities, reasons="none")["probability"])
    for other in probabilities[1:]:
        pd.testing.assert_series_equal(other, probabilities[0])


def test_one_disputes_events_with_the_log_as_context_score_as_in_the_log(data, fitted):
    """Scoring a few disputes from their own events, with the whole log as context_events,
    gives what scoring them in the whole log gives (party histories, station escalations);
    without it, those features read only the request."""
    sim, ev = data["sim"], data["ev"]
    rows = data["train"].iloc[-300:][["dispute_id", "as_of"]].reset_index(drop=True)
    own = sim.events[sim.events["dispute_id"].isin(rows["dispute_id"])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        whole = fitted.predict(ev, rows, entities=sim.entities, reasons="none")
        alone = fitted.predict(own, rows, entities=sim.entities, reasons="none")
        context = fitted.predict(own, rows, entities=sim.entities, reasons="none", context_events=ev)
    pd.testing.assert_frame_equal(context, whole)
    assert not np.allclose(alone["probability"], whole["probability"])


def test_a_model_trained_on_padded_kinds_says_so_when_loaded(fitted, tmp_path):
    """A model saved before kinds were read trimmed, with a padded kind of its own: loading it
    warns that the kind's columns now stay 0."""
    old = copy.deepcopy(fitted)
    old.features_.kinds_ = [*old.features_.kinds_[:-1], old.features_.kinds_[-1] + "  "]
    save_model_dir(old, tmp_path / "m")
    with pytest.warns(DataWarning, match="trained on kinds with surrounding spaces"):
        load_model_dir(tmp_path / "m")


# ------------------------------------------------------------------------------------------
# time order, unseen data


def test_forward_folds_are_time_ordered_with_a_horizon_gap(data, fitted):
    # (was test_time_ordered_split, which asserted the 70/15/15 split of the holdout protocol)
    summary = fitted.training_summary_
    assert summary["protocol"] == "forward" and summary["fold_kind"] == "time"
    assert summary["gap"] == str(pd.Timedelta(HORIZON))  # read from make_labels' attrs
    folds = summary["folds"]
    assert len(folds) == 4
    for fold in folds:
        train_last, valid_first = pd.Timestamp(fold["train_as_of"][1]), pd.Timestamp(fold["valid_as_of"][0])
        assert train_last + pd.Timedelta(HORIZON) < valid_first  # no training label reaches the block
    starts = [pd.Timestamp(f["valid_as_of"][0]) for f in folds]
    ends = [pd.Timestamp(f["valid_as_of"][1]) for f in folds]
    assert all(e < s for e, s in zip(ends[:-1], starts[1:]))  # consecutive, disjoint blocks
    assert pd.Timestamp(fitted.split_dates_["final"][1]) == data["train"]["as_of"].max()
    assert summary["n_calibration"] == sum(f["valid_rows"] for f in folds)


def test_final_model_saw_every_row(data, fitted):
    sim, train = data["sim"], data["train"]
    assert fitted.training_summary_["n_final"] == len(train)
    # flip the labels of the latest snapshot date: a model whose trees skipped the latest
    # rows (as the holdout protocol's did) would grow the same first tree
    latest = train["as_of"] == train["as_of"].max()
    flipped = train.assign(label=np.where(latest, 1 - train["label"].astype(int), train["label"].astype(int)))
    other = _model(sim.schema).fit(data["ev"], flipped, entities=sim.entities)

    def first_tree(model):
        text = model.booster_.model_to_string()
        return text[text.index("Tree=0"):text.index("Tree=1")]

    assert first_tree(other) != first_tree(fitted)
    holdout = _model(sim.schema, protocol="holdout")
    a = holdout.fit(data["ev"], train, entities=sim.entities)
    b = clone(holdout).fit(data["ev"], flipped, entities=sim.entities)
    assert first_tree(a) == first_tree(b)  # the old protocol never grew trees on the latest rows
    dates = {k: [pd.Timestamp(x) for x in v] for k, v in a.split_dates_.items()}
    assert dates["train"][1] < dates["validation"][0] <= dates["validation"][1] < dates["calibration"][0]


def test_fit_is_deterministic_for_a_seed(data, fitted):
    sim = data["sim"]
    again = _model(sim.schema).fit(data["ev"], data["train"], entities=sim.entities)
    assert again.booster_.model_to_string() == fitted.booster_.model_to_string()
    assert again.calibrator_.to_dict() == fitted.calibrator_.to_dict()
    assert again.training_summary_ == fitted.training_summary_
    other = _model(sim.schema, random_state=1).fit(data["ev"], data["train"], entities=sim.entities)
    assert other.booster_.model_to_string() != fitted.booster_.model_to_string()


def test_fit_summary_reports_fold_spread(fitted):
    summary = fitted.training_summary_
    for metric in ("roc_auc", "brier"):
        spread = summary["fold_spread"][metric]
        values = [f[metric] for f in summary["folds"]]
        assert spread["n"] == 4
        assert spread["mean"] == pytest.approx(np.mean(values))
        assert spread["sd"] == pytest.approx(np.std(values, ddof=1))
        assert spread["min"] <= spread["mean"] <= spread["max"]
    assert 0.6 < summary["fold_spread"]["roc_auc"]["mean"] < 1
    assert list(fitted.folds_["fold"]) == ["time-1", "time-2", "time-3", "time-4"]
    assert summary["n_rounds"] == fitted.best_iteration_
    # seed-bagged (small data): the booster holds every member's trees
    assert fitted.booster_.current_iteration() == summary["seed_bagging"]["members"] * summary["n_rounds"]
    # size-aware: 5,000 disputes -> fewer rows per leaf than the fixed 100 of large data
    params = summary["lgbm_params"]
    assert params["min_child_samples"] < 100 and params["num_leaves"] <= 15


def test_lgbm_params_override_size_aware_defaults(data):
    sim = data["sim"]
    model = _model(sim.schema, lgbm_params={**LGBM, "num_leaves": 5, "min_child_samples": 40}, n_folds=2,
                   n_estimators=30)
    model.fit(data["ev"], data["train"], entities=sim.entities)
    assert model.training_summary_["lgbm_params"]["num_leaves"] == 5
    assert model.training_summary_["lgbm_params"]["min_child_samples"] == 40
    assert len(model.training_summary_["folds"]) == 2


@pytest.mark.parametrize("n_positive", [50, 400, 1_999, 2_000, 6_000, 20_000])
def test_feature_sampling_follows_the_positives(n_positive):
    params = size_aware_params(40 * n_positive, n_positive)
    small = n_positive < 2000
    # below 2,000 positives: half the features per tree, random thresholds; above: half per node
    assert params["extra_trees"] is small
    assert (params["feature_fraction"], params["feature_fraction_bynode"]) == ((0.5, 1.0) if small else (1.0, 0.5))


def test_large_data_feature_sampling_is_deterministic_for_a_seed(data):
    sim = data["sim"]
    large = {**LGBM, "feature_fraction": 1.0, "feature_fraction_bynode": 0.5, "extra_trees": False}
    kw = dict(lgbm_params=large, n_folds=2, n_estimators=30)
    first = _model(sim.schema, **kw).fit(data["ev"], data["train"], entities=sim.entities)
    again = _model(sim.schema, **kw).fit(data["ev"], data["train"], entities=sim.entities)
    assert first.training_summary_["lgbm_params"]["feature_fraction_bynode"] == 0.5
    assert again.booster_.model_to_string() == first.booster_.model_to_string()
    assert again.calibrator_.to_dict() == first.calibrator_.to_dict()
    other = _model(sim.schema, random_state=1, **kw).fit(data["ev"], data["train"], entities=sim.entities)
    assert other.booster_.model_to_string() != first.booster_.model_to_string()


def test_small_data_is_seed_bagged_by_default(data, fitted):
    summary = fitted.training_summary_
    assert summary["n_positive"] < BAGGING_POSITIVES
    assert summary["seed_bagging"] == {"members": BAGGING_SEEDS, "seeds": bagging_seeds(0, BAGGING_SEEDS)}
    assert len(set(summary["seed_bagging"]["seeds"])) == BAGGING_SEEDS
    # the members differ (their features and thresholds are drawn by their seeds)
    text = fitted.booster_.model_to_string()
    n_rounds = summary["n_rounds"]
    trees = text[text.index("Tree=0"):text.index("end of trees")].split("Tree=")[1:]
    first_trees = [trees[m * n_rounds].partition("\n")[2] for m in range(BAGGING_SEEDS)]
    assert len(set(first_trees)) == BAGGING_SEEDS
    X = fitted.transform_features(data["ev"], data["train"].tail(300), entities=data["sim"].entities)
    contrib = fitted.explain(X)  # exact SHAP of the averaged trees still sums to the raw score
    raw = fitted.predict_raw(X)
    np.testing.assert_allclose(contrib.sum(axis=1), np.log(raw / (1 - raw)), atol=1e-6)


def test_seed_bagging_applies_only_below_the_threshold(data, monkeypatch):
    sim = data["sim"]
    kw = dict(n_folds=2, n_estimators=30)
    one = _model(sim.schema, seed_bagging=1, **kw).fit(data["ev"], data["train"], entities=sim.entities)
    assert one.training_summary_["seed_bagging"] == {"members": 1, "seeds": [0]}
    assert one.booster_.current_iteration() == one.best_iteration_
    bagged = _model(sim.schema, **kw).fit(data["ev"], data["train"], entities=sim.entities)
    assert bagged.training_summary_["seed_bagging"]["members"] == BAGGING_SEEDS
    # from BAGGING_POSITIVES positives on, "auto" grows the one model seed_bagging=1 grows
    monkeypatch.setattr(riskmodel.model._model, "BAGGING_POSITIVES", int(data["train"]["label"].sum()))
    auto = _model(sim.schema, **kw).fit(data["ev"], data["train"], entities=sim.entities)
    assert auto.training_summary_["seed_bagging"] == {"members": 1, "seeds": [0]}
    assert auto.booster_.model_to_string() == one.booster_.model_to_string()
    assert auto.calibrator_.to_dict() == one.calibrator_.to_dict()
    rows = data["unseen"]
    np.testing.assert_array_equal(auto.predict_proba(data["ev"], rows, entities=sim.entities),
                                  one.predict_proba(data["ev"], rows, entities=sim.entities))
    for bad in (0, -1, True, 2.5, "five"):
        with pytest.raises(ConfigError, match="seed_bagging must be 'auto' or a positive integer"):
            _model(sim.schema, seed_bagging=bad).fit(data["ev"], data["train"], entities=sim.entities)


def test_averaged_booster_scores_the_mean_log_odds_of_its_members():
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.random((1500, 4)), columns=list("abcd"))
    X["group"] = pd.Categorical(rng.integers(0, 5, len(X)).astype(str))
    y = (X["a"] + (X["group"] == "3") + rng.random(len(X)) > 1.4).astype(int)
    params = {"objective": "binary", "num_leaves": 5, "extra_trees": True, "feature_fraction": 0.5,
              "verbose": -1, "num_threads": 1, "deterministic": True}
    members = [lgb.train({**params, "seed": s}, lgb.Dataset(X, y), num_boost_round=20) for s in (1, 2, 3)]
    merged = average_boosters(members)
    assert average_boosters(members[:1]) is members[0]
    assert merged.num_trees() == 60
    mean_raw = np.mean([m.predict(X, raw_score=True) for m in members], axis=0)
    np.testing.assert_allclose(merged.predict(X, raw_score=True), mean_raw, rtol=0, atol=1e-12)
    np.testing.assert_allclose(merged.predict(X), 1 / (1 + np.exp(-mean_raw)), rtol=0, atol=1e-12)
    contrib = np.mean([m.predict(X, pred_contrib=True) for m in members], axis=0)
    np.testing.assert_allclose(merged.predict(X, pred_contrib=True), contrib, rtol=0, atol=1e-12)
    again = lgb.Booster(model_str=merged.model_to_string())  # saved and loaded: the same scores
    np.testing.assert_array_equal(again.predict(X), merged.predict(X))


def test_num_leaves_grid_is_chosen_on_the_folds(data):
    sim = data["sim"]
    model = _model(sim.schema, num_leaves_grid=(3, 7), n_folds=2, n_estimators=60)
    model.fit(data["ev"], data["train"], entities=sim.entities)
    grid = model.training_summary_["num_leaves_grid"]
    assert set(grid) == {"3", "7"}
    assert model.training_summary_["num_leaves"] == int(min(grid, key=grid.get))


def test_optional_search_on_the_same_folds(data):
    pytest.importorskip("optuna")
    sim = data["sim"]
    kw = dict(n_folds=2, n_estimators=40, search_budget=120, search_trials=3)
    model = _model(sim.schema, **kw).fit(data["ev"], data["train"], entities=sim.entities)
    search = model.training_summary_["search"]
    assert search["trials"] == 3 and search["stopped_by"] == "trials"
    assert search["best_loss"] <= search["default_loss"]  # the first trial is the size-aware defaults
    assert model.training_summary_["lgbm_params"]["num_leaves"] == search["best"]["num_leaves"]
    again = _model(sim.schema, **kw).fit(data["ev"], data["train"], entities=sim.entities)
    assert again.booster_.model_to_string() == model.booster_.model_to_string()  # seeded, ended by trials
    with pytest.raises(ConfigError, match="search_budget must be a positive number"):
        _model(sim.schema, search_budget=-1).fit(data["ev"], data["train"], entities=sim.entities)


def _tiny(seed=0, n=300):
    sim = simulate_disputes(n, start="2024-01-01", end="2025-12-31", seed=seed)
    ev = prepare_events(sim.events, sim.schema)
    lab = make_labels(ev, make_cutoffs(ev, sim.schema, entities=sim.entities), sim.schema, horizon=HORIZON)
    return sim, ev, lab[~lab["censored"]].reset_index(drop=True)


def test_tiny_data_calibrates_and_warns_with_the_numbers():
    sim, ev, lab = _tiny()
    with pytest.warns(DataWarning, match=r"reference population .* is \d+ rows with \d+ positive") as caught:
        model = RiskModel(schema=sim.schema, lgbm_params=LGBM).fit(ev, lab, entities=sim.entities)
    assert any("drift: the reference holds" in str(w.message) for w in caught)
    assert model.training_summary_["notes"]
    p = model.predict_proba(ev, lab, entities=sim.entities)[:, 1]
    assert len(np.unique(np.round(p, 6))) > 50  # not a constant or a few steps
    assert 0.005 < p.min() and p.max() < 0.95
    policy = model.tier_policy_
    assert p.min() < policy.yellow_threshold_ < policy.red_threshold_ < p.max()
    assert model.calibrator_.chosen_ == "sigmoid"  # too few positives for isotonic
    assert "too few positives" in model.calibrator_.selection_["isotonic_skipped"]
    out = model.predict(ev, lab.tail(300), entities=sim.entities)
    assert set(out["tier"].astype(str)) == {"red", "yellow", "blue"}


def test_one_sided_folds_are_skipped_or_replaced():
    sim, ev, lab = _tiny(seed=1)
    y = lab["label"].astype(int)
    # every positive before the first validation block: the later folds' blocks are one-sided,
    # which the calibrator must survive; all positives in the latest rows: no early fold can train
    first_block = lab["as_of"].quantile(0.4)
    early = lab.assign(label=np.where(lab["as_of"] < first_block, y, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        m = RiskModel(schema=sim.schema, lgbm_params=LGBM).fit(ev, early, entities=sim.entities)
    assert all(f["valid_positives"] == 0 for f in m.training_summary_["folds"])
    p = m.predict_proba(ev, early, entities=sim.entities)[:, 1]
    assert np.all(np.isfinite(p)) and len(np.unique(np.round(p, 8))) > 50
    sim, ev, lab = _tiny(seed=1, n=800)
    y = lab["label"].astype(int)
    late = lab.assign(label=np.where(lab["as_of"] >= lab["as_of"].quantile(0.85), y, 0))
    assert late["label"].sum() >= 10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        m = RiskModel(schema=sim.schema, lgbm_params=LGBM).fit(ev, late, entities=sim.entities)
    assert m.training_summary_["fold_kind"] == "entity"  # no time fold had 5 training positives
    assert any("by entity instead" in n for n in m.training_summary_["notes"])
    assert len(np.unique(np.round(m.predict_proba(ev, late, entities=sim.entities)[:, 1], 8))) > 50


def test_a_single_as_of_uses_entity_folds():
    # one cutoff per subject, all at one moment (as in some extracts): no time order to fold on
    sim, ev, _ = _tiny(seed=2, n=3000)
    cut = make_cutoffs(ev, sim.schema, entities=sim.entities, start="2025-06-01", end="2025-06-01")
    relabelled = make_labels(ev, cut, sim.schema, horizon=HORIZON)
    relabelled = relabelled[~relabelled["censored"]].reset_index(drop=True)
    assert relabelled["as_of"].nunique() == 1 and relabelled["label"].astype(int).sum() >= 10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        m = RiskModel(schema=sim.schema, lgbm_params=LGBM).fit(ev, relabelled, entities=sim.entities)
    assert m.training_summary_["fold_kind"] == "entity"
    assert "as_of has a single value" in m.training_summary_["notes"][0]


# ------------------------------------------------------------------------------------------
# the calibrator alone


@pytest.mark.parametrize("labels", [[0] * 12, [1] * 12, [0] * 11 + [1], [1, 0] * 2])
def test_calibrator_is_never_constant_or_reversed(labels):
    y = np.array(labels)
    raw = np.linspace(0.01, 0.6, len(y))
    for method in ("auto", "sigmoid", "isotonic"):
        cal = Calibrator(method).fit(raw, y)
        p = cal.transform(raw)
        assert np.all(np.diff(p) > 0), (method, cal.to_dict())
        assert np.all((p > 0) & (p < 1))


def test_calibrator_uses_isotonic_only_with_enough_positives():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.001, 0.5, 20_000)
    y = (rng.random(20_000) < np.where(raw < 0.25, 0.02, 0.4)).astype(int)  # a step: no sigmoid fits it
    cal = Calibrator("auto").fit(raw, y)
    assert cal.chosen_ == "isotonic" and cal.params_["space"] == "logit"
    few = np.r_[np.arange(60) < 40, np.zeros(2000)].astype(int)
    cal = Calibrator("auto").fit(np.r_[rng.uniform(0.2, 0.9, 60), rng.uniform(0.001, 0.3, 2000)], few)
    assert cal.chosen_ == "sigmoid" and "isotonic_skipped" in cal.selection_
    # a forced isotonic map that would collapse to a few steps falls back to the sigmoid
    cal = Calibrator("isotonic").fit(np.linspace(0.1, 0.2, 30), np.r_[np.zeros(29), 1])
    assert cal.chosen_ == "sigmoid"


def test_calibrator_weights_follow_the_latest_rows():
    rng = np.random.default_rng(1)
    raw = rng.uniform(0.01, 0.3, 40_000)
    late = np.arange(40_000) >= 30_000
    y = (rng.random(40_000) < np.where(late, raw / 2, raw)).astype(int)  # the rate halved lately
    flat = Calibrator("sigmoid").fit(raw, y)
    recent = Calibrator("sigmoid").fit(raw, y, sample_weight=np.where(late, 1.0, 0.05))
    assert recent.transform(raw).mean() < flat.transform(raw).mean()
    assert recent.transform(raw).mean() == pytest.approx((raw / 2).mean(), rel=0.15)


def test_calibrators_saved_before_forward_folds_read_the_same():
    iso = Calibrator.from_dict({"method": "auto", "chosen": "isotonic", "params": {"x": [0.01, 0.5], "y": [0.0, 1.0]}})
    assert iso.transform(np.array([0.01, 0.255, 0.5])).tolist() == [0.0, 0.5, 1.0]
    sig = Calibrator.from_dict({"method": "auto", "chosen": "sigmoid", "params": {"a": 1.0, "b": 0.0}})
    assert sig.transform(np.array([0.2]))[0] == pytest.approx(0.2)


def test_predict_unseen_disputes_and_kinds(data, fitted):
    sim, unseen = data["sim"], data["unseen"]
    out = fitted.predict(data["ev"], unseen, entities=sim.entities)
    assert len(out) == len(unseen) and out["probability"].notna().all()
    assert score_metrics(unseen["label"].astype(int), out["probability"])["roc_auc"] > 0.65

    new_events = pd.DataFrame(
        {
            "dispute_id": ["DNEW1"] * 3,
            "time": pd.to_datetime(["2025-05-02 10:00", "2025-05-20 11:00", "2025-06-03 21:00"]),
            "kind": ["call_110", "arson_threat", "threat"],
            "narrative": ["邻居吵架", "他说要放火烧房子", "扬言报复"],
            "party_id": ["PNEW1", "PNEW2", "PNEW1"],
        }
    )
    events = pd.concat([sim.events, new_events], ignore_index=True)
    entities = pd.concat([sim.entities, sim.entities.iloc[[0]].assign(dispute_id="DNEW1")], ignore_index=True)
    cut = pd.DataFrame({"dispute_id": ["DNEW1", unseen["dispute_id"].iloc[0]],
                        "as_of": pd.to_datetime(["2025-06-10", "2025-06-10"])})  # fmt: skip
    with pytest.warns(DataWarning, match="arson_threat"):
        new = fitted.predict(events, cut, entities=entities)
    assert new["probability"].between(0, 1).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        X = fitted.transform_features(events, cut.iloc[:1], entities=entities)
    assert X["count_other_all"].iloc[0] == 1.0


# ------------------------------------------------------------------------------------------
# generality: another event log with other column names


def _subject_log(n_subjects=3000, seed=7):
    """Per-subject events: risk z drives alarms / complaints and the 'failure' outcome."""
    rng = np.random.default_rng(seed)
    t0, months = pd.Timestamp("2021-01-01"), 36
    segment = rng.choice(["a", "b", "c"], n_subjects, p=[0.5, 0.3, 0.2])
    age = rng.uniform(20, 80, n_subjects)
    z = rng.normal(size=n_subjects) + np.select([segment == "b", segment == "c"], [0.4, 0.8], 0.0) + (age - 50) / 40
    start = rng.uniform(-12, months - 6, n_subjects).clip(0)  # staggered entry, in months
    rates = {  # events per month while active
        "visit": np.full(n_subjects, 1.5),
        "complaint": 0.3 * np.exp(0.5 * z),
        "alarm": 0.2 * np.exp(1.0 * z),
        "failure": 0.02 * np.exp(1.1 * z),
    }
    frames = []
    for kind, rate in rates.items():
        n = rng.poisson(rate * (months - start))
        subject = np.repeat(np.arange(n_subjects), n)
        days = (start[subject] + rng.uniform(0, 1, n.sum()) * (months - start[subject])) * 30.4
        frames.append(pd.DataFrame({"subject": subject, "days": days, "event_type": kind}))
    ev = pd.concat(frames, ignore_index=True)
    ev["subject"] = "S" + ev["subject"].astype(str).str.zfill(5)
    ev["ts"] = t0 + pd.to_timedelta(ev.pop("days"), unit="D")
    entities = pd.DataFrame(
        {
            "subject": "S" + pd.Series(np.arange(n_subjects)).astype(str).str.zfill(5),
            "segment": pd.Categorical(segment),
            "age": age,
        }
    )
    schema = EventSchema(
        entity_col="subject", time_col="ts", kind_col="event_type", text_col=None, party_col=None,
        entity_categorical_cols=("segment",), entity_numeric_cols=("age",), entity_time_cols=(),
        group_cols=(), closed_col=None, outcome_kinds=("failure",),
    )  # fmt: skip
    return ev[["subject", "ts", "event_type"]], entities, schema


def test_generic_event_log():
    events, entities, schema = _subject_log()
    ev = prepare_events(events, schema)
    cut = make_cutoffs(ev, schema, entities=entities, start="2021-04-01", freq="2MS")
    lab = make_labels(ev, cut, schema, horizon=HORIZON)
    end = pd.Timestamp(ev.times_ns.max())
    lab = lab[lab["as_of"] + pd.Timedelta(HORIZON) <= end].reset_index(drop=True)
    assert 0.05 < lab["label"].astype(float).mean() < 0.11
    split = pd.Timestamp("2023-01-01")
    train = lab[lab["as_of"] + pd.Timedelta(HORIZON) <= split]
    test = lab[lab["as_of"] >= split]
    model = RiskModel(schema=schema, lgbm_params=LGBM).fit(ev, train, entities=entities)
    assert "age" in model.feature_names_ and "segment" in model.feature_names_
    assert not any(n.startswith(("kw_", "party_", "ctx_")) for n in model.feature_names_)
    out = model.predict(ev, test, entities=entities)
    y = test["label"].to_numpy(dtype=int)
    assert score_metrics(y, out["probability"])["roc_auc"] > 0.65
    assert out["probability"].mean() == pytest.approx(y.mean(), abs=0.02)
    assert (out["reasons"][out["tier"] != "blue"] != "").all()


# ------------------------------------------------------------------------------------------
# errors


def test_fit_without_label_column(data):
    train = data["train"].drop(columns="label")
    with pytest.raises(DataError, match="no label column 'label'"):
        _model(data["sim"].schema).fit(data["ev"], train, entities=data["sim"].entities)


def test_fit_with_censored_labels(data):
    train = data["train"].copy()
    train["label"] = train["label"].astype("Int8")
    train.loc[train.index[-5:], "label"] = pd.NA
    with pytest.raises(DataError, match="5 cutoff.*censored"):
        _model(data["sim"].schema).fit(data["ev"], train, entities=data["sim"].entities)


def test_predict_before_fit(data):
    with pytest.raises(ModelError, match="not fitted"):
        _model(data["sim"].schema).predict(data["ev"], data["train"].head(5), entities=data["sim"].entities)
    X = pd.DataFrame({"count_all_30D": [1.0]})
    for method in ("predict_raw", "explain"):  # an AttributeError before
        with pytest.raises(ModelError, match="not fitted"):
            getattr(_model(data["sim"].schema), method)(X)


def test_untrainable_reason_is_the_fits_own_rule():
    from riskmodel.model import untrainable_reason

    as_of = pd.Series(pd.date_range("2024-01-01", periods=100, freq="D"))
    y = np.zeros(100, dtype=int)
    assert "need at least 10 positive" in untrainable_reason(as_of, y, 0.15, 0.15)
    y[:12] = 1  # all early: the later slices have none
    assert "the validation time slice has 0 positive" in untrainable_reason(as_of, y, 0.15, 0.15)
    y[::4] = 1
    assert untrainable_reason(as_of, y, 0.15, 0.15) is None


def test_the_zone_of_the_training_times_is_saved_with_the_model(fitted, tmp_path):
    """The zone aware training times were written in (night-time counts) is part of the
    saved model: a model loaded from the registry reads the same local hours."""
    model = copy.deepcopy(fitted)
    model.features_.zone_ = "+08:00"
    loaded = load_model_dir(save_model_dir(model, tmp_path / "m"))
    assert loaded.features_.zone_ == "+08:00"
    assert load_model_dir(save_model_dir(fitted, tmp_path / "n")).features_.zone_ is None


@pytest.mark.parametrize(("params", "message"), [
    ({"horizon": 90}, "horizon 90 has no unit"),
    ({"calibration_half_life": "-30D"}, "calibration_half_life must be positive"),
    ({"early_stopping_rounds": -1}, "early_stopping_rounds must be a positive integer"),
    ({"top_k_reasons": -1}, "top_k_reasons must be a non-negative integer"),
    ({"kind_labels": "x"}, "kind_labels must be a mapping"),
    ({"tier_policy": "x"}, "tier_policy must be a TierPolicy"),
    ({"lgbm_params": "fast"}, "lgbm_params must be a mapping"),
    ({"lgbm_params": {"categorical_feature": "cat"}}, "lgbm_params may not set ['categorical_feature']"),
    ({"lgbm_params": {"objective": "regression"}}, "lgbm_params may not set ['objective']"),
    ({"lgbm_params": {"num_leaves": -3}}, "lgbm_params are refused by LightGBM: Check failed: (num_leaves) > (1)"),
    ({"lgbm_params": {"learning_rate": 0}}, "lgbm_params are refused by LightGBM"),
    ({"lgbm_params": {"num_leafs": 7, "min_data": 5}},  # a typo LightGBM would ignore; an alias is fine
     "lgbm_params names parameters LightGBM does not know: 'num_leafs' (did you mean 'num_leaf'?)"),
    ({"random_state": None}, "random_state must be an integer"),
])
def test_bad_settings_are_refused_before_training(data, params, message):
    """Settings refused in their own names before any work: a bare 90 was a 90-nanosecond
    horizon (the folds trained with no gap), others raised AttributeError after the whole fit."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        _model(data["sim"].schema, **params).fit(data["ev"], data["train"], entities=data["sim"].entities)


def test_a_refit_with_other_features_predicts_with_its_own_layout(data):
    """fit, predict, set_params(features=<fewer windows>), fit, predict: the second predict laid
    the new features out with the first fit's column positions (a cached layout) and failed
    with NumPy's shape mismatch; a refit replaces every fitted state."""
    sim = data["sim"]
    rows = data["train"].iloc[::4].reset_index(drop=True)
    probe = data["unseen"].iloc[:50][["dispute_id", "as_of"]]
    model = RiskModel(schema=sim.schema, features=FeatureBuilder(schema=sim.schema), n_estimators=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        model.fit(data["ev"], rows, entities=sim.entities)
        first = model.predict(data["ev"], probe, entities=sim.entities)
        model.set_params(features=FeatureBuilder(schema=sim.schema, windows=("30D",)))
        model.fit(data["ev"], rows, entities=sim.entities)
        again = model.predict(data["ev"], probe, entities=sim.entities)
        fresh = RiskModel(schema=sim.schema, features=FeatureBuilder(schema=sim.schema, windows=("30D",)),
                          n_estimators=30).fit(data["ev"], rows, entities=sim.entities)
        expected = fresh.predict(data["ev"], probe, entities=sim.entities)
    assert len(first) == len(again) == 50
    np.testing.assert_allclose(again["probability"], expected["probability"])
