"""What recomputing a night's cases needs: the model that scored the night, its event log and
entities.

The nightly scores hold probabilities, tiers and reasons, not the features: explain, the
sweep, the report and the outcome audit recompute them, and must do so with the model that
gave the night's probabilities. :class:`NightModels` says which model that is (the one
given when its fingerprint is the one the night's manifest records, else the version the
manifest records); :func:`night_inputs` adds the event log and entities the night names.

Shared by the operations of this package (not exported from :mod:`riskmodel.ops`):
:func:`risk_model_of` (the :class:`~riskmodel.RiskModel` inside what a caller passed) and
:func:`prepare_as_batch` (an event log screened and indexed as the nightly batch does) and
:func:`model_label` (a model in words, as every operation names it).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from .._errors import ConfigError, DataError, DataWarning, ModelError
from ..batch import entity_columns, load_predictor

__all__ = ["NightModels", "model_label", "night_inputs", "prepare_as_batch", "risk_model_of"]


def risk_model_of(model):
    """The :class:`~riskmodel.RiskModel` of a model or a loaded Predictor.

    Parameters
    ----------
    model : RiskModel or Predictor

    Returns
    -------
    RiskModel

    Raises
    ------
    ConfigError
        ``model`` is neither.
    """
    from ..model import RiskModel

    if isinstance(model, RiskModel):
        return model
    inner = getattr(model, "model", None)
    if isinstance(inner, RiskModel):
        return inner
    raise ConfigError(f"model must be a RiskModel or a loaded Predictor, got {type(model).__name__}.")


def model_label(model) -> str:
    """A model in words, as explain, the report and their errors name it.

    ``"NAME version N"`` for a registered version; else the run or folder it was loaded from
    (``runs:/ID/model``, the folder's path), as the night records it; ``""`` when nothing
    names it (a :class:`~riskmodel.RiskModel`, no model).

    Parameters
    ----------
    model : Predictor, dict, RiskModel or None
        A loaded model, or a night manifest's ``model`` record (``name``, ``version``, ``uri``).

    Returns
    -------
    str

    Examples
    --------
    >>> model_label({"name": "dispute-risk", "version": "7", "uri": "models:/dispute-risk@champion"})
    'dispute-risk version 7'
    >>> model_label({"name": "runs:/abc/model", "version": "", "uri": "runs:/abc/model"})
    'runs:/abc/model'
    >>> model_label({"name": "model", "version": "local", "uri": "/models/2024-06"})
    '/models/2024-06'
    """
    if isinstance(model, dict):
        name, version, uri = model.get("name"), model.get("version"), model.get("uri")
    else:
        name, version, uri = (getattr(model, a, None) for a in ("model_name", "model_version", "uri"))
    version = str(version or "")
    if name and version.isdigit():
        return f"{name} version {version}"
    return str(uri or name or "")


def prepare_as_batch(events, schema):
    """Events indexed for features; invalid rows are dropped with a warning, as the batch does.

    Parameters
    ----------
    events : DataFrame or PreparedEvents
        An event log; a :class:`~riskmodel.features.PreparedEvents` is returned as it is.
    schema : EventSchema
        The schema of the model the features are for.

    Returns
    -------
    PreparedEvents

    Raises
    ------
    DataError
        ``events`` is neither.
    """
    from ..data import describe_rejects, screen_events
    from ..features import PreparedEvents, index_screened

    if isinstance(events, PreparedEvents):
        return events
    if not isinstance(events, pd.DataFrame):
        raise DataError(f"events must be a DataFrame, got {type(events).__name__}.")
    screened = screen_events(events, schema, sort_ids=False)
    if screened.n_rejects:
        warnings.warn(f"{screened.n_rejects:,} invalid event row(s) ignored, as the nightly batch rejects them "
                      f"({'; '.join(describe_rejects(screened.rejects, places=False))}; a night lists its own in "
                      "rejects.parquet).", DataWarning, stacklevel=3)
    return index_screened(screened, schema)


def _reachable(store: str, timeout: float = 2.0) -> bool:
    """Whether an HTTP(S) tracking store answers a connection within ``timeout`` seconds (MLflow
    itself retries for minutes); any other store (a file, sqlite) is taken as reachable."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(store)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return True
    try:
        with socket.create_connection((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)),
                                      timeout=timeout):
            return True
    except OSError:
        return False


class NightModels:
    """The model that scored each night.

    ``given`` (the model the caller passed, or None) answers for a night whose manifest
    records ``given``'s own fingerprint, or records no model. Otherwise the version the
    manifest records is read (``models:/NAME/VERSION`` even when the night loaded an alias),
    once per (URI, store), from the tracking store the night records when
    ``MLFLOW_TRACKING_URI`` is not set: never a default store (no ``./riskmodel-mlflow/`` is
    made), not a store that does not answer within seconds (MLflow retries for minutes), and
    not again a store that failed once. When it cannot be read, ``given`` answers with a
    :class:`DataWarning`; without ``given``, a :class:`ModelError` says why.

    Parameters
    ----------
    given : RiskModel, Predictor or str, optional
        A URI (``models:/NAME@champion``) or a model folder is loaded.
    fingerprint : str, optional
        ``given``'s fingerprint (default: computed from it).
    """

    def __init__(self, given=None, *, fingerprint: str | None = None):
        self.given = load_predictor(str(given)) if isinstance(given, str | Path) else given
        self._fingerprint = fingerprint
        self._read: dict[tuple[str, str | None], object] = {}  # (uri, store) -> the model that answers
        self._failed: set[str | None] = set()  # stores that failed once

    @classmethod
    def of(cls, model) -> NightModels:
        """``model`` itself when it is a :class:`NightModels` (shared by the steps of one piece
        of work: each night's model is read, or warned about, once), else ``NightModels(model)``."""
        return model if isinstance(model, cls) else cls(model)

    @property
    def fingerprint(self) -> str | None:
        """``given``'s fingerprint (None without ``given``)."""
        if self._fingerprint is None and self.given is not None:
            from ..model import model_fingerprint

            self._fingerprint = model_fingerprint(risk_model_of(self.given))
        return self._fingerprint

    def for_night(self, night, *, need: str = "explaining the night's cases", given_as: str = "the model given"):
        """The model that scored ``night``.

        Parameters
        ----------
        night : NightlyOutput or None
            The night (None for no night: ``given``).
        need : str, default="explaining the night's cases"
            The work, as a warning or an error names it.
        given_as : str, default="the model given"
            ``given``, as the warning names it when it stands in for a version that cannot be
            read (a Python-only caller names its keyword: ``"the model given as model="``).

        Returns
        -------
        RiskModel or Predictor

        Raises
        ------
        ModelError
            Without ``given``, the version the night records cannot be read.
        """
        info = (night.manifest.get("model") or {}) if night is not None and night.manifest else {}
        uri, store = (night.model_uri, night.model_store) if info else (None, None)
        if not uri or (self.given is not None and info.get("fingerprint") == self.fingerprint):
            return self.given
        key = (uri, store)
        if key not in self._read:
            try:
                self._read[key] = self._read_version(uri, store)
            except Exception as exc:  # noqa: BLE001 - the version is gone: say so, go on with the given one
                self._failed.add(store)
                if self.given is None:
                    words = (f"{need} needs the model that scored the night of {night.as_of}, {uri}, which could not "
                             f"be read ({exc}).")
                    raise ModelError(f"{words} Pass model=.", cli=f"{words} Pass --model.") from exc
                warnings.warn(f"{need}: the night of {night.as_of} was scored by {uri}, which could not be read "
                              f"({exc}); {given_as} is used instead.", DataWarning, stacklevel=3)
                self._read[key] = self.given
        return self._read[key]

    def _read_version(self, uri: str, store: str | None):
        registered = uri.startswith(("models:/", "runs:/"))
        if registered and store is None and not os.environ.get("MLFLOW_TRACKING_URI"):
            # the local store a night scored in-process used: read when it is here, never made
            from ..lifecycle import LOCAL_STORE_DIR

            if not (Path.cwd() / LOCAL_STORE_DIR / "mlflow.db").exists():
                raise ModelError(f"the night records no tracking store, MLFLOW_TRACKING_URI is not set and there is "
                                 f"no ./{LOCAL_STORE_DIR}/ here")
        if registered and store in self._failed:
            raise ModelError(f"{store} failed before")
        if store and not _reachable(store):
            raise ModelError(f"{store} does not answer")
        return load_predictor(uri, store=store)


def night_inputs(night, model=None, events=None, entities=None, *, need: str = "explain",
                 given_as: str = "the model given") -> tuple:
    """The model (and its label), events and entities to recompute a night's cases with: the
    model that scored the night (:class:`NightModels`: the one given when the night's manifest
    records its fingerprint, else the version the manifest records; ``model`` may be a
    :class:`NightModels` the caller asks again, so that the version is read once), the events
    and entities given (paths read as the nightly run read them, a file refused named by its
    keyword and flag: ``events='x.csv'``, ``--events x.csv``), else the events the manifest
    names. :class:`ConfigError` when neither names one, saying what ``need`` s them;
    ``given_as``: the model given, as a warning names it (:meth:`NightModels.for_night`)."""
    from ..lifecycle import input_words, read_table

    given = model.given if isinstance(model, NightModels) else model
    if given is None and not night.model_uri:
        raise ConfigError(f"{need} needs the model: pass model=; the scores' manifest names none.",
                          cli=f"{need} needs the model: pass --model; the scores' manifest names none.")
    model = NightModels.of(model).for_night(night, need=need, given_as=given_as)
    label = model_label(model)
    from_manifest = events is None
    if events is None:
        events = ((night.manifest or {}).get("input") or {}).get("events")
        if not events or not Path(str(events)).exists():
            what = f"{need} needs the event log to recompute the features: pass"
            raise ConfigError(f"{what} events= (the night's manifest names none that exists).",
                              cli=f"{what} --events PATH (the night's manifest names none that exists).")
    if entities is None and risk_model_of(model).features_.needs_entities():
        what = f"{need} needs the entities table: {label or 'the model'} was trained with one; pass"
        raise ConfigError(f"{what} entities=.", cli=f"{what} --entities PATH.")
    schema = risk_model_of(model)._schema()
    if isinstance(events, str | Path):  # names as text, as the nightly run read them (18-digit ids stay ids)
        # a file refused is named as the caller gave it (events='x.csv', --events x.csv)
        named = ((f"{events} (the event log the night's manifest names)",) * 2 if from_manifest else
                 input_words("events", events))
        events = read_table(events, text_columns=schema.text_columns, named=named, columns=schema.event_columns)
    if isinstance(entities, str | Path):
        entities = read_table(entities, text_columns=schema.entity_text_columns,
                              named=input_words("entities", entities), columns=entity_columns(schema))
    return model, label, events, entities
