"""The nightly batch: :func:`score_batch` (streamed, chunked, resumable, reconciled) on the
local engine or on Apache Spark, and :func:`read_nightly` to read a night's folder back."""

from ._core import CITY, usable_entities
from ._inputs import entity_columns
from ._job import load_predictor, score_batch
from ._nightly import (
           NightlyOutput,
           as_nightly,
           as_nightly_list,
           concat_scores,
           dedupe_nights,
           read_nightly,
)

__all__ = ["CITY", "NightlyOutput", "as_nightly", "as_nightly_list", "concat_scores", "dedupe_nights",
           "entity_columns", "load_predictor", "read_nightly", "score_batch", "usable_entities"]
