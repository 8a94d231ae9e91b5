"""Experiment configuration: one TOML file in ``experiments/`` -> :class:`ExperimentConfig`.

Defaults live here and only here. The same object is logged to MLflow (flattened params
plus the TOML file itself), so a run can always be reproduced.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import dataclasses
import gzip
import hashlib
import io
import json
import lzma
import re
import sys
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._errors import ConfigError, DataError
from ..data import EXPORT_NULLS, EventSchema
from ..features import FEATURE_FAMILIES, FeatureBuilder, feature_families
from ..model import RiskModel, TierPolicy

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ExperimentConfig", "load_config", "load_data", "read_capacity"]


@dataclass(kw_only=True)
class DataConfig:
    """Where the events come from: ``source = "simulate"`` or ``"files"`` (parquet / CSV).

    ``drop_invalid``: train on the valid event rows and record the rejected ones (with their
    reasons and file lines) in the run, instead of refusing an extract with bad rows.
    """

    source: str = "simulate"
    n_disputes: int = 20_000
    start: str = "2022-01-01"
    end: str = "2025-12-31"
    seed: int = 0
    events: str | None = None
    entities: str | None = None
    drop_invalid: bool = False


@dataclass(kw_only=True)
class LabelConfig:
    horizon: str = "90D"
    freq: str = "MS"
    start: str | None = None
    end: str | None = None
    max_inactive: str | None = "365D"


@dataclass(kw_only=True)
class FeatureConfig:
    windows: list[str] = field(default_factory=lambda: ["7D", "30D", "90D", "365D"])
    families: list[str] = field(default_factory=lambda: list(FEATURE_FAMILIES))
    keywords: dict[str, list[str]] | None = None
    keyword_windows: list[str] = field(default_factory=lambda: ["30D", "365D"])
    max_kinds: int = 40
    streaks: list[list[str]] = field(default_factory=list)
    trend_windows: list[str] = field(default_factory=lambda: ["30D", "90D"])
    night_hours: list[int] = field(default_factory=lambda: [22, 6])
    context_window: str = "365D"


@dataclass(kw_only=True)
class ModelConfig:
    """``[model]``: the :class:`~riskmodel.RiskModel` parameters (see its docstring).

    ``horizon`` defaults to ``[labels] horizon``; ``search_budget`` (seconds, 0 = off) runs
    the optional hyperparameter search; ``seed_bagging = 1`` grows one model where ``"auto"``
    would average 5 (below 1,000 positives); ``calibration_half_life = ""`` weighs the
    out-of-fold rows equally; ``protocol = "holdout"`` trains as riskmodel did before
    forward folds (``validation_fraction`` and ``calibration_fraction`` apply to it only).
    """

    protocol: str = "forward"
    n_estimators: int = 400
    early_stopping_rounds: int = 40
    n_folds: int = 4
    horizon: str | None = None
    calibration_half_life: str | None = "auto"
    num_leaves_grid: list[int] = field(default_factory=list)
    search_budget: float = 0.0
    search_trials: int = 30
    seed_bagging: int | str = "auto"
    validation_fraction: float = 0.15
    calibration_fraction: float = 0.15
    calibration: str = "auto"
    top_k_reasons: int = 3
    random_state: int = 0
    lgbm_params: dict = field(default_factory=dict)


@dataclass(kw_only=True)
class BacktestConfig:
    n_folds: int = 3
    test_period: str = "90D"
    n_bootstrap: int = 200
    checklist: dict[str, float] = field(default_factory=dict)


@dataclass(kw_only=True)
class GateConfig:
    """Promotion tolerances: the challenger may be at most this much worse than the champion."""

    auc_tolerance: float = 0.005
    brier_tolerance: float = 0.02  # relative: 2% higher Brier at most


@dataclass(kw_only=True)
class ExperimentConfig:
    """A training run, described by one TOML file; see ``experiments/baseline.toml``."""

    name: str = "baseline"
    registered_model: str = "dispute-risk"
    data: DataConfig = field(default_factory=DataConfig)
    schema: EventSchema = field(default_factory=EventSchema)
    labels: LabelConfig = field(default_factory=LabelConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    tiers: TierPolicy = field(default_factory=TierPolicy)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    reasons: dict = field(default_factory=dict)
    source_text: str = ""

    def build_model(self) -> RiskModel:
        """The unfitted :class:`RiskModel` this configuration describes."""
        f = self.features
        builder = FeatureBuilder(
            schema=self.schema,
            windows=tuple(f.windows),
            families=tuple(f.families),
            keywords=f.keywords,
            keyword_windows=tuple(f.keyword_windows),
            max_kinds=f.max_kinds,
            streaks=tuple(tuple(s) for s in f.streaks),
            trend_windows=tuple(f.trend_windows),
            night_hours=tuple(f.night_hours),
            context_window=f.context_window,
        )
        m = self.model
        return RiskModel(
            schema=self.schema,
            features=builder,
            lgbm_params=m.lgbm_params,
            n_estimators=m.n_estimators,
            early_stopping_rounds=m.early_stopping_rounds,
            validation_fraction=m.validation_fraction,
            calibration_fraction=m.calibration_fraction,
            calibration=m.calibration,
            protocol=m.protocol,
            n_folds=m.n_folds,
            horizon=m.horizon or self.labels.horizon,
            calibration_half_life=m.calibration_half_life or None,
            num_leaves_grid=tuple(m.num_leaves_grid) or None,
            search_budget=m.search_budget or None,
            search_trials=m.search_trials,
            seed_bagging=m.seed_bagging,
            tier_policy=self.tiers,
            top_k_reasons=m.top_k_reasons,
            kind_labels=self.reasons.get("kind_labels"),
            column_labels=self.reasons.get("column_labels"),
            value_labels=self.reasons.get("value_labels"),
            context_features=self.reasons.get("context_features"),
            random_state=m.random_state,
        )

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            if f.name == "source_text":
                continue
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if hasattr(value, "to_dict") else (
                dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
            )
        return out

    def flat_params(self) -> dict[str, str]:
        """Flattened ``section.key -> value`` strings for MLflow params (values <= 500 chars)."""
        flat: dict[str, str] = {}

        def walk(prefix, value):
            if isinstance(value, dict) and value and prefix.count(".") < 1:
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else k, v)
            else:
                text = json.dumps(value, ensure_ascii=False, default=str)
                flat[prefix] = text[:500]

        walk("", self.to_dict())
        return flat

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]


def _section(cls, data: dict | None, where: str):
    data = dict(data or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"[{where}] has unknown key(s) {unknown}; known: {sorted(known)}.")
    try:
        return cls(**data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{where}] is invalid: {exc}") from exc


def config_from_dict(data: dict, *, source_text: str = "", base_dir: Path | None = None) -> ExperimentConfig:
    """Build a typed config from a parsed TOML mapping; unknown keys are errors."""
    data = dict(data)
    top = {"name", "registered_model", "data", "schema", "labels", "features", "model", "tiers",
           "backtest", "gate", "reasons"}
    unknown = sorted(set(data) - top)
    if unknown:
        raise ConfigError(f"config has unknown section(s) {unknown}; known: {sorted(top)}.")
    data_cfg = _section(DataConfig, data.get("data"), "data")
    if data_cfg.source not in ("simulate", "files"):
        raise ConfigError(f"[data] source must be 'simulate' or 'files', got {data_cfg.source!r}.")
    if data_cfg.source == "files":
        if not data_cfg.events:
            raise ConfigError("[data] source = 'files' needs events = 'path/to/events.parquet'.")
        if base_dir is not None:
            data_cfg.events = str((base_dir / data_cfg.events).resolve()) if not Path(data_cfg.events).is_absolute() else data_cfg.events
            if data_cfg.entities and not Path(data_cfg.entities).is_absolute():
                data_cfg.entities = str((base_dir / data_cfg.entities).resolve())
    schema_data = data.get("schema")
    try:
        schema = EventSchema.from_dict(schema_data) if schema_data else EventSchema()
    except (TypeError, DataError) as exc:  # an error worded for the command line already names [schema]
        raise ConfigError(f"[schema] is invalid: {exc}", cli=getattr(exc, "cli_message", None)) from exc
    tiers_data = dict(data.get("tiers") or {})
    if isinstance(tiers_data.get("capacity"), str):  # a table: read it now, the model keeps the numbers
        table = Path(tiers_data["capacity"])
        if base_dir is not None and not table.is_absolute():
            table = base_dir / table
        tiers_data["capacity"] = read_capacity(table, by=tiers_data.get("by")) if tiers_data["capacity"] else None
    try:
        tiers = TierPolicy.from_dict(tiers_data) if tiers_data else TierPolicy()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[tiers] is invalid: {exc}") from exc
    features = _section(FeatureConfig, data.get("features"), "features")
    registered = tuple(f.name for f in feature_families())
    unknown_fam = sorted(set(features.families) - set(registered))
    if unknown_fam:
        raise ConfigError(f"[features] families {unknown_fam} unknown; choose from {registered}.")
    return ExperimentConfig(
        name=str(data.get("name", "baseline")),
        registered_model=str(data.get("registered_model", "dispute-risk")),
        data=data_cfg,
        schema=schema,
        labels=_section(LabelConfig, data.get("labels"), "labels"),
        features=features,
        model=_section(ModelConfig, data.get("model"), "model"),
        tiers=tiers,
        backtest=_section(BacktestConfig, data.get("backtest"), "backtest"),
        gate=_section(GateConfig, data.get("gate"), "gate"),
        reasons=dict(data.get("reasons") or {}),
        source_text=source_text,
    )


def load_config(path) -> ExperimentConfig:
    """Read an experiment TOML file into an :class:`ExperimentConfig`.

    Relative data paths are resolved against the file's folder.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist.")
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return config_from_dict(data, source_text=text, base_dir=path.parent)


def read_table(path, *, text_columns=(), named: tuple[str, str] | None = None, columns=()) -> pd.DataFrame:
    """Read a parquet file / directory / partitioned dataset, or a CSV file.

    ``text_columns`` of a CSV file are read as text (e.g. :attr:`EventSchema.text_columns`:
    ids stay ``"0012"`` and 18-digit case numbers never become floats); they and ``columns``
    are the columns the caller reads, whose names a CSV header may not repeat with another
    letter case (:func:`read_csv`). ``named``: how the caller named the file, in Python's and
    the command line's words (:func:`input_words`), for the messages of a file refused (else
    its path).
    """
    path = Path(path)
    if not path.exists():
        raise _worded(DataError, named or (f"input {path}",) * 2, path, " does not exist.")
    if is_csv(path):
        return read_csv(path, text_columns, named=named, columns=columns)
    try:
        return pd.read_parquet(path, schema=parquet_schema(path))
    except Exception as exc:  # noqa: BLE001 - any reader failure is a data problem for the user
        raise parquet_failure(path, exc, named=named) from exc


def parquet_schema(path: Path):
    """The schema a parquet folder is read with when its parts' schemas differ, else ``None``
    (one file, or parts that agree: Arrow reads them as they are).

    A column all missing in one part (Arrow type null, e.g. a month exported without
    narratives) takes the type the other parts give it. A column held as whole numbers in
    some parts and as text in others (ids exported as ``int64`` one year and as strings the
    next) is read as text in every part: ``275`` and ``"275"`` are one dispute, as
    everywhere, and ``"0012"`` keeps its zeros (Arrow alone reads every part as the first
    one, or refuses). Other conflicts are left to the reader, whose failure
    :func:`parquet_failure` names. Hive partition columns keep their place at the end.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_dir():
        return None
    dataset = ds.dataset(path, format="parquet", partitioning="hive")
    schemas = [pq.read_schema(f) for f in dataset.files]
    if all(s.equals(schemas[0]) for s in schemas[1:]):
        return None
    types: dict[str, set] = {}
    for s in schemas:
        for f in s:
            types.setdefault(f.name, set()).add(f.type)
    def text(t) -> bool:
        return pa.types.is_string(t) or pa.types.is_large_string(t)

    as_text = {name for name, held in types.items()  # integers beside text, and nothing else but nulls
               if any(map(pa.types.is_integer, held)) and any(map(text, held))
               and all(pa.types.is_integer(t) or text(t) or pa.types.is_null(t) for t in held)}
    schemas = [pa.schema([pa.field(f.name, pa.large_string(), f.nullable) if f.name in as_text else f for f in s])
               for s in schemas]
    unified = pa.unify_schemas(schemas, promote_options="permissive")
    partitions = [f for f in dataset.schema if f.name not in unified.names]  # hive columns
    return pa.schema(list(unified) + partitions)


def input_words(role: str, path) -> tuple[str, str]:
    """How a message names the input file ``path`` the user gave as ``role`` (``"events"``):
    ``events='events.tsv'`` in Python (the keyword), ``--events events.tsv`` on the command line
    (the flag); see :class:`~riskmodel.DataError`."""
    return f"{role}={str(path)!r}", f"--{role} {path}"


def _worded(error, named: tuple[str, str] | None, path, text: str):
    """``error`` (a :class:`DataError` class) saying ``text`` (``": its header ..."``) of the
    file ``path``, named as ``named`` gives (Python's words, the command line's), else by its path."""
    python, cli = named or (str(path), str(path))
    return error(f"{python}{text}", cli=f"{cli}{text}" if cli != python else None)


#: The first bytes of a parquet file.
PARQUET_MAGIC = b"PAR1"


def not_parquet_file(path):
    """The first file of ``path`` (a file, or a folder's files as pyarrow's dataset lists them:
    no hidden ``.`` or ``_`` names) that is not named as CSV and does not start as parquet
    does; ``None`` when there is none. Judged on 4 bytes a file: call it when reading failed."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and not any(
            part.startswith((".", "_")) for part in p.relative_to(path).parts))
    for f in files:
        if is_csv(f):
            continue
        with contextlib.suppress(OSError), open(f, "rb") as handle:
            if handle.read(len(PARQUET_MAGIC)) != PARQUET_MAGIC:
                return f
    return None


def looks_like(head: bytes | None) -> str:
    """What the first bytes of a file that is not parquet look like, for the words: ``": it
    looks like tab-separated text"``, ``": it looks like text"``, ``": it is empty"`` or ``""``
    (``None``: not read)."""
    if head is None:
        return ""
    if not head:
        return ": it is empty"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = head[:exc.start].decode("utf-8") if exc.start >= len(head) - 4 else None  # a cut character
    if text is None or "\x00" in text:
        return ""
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    return ": it looks like tab-separated text" if "\t" in first else ": it looks like text"


def not_parquet_error(named: tuple[str, str] | None, path, file, head: bytes | None,
                      csv_suffixes: tuple[str, ...] | None = None) -> DataError:
    """The error for input ``path`` (named as :func:`input_words` says, else by its path),
    whose ``file`` (the path itself or a part of it) is neither named as CSV nor parquet
    (``head``: its first bytes, ``None`` if not read), saying which files are read how (``csv_suffixes``: the
    names read as CSV, by default :func:`read_csv`'s)."""
    suffixes = [f"*{s}" for s in (csv_suffixes or _CSV_SUFFIXES)]
    which = f"{', '.join(suffixes[:-1])} or {suffixes[-1]}"
    part = " is" if str(file) == str(path) else f": its file {file} is"
    return _worded(DataError, named, path,
                   f"{part} neither CSV nor parquet. A file named {which} is read as CSV (comma-separated), any "
                   f"other as parquet (a folder as its files), and {Path(str(file)).name} is not parquet"
                   f"{looks_like(head)}. Save it as comma-separated CSV named {suffixes[0]} (or {suffixes[1]}), or "
                   "as parquet.")


def parquet_failure(path: Path, exc: Exception, what: str = "", *, named: tuple[str, str] | None = None) -> DataError:
    """The error for parquet ``path`` (``what``: e.g. ``"events "``) that did not read: a file
    that is not parquet (a ``.tsv``), in the words ``named`` (:func:`input_words`); the
    column its parts hold as different types (``int64`` in one year, text in another), with a
    part of each, when that is why; else the reader's words and how files are told apart."""
    stray = not_parquet_file(path)
    if stray is not None:
        head = b""
        with contextlib.suppress(OSError), open(stray, "rb") as handle:
            head = handle.read(1 << 16)
        return not_parquet_error(named or (f"{what}{path}",) * 2, path, stray, head)
    conflict = None
    with contextlib.suppress(Exception):  # judged on the parts' schemas only
        import pyarrow.dataset as ds
        import pyarrow.parquet as pq

        files = ds.dataset(path, format="parquet").files if path.is_dir() else []
        seen: dict = {}  # column -> {type: first part of that type}
        for name in files:
            for f in pq.read_schema(name):
                if str(f.type) != "null":
                    seen.setdefault(f.name, {}).setdefault(str(f.type), Path(name).relative_to(path).as_posix())
            conflict = next(((c, types) for c, types in seen.items() if len(types) > 1), None)
            if conflict:
                break
    if conflict:
        column, types = conflict
        where = " and ".join(f"{t} in {part}" for t, part in types.items())
        return DataError(f"could not read {what}{path}: its parts hold column {column!r} as different types ({where}); "
                         "write it with one type in every part (e.g. as text).")
    return DataError(f"could not read {what}{path}: {type(exc).__name__}: {exc}; {NOT_CSV}.")


_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".csv.zst")
#: What a file that is not read as CSV must be.
NOT_CSV = f"files named {', '.join('*' + s for s in _CSV_SUFFIXES)} are read as CSV, any other as parquet"


def is_csv(path) -> bool:
    """Whether ``path`` names a CSV file, plain or compressed (``events.csv.gz``)."""
    return str(path).lower().endswith(_CSV_SUFFIXES)


def read_csv(path, text_columns=(), *, named: tuple[str, str] | None = None, columns=()) -> pd.DataFrame:
    """``pandas.read_csv`` (compression from the name) with the ``text_columns`` present in
    the header read as text. UTF-8 (with or without BOM); a file that is not is read as
    GB18030 (GBK's superset: Chinese Windows and Excel exports), else refused. A
    :class:`DataError` says what was wrong, e.g. a header of one column holding ``;``, or
    naming a column twice, or two whose names differ only by letter case, one of them among
    ``text_columns`` or ``columns`` (the other columns the caller reads, as the Spark engine
    judges them: :func:`refuse_repeated_names`; ``named``: how the caller named the file,
    :func:`input_words`)."""
    path = Path(path)
    for encoding in ("utf-8", "gb18030"):
        try:
            header = pd.read_csv(path, nrows=0, encoding=encoding).columns
            refuse_one_column_header(header, path)
            # the header as written: pandas renames a repeated name's copies ('time.1')
            written = pd.read_csv(path, header=None, nrows=1, dtype=str, na_filter=False, encoding=encoding)
            refuse_repeated_names(written.iloc[0].tolist() if len(written) else [], path, named,
                                  columns=[*text_columns, *columns])
            dtype = {c: str for c in text_columns if c in header} or None
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", pd.errors.ParserWarning)
                # rows of more fields than the header: not its first column(s) as an index, shifting the others
                frame = pd.read_csv(path, dtype=dtype, encoding=encoding, index_col=False, na_values=EXPORT_NULLS)
        except UnicodeDecodeError:
            continue
        except DataError:
            raise
        except pd.errors.EmptyDataError:
            raise DataError(f"{path} is empty: not even a header line.") from None
        except pd.errors.ParserError as exc:
            shifted = re.search(r"Expected (\d+) fields in line (\d+), saw \d+", str(exc))
            if shifted is None:
                raise DataError(f"could not read {path} as CSV: {exc}") from None
            record = int(shifted[2])  # pandas counts records (the header is 1), not lines: quoted line breaks
            line = row_numbers(path, record - 1, first=True)[0][record - 2]
            raise _more_fields(path, line, int(shifted[1])) from None
        except (zlib.error, gzip.BadGzipFile, EOFError, lzma.LZMAError, zipfile.BadZipFile) as exc:
            raise unreadable_compressed(path, path.suffix, exc) from None
        except Exception as exc:  # noqa: BLE001 - any reader failure is a data problem for the user
            raise DataError(f"could not read {path} as CSV: {type(exc).__name__}: {exc}") from exc
        for warning in caught:
            if "does not match length of data" in str(warning.message):
                if _refuse_filled_extra_fields(path, encoding, len(header)):  # row names: pandas' reading is right
                    frame = pd.read_csv(path, dtype=dtype, encoding=encoding, na_values=EXPORT_NULLS).reset_index(drop=True)
            else:
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        if encoding == "gb18030":
            _refuse_latin_as_chinese(path, frame)
        return frame
    raise DataError(f"{path} is neither UTF-8 nor GB18030 text; save it as UTF-8 CSV.")


def _refuse_latin_as_chinese(path: Path, frame: pd.DataFrame) -> None:
    """Refuse a file read as GB18030 that is a one-byte Western export (Windows-1252, Latin-1):
    its accented letters pair with the next letter into one Chinese character, between Latin
    letters (``Müller`` reads ``M黮ler``). Such a character's second byte is an ASCII letter
    (0x40-0x7E), which GB2312 text (Chinese, pinyin ``Zhāng``, ``·``, full-width ``，``) never
    has; only those count."""
    cells = [str(c) for c in frame.columns]
    for col in frame.columns:
        if pd.api.types.is_object_dtype(frame[col].dtype) or pd.api.types.is_string_dtype(frame[col].dtype):
            cells += frame[col].dropna().astype(str).head(20_000).tolist()
    text = "\n".join(cells)
    wide = re.findall(r"[^\x00-\x7f]", text)
    between = [c for c in re.findall(r"(?<=[A-Za-z])[^\x00-\x7f](?=[A-Za-z])", text)
               if len(c.encode("gb18030")) == 2 and c.encode("gb18030")[1] < 0x80]
    if wide and len(between) >= len(wide) / 2:
        example = re.search(r"[A-Za-z]+[^\x00-\x7f][A-Za-z]+", text).group(0)
        raise DataError(f"{path} is not UTF-8, and read as Chinese GB18030 it shows Chinese characters between Latin "
                        f"letters ({example!r}): it looks like a Windows-1252 or Latin-1 export. Save it as UTF-8 CSV.")


def _refuse_filled_extra_fields(path: Path, encoding: str, n_columns: int) -> bool:
    """Rows of ``path`` have more fields than its header (``n_columns``): a delimiter ending
    each line, as some exports write, leaves them empty and they were dropped (``False``);
    every row one field longer, its first and last filled, are row names before the header's
    columns (R's ``write.table``: ``True``); a value in some rows' extra fields is refused, naming
    the first such line (a comma in an unquoted field?)."""
    fields = pd.read_csv(path, header=None, skiprows=1, dtype=str, encoding=encoding)
    filled = fields.iloc[:, n_columns:].notna().to_numpy().any(axis=1)
    if filled.all() and fields.shape[1] == n_columns + 1 and fields.iloc[:, 0].notna().all():
        with _open_text(path) as handle:  # row names: every row one field longer than the header
            widths = {len(record) for record in list(csv.reader(handle))[1:] if record}
        if widths == {n_columns + 1}:
            return True
    if filled.any():
        line = row_numbers(path, len(fields))[0][int(np.argmax(filled))]
        raise _more_fields(path, line, n_columns)
    return False


def _more_fields(path: Path, line: int, n_columns: int) -> DataError:
    return DataError(f"{path}: line {line} has more fields than the header ({n_columns} columns): a comma inside a "
                     "field that is not quoted? Quote such fields, or remove the extra ones.")


def refuse_one_column_header(header, name) -> None:
    """Refuse a CSV whose header (column names) is one column holding ``;``, a tab or ``|``:
    a file separated by another character than commas (``name``: the file, for the words)."""
    if len(header) == 1 and any(sep in str(header[0]) for sep in (";", "\t", "|")):
        raise DataError(f"{name}: its header is one column, {str(header[0])[:80]!r}: the file is not separated by "
                        "commas. Save it as comma-separated CSV.")


def refuse_repeated_names(header: list, path, named: tuple[str, str] | None = None, *, columns=()) -> None:
    """Refuse a CSV file ``path`` whose ``header`` (its cells as written) names a column more
    than once, as a DataFrame with repeated column names is refused (pandas would read the
    copies as ``time.1``); ``named``: how the caller named the file (:func:`input_words`).
    Blank cells are no name (an index column's, a delimiter ending the line) and not judged.

    Names that differ only by letter case (``time``, ``Time``) are refused too when one of
    them is among ``columns`` (the schema's columns the caller reads): Spark, whose column
    names ignore case, reads neither as ``time``, and the local engine refuses the file as
    Spark does. Other such names are read (the caller does not read them), and so are the
    spellings the caller reads each of (a schema naming ``time`` and ``Time`` apart).
    """
    columns_at: dict[str, list[int]] = {}
    for k, cell in enumerate(header, start=1):
        if str(cell).strip():
            columns_at.setdefault(str(cell), []).append(k)
    repeated = {name: at for name, at in columns_at.items() if len(at) > 1}
    if repeated:
        where = "; ".join(f"{name!r} in columns {', '.join(map(str, at[:-1]))} and {at[-1]}"
                          for name, at in repeated.items())
        raise _worded(DataError, named, path,
                      f": its header has more than one column named {list(repeated)} ({where}); keep one of each "
                      "(drop or rename the copies) and write the file again.")
    read = {str(c) for c in columns}
    spellings: dict[str, list[str]] = {}
    for name in columns_at:
        spellings.setdefault(name.lower(), []).append(name)
    alike = [names for names in spellings.values()
             if len(names) > 1 and read.intersection(names) and not read.issuperset(names)]
    if alike:
        where = "; ".join(" and ".join(f"{name!r} in column {columns_at[name][0]}" for name in names)
                          for names in alike)
        raise _worded(DataError, named, path,
                      f": its header has columns whose names differ only by letter case, {[name for names in alike for name in names]} ({where}), "
                      "which Spark cannot tell apart; keep one spelling of each (drop or rename the others) and write "
                      "the file again.")


def unreadable_compressed(name, suffix: str, detail=None) -> DataError:
    """The error for a compressed file (``suffix``: ``.gz``, ...) that does not decompress;
    ``detail``: the decompressor's words, else it failed before its end."""
    how = f" ({detail})" if detail is not None else " to its end"
    return DataError(f"{name} is not a readable {suffix} file{how}: a truncated or corrupt download? Compress it "
                     "again, or give the plain CSV.")


def row_numbers(path, n_rows: int, *, first: bool = False) -> tuple[np.ndarray, str]:
    """Where each of the ``n_rows`` rows :func:`read_table` read from ``path`` is in the
    file, as a user opening it sees it: ``(numbers, "line")`` for a CSV file (the header
    is line 1; blank lines and quoted line breaks are counted), ``(numbers, "row")`` for
    parquet (rows counted from 1). ``first``: the first ``n_rows`` of a file holding more.

    The CSV pass is plain Python: call it for error messages and rejects, not on every read.
    """
    path = Path(path)
    if is_csv(path):
        lines = []
        try:
            with _open_text(path) as handle:
                reader = csv.reader(handle)
                end = 0  # the line the previous record ended on
                for record in reader:
                    if len(record) > 1 or (record and record[0].strip()):  # pandas skips blank lines
                        lines.append(end + 1)  # where the record starts (a quoted field may span lines)
                    end = reader.line_num
        except (OSError, csv.Error, zipfile.BadZipFile, ImportError):
            lines = []
        if len(lines) == n_rows + 1 or (first and len(lines) > n_rows):  # the header, then one record per row
            return np.asarray(lines[1 : n_rows + 1], dtype=np.int64), "line"
        return np.arange(2, n_rows + 2, dtype=np.int64), "line"  # best effort: no blank lines
    return np.arange(1, n_rows + 1, dtype=np.int64), "row"


def _open_text(path: Path):
    """A CSV file, plain or compressed as :func:`read_csv` reads it, open as text (undecodable
    bytes replaced: only the line breaks and quotes are read)."""
    suffix = path.suffix.lower()
    if suffix == ".zip":  # one file inside, as pandas reads it
        archive = zipfile.ZipFile(path)
        names = archive.namelist()
        if len(names) != 1:
            archive.close()
            raise OSError(f"{path} holds {len(names)} files")
        return io.TextIOWrapper(archive.open(names[0]), encoding="utf-8", errors="replace", newline="")
    if suffix == ".zst":
        import zstandard  # pandas reads .zst with it: present when the file could be read

        return zstandard.open(path, "rt", encoding="utf-8", errors="replace", newline="")
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(suffix, open)
    return opener(path, "rt", newline="", encoding="utf-8", errors="replace")


def read_capacity(path, *, by: str | None = None) -> dict:
    r"""Per-area tier capacities from a CSV or parquet table.

    Columns: the area (named ``by``, or ``area``, else the first column), ``red`` and
    optionally ``yellow`` (whole numbers; an empty yellow cell means "the yellow share").

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "capacity.csv"
    >>> _ = path.write_text("station,red,yellow\nS01,10,30\nS02,5,\n")
    >>> read_capacity(path)
    {'S01': {'red': 10, 'yellow': 30}, 'S02': {'red': 5}}
    """
    path = Path(path)
    table = read_table(path)
    key = by if by in table.columns else "area" if "area" in table.columns else table.columns[0]
    if "red" not in table.columns:
        raise ConfigError(f"capacity table {path} needs a 'red' column (and optionally 'yellow'); it has "
                          f"{list(table.columns)}.")
    areas = table[key].astype(str)
    dup = areas[areas.duplicated()]
    if len(dup):
        raise ConfigError(f"capacity table {path}: area(s) {sorted(set(dup))[:5]} listed more than once.")
    out: dict = {}
    for line, (area, row) in enumerate(zip(areas, table.itertuples(index=False)), start=2):
        spec = {}
        for tier in ("red", "yellow"):
            value = getattr(row, tier, None) if tier in table.columns else None
            if value is None or pd.isna(value):
                if tier == "red":
                    raise ConfigError(f"capacity table {path}, line {line}: area {area!r} has no red capacity.")
                continue
            number = pd.to_numeric(value, errors="coerce")
            if pd.isna(number) or number < 0 or not float(number).is_integer():
                raise ConfigError(f"capacity table {path}, line {line}: {tier} capacity of {area!r} must be a whole "
                                  f"number >= 0, got {value!r}.")
            spec[tier] = int(number)
        out[area] = spec
    return out


def load_data(config: ExperimentConfig):
    """Events and entities for a config: simulated (deterministic for the seed) or read from files.

    Returns
    -------
    events, entities : DataFrame, DataFrame or None
    simulation : Simulation or None
        The simulation (with its oracle) when ``source = "simulate"``.
    """
    d = config.data
    if d.source == "simulate":
        from .._simulate import simulate_disputes

        sim = simulate_disputes(d.n_disputes, start=d.start, end=d.end, seed=d.seed)
        return sim.events, sim.entities, sim
    events = read_table(d.events, text_columns=config.schema.text_columns,
                        named=(f"[data] events = {d.events!r}",) * 2)
    entities = read_table(d.entities, text_columns=config.schema.entity_text_columns,
                          named=(f"[data] entities = {d.entities!r}",) * 2) if d.entities else None
    return events, entities, None
