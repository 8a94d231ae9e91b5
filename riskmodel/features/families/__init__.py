"""The built-in feature families, one module each, registered in column order.

counts -> recency -> dynamics -> text -> entity -> party -> context. A family of your own
is registered after these with :func:`riskmodel.features.register_family`.
"""

from .._family import register_family
from ._context import Context
from ._counts import Counts
from ._dynamics import Dynamics
from ._entity import Entity
from ._party import Party
from ._recency import Recency
from ._text import Text

BUILT_IN = (Counts(), Recency(), Dynamics(), Text(), Entity(), Party(), Context())
for _family in BUILT_IN:
    register_family(_family, replace=True)

#: The built-in families' names, in column order (the builder's default).
FEATURE_FAMILIES = tuple(f.name for f in BUILT_IN)

__all__ = ["BUILT_IN", "FEATURE_FAMILIES", "Context", "Counts", "Dynamics", "Entity", "Party", "Recency", "Text"]
