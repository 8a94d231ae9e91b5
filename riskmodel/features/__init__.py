"""Point-in-time features: :class:`FeatureBuilder` turns (dispute, as_of) cutoffs into
feature rows from events strictly before ``as_of``; :func:`prepare_events` validates and
indexes an event log once so several builds reuse it.
"""

from ._builder import (
    DEFAULT_KEYWORDS,
    FEATURE_FAMILIES,
    OTHER_KIND,
    FeatureBuilder,
    FeatureComputation,
    PreparedEvents,
    index_screened,
    lookup_positions,
    prepare_events,
)

__all__ = [
    "DEFAULT_KEYWORDS", "FEATURE_FAMILIES", "OTHER_KIND", "FeatureBuilder", "FeatureComputation",
    "PreparedEvents", "index_screened", "lookup_positions", "prepare_events",
]
