"""Data contracts: one YAML file per dataset/table, parsed into frozen objects.

The same contract checks a file's header (validate Lambda), each value (raw_to_staging), the
staging profile (the gate) and selects the curated features (staging_to_curated).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.csv_format import CsvFormat, FormatError, parse_format

TYPES = ("string", "integer", "double")
TABLE_TYPES = {"string": "string", "integer": "bigint", "double": "double"}
"""The type each contract type has in staging and curated: Spark's, Parquet's and the Glue catalog's (Hive)
names of it, which agree."""
LINEAGE_TYPES = {"created_at": "timestamp", "source_file": "string"}
"""The lineage a curated row keeps beside the contract's columns: when its file was landed, and which file."""
UNKNOWN_COLUMNS = ("accept", "quarantine")
NUMBER_PATTERN = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
"""What counts as a number, in both engines (Python here, Spark in glue/lib): no NaN, no 1_000."""
INTEGER_LIMIT = float(2**63)
"""Integers are 64-bit (Parquet INT64, Spark bigint)."""


def is_integer_value(number: float) -> bool:
    """Whether a number is a valid integer of a contract: finite, whole and 64-bit (the pipeline reads the
    text 40.0 as 40; the service the JSON number 40.0). A Python int is compared exactly, whatever its size."""
    if isinstance(number, int):
        return abs(number) < INTEGER_LIMIT
    return math.isfinite(number) and number.is_integer() and abs(number) < INTEGER_LIMIT


MODEL_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}"
"""A registered model's name, as MLflow's registry and SageMaker's managed MLflow take it."""
CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "contracts"
TRANSFORMS_PATH = Path("glue", "lib", "table_transforms")
"""Where a table's own transform lives, from the folder that holds `contracts/` (the repository's root):
`<TRANSFORMS_PATH>/<dataset>/<table>.py`, run by glue/lib/etl_spark/table_transform.py."""


class ContractError(ValueError):
    """A contract file that cannot be used: names the file and the field."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    allowed: tuple[Any, ...] | None = None
    pattern: str | None = None
    description: str = ""
    sensitive: bool = False
    """Its values identify a person (an identifier or a quasi-identifier such as age): no report outside
    the data stores (the gate's details, notifications, logs) carries a figure computed from them."""

    def check(self, raw: str | None, null_values: tuple[str, ...] = ("",)) -> tuple[Any, str | None]:
        """Parse one raw text value: (value, None) or (None, reason). Whitespace is trimmed; a value
        spelled as one of `null_values` (the contract's format) is missing. Only spaces are trimmed.
        The reason names the column and the rule, never the value: reasons travel to logs, the run's
        report and notifications, and the value stays beside it in the quarantined row."""
        text = None if raw is None else raw.strip(" ")  # spaces only, as Spark's trim (a test holds both)
        if text is None or text == "" or text in null_values:
            return (None, None) if self.nullable else (None, f"{self.name} is missing (required)")
        value: Any
        if self.type == "string":
            value = text
        elif self.type == "integer":
            number = float(text) if re.fullmatch(NUMBER_PATTERN, text) else math.nan
            if not is_integer_value(number):
                return None, f"{self.name}: not an integer"
            value = int(number)
        else:
            if not re.fullmatch(NUMBER_PATTERN, text):
                return None, f"{self.name}: not a number"
            value = float(text)
            if not math.isfinite(value):
                return None, f"{self.name}: not a finite number"
        if self.min is not None and value < self.min:
            return None, f"{self.name}: below the minimum {self.min:g}"
        if self.max is not None and value > self.max:
            return None, f"{self.name}: above the maximum {self.max:g}"
        if self.allowed is not None and value not in self.allowed:
            return None, f"{self.name}: not one of {list(self.allowed)}"
        if self.pattern is not None and not re.fullmatch(self.pattern, str(value)):
            return None, f"{self.name}: does not match {self.pattern}"
        return value, None


@dataclass(frozen=True)
class Quality:
    min_rows: int = 1
    """Of the curated table each promotion builds (a small correction file is a batch like any other)."""
    max_rejected_fraction: float = 0.0
    mean_between: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    max_row_drop_fraction: float = 1.0
    """How far a curated build may shrink against the one it replaces (1: any, the default). Curated loses keys
    when a batch it held is no longer promoted (re-run and failed, cleared by a run that died, or being re-run
    while another file of the table is promoted): 0 makes each of those fail the promotion, loudly, and leaves
    curated as it was, until the batch passes again or the contract allows the drop."""
    max_mean_shift: Mapping[str, float] = field(default_factory=dict)
    """Per numeric column, how far a curated build's mean may move from the mean of the build it replaces, in
    that build's standard deviations: a distribution check of the table, not of a file (a batch of other
    patients may differ; the table should not jump)."""


@dataclass(frozen=True)
class DeleteWhen:
    """Rows that say their key is gone (a change extract's delete, `op = 'D'`): where a key's latest row is one,
    the key leaves curated; staging keeps the row, like every other."""

    column: str
    values: tuple[str | int, ...]


PARTITION_COLUMN = "partition"
"""The name of a curated build's partition folders (`partition=<token>`: pipeline.layout.PARTITION)."""
MAX_BUCKETS = 4096
"""Of a table partitioned by key hash: far past what a table of many terabytes needs (a few hundred MB each)."""


@dataclass(frozen=True)
class Partitioning:
    """How a curated table is cut into partitions, each rewritten only by a build whose batches touch it (the
    pointer names, per partition, the build folder holding it): `buckets` by a hash of the key (an upsert table
    whose updates land anywhere; a batch touches about min(rows, buckets) of them), or a key `column`'s value
    (an event table whose new rows share a few values of it, e.g. a day). Either way a key lives in one
    partition. The default, one bucket, rewrites the whole table each build."""

    buckets: int | None = 1
    column: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"column": self.column} if self.column is not None else {"buckets": self.buckets}


def _partitioning(data: Any) -> Partitioning:
    if data is None:
        return Partitioning()
    if not isinstance(data, Mapping) or len(data) != 1 or not set(data) <= {"buckets", "column"}:
        raise ValueError(
            f"partition must be {{buckets: <1-{MAX_BUCKETS}>}} or {{column: <a key column>}}, not {data!r}"
        )
    if "column" in data:
        return Partitioning(buckets=None, column=data["column"])
    return Partitioning(buckets=data["buckets"])


def _partition_problems(contract: Contract) -> list[str]:
    """Buckets: a whole number in range; a column: a string or integer column of the key (so that a key's rows
    never move between partitions)."""
    partition = contract.partition
    if partition.column is None:
        buckets = partition.buckets
        if isinstance(buckets, bool) or not isinstance(buckets, int) or not 1 <= buckets <= MAX_BUCKETS:
            return [f"partition.buckets must be a whole number from 1 to {MAX_BUCKETS}, not {buckets!r}"]
        return []
    name = partition.column
    if name not in contract.key or name not in contract.column_names:
        return [
            f"partition.column {name!r} must be a column of the key {list(contract.key)} (a key lives in one partition)"
        ]
    if contract.column(name).type not in ("string", "integer"):
        return [f"partition.column {name!r} must be a string or integer column, not {contract.column(name).type}"]
    if contract.column(name).sensitive or tuple(contract.key) == (name,):
        return [
            f"partition.column {name!r} must not be sensitive nor the whole key: its values name folders, and "
            "a folder per key is a file per key (use partition: {buckets: <n>})"
        ]
    return []


@dataclass(frozen=True)
class Contract:
    dataset: str
    table: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    features: tuple[str, ...]
    label: str
    quality: Quality
    description: str = ""
    format: CsvFormat = field(default_factory=CsvFormat)
    """How its files are written (delimiter, quote, encoding, header, null spellings)."""
    version: str | None = None
    """The column holding a row's own version (an extract sequence, an event time as a number): curated keeps,
    per key, the row of the highest version, whatever order files land in. Without it, the latest landed."""
    delete_when: DeleteWhen | None = None
    unknown_columns: str = "accept"
    """What a file with columns the contract does not name gets: `accept` (they are dropped, and reported in
    the ledger and the profile) or `quarantine` (the whole file, with the reason)."""
    partition: Partitioning = field(default_factory=Partitioning)
    """How its curated builds are cut (`Partitioning`)."""
    model: str | None = None
    """The registered model (MLflow) trained on this table's features and label and served by the model
    service (pipeline/registry.py: one contract names it)."""
    contract_version: int = 1
    """Its major version: raised by a change that data valid before, or readers of curated, cannot follow
    (pipeline/evolution.py checks it in every PR)."""
    check_only: bool = False
    """A dataset that exists only to check a deployment (the smoke check): the pipeline validates,
    stages and gates it, but never promotes it to curated, so no training or other consumer sees it."""
    transform: str | None = None
    """The SHA-256 of the table's own transform (`TRANSFORMS_PATH/<dataset>/<table>.py`), None without one:
    derived where contracts are read from the repository, carried in the JSON the functions and the Glue jobs
    get, and part of the build fingerprint, so that an edited transform makes the next build from scratch."""

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.table}"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def header_problems(self, header: Sequence[str]) -> tuple[list[str], list[str]]:
        """(missing required columns, unknown columns) of a file's header."""
        present = [h.strip() for h in header]
        missing = [c.name for c in self.columns if c.name not in present]
        unknown = [h for h in present if h not in self.column_names]
        return missing, unknown

    def check_row(self, row: Mapping[str, str | None]) -> tuple[dict[str, Any], list[str]]:
        """Typed values of one row and the reasons it breaks the contract (empty when it does not)."""
        values: dict[str, Any] = {}
        reasons: list[str] = []
        for column in self.columns:
            value, reason = column.check(row.get(column.name), self.format.null_values)
            values[column.name] = value
            if reason:
                reasons.append(reason)
        return values, reasons

    def to_json(self) -> str:
        return json.dumps(_as_dict(self), sort_keys=True)


def curated_columns(contract: Contract) -> list[str]:
    """A curated table's columns: the key, the features, the label and the version column (once each), then
    the row's lineage (`LINEAGE_TYPES`)."""
    version = [contract.version] if contract.version else []
    return [*dict.fromkeys([*contract.key, *contract.features, contract.label, *version]), *LINEAGE_TYPES]


def _as_dict(contract: Contract) -> dict[str, Any]:
    return {
        "contract_version": contract.contract_version,
        "dataset": contract.dataset,
        "table": contract.table,
        "description": contract.description,
        "check_only": contract.check_only,
        "format": contract.format.as_dict(),
        "key": list(contract.key),
        "features": list(contract.features),
        "label": contract.label,
        **({"version": contract.version} if contract.version is not None else {}),
        **({"model": contract.model} if contract.model is not None else {}),
        **({"transform": contract.transform} if contract.transform is not None else {}),
        "unknown_columns": contract.unknown_columns,
        "partition": contract.partition.as_dict(),
        **(
            {"delete_when": {"column": contract.delete_when.column, "values": list(contract.delete_when.values)}}
            if contract.delete_when is not None
            else {}
        ),
        "columns": [
            {k: (list(v) if isinstance(v, tuple) else v) for k, v in c.__dict__.items() if v is not None}
            for c in contract.columns
        ],
        "quality": {
            "min_rows": contract.quality.min_rows,
            "max_rejected_fraction": contract.quality.max_rejected_fraction,
            "max_row_drop_fraction": contract.quality.max_row_drop_fraction,
            "mean_between": {k: list(v) for k, v in contract.quality.mean_between.items()},
            "max_mean_shift": dict(contract.quality.max_mean_shift),
        },
    }


def _flag(data: Mapping[str, Any], key: str, where: str = "") -> bool:
    """A true/false field (`where` prefixes its name in the error, e.g. "column 'age': ")."""
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{where}{key} must be true or false, not {value!r}")
    return value


CONTRACT_KEYS = (
    "contract_version",
    "dataset",
    "table",
    "description",
    "check_only",
    "format",
    "key",
    "columns",
    "features",
    "label",
    "version",
    "delete_when",
    "unknown_columns",
    "partition",
    "quality",
    "model",
)
COLUMN_KEYS = ("name", "type", "nullable", "min", "max", "allowed", "pattern", "description", "sensitive")
QUALITY_KEYS = ("min_rows", "max_rejected_fraction", "max_row_drop_fraction", "mean_between", "max_mean_shift")


def _unknown_keys(data: Any, known: Sequence[str], where: str) -> list[str]:
    """A problem per key of mapping `data` that the contract does not define (`where`: its path, e.g.
    "columns[2]"), with the nearest known key: a misspelt `nullabel:` must fail, not loosen a rule."""
    if not isinstance(data, Mapping):
        return [f"{where or 'the contract'} must be a mapping, not {type(data).__name__}"]
    problems = []
    for key in sorted(map(str, data)):
        if key not in known:
            near = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f" (known: {', '.join(known)})"
            problems.append(f"{where + '.' if where else ''}{key}: unknown key{hint}")
    return problems


def _key_problems(data: Mapping[str, Any]) -> list[str]:
    """Every unknown key of a contract, by its path: at the top, in each column and in `quality` (`format`,
    `partition` and `delete_when` check their own)."""
    # `transform` is derived (Contract.transform): in the JSON the synth writes, refused in a YAML file
    written = {k: v for k, v in data.items() if k != "transform"} if isinstance(data, Mapping) else data
    problems = _unknown_keys(written, CONTRACT_KEYS, "")
    if problems and not isinstance(data, Mapping):
        return problems
    columns = data.get("columns")
    if isinstance(columns, list):
        for index, column in enumerate(columns):
            name = column.get("name") if isinstance(column, Mapping) else None
            problems += _unknown_keys(column, COLUMN_KEYS, f"columns[{index}]" + (f" ({name})" if name else ""))
    if "quality" in data:
        problems += _unknown_keys(data["quality"], QUALITY_KEYS, "quality")
    return problems


def parse_contract(data: Mapping[str, Any], source: str = "<contract>") -> Contract:
    """A contract from its parsed file. Raises ContractError naming `source` and each problem's field: an
    unknown key anywhere (a misspelling), a missing or mistyped field, a rule that cannot hold."""
    unknown = _key_problems(data)
    if unknown:
        raise ContractError(f"{source}: " + "; ".join(unknown))
    try:
        columns = tuple(
            Column(
                name=c["name"],
                type=c["type"],
                nullable=bool(c.get("nullable", True)),
                min=c.get("min"),
                max=c.get("max"),
                allowed=tuple(c["allowed"]) if "allowed" in c else None,
                pattern=c.get("pattern"),
                description=c.get("description", ""),
                sensitive=_flag(c, "sensitive", f"column {c.get('name')!r}: "),
            )
            for c in data["columns"]
        )
        quality = data.get("quality", {})
        check_only = _flag(data, "check_only")
        contract = Contract(
            dataset=data["dataset"],
            table=data["table"],
            key=tuple(data["key"]),
            columns=columns,
            features=tuple(data["features"]),
            label=data["label"],
            version=data.get("version"),
            delete_when=_delete_when(data.get("delete_when")),
            partition=_partitioning(data.get("partition")),
            unknown_columns=data.get("unknown_columns", "accept"),
            description=data.get("description", ""),
            check_only=check_only,
            contract_version=data.get("contract_version", 1),
            model=data.get("model"),
            transform=data.get("transform"),
            format=parse_format(data.get("format")),
            quality=Quality(
                min_rows=int(quality.get("min_rows", 1)),
                max_rejected_fraction=float(quality.get("max_rejected_fraction", 0.0)),
                max_row_drop_fraction=float(quality.get("max_row_drop_fraction", 1.0)),
                mean_between={k: (float(v[0]), float(v[1])) for k, v in quality.get("mean_between", {}).items()},
                max_mean_shift={k: float(v) for k, v in quality.get("max_mean_shift", {}).items()},
            ),
        )
    except FormatError as exc:
        raise ContractError(f"{source}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ContractError(f"{source}: invalid contract ({type(exc).__name__}: {exc})") from None
    names = contract.column_names
    problems = [f"column {c.name!r} has type {c.type!r}, not one of {TYPES}" for c in columns if c.type not in TYPES]
    problems += [
        f"{what} {n!r} is not a column"
        for what, group in (
            ("key", contract.key),
            ("feature", contract.features),
            ("label", (contract.label,)),
            ("mean_between", tuple(contract.quality.mean_between)),
            ("max_mean_shift", tuple(contract.quality.max_mean_shift)),
        )
        for n in group
        if n not in names
    ]
    problems += [
        f"key column {k!r} must not be nullable" for k in contract.key if k in names and contract.column(k).nullable
    ]
    problems += _version_problems(contract)
    problems += _delete_problems(contract)
    problems += _partition_problems(contract)
    version = [contract.version] if isinstance(contract.version, str) else []
    curated = {*contract.key, *contract.features, contract.label, *version}
    problems += [
        f"quality.max_mean_shift {name!r} must be a positive number of standard deviations of a numeric column "
        "that curated keeps (a key, feature, label or version column)"
        for name, limit in contract.quality.max_mean_shift.items()
        if name in names and (limit <= 0 or contract.column(name).type == "string" or name not in curated)
    ]
    if contract.model is not None and (
        not isinstance(contract.model, str) or not re.fullmatch(MODEL_NAME_PATTERN, contract.model)
    ):
        problems.append(f"model must be a registered model's name ({MODEL_NAME_PATTERN}), not {contract.model!r}")
    if contract.model is not None and contract.check_only:
        problems.append("model: a check-only table never reaches curated, so nothing can train on it")
    version_number = contract.contract_version
    if isinstance(version_number, bool) or not isinstance(version_number, int) or version_number < 1:
        problems.append(f"contract_version must be a whole number from 1 (its major version), not {version_number!r}")
    if contract.unknown_columns not in UNKNOWN_COLUMNS:
        problems.append(
            f"unknown_columns must be one of {', '.join(UNKNOWN_COLUMNS)}, not {contract.unknown_columns!r}"
        )
    problems += [
        f"quality.{name} must be between 0 and 1, not {value:g}"
        for name in ("max_rejected_fraction", "max_row_drop_fraction")
        if not 0 <= (value := getattr(contract.quality, name)) <= 1
    ]
    if len(set(names)) != len(names):
        problems.append("column names repeat")
    if PARTITION_COLUMN in {name.casefold() for name in names}:  # Spark resolves names in any case
        problems.append(f"column name {PARTITION_COLUMN!r} is taken by curated's partition folders: rename the column")
    if problems:
        raise ContractError(f"{source}: " + "; ".join(problems))
    return contract


def _version_problems(contract: Contract) -> list[str]:
    """A version column must be a number every row has: rows are ordered by it."""
    version = contract.version
    if version is None:
        return []
    if not isinstance(version, str) or version not in contract.column_names:
        return [f"version {version!r} is not a column"]
    column = contract.column(version)
    if column.type not in ("integer", "double") or column.nullable:
        return [
            f"version column {version!r} must be a number every row has (type integer or double, nullable: false),"
            f" not {'nullable ' if column.nullable else ''}{column.type}"
        ]
    return []


def _delete_when(data: Any) -> DeleteWhen | None:
    if data is None:
        return None
    if not isinstance(data, Mapping) or set(data) != {"column", "values"} or not isinstance(data["values"], list):
        raise ValueError(f"delete_when must be {{column: <name>, values: [<value>, ...]}}, not {data!r}")
    return DeleteWhen(data["column"], tuple(data["values"]))


def _delete_problems(contract: Contract) -> list[str]:
    """The delete column must be a column, its values a non-empty list of values it can hold."""
    delete = contract.delete_when
    if delete is None:
        return []
    if delete.column not in contract.column_names:
        return [f"delete_when column {delete.column!r} is not a column"]
    column = contract.column(delete.column)
    wanted = {"string": str, "integer": int}.get(column.type)
    if wanted is None:
        return [f"delete_when column {delete.column!r} must be a string or integer column, not {column.type}"]
    if not delete.values or not all(isinstance(v, wanted) and not isinstance(v, bool) for v in delete.values):
        return [f"delete_when values must be a non-empty list of {column.type}s, not {list(delete.values)!r}"]
    return []


def contract_named(contracts: Mapping[str, Contract], name: str, *, promote: bool = False) -> Contract:
    """The contract of `dataset/table` out of `contracts`; with `promote`, refuse a check-only one (its
    data must never reach curated). The error names the table and what is known."""
    contract = contracts.get(name)
    if contract is None:
        raise ContractError(
            f"no data contract for {name} (known: {', '.join(sorted(contracts)) or 'none'}); add contracts/{name}.yaml"
        )
    if promote and contract.check_only:
        raise ContractError(f"{name} is a check-only dataset (check_only: true): it is never promoted to curated")
    return contract


def contracts_to_json(contracts: Mapping[str, Contract]) -> str:
    """Every contract as one JSON text (a list, by name): what the Glue jobs get as `--contracts`."""
    return json.dumps([_as_dict(contracts[name]) for name in sorted(contracts)], sort_keys=True)


def contracts_from_json(text: str, source: str = "--contracts") -> dict[str, Contract]:
    """The inverse of `contracts_to_json`, by "dataset/table"."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContractError(f"{source}: not JSON ({exc})") from None
    if not isinstance(items, list):
        raise ContractError(f"{source}: expected a JSON list of contracts, got {type(items).__name__}")
    contracts = [parse_contract(item, source=f"{source}[{i}]") for i, item in enumerate(items)]
    return {c.name: c for c in contracts}


def load_contract(path: Path | str) -> Contract:
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
    else:
        import yaml  # only where YAML contracts are read: the repo, the tests, the synth

        data = yaml.safe_load(text)
        if isinstance(data, Mapping) and "transform" in data:
            raise ContractError(
                f"{path}: transform is not written in a contract: it is the hash of the table's transform file "
                f"({TRANSFORMS_PATH.as_posix()}/<dataset>/<table>.py); remove the key"
            )
    return parse_contract(data, source=str(path))


def transform_hash(directory: Path, dataset: str, table: str) -> str | None:
    """The SHA-256 of `<directory>/<dataset>/<table>.py`, None when the table has no transform there."""
    path = directory / dataset / f"{table}.py"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def load_contracts(directory: Path | str = CONTRACTS_DIR) -> dict[str, Contract]:
    """Every contract under `directory`, by "dataset/table". Each lives at `<dataset>/<table>.yaml` (or `.yml`,
    `.json`) and names that dataset and table: the path is where a reader looks for it, the names are where
    its files land and its curated table goes, and the two must not tell different stories."""
    contracts: dict[str, Contract] = {}
    transforms = Path(directory).parent / TRANSFORMS_PATH
    for path in sorted(Path(directory).rglob("*")):
        if path.suffix in (".yaml", ".yml", ".json"):
            contract = load_contract(path)
            if path.suffix != ".json":  # a JSON contract carries its hash; a YAML one sits beside its transform
                contract = replace(contract, transform=transform_hash(transforms, contract.dataset, contract.table))
            where = path.relative_to(directory).with_suffix("").as_posix()
            if where != contract.name:
                raise ContractError(
                    f"{path}: names dataset {contract.dataset!r} and table {contract.table!r}, so it belongs at "
                    f"{contract.name}{path.suffix} under {directory} (or change its dataset and table to {where})"
                )
            if contract.name in contracts:
                raise ContractError(f"{path}: a second contract of {contract.name}: keep one file per table")
            contracts[contract.name] = contract
    return contracts
