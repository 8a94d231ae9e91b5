"""Pickle-free model artifacts: LightGBM's text model plus one JSON spec.

A saved model is a folder with two files:

* ``booster.txt`` - LightGBM's native text model (trees and the pandas category
  vocabulary), loaded with ``lightgbm.Booster(model_str=...)``;
* ``riskmodel.json`` - everything else as plain data: the schema, the feature builder's
  parameters and fitted vocabularies, the output column order and dtypes, the calibrator,
  the tier policy and the reason phrases.

Loading parses text and JSON only, so it never executes stored code.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import warnings
from pathlib import Path

import lightgbm as lgb
import numpy as np

from .._errors import DataWarning, ModelError
from ..data import EventSchema
from ..features import FeatureBuilder
from ._calibration import Calibrator
from ._model import RiskModel
from ._reasons import ReasonWriter
from ._tiers import TierPolicy

__all__ = ["FEATURE_SPEC_VERSION", "load_model_dir", "model_fingerprint", "save_model_dir"]

#: Bump when the meaning of a feature or the artifact layout changes. Version 2: calibrators
#: read ``logit(raw)`` (isotonic steps in logit space) and tier policies may carry per-area
#: capacities; older riskmodels refuse it instead of misreading it.
FEATURE_SPEC_VERSION = 2
#: Versions this riskmodel reads: 1 (before forward folds) loads unchanged.
READABLE_SPEC_VERSIONS = (1, 2)
_SPEC_FILE = "riskmodel.json"
_BOOSTER_FILE = "booster.txt"

#: The builder's parameters saved with the model: every constructor parameter but the
#: schema (saved on its own), in the constructor's order.
_BUILDER_PARAMS = tuple(p for p in inspect.signature(FeatureBuilder.__init__).parameters if p not in ("self", "schema"))
_BUILDER_STATE = ("kinds_", "kind_slugs_", "categories_", "has_entities_", "tz_aware_", "zone_",
                  "categorical_features_")  # zone_: absent from models saved before it (None: UTC hours)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value


def model_spec(model: RiskModel) -> dict:
    """The JSON-able description of a fitted model (everything but the trees)."""
    from .._version import VERSION as __version__

    model._check_fitted()
    fb = model.features_
    return _jsonable(
        {
            "feature_spec_version": FEATURE_SPEC_VERSION,
            "riskmodel_version": __version__,
            "lightgbm_version": lgb.__version__,
            "schema": model._schema().to_dict(),
            "feature_builder": {
                "params": {name: getattr(fb, name) for name in _BUILDER_PARAMS},
                "state": {name: getattr(fb, name, None) for name in _BUILDER_STATE},
                "feature_names_out": list(fb.feature_names_out_),
            },
            "feature_names": model.feature_names_,
            "categorical_features": fb.categorical_features_,
            "calibrator": model.calibrator_.to_dict(),
            "tier_policy": model.tier_policy_.to_dict(),
            "reasons": model.reason_writer_.to_dict(),
            "top_k_reasons": model.top_k_reasons,
            "label_col": model.label_col,
            "training_summary": getattr(model, "training_summary_", {}),
            "split_dates": getattr(model, "split_dates_", {}),
            "best_iteration": model.best_iteration_,
            "reference": _thin_reference(getattr(model, "reference_", {})),
        }
    )


def _thin_reference(reference: dict, limit: int = 20_000) -> dict:
    """Keep at most ``limit`` reference rows (an even stride) of the per-row lists; the
    ``monitoring`` block (bin edges and counts, see :mod:`riskmodel.model._drift`) is kept whole."""
    n = len(reference.get("probability", []))
    if n <= limit:
        return reference
    idx = np.linspace(0, n - 1, limit).astype(int)
    return {k: [v[i] for i in idx] if isinstance(v, list) and len(v) == n else v for k, v in reference.items()}


def model_fingerprint(model: RiskModel) -> str:
    """A digest of everything a fitted model scores with: its trees and its spec.

    Two models give the same fingerprint only if they hold the same trees, feature
    configuration, calibrator, tier policy and reason phrases, whatever their name or
    path: the nightly batch records it, so that work done with another model (say, one
    retrained into the same folder) is never resumed.

    Parameters
    ----------
    model : RiskModel
        A fitted model.

    Returns
    -------
    str
        24 hexadecimal digits.
    """
    digest = hashlib.sha256(model.booster_.model_to_string().encode("utf-8"))
    digest.update(json.dumps(model_spec(model), sort_keys=True, default=str).encode("utf-8"))
    return digest.hexdigest()[:24]


def save_model_dir(model: RiskModel, path) -> Path:
    """Write ``booster.txt`` and ``riskmodel.json`` into ``path`` (created if needed)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / _BOOSTER_FILE).write_text(model.booster_.model_to_string(), encoding="utf-8")
    (path / _SPEC_FILE).write_text(json.dumps(model_spec(model), ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def load_model_dir(path) -> RiskModel:
    """Rebuild a fitted :class:`RiskModel` from a folder written by :func:`save_model_dir`.

    Raises
    ------
    ModelError
        If the folder is not a riskmodel artifact or was written with an incompatible
        feature-spec version.
    """
    path = Path(path)
    spec_file, booster_file = path / _SPEC_FILE, path / _BOOSTER_FILE
    if not spec_file.is_file() or not booster_file.is_file():
        raise ModelError(
            f"{path} is not a riskmodel artifact: expected {_SPEC_FILE} and {_BOOSTER_FILE} in it."
        )
    spec = json.loads(spec_file.read_text(encoding="utf-8"))
    version = spec.get("feature_spec_version")
    if version not in READABLE_SPEC_VERSIONS:
        raise ModelError(
            f"model at {path} uses feature-spec version {version}, this riskmodel reads versions "
            f"{', '.join(map(str, READABLE_SPEC_VERSIONS))} (model written by riskmodel "
            f"{spec.get('riskmodel_version')}). "
            "Retrain the model with this version, or install the matching riskmodel."
        )
    schema = EventSchema.from_dict(spec["schema"])
    params = dict(spec["feature_builder"]["params"])
    params["streaks"] = tuple(tuple(s) for s in params.get("streaks", ()))
    fb = FeatureBuilder(schema=schema, **params)
    for name, value in spec["feature_builder"]["state"].items():
        setattr(fb, name, value)
    padded = [k for k in fb.kinds_ or [] if k != k.strip()]
    if padded:  # a model from before kinds were read trimmed: those columns now never count
        warnings.warn(f"model at {path} was trained on kinds with surrounding spaces ({padded[:3]}); events' kinds "
                      "are now read trimmed, so those columns stay 0: retrain the model.", DataWarning, stacklevel=2)
    fb.feature_names_out_ = np.asarray(spec["feature_builder"]["feature_names_out"], dtype=object)
    fb.n_features_out_ = len(fb.feature_names_out_)

    policy = TierPolicy.from_dict(spec["tier_policy"])
    model = RiskModel(schema=schema, features=fb, tier_policy=policy, top_k_reasons=spec["top_k_reasons"],
                      label_col=spec["label_col"], context_features=spec["reasons"].get("context_features"))
    model.features_ = fb
    model.booster_ = lgb.Booster(model_str=booster_file.read_text(encoding="utf-8"))
    model.feature_names_ = list(spec["feature_names"])
    model.calibrator_ = Calibrator.from_dict(spec["calibrator"])
    model.tier_policy_ = policy
    reasons = dict(spec["reasons"])
    # artifacts written before context features: the families' default
    reasons.setdefault("context_features", [c for c in fb.context_features() if c in model.feature_names_])
    model.reason_writer_ = ReasonWriter.from_dict(reasons)
    model.training_summary_ = spec.get("training_summary", {})
    model.split_dates_ = spec.get("split_dates", {})
    model.best_iteration_ = spec.get("best_iteration")
    model.reference_ = spec.get("reference", {})
    return model
