"""What a feature family is, and the registry the builder, the reasons, the artifact and the
nightly batch ask.

A family is one module (see :mod:`riskmodel.features.families`) holding one
:class:`FeatureFamily`: when it applies, its columns, how it computes them from the shared
:class:`~riskmodel.features.FeatureComputation`, its reason phrases, and what it reads from
*other* disputes (:class:`ContextNeed`), which the nightly batch uses to give each chunk the
rows it needs. Adding a family is one module plus its test::

    from riskmodel.features import ContextNeed, FeatureFamily, register_family

    class Busy(FeatureFamily):
        name = "busy"
        def columns(self, builder, schema):
            return ["busy_30D"], []
        def compute(self, comp):
            comp.put("busy_30D", comp.windowed_counts(None, ["30D"])["30D"] / 30)

    register_family(Busy())
    FeatureBuilder(families=(*FEATURE_FAMILIES, "busy"))
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from .._errors import DataError
from ..data import parse_duration

__all__ = [
    "GROUP_PREFIX",
    "OTHER_KIND",
    "ContextNeed",
    "FeatureFamily",
    "feature_families",
    "get_family",
    "register_family",
    "unregister_family",
    "slug",
    "quoted_label",
    "window_days",
    "window_text",
]

#: The kind column of kinds outside the fitted vocabulary.
OTHER_KIND = "other"
#: Prefix of the context events' columns holding each dispute's group (``group:station``).
GROUP_PREFIX = "group:"


@dataclass(frozen=True)
class ContextNeed:
    """The rows of other disputes a family reads, so chunked scoring can hand them over.

    Every need includes, for each dispute it names, that dispute's first event and first
    outcome event (with its groups as ``group:<g>`` columns).

    Attributes
    ----------
    parties : bool
        The first appearance of every party of the scored disputes in any other dispute,
        and those disputes' first rows (party histories, their past escalations).
    window : str or None
        The first rows of every dispute whose first event or first outcome falls in this
        window before ``as_of`` (group rates).
    """

    parties: bool = False
    window: str | None = None


class FeatureFamily:
    """A feature family: subclass, set :attr:`name`, override what applies.

    Every method receives the fitted (or fitting) :class:`FeatureBuilder` and reads the
    family's parameters from it. ``compute`` writes each of the family's numeric columns
    with ``comp.put(name, values)`` (values in the computation's sorted-cutoff order,
    unless :attr:`in_cutoff_order`); a categorical column is returned by ``compute`` as
    ``{name: pandas.Categorical}``.
    """

    #: The name users list in ``FeatureBuilder(families=...)``.
    name: str = ""
    #: Computed after the rows are put back in the cutoffs' order (per-dispute attributes).
    in_cutoff_order: bool = False
    #: Reads each event's kind in the fitted vocabulary (``comp.kinds``; events of kinds
    #: unseen at fit warn once per transform).
    uses_kinds: bool = False
    #: Reads the entities table at ``transform`` (refused without one if fitted with one).
    needs_entities: bool = False
    #: The schema's optional column it reads (``"text_col"``): the family applies only when
    #: the schema names one (override :meth:`active` for other conditions).
    role: str | None = None

    def validate(self, builder) -> None:
        """Raise :class:`~riskmodel.DataError` for a bad parameter of this family."""

    def active(self, builder, schema) -> bool:
        """Whether the family applies (its inputs exist): e.g. no text column, no text family."""
        return self.role is None or getattr(schema, self.role) is not None

    def why_inactive(self, builder, schema) -> str:
        """Why :meth:`active` is false, in a few words (the builder logs it once per fit)."""
        return "its inputs are absent" if self.role is None else f"{self.role} is off"

    def columns(self, builder, schema) -> tuple[list[str], list[str]]:
        """The family's output columns, in order, and which of them are categorical."""
        raise NotImplementedError

    def compute(self, comp) -> dict | None:
        """Write the family's columns (see the class docstring)."""
        raise NotImplementedError

    def template(self, feature: str, writer) -> tuple[str, str, str] | None:
        """``(zh, en, format)`` phrase templates for one of the family's columns, else ``None``.

        ``{v}`` stands for the value; in English, ``{one|many}`` picks the singular when the
        value shows as 1 (``"{v} {time|times}"``). The format says how the value reads and
        when it is worth a reason: ``num`` (a count or amount: zero means nothing happened,
        never a reason), ``days`` (a duration: zero is a value, e.g. today), ``pct`` (a share,
        zero is no reason), ``signed`` (a change, shown with its sign; zero is no reason) or
        ``str`` (a category). A missing value is never a reason. ``writer`` is the
        :class:`~riskmodel.model.ReasonWriter` (kind and column labels).
        """
        return None

    def context_columns(self, builder, schema) -> list[str]:
        """The family's columns that say where or what a dispute is, or how well it is
        recorded (its station, category, the station's escalation rate), not what happened
        in it: shown beside a case, never given as its reasons (unless the model is told
        otherwise, ``RiskModel(context_features=...)``)."""
        return []

    def context_need(self, builder) -> ContextNeed | None:
        """What the family reads from other disputes (``None``: only the dispute's own events)."""
        return None


_REGISTRY: dict[str, FeatureFamily] = {}


def register_family(family: FeatureFamily, *, replace: bool = False) -> FeatureFamily:
    """Add ``family`` to the registry (after the built-in families: column order follows
    registration order). Returns it, so it can decorate an instance's creation."""
    if not isinstance(family, FeatureFamily) or not family.name:
        raise DataError("register_family expects a FeatureFamily instance with a name.")
    if family.name in _REGISTRY and not replace:
        raise DataError(f"feature family {family.name!r} is already registered; pass replace=True.")
    _REGISTRY[family.name] = family
    return family


def unregister_family(name: str) -> None:
    """Remove family ``name`` from the registry (for families of your own; tests)."""
    _REGISTRY.pop(name, None)


def feature_families() -> tuple[FeatureFamily, ...]:
    """Every registered family, in registration (column) order."""
    return tuple(_REGISTRY.values())


def get_family(name: str) -> FeatureFamily:
    """The registered family called ``name``."""
    if name not in _REGISTRY:
        raise DataError(f"unknown feature families [{name!r}]; choose from {tuple(_REGISTRY)}.")
    return _REGISTRY[name]


@functools.lru_cache(maxsize=256)
def window_days(window: str) -> float:
    """A window such as ``"30D"`` in days (a :class:`~riskmodel.DataError` if unparseable)."""
    return parse_duration(window, "window", error=DataError) / pd.Timedelta(days=1)


def slug(text: str) -> str:
    """A readable ASCII column-name fragment of ``text``."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()


def window_text(window: str) -> tuple[str, str]:
    """A window as words, ``(zh, en)``: ``"30D"`` -> 近30天 / in the last 30 days."""
    if window == "all":
        return "累计", "in total"
    days = pd.Timedelta(window) / pd.Timedelta(days=1)
    n = f"{days:g}"
    if days == 1:
        return "近1天", "in the last day"
    if days < 1:
        hours = f"{days * 24:g}"
        return f"近{hours}小时", f"in the last {hours} hours"
    return f"近{n}天", f"in the last {n} days"


def quoted_label(name: str) -> tuple[str, str]:
    """A name nobody gave readable words to, as ``(zh, en)``: its words (``mediation_failed``
    -> ``mediation failed``), quoted in Chinese (「mediation failed」) so a foreign token
    reads as a name inside the sentence rather than as part of it."""
    words = re.sub(r"[_\s]+", " ", str(name)).strip() or str(name)
    return f"「{words}」", words


def kind_slug_list(builder) -> list[str]:
    """The column fragments of the builder's kinds, ``other`` last."""
    return [builder.kind_slugs_[k] for k in builder.kinds_ + [OTHER_KIND]]


def validate_windows(windows: Sequence[str]) -> None:
    for w in windows:
        window_days(w)
