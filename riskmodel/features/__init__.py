"""Point-in-time features: :class:`FeatureBuilder` turns (dispute, as_of) cutoffs into
feature rows from events strictly before ``as_of``; :func:`prepare_events` validates and
indexes an event log once so several builds reuse it.

Each feature family is one module of :mod:`riskmodel.features.families` holding a
:class:`FeatureFamily`; the builder, the reasons, the artifact and the nightly batch ask
the registry (:func:`feature_families`). :func:`register_family` adds one of your own.
"""

from ._builder import (
    DEFAULT_KEYWORDS,
    FeatureBuilder,
    FeatureComputation,
    PreparedEvents,
    index_screened,
    prepare_events,
    skip_notes,
)
from ._family import (
    GROUP_PREFIX,
    OTHER_KIND,
    ContextNeed,
    FeatureFamily,
    feature_families,
    get_family,
    quoted_label,
    register_family,
    unregister_family,
)
from .families import FEATURE_FAMILIES

__all__ = [
    "DEFAULT_KEYWORDS", "FEATURE_FAMILIES", "GROUP_PREFIX", "OTHER_KIND", "ContextNeed", "FeatureBuilder",
    "FeatureComputation", "FeatureFamily", "PreparedEvents", "feature_families", "get_family", "index_screened",
    "prepare_events", "quoted_label", "register_family", "skip_notes", "unregister_family",
]
