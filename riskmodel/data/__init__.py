"""The event-data contract: :class:`EventSchema`, validation and screening of event logs,
entities and cutoffs, the time grid (:class:`Timeline`, :class:`Clock`) and the id keys.

Everything above this package (features, model, batch, ...) reads events through it. The
names below without a public counterpart in :mod:`riskmodel` are the package's internal
API: documented, stable within a release, not for users.
"""

from ._fingerprint import frame_fingerprint
from ._lookup import closing_times, lookup_positions, lookup_positions_reference
from ._runs import first_per_code, run_starts
from ._schema import (
    BY_POSITION,
    CLOCK_WORDS,
    EXPORT_NULLS,
    FEW_VALUES,
    MIN_PLAUSIBLE_TIME,
    NAT_NS,
    NULL_WORDS,
    SCIENTIFIC_ID,
    Columns,
    EventSchema,
    as_index,
    blank_as_missing,
    blank_mask,
    column_codes,
    cutoffs_at,
    decimal_text,
    default_now,
    describe_rejects,
    entity_order,
    id_kind,
    ids_of_one_type,
    isna_mask,
    kind_codes_of,
    kind_in,
    naive_utc,
    ns_values,
    numbers_as_text,
    object_codes,
    one_time,
    outcome_twins,
    parse_times,
    per_value,
    raise_rejects,
    raise_screened,
    reason_columns,
    refuse_unclear_date,
    rejects_frame,
    require_columns,
    require_frame,
    require_schema,
    screen_events,
    sort_by_entity_time,
    split_invalid_events,
    time_zone,
    times_aware,
    trimmed_codes,
    twin_key,
    validate_cutoffs,
    validate_entities,
    validate_events,
    validated_entity_columns,
    warn_odd_ids,
    warn_outcome_twins,
)
from ._timeline import (
    NS_PER_DAY,
    Clock,
    Timeline,
    duration_text,
    expand_ranges,
    local_hours,
    parse_duration,
    window_ns,
)

__all__ = [
    "BY_POSITION", "CLOCK_WORDS", "EXPORT_NULLS", "FEW_VALUES", "MIN_PLAUSIBLE_TIME", "NAT_NS", "NULL_WORDS", "SCIENTIFIC_ID", "NS_PER_DAY", "Clock", "Columns", "EventSchema", "Timeline",
    "as_index", "blank_as_missing", "blank_mask", "closing_times", "column_codes", "parse_times", "per_value", "require_frame", "cutoffs_at", "decimal_text", "default_now", "describe_rejects", "duration_text", "entity_order", "expand_ranges", "first_per_code", "frame_fingerprint", "id_kind", "ids_of_one_type", "isna_mask", "kind_codes_of", "kind_in", "local_hours", "lookup_positions", "lookup_positions_reference", "naive_utc", "ns_values", "numbers_as_text", "object_codes", "one_time", "outcome_twins", "refuse_unclear_date",
    "parse_duration", "raise_rejects", "raise_screened", "reason_columns", "rejects_frame", "require_columns", "require_schema", "run_starts", "screen_events",
    "sort_by_entity_time", "split_invalid_events", "time_zone", "times_aware", "trimmed_codes", "validate_cutoffs",
    "validate_entities", "validate_events", "twin_key", "validated_entity_columns", "warn_odd_ids", "warn_outcome_twins", "window_ns",
]
