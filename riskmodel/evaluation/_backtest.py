"""Rolling-origin backtest of a :class:`RiskModel` against simple baselines: :func:`backtest`.

For each fold cut date ``c`` the model is trained only on what was known at ``c``: events
before ``c`` and labelled cutoffs whose whole outcome window ended by ``c``
(``as_of + horizon <= c``). It is then scored on the cutoffs of the following test period
``c <= as_of < c + test_period``. Baselines are fitted and scored on the same rows, so every
comparison is like for like, and the last fold gets bootstrap intervals clustered by dispute.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .._errors import ConfigError, DataError, DataWarning, format_examples
from ..data import lookup_positions, parse_duration, validate_cutoffs
from ..features import PreparedEvents, prepare_events
from ..model import TIERS, RiskModel
from ._metrics import (
    METRIC_NAMES,
    bootstrap_metrics,
    compare_bootstrap,
    reliability_curve,
    score_metrics,
    subgroup_report,
    tier_table,
)

__all__ = ["BacktestResult", "backtest", "check_n_folds"]

#: Baseline scorers, in report order (``checklist`` only when a checklist is given).
BASELINES: tuple[str, ...] = ("base_rate", "logistic_counts", "checklist")
_SHAP_SAMPLE = 1000


# --------------------------------------------------------------------------------------
# the result


@dataclass
class BacktestResult:
    """Outcome of :func:`backtest`.

    Attributes
    ----------
    folds : DataFrame
        One row per fold: ``fold``, ``train_end`` (the cut date: every training label was
        observable by then), ``test_start``, ``test_end`` (exclusive), ``train_first_as_of``,
        ``train_last_as_of``, ``train_label_end`` (last training ``as_of`` + horizon, always
        ``<= train_end``), ``n_train``, ``n_test``, ``positives`` (in the test rows) and, per
        scorer, ``{scorer}_{metric}`` point values for :data:`METRIC_NAMES`.
    metrics : DataFrame
        Last fold; index = scorer (``model``, the baselines, ``oracle``); columns ``n``,
        ``n_positive`` and, per metric, ``{metric}`` (value), ``{metric}_lower`` and
        ``{metric}_upper`` (95% cluster-bootstrap interval, clusters = disputes). If the
        oracle covers only some rows, it is scored on those and a ``model@oracle_rows`` row
        scores the model on the same rows.
    comparisons : DataFrame
        Last fold, paired cluster bootstrap of model minus each baseline (and minus the
        oracle, on its rows); index (``baseline``, ``metric``), columns as
        :func:`~riskmodel.evaluation._metrics.compare_bootstrap`.
    predictions : DataFrame
        Last fold's test rows: entity id, ``as_of``, ``label``, ``probability``, ``tier``,
        one probability column per baseline, ``oracle`` (if any) and the group columns.
    tier_table : DataFrame
        Size and hit rate of each tier on the last fold.
    subgroup : DataFrame or None
        :func:`~riskmodel.evaluation._metrics.subgroup_report` of the last fold over the group columns.
    reliability : DataFrame
        Reliability curve of the model on the last fold.
    model : RiskModel
        The last fold's fitted model.
    notes : list of str
        Everything skipped or repaired (a baseline not run, folds skipped, warnings).
    horizon, test_period : Timedelta
    """

    folds: pd.DataFrame
    metrics: pd.DataFrame
    comparisons: pd.DataFrame
    predictions: pd.DataFrame
    tier_table: pd.DataFrame
    subgroup: pd.DataFrame | None
    reliability: pd.DataFrame
    model: RiskModel
    notes: list[str] = field(default_factory=list)
    horizon: pd.Timedelta | None = None
    test_period: pd.Timedelta | None = None
    _shap_features: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def scorers(self) -> list[str]:
        """Probability columns of :attr:`predictions`: the model first, then the baselines."""
        names = ["probability"] + [b for b in BASELINES if b in self.predictions.columns]
        if "oracle" in self.predictions.columns:
            names.append("oracle")
        return names

    def verdict(self) -> dict[str, bool]:
        """Does the model beat every baseline, and are the tiers ordered?

        A baseline is beaten on a metric when the two 95% intervals of :attr:`metrics` do
        not overlap in the model's favour (higher AUC, lower Brier score). The oracle is not
        a baseline. That criterion is conservative: both scores move together across
        resamples (a resample with more escalations raises every Brier score), so the
        ``*_paired`` entries also report the paired test, whose interval of the difference
        (:attr:`comparisons`) excludes zero in the model's favour.

        Returns
        -------
        dict of str to bool
            ``auc_beats_{baseline}``, ``brier_beats_{baseline}`` (non-overlapping intervals)
            and ``auc_beats_{baseline}_paired``, ``brier_beats_{baseline}_paired`` for each
            baseline, and ``auc_beats_all``, ``brier_beats_all`` (non-overlapping, every
            baseline), ``tiers_ordered`` (hit rates strictly decreasing red > yellow > blue,
            every tier non-empty) and ``all`` (the three of them).
        """
        m = self.metrics
        out: dict[str, bool] = {}
        baselines = [b for b in BASELINES if b in m.index]
        for b in baselines:
            out[f"auc_beats_{b}"] = bool(m.loc["model", "roc_auc_lower"] > m.loc[b, "roc_auc_upper"])
            out[f"brier_beats_{b}"] = bool(m.loc["model", "brier_upper"] < m.loc[b, "brier_lower"])
            out[f"auc_beats_{b}_paired"] = bool(self.comparisons.loc[(b, "roc_auc"), "lower"] > 0)
            out[f"brier_beats_{b}_paired"] = bool(self.comparisons.loc[(b, "brier"), "upper"] < 0)
        out["auc_beats_all"] = all(out[f"auc_beats_{b}"] for b in baselines)
        out["brier_beats_all"] = all(out[f"brier_beats_{b}"] for b in baselines)
        hit = self.tier_table.set_index("tier").loc[list(TIERS), "hit_rate"].to_numpy(dtype=float)
        out["tiers_ordered"] = bool(np.isfinite(hit).all() and hit[0] > hit[1] > hit[2])
        out["all"] = out["auc_beats_all"] and out["brier_beats_all"] and out["tiers_ordered"]
        return out

    def figures(self) -> dict:
        """Evaluation figures of the last fold.

        Returns
        -------
        dict of str to matplotlib.figure.Figure
            ``reliability`` (model, with the baselines as lines), ``roc_pr`` (every scorer;
            the oracle only if it covers every row), ``tier_hit_rates`` and
            ``shap_summary`` (exact SHAP on a sample of the last fold's feature matrix).
        """
        from ._plots import plot_reliability, plot_roc_pr, plot_shap_summary, plot_tier_hit_rates

        pred = self.predictions
        y = pred["label"].to_numpy(dtype=int)
        probs = {"model": pred["probability"].to_numpy(dtype=float)}
        for name in self.scorers[1:]:
            values = pred[name].to_numpy(dtype=float)
            if np.isfinite(values).all():
                probs[name] = values
        others = {k: v for k, v in probs.items() if k != "model"}
        figs = {
            "reliability": plot_reliability(y, probs["model"], others=others),
            "roc_pr": plot_roc_pr(y, probs),
            "tier_hit_rates": plot_tier_hit_rates(self.tier_table),
        }
        if self._shap_features is not None and len(self._shap_features):
            contrib = self.model.explain(self._shap_features)
            figs["shap_summary"] = plot_shap_summary(contrib.to_numpy(), list(contrib.columns[:-1]))
        return figs

    def summary(self) -> str:
        """A readable text report: folds, last-fold metrics with intervals, comparisons, tiers."""
        lines = ["Backtest (rolling origin)", ""]
        cols = ["fold", "train_end", "test_start", "test_end", "n_train", "n_test", "positives"]
        cols += [c for c in self.folds.columns if c.endswith(("_roc_auc", "_brier"))]
        with pd.option_context("display.width", 200, "display.max_columns", 50):
            lines.append(self.folds[cols].to_string(index=False, float_format="{:.4f}".format))
            lines += ["", "Last fold, 95% cluster-bootstrap intervals:"]
            table = pd.DataFrame(index=self.metrics.index)
            table["n"] = self.metrics["n"]
            table["positives"] = self.metrics["n_positive"]
            for metric in METRIC_NAMES:
                m = self.metrics
                table[metric] = [
                    f"{v:.4f} [{lo:.4f}, {hi:.4f}]"
                    for v, lo, hi in zip(m[metric], m[f"{metric}_lower"], m[f"{metric}_upper"])
                ]
            lines.append(table.to_string())
            lines += ["", "Model minus baseline (paired bootstrap):"]
            comp = self.comparisons.reset_index()
            comp = comp[comp["metric"].isin(["roc_auc", "brier"])].copy()
            comp["interval"] = [
                f"{v:+.4f} [{lo:+.4f}, {hi:+.4f}]" for v, lo, hi in zip(comp["value"], comp["lower"], comp["upper"])
            ]
            lines.append(comp.pivot(index="baseline", columns="metric", values="interval").to_string())
            lines += ["", "Tiers (last fold):"]
            lines.append(self.tier_table.to_string(index=False, float_format="{:.4f}".format))
        verdict = self.verdict()
        lines += ["", "Verdict: " + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in verdict.items())]
        if self.notes:
            lines += ["", "Notes:"] + [f"- {n}" for n in self.notes]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------
# baselines


def _count_columns(X: pd.DataFrame) -> list[str]:
    return [c for c in X.columns if c.startswith("count_")]


def _fit_logistic_counts(X: pd.DataFrame, y: np.ndarray):
    cols = _count_columns(X)
    if not cols:
        return None
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    pipe.fit(np.log1p(X[cols].to_numpy(dtype=float, na_value=0.0).clip(min=0)), y)
    return cols, pipe


def _predict_logistic_counts(fitted, X: pd.DataFrame) -> np.ndarray:
    cols, pipe = fitted
    return pipe.predict_proba(np.log1p(X[cols].to_numpy(dtype=float, na_value=0.0).clip(min=0)))[:, 1]


def _checklist_score(X: pd.DataFrame, checklist: Mapping[str, float]) -> np.ndarray:
    names = list(checklist)
    values = X[names].to_numpy(dtype=float, na_value=np.nan)
    return np.nan_to_num(values, nan=0.0) @ np.array([float(checklist[n]) for n in names])


def _fit_checklist(X: pd.DataFrame, y: np.ndarray, checklist: Mapping[str, float]) -> LogisticRegression:
    # Platt scaling of the expert score so its Brier score and log loss mean something
    return LogisticRegression(C=1e4, max_iter=1000).fit(_checklist_score(X, checklist)[:, None], y)


# --------------------------------------------------------------------------------------
# the backtest


def _fold_cuts(last_as_of: pd.Timestamp, period: pd.Timedelta, n_folds: int) -> list[pd.Timestamp]:
    """Cut dates so the last test period ``[c_n, c_n + period)`` ends just after ``last_as_of``."""
    end = last_as_of.floor("D") + pd.Timedelta(days=1)
    return [end - (n_folds - i) * period for i in range(n_folds)]


def _events_before(prepared: PreparedEvents, cut: pd.Timestamp) -> PreparedEvents:
    """The already validated, sorted events strictly before ``cut`` (no re-validation)."""
    return prepared.subset(prepared.times_ns < cut.value)


def _record_warnings(caught, notes: list[str], fold: int) -> None:
    for w in caught:
        if issubclass(w.category, DataWarning):
            text = f"fold {fold}: {w.message}"
            if text not in notes:
                notes.append(text)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def check_n_folds(n_folds) -> None:
    """:class:`ConfigError` unless ``n_folds`` is a positive integer (not a bool, not ``"two"``)."""
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 1:
        raise ConfigError(f"n_folds must be a positive integer, got {n_folds!r}.")


def backtest(
    events,
    cutoffs: pd.DataFrame,
    *,
    model: RiskModel,
    entities: pd.DataFrame | None = None,
    n_folds: int = 3,
    test_period: str = "90D",
    horizon: str = "90D",
    group_cols: Sequence[str] | None = None,
    checklist: Mapping[str, float] | None = None,
    oracle: Callable[[pd.DataFrame], np.ndarray] | None = None,
    n_bootstrap: int = 200,
    seed: int = 0,
    observed_until=None,
    progress: Callable[[float, float, str], None] | None = None,
) -> BacktestResult:
    """Rolling-origin backtest of ``model`` and of simple baselines on the same folds.

    Fold cut dates ``c_1 < ... < c_n`` are ``test_period`` apart, the last test period
    ending on the day of the last labelled ``as_of``. Fold ``i`` trains a clone of
    ``model`` on the events before ``c_i`` and the labelled cutoffs with
    ``as_of + horizon <= c_i`` (every training label was observable at ``c_i``), and
    tests it on the cutoffs with ``c_i <= as_of < c_i + test_period``.

    Baselines, fitted on the same training rows:

    * ``base_rate``: the training positive rate, for every row;
    * ``logistic_counts``: logistic regression on ``log1p`` of the model's ``count_*``
      features, standardised (``C=0.1``);
    * ``checklist``: the expert score ``sum(weight * feature)``, Platt-calibrated on the
      training rows; skipped (with a note) if ``checklist`` is None or names features the
      model does not have.

    Parameters
    ----------
    events : DataFrame or PreparedEvents
    cutoffs : DataFrame
        Entity id, ``as_of`` and the model's label column (from :func:`make_labels`);
        censored rows (missing label) are dropped with a note.
    model : RiskModel
        Unfitted template; each fold fits ``sklearn.base.clone(model)``.
    entities : DataFrame, optional
    n_folds : int, default=3
    test_period : str, default="90D"
    horizon : str, default="90D"
        The labels' horizon (as passed to :func:`make_labels`).
    group_cols : sequence of str, optional
        Entities columns for the subgroup report and the predictions; default the schema's
        ``entity_categorical_cols`` when ``entities`` is given.
    checklist : mapping of feature name to weight, optional
        E.g. ``{"count_threat_90D": 3, "count_fight_90D": 2, "kw_weapon_30D": 2}``.
    oracle : callable, optional
        ``oracle(cutoffs) -> probabilities`` aligned with the rows of ``cutoffs`` (NaN
        where unknown). Called on the last fold's test rows only (it is usually slow).
    n_bootstrap : int, default=200
    seed : int, default=0
    observed_until : datetime-like, optional
        End of the observed data (default: the last event time, as in :func:`make_labels`).
        Cutoffs whose outcome window runs past it are dropped with a note, positives
        included: :func:`make_labels` labels such a row 1 when the outcome already happened
        but leaves it censored otherwise, so keeping its positives would inflate the hit
        rate of the latest test period.
    progress : callable, optional
        ``progress(done, total, message)``, called as each fold starts and ends and before
        the last fold's bootstrap (``total`` = folds + 1).

    Returns
    -------
    BacktestResult

    Raises
    ------
    ConfigError
        For ``n_folds < 1`` or a non-positive period.
    DataError
        If a fold has no test rows, or the last fold cannot be trained.
    """
    check_n_folds(n_folds)
    period, h = parse_duration(test_period, "test_period"), parse_duration(horizon, "horizon")
    schema = model._schema()
    label_col = model.label_col
    if label_col not in getattr(cutoffs, "columns", []):
        raise DataError(f"cutoffs have no label column {label_col!r}; build it with make_labels(...).")
    notes: list[str] = []
    labelled = cutoffs[cutoffs[label_col].notna()]
    if len(labelled) < len(cutoffs):
        notes.append(f"{len(cutoffs) - len(labelled)} censored cutoff(s) (missing label) dropped.")
    cut = validate_cutoffs(labelled, schema, label_col=label_col).reset_index(drop=True)
    prepared = prepare_events(events, schema)
    end = pd.Timestamp(observed_until) if observed_until is not None else pd.Timestamp(prepared.times_ns.max())
    complete = (cut["as_of"] + h <= end).to_numpy()
    if not complete.all():
        dropped = ~complete
        notes.append(
            f"{int(dropped.sum())} labelled cutoff(s) whose {horizon} window runs past {end} dropped "
            f"({int(cut[label_col].to_numpy(dtype=int)[dropped].sum())} positive): only their "
            "positives are labelled, so they would bias the test rates."
        )
        cut = cut[complete].reset_index(drop=True)
    if len(cut) == 0:
        raise DataError(f"no labelled cutoffs with a complete {horizon} window before {end}.")
    as_of = cut["as_of"]
    y_all = cut[label_col].to_numpy(dtype=int)
    cuts = _fold_cuts(as_of.max(), period, int(n_folds))

    if checklist is not None and not len(checklist):
        checklist = None
    if checklist is None:
        notes.append("checklist baseline skipped: no checklist given.")

    group_cols = _group_columns(group_cols, schema, entities)

    rows: list[dict] = []
    last: dict | None = None
    total = len(cuts) + 1  # the folds, then the last fold's report (bootstrap intervals)

    def report(done: float, message: str) -> None:
        if progress is not None:
            progress(done, total, message)

    for i, c in enumerate(cuts, start=1):
        train = (as_of + h <= c).to_numpy()
        test = ((as_of >= c) & (as_of < c + period)).to_numpy()
        if not test.any():
            raise DataError(f"fold {i} has no test cutoffs in [{c}, {c + period}); use fewer folds.")
        row = {
            "fold": i,
            "train_end": c,
            "test_start": c,
            "test_end": c + period,
            "train_first_as_of": as_of[train].min() if train.any() else pd.NaT,
            "train_last_as_of": as_of[train].max() if train.any() else pd.NaT,
            "train_label_end": as_of[train].max() + h if train.any() else pd.NaT,
            "n_train": int(train.sum()),
            "n_test": int(test.sum()),
            "positives": int(y_all[test].sum()),
            "status": "ok",
        }
        report(i - 1, f"backtest fold {i}/{len(cuts)}: training on {row['n_train']:,} cutoffs labelled by "
                      f"{c:%Y-%m-%d}, testing {row['n_test']:,}")
        try:
            fold = _run_fold(
                i, prepared, cut, train, test, c, model=model, entities=entities,
                checklist=checklist, notes=notes,
            )
        except DataError as exc:
            if i == len(cuts):
                python, cli = _fold_fix(cut, label_col, h, c, period, model)
                raise DataError(f"the last fold (cut {c}) cannot be trained: {exc} {python}",
                                cli=f"the last fold (cut {c}) cannot be trained: {exc.for_cli()} {cli}") from exc
            notes.append(f"fold {i} skipped: {exc}")
            row["status"] = "skipped"
            rows.append(row)
            report(i, f"backtest fold {i}/{len(cuts)} skipped: {exc}")
            continue
        y = y_all[test]
        for name, p in fold["probs"].items():  # AUC and AP are NaN if y has one class
            scores = score_metrics(y, p)
            for metric in METRIC_NAMES:
                row[f"{name}_{metric}"] = scores[metric]
        rows.append(row)
        last = fold
        auc = row.get("model_roc_auc", float("nan"))
        report(i, f"backtest fold {i}/{len(cuts)} done: ROC-AUC {auc:.3f} on {row['n_test']:,} test cutoffs")
    if last is None:  # pragma: no cover - the last fold raises above
        raise DataError("no fold could be trained.")
    folds = pd.DataFrame(rows)
    for col in ("train_end", "test_start", "test_end", "train_first_as_of", "train_last_as_of", "train_label_end"):
        folds[col] = pd.to_datetime(folds[col])

    report(len(cuts), f"backtest: baselines and {n_bootstrap} bootstrap resamples on the last fold")
    return _last_fold_report(
        last, cut, schema, label_col, entities, group_cols, oracle, folds, notes,
        n_bootstrap=n_bootstrap, seed=seed, horizon=h, period=period,
    )


def _fold_fix(cut: pd.DataFrame, label_col: str, h: pd.Timedelta, c: pd.Timestamp, period: pd.Timedelta,
              model) -> tuple[str, str]:
    """What setting would let the last fold train, in Python's and the CLI's words.

    The last fold trains on the cutoffs whose horizon ends by its cut and tests on the
    period after it (whatever ``n_folds`` is). So a shorter ``test_period`` moves the cut
    later (more training rows), and larger validation / calibration fractions give those
    time slices more positives. Candidates are checked with the fit's own rule
    (:func:`~riskmodel.model.untrainable_reason`), no features computed.
    """
    from ..model import untrainable_reason

    as_of, y = cut["as_of"], cut[label_col].to_numpy(dtype=int)
    end = c + period
    vf, cf = model.validation_fraction, model.calibration_fraction

    def works(cut_at: pd.Timestamp, v: float, k: float) -> bool:
        train = (as_of + h <= cut_at).to_numpy()
        test = (as_of >= cut_at).to_numpy()
        return bool(test.any()) and untrainable_reason(as_of[train], y[train], v, k) is None

    periods = sorted({pd.Timedelta(days=d) for d in (period.days * 3 // 4, period.days // 2, period.days // 3, 30, 14, 7)
                      if 7 <= d < period.days}, reverse=True)
    shorter = next((p for p in periods if works(end - p, vf, cf)), None)
    fractions = next((f for f in (0.2, 0.25, 0.3, 0.35) if f > max(vf, cf) and works(c, f, f)), None)
    python, cli = [], []
    if shorter is not None:
        days = f"{shorter.days}D"
        python.append(f"a shorter test period lets it train: test_period={days!r} (backtest(test_period=...), "
                      f"config.backtest.test_period)")
        cli.append(f'a shorter test period lets it train: test_period = "{days}" in the config\'s [backtest]')
    if fractions is not None:
        python.append(f"larger validation and calibration slices let it train: validation_fraction={fractions} and "
                      f"calibration_fraction={fractions} (RiskModel(...), config.model)")
        cli.append(f"larger validation and calibration slices let it train: validation_fraction = {fractions} and "
                   f"calibration_fraction = {fractions} in the config's [model]")
    if not python:
        n_pos = int(y.sum())
        text = (f"No shorter test period or larger slice fixes it: the extract has {n_pos} positive cutoff(s) in "
                "all. More history, a longer horizon or a finer snapshot frequency gives more positives")
        return (text + " (make_labels(horizon=...), make_cutoffs(freq=...); config.labels).",
                text + " (horizon and freq in the config's [labels]).")
    lead = "Fix (n_folds does not move the last fold's cut): "
    return lead + "; or ".join(python) + ".", lead + "; or ".join(cli) + "."


def _group_columns(group_cols, schema, entities) -> list[str]:
    if entities is None:
        if group_cols:
            raise DataError(f"group_cols {list(group_cols)} need an entities table; pass entities=.")
        return []
    if group_cols is None:
        return [c for c in schema.entity_categorical_cols if c in entities.columns]
    group_cols = [group_cols] if isinstance(group_cols, str) else list(group_cols)
    missing = [c for c in group_cols if c not in entities.columns]
    if missing:
        raise DataError(
            f"group_cols {format_examples(missing)} are not columns of entities "
            f"(it has {format_examples(list(entities.columns), limit=10)})."
        )
    return group_cols


def _run_fold(i, prepared, cut, train, test, c, *, model, entities, checklist, notes) -> dict:
    """Fit the model and the baselines on one fold; score the test rows."""
    train_cut, test_cut = cut[train].reset_index(drop=True), cut[test].reset_index(drop=True)
    y_train = train_cut[model.label_col].to_numpy(dtype=int)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        fitted = clone(model).fit(_events_before(prepared, c), train_cut, entities=entities)
        X_train = fitted.transform_features(prepared, train_cut, entities=entities, utc=True)
        X_test = fitted.transform_features(prepared, test_cut, entities=entities, utc=True)
    _record_warnings(caught, notes, i)
    scored = fitted.score_features(X_test, test_cut, reasons="none")
    probs = {"model": scored["probability"].to_numpy(dtype=float)}
    probs["base_rate"] = np.full(len(test_cut), y_train.mean())
    logistic = _fit_logistic_counts(X_train, y_train)
    if logistic is not None:
        probs["logistic_counts"] = _predict_logistic_counts(logistic, X_test)
    else:
        text = "logistic_counts baseline skipped: the model has no count_* features."
        if text not in notes:
            notes.append(text)
    if checklist is not None:
        missing = [n for n in checklist if n not in X_train.columns]
        if missing:
            text = f"checklist baseline skipped: feature(s) {format_examples(missing)} not in the model's features."
            if text not in notes:
                notes.append(text)
        else:
            platt = _fit_checklist(X_train, y_train, checklist)
            probs["checklist"] = platt.predict_proba(_checklist_score(X_test, checklist)[:, None])[:, 1]
    return {"model": fitted, "test_cut": test_cut, "X_test": X_test, "scored": scored, "probs": probs}


#: Below this many positives in the last fold, its figures are noted as noisy.
FEW_TEST_POSITIVES = 30


def _last_fold_report(
    last, cut, schema, label_col, entities, group_cols, oracle, folds, notes, *, n_bootstrap, seed, horizon, period
) -> BacktestResult:
    test_cut = last["test_cut"]
    id_col = schema.entity_col
    y = test_cut[label_col].to_numpy(dtype=int)
    if int(y.sum()) < FEW_TEST_POSITIVES:  # the figures every report and the promotion gate read
        red = int((last["scored"]["tier"].to_numpy() == "red")[y == 1].sum())
        text = (f"the last fold, whose figures are reported (AUC, Brier, tier hit rates; the promotion gate reads "
                f"them), holds {int(y.sum())} positive(s) in {len(y):,} rows ({red} in the red tier): its figures are "
                f"noisy below {FEW_TEST_POSITIVES} positives; more data or a longer test_period.")
        notes.append(text)
        warnings.warn(text, DataWarning, stacklevel=3)
    groups = test_cut[id_col].to_numpy()
    probs = dict(last["probs"])
    pred = pd.DataFrame(
        {
            id_col: groups,
            "as_of": test_cut["as_of"].to_numpy(),
            "label": y,
            "probability": probs["model"],
            "tier": last["scored"]["tier"].to_numpy(),
        }
    )
    pred["tier"] = pd.Categorical(pred["tier"], categories=list(TIERS))
    for name in BASELINES:
        if name in probs:
            pred[name] = probs[name]
    oracle_rows = None
    if oracle is not None:
        values = np.asarray(oracle(test_cut[[id_col, "as_of"]].copy()), dtype=float).reshape(-1)
        if len(values) != len(test_cut):
            raise DataError(f"oracle returned {len(values)} probabilities for {len(test_cut)} cutoffs.")
        pred["oracle"] = values
        oracle_rows = np.isfinite(values)
        if not oracle_rows.all():
            notes.append(
                f"oracle known for {int(oracle_rows.sum())} of {len(values)} last-fold rows; "
                "it is scored on those rows only, next to model@oracle_rows."
            )
        if oracle_rows.sum() == 0:
            notes.append("oracle skipped: no finite oracle probability.")
            oracle_rows = None
    if group_cols:
        at = lookup_positions(pd.Index(entities[schema.entities_id]), pd.Series(groups))
        attrs = entities[group_cols].reset_index(drop=True).reindex(np.where(at >= 0, at, -1))  # -1: no row, missing
        for col in group_cols:
            pred[col] = attrs[col].to_numpy() if not isinstance(attrs[col].dtype, pd.CategoricalDtype) else attrs[col].array

    scorers: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {"model": (y, probs["model"], groups)}
    for name in BASELINES:
        if name in probs:
            scorers[name] = (y, probs[name], groups)
    if oracle_rows is not None:
        r = oracle_rows
        scorers["oracle"] = (y[r], pred["oracle"].to_numpy()[r], groups[r])
        if not r.all():
            scorers["model@oracle_rows"] = (y[r], probs["model"][r], groups[r])
    metric_rows = {}
    for name, (yy, pp, gg) in scorers.items():
        boot = bootstrap_metrics(yy, pp, n_bootstrap=n_bootstrap, seed=seed, groups=gg)
        entry = {"n": len(yy), "n_positive": int(yy.sum())}
        for metric in METRIC_NAMES:
            entry[metric] = boot.loc[metric, "value"]
            entry[f"{metric}_lower"] = boot.loc[metric, "lower"]
            entry[f"{metric}_upper"] = boot.loc[metric, "upper"]
        metric_rows[name] = entry
    metrics = pd.DataFrame.from_dict(metric_rows, orient="index")
    metrics.index.name = "scorer"

    comps = []
    for name in [*BASELINES, "oracle"]:
        if name not in scorers:
            continue
        yy, pp, gg = scorers[name]
        model_p = probs["model"] if name != "oracle" else probs["model"][oracle_rows]
        comp = compare_bootstrap(yy, model_p, pp, n_bootstrap=n_bootstrap, seed=seed, groups=gg)
        comps.append(comp.assign(baseline=name).reset_index())
    comparisons = pd.concat(comps, ignore_index=True).set_index(["baseline", "metric"])

    if oracle_rows is not None:
        folds.loc[folds.index[-1], [f"oracle_{m}" for m in METRIC_NAMES]] = [
            metric_rows["oracle"][m] for m in METRIC_NAMES
        ]

    subgroup = subgroup_report(pred, group_cols) if group_cols else None
    X_test = last["X_test"]
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(X_test), size=min(_SHAP_SAMPLE, len(X_test)), replace=False))
    return BacktestResult(
        folds=folds,
        metrics=metrics,
        comparisons=comparisons,
        predictions=pred,
        tier_table=tier_table(y, pred["tier"].astype(object)),
        subgroup=subgroup,
        reliability=reliability_curve(y, probs["model"]),
        model=last["model"],
        notes=notes,
        horizon=horizon,
        test_period=period,
        _shap_features=X_test.iloc[sample],
    )
