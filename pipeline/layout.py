"""Where objects live: one place for every key the pipeline writes or parses.

landing     <dataset>/<table>/<file>                       uploads, moved away by ingest
raw         <dataset>/<table>/created_at=<ts>/<safe file>    write-once; the landing key in its metadata
quarantine  files/<raw key> + files/<raw key>.reason.json    whole files that cannot be read
            rows/<batch>/                                    rejected rows, each with its reason
staging     <batch>/run=<run>/                               Parquet of one raw file's accepted rows
            _runs/<batch>/run=<run>/profile.json, _GATE_PASSED.json / _GATE_FAILED.json
(<batch> = <dataset>/<table>/created_at=<ts>/file=<file>: one raw file; <run> = the run of raw_to_staging
that wrote it: Glue's job run id. A verdict is its run's: a re-run clears the batch's verdicts and data
before it writes, and only the passed run's own data are promoted, `passed_runs`.)
curated     <dataset>/<table>/_CURRENT.json                  which build readers read (one PUT switches it)
            <dataset>/<table>/build=<n>-<attempt>/           build n of the feature table: the partitions it
                                                             rewrote, `partition=<token>/`, and _manifest.json:
                                                             the passed runs it holds and the build itself
            <dataset>/<table>/_deleted/build=<n>-<attempt>/  their deleted keys (key and order only)
(A build merges the batches that passed since the one before into it; where a run the current build holds no
longer passes (its batch staged again, or failed), the next build is from scratch: `promotion_plan`.
Readers, training and the catalog read `_CURRENT.json`'s build: per partition, the build folder that holds it.)

Keys travel in S3 and EventBridge events, which may URL-encode them (form encoding: a space as `+`, `=` as
`%3D`, sometimes `/` as `%2F`). A raw file name therefore holds only characters that no encoding changes
(`safe_file_name`): a raw key is `[A-Za-z0-9._-]`, `/` and the one `=` of `created_at=`, and it decodes to
itself. The landing name is kept in the raw object's metadata (`landing_metadata`), and a key read from an
event is tried decoded first (`event_key_candidates`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import quote, unquote, unquote_plus

from pipeline.contract import PARTITION_COLUMN

TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_NAME = r"[a-z][a-z0-9_]*"
_LANDING = re.compile(rf"^(?P<dataset>{_NAME})/(?P<table>{_NAME})/(?P<file>[^/]+)$")
_RAW = re.compile(
    rf"^(?P<dataset>{_NAME})/(?P<table>{_NAME})/"
    r"created_at=(?P<created_at>\d{8}T\d{6}Z)/(?P<file>[^/]+)$"
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_NAME_HASH_LENGTH = 8
LANDING_KEY_METADATA = "landing-key"
"""The raw object's user metadata entry (x-amz-meta-landing-key) holding its landing key, percent-encoded."""
LANDING_ETAG_METADATA = "landing-etag"
"""The raw object's user metadata entry holding the ETag of the landed object it was copied from."""


class LayoutError(ValueError):
    """A key that does not follow the layout."""


def safe_file_name(name: str) -> str:
    """`name` with every run of characters outside [A-Za-z0-9._-] replaced by one `_` and, if anything
    changed, `-` and the first 8 hex digits of the SHA-256 of the original name (UTF-8) inserted before
    its suffixes, so that two names never meet: `my export (1).csv.gz` -> `my_export_1_-<hash>.csv.gz`.
    A name that is already safe is returned unchanged; one made only of dots (`.`, `..`: path segments to
    some clients) counts as unsafe."""
    if not name:
        raise LayoutError("a file name cannot be empty")
    safe = _UNSAFE.sub("_", name)
    if not safe.strip("."):
        safe = "_"
    if safe == name:
        return name
    return _before_suffixes(safe, "-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:_NAME_HASH_LENGTH])


def _before_suffixes(name: str, insert: str) -> str:
    """`name` with `insert` before its suffixes (`a.csv.gz` -> `a<insert>.csv.gz`)."""
    leading_dots = len(name) - len(name.lstrip("."))  # `.env.csv`: the stem is `.env`, the suffix `.csv`
    dot = name.find(".", leading_dots)
    return f"{name}{insert}" if dot < 0 else f"{name[:dot]}{insert}{name[dot:]}"


def landing_metadata(landing_key: str) -> dict[str, str]:
    """The raw object's user metadata naming the file it came from: the landing key percent-encoded
    (S3 metadata travel as HTTP headers: ASCII only)."""
    return {LANDING_KEY_METADATA: quote(landing_key, safe="/")}


def landing_key_from_metadata(metadata: Mapping[str, str]) -> str | None:
    """The landing key in a raw object's user metadata (`head_object(...)["Metadata"]`), decoded; None for
    an object that has none (ingested before the landing key was kept, or not by ingest)."""
    value = metadata.get(LANDING_KEY_METADATA)
    return None if value is None else unquote(value)


def event_key_candidates(event_key: str) -> list[str]:
    """The keys an S3 or EventBridge event's object key may stand for, the likeliest first: the key
    form-decoded (AWS documents S3 notification keys as URL-encoded: `a b.csv` arrives as `a+b.csv`), then
    the key as it came, if different (an event that carried it raw). A raw key decodes to itself: one key;
    a key whose escapes are not UTF-8 (`%FF`) cannot have been encoded by S3: it is taken as it came."""
    try:
        decoded = unquote_plus(event_key, errors="strict")
    except UnicodeDecodeError:
        return [event_key]
    return [decoded] if decoded == event_key else [decoded, event_key]


@dataclass(frozen=True)
class RawObject:
    dataset: str
    table: str
    created_at: str
    file: str

    @property
    def key(self) -> str:
        return f"{self.partition}/{self.file}"

    def for_version(self, version: str) -> RawObject:
        """The raw object of one landed version of a name when another upload of that name landed in the same
        second (and so has this key): `-v` and 8 hex digits of the version id's SHA-256 before the suffixes."""
        digest = hashlib.sha256(version.encode("utf-8")).hexdigest()[:_NAME_HASH_LENGTH]
        return replace(self, file=_before_suffixes(self.file, f"-v{digest}"))

    @property
    def partition(self) -> str:
        return f"{self.dataset}/{self.table}/created_at={self.created_at}"

    @property
    def batch(self) -> str:
        """One raw file's batch: files that land in the same second share a partition, not a batch."""
        return f"{self.partition}/file={self.file}"

    @property
    def contract_name(self) -> str:
        return f"{self.dataset}/{self.table}"


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def raw_object_for_landing(landing_key: str, landed_at: datetime) -> RawObject:
    """The raw location of a landed file: its dataset and table, the time it landed (not when it is moved,
    so that a retried move computes the same key and never duplicates the file) and its name made safe
    (`safe_file_name`), so that the raw key survives any URL encoding of the events that carry it."""
    match = _LANDING.match(landing_key)
    if not match:
        raise LayoutError(
            f"landing key {landing_key!r} is not <dataset>/<table>/<file> "
            "(lowercase names, e.g. diabetes/patients/visits-2026-11.csv)"
        )
    return RawObject(match["dataset"], match["table"], timestamp(landed_at), safe_file_name(match["file"]))


def parse_raw_key(key: str) -> RawObject:
    match = _RAW.match(key)
    if not match:
        raise LayoutError(f"raw key {key!r} is not <dataset>/<table>/created_at=<YYYYMMDDTHHMMSSZ>/<file>")
    return RawObject(match["dataset"], match["table"], match["created_at"], match["file"])


def quarantined_file_key(raw_key: str) -> str:
    return f"files/{raw_key}"


def quarantined_rows_prefix(raw: RawObject) -> str:
    return f"rows/{raw.batch}/"


LOCAL_RUN = "build/pipeline-run"
"""Where `make pipeline` works, relative to the repository (scripts/run_pipeline_local.py): a folder per bucket,
so the curated tables `make train` reads by default are under `<LOCAL_RUN>/curated/<dataset>/<table>/`."""
RUNS_FOLDER = "_runs"
"""In staging, beside the batches: each run's profile and the gate's verdict on it."""
PROFILE_FILE = "profile.json"
GATE_PASSED = "_GATE_PASSED.json"
GATE_FAILED = "_GATE_FAILED.json"
CURRENT_BUILD = "_CURRENT.json"
_RUN_ID_PATTERN = r"[A-Za-z0-9_-]{1,128}"
"""What a run id is, once: the run ids checked_run_id accepts are the run folders passed_runs reads."""
_RUN_ID = re.compile(_RUN_ID_PATTERN)
_RUN_FILE = re.compile(
    rf"{RUNS_FOLDER}/(?P<batch>[^/]+/[^/]+/created_at=[^/]+/file=[^/]+)/(?:run=(?P<run>{_RUN_ID_PATTERN})/)?(?P<name>[^/]+)"
)


def checked_run_id(run_id: str) -> str:
    """`run_id` if it can name a folder (Glue's `jr_<hex>`, a uuid), else a ValueError naming it."""
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"run id {run_id!r} cannot name a folder: use letters, digits, '_' and '-' (1-128)")
    return run_id


def batch_prefix(raw: RawObject) -> str:
    """Every run's staged data of one raw file."""
    return f"{raw.batch}/"


def staging_prefix(raw: RawObject, run_id: str) -> str:
    """The staged data one run wrote."""
    return f"{raw.batch}/run={checked_run_id(run_id)}/"


def batch_runs_prefix(raw: RawObject) -> str:
    """Every run's profile and verdict of one raw file."""
    return f"{RUNS_FOLDER}/{raw.batch}/"


def run_prefix(raw: RawObject, run_id: str) -> str:
    """One run's profile and verdict."""
    return f"{RUNS_FOLDER}/{raw.batch}/run={checked_run_id(run_id)}/"


def run_id_of(key: str, raw: RawObject) -> str:
    """The run of a key under `batch_runs_prefix(raw)`."""
    folder = key.removeprefix(batch_runs_prefix(raw)).split("/", 1)[0]
    if not folder.startswith("run="):
        raise ValueError(f"{key} is not in a run folder of {raw.batch}")
    return checked_run_id(folder.removeprefix("run="))


def passed_runs(keys: list[str]) -> list[str]:
    """The staged data to promote, from the keys under `_runs/`: for each batch, the run whose own folder holds
    a pass and the profile it judged (a run cleared by a later one while its gate ran has no profile left), as
    `<batch>/run=<run>`. A pass written before runs had folders (`_runs/<batch>/_GATE_PASSED.json`, its data
    directly under `<batch>/`) still counts, as `<batch>`, until the file is run again. A batch with two passing
    runs (two runs of one file at once) is refused: its rows would be counted twice."""
    files: dict[tuple[str, str | None], set[str]] = {}
    for key in keys:
        match = _RUN_FILE.fullmatch(key)
        if match:
            files.setdefault((match["batch"], match["run"]), set()).add(match["name"])
    passed: dict[str, list[str]] = {}
    for (batch, run), names in files.items():
        if GATE_PASSED in names and (run is None or PROFILE_FILE in names):
            passed.setdefault(batch, []).append(batch if run is None else f"{batch}/run={run}")
    twice = sorted(batch for batch, runs in passed.items() if len(runs) > 1)
    if twice:
        raise RuntimeError(
            f"batches passed in more than one run, {twice}: run raw_to_staging for each again (a re-run "
            "clears the batch's earlier runs) before promoting"
        )
    return sorted(runs[0] for runs in passed.values())


@dataclass(frozen=True)
class PromotionPlan:
    """What the next curated build of a table merges, from the keys under its `_runs/` in staging and the runs
    its current build holds (its manifest)."""

    runs: list[str]
    """The passed runs to merge (`passed_runs`' names)."""
    from_scratch: bool
    """Whether the build must start from nothing: a run the current build holds is no longer its batch's
    passed run (the batch was staged again: a re-run, a backfill, a duplicate event; or it failed), so the
    rows the table holds of it may be wrong; or it was asked for (a first build, a backfill, a contract
    change)."""
    held: list[str]
    """The runs the new build will hold: its manifest."""
    new: list[str]
    """Passed runs the current build does not hold."""
    stale: list[str]
    """Runs the current build holds that no longer pass."""
    settling: list[str] = field(default_factory=list)
    """Batches of `stale` being staged again with no verdict yet (a re-run or a backfill in flight): a build
    from scratch now would leave their rows out until the next one. The scheduled promotion waits for them
    (lambdas/promote); a build started by hand does not."""

    @property
    def waiting(self) -> bool:
        """A build is due: runs passed that the current build does not hold, runs it holds that no longer pass
        (then a build from scratch, even of nothing, whose checks say loudly what the table lost), or a build
        from scratch asked for."""
        return bool(self.new) or bool(self.stale) or (self.from_scratch and bool(self.runs))


def promotion_plan(keys: list[str], *, held: list[str] | None, from_scratch: bool = False) -> PromotionPlan:
    """The next build of a table whose current build holds the runs `held` (its manifest; None before the first
    build): the runs passed since, merged onto the current build; or every passed run from scratch, where a
    run the current build holds no longer passes (or `from_scratch` is asked for: a backfill, a contract
    change)."""
    passed = passed_runs(keys)
    holding = set(held or [])
    new = [run for run in passed if run not in holding]
    stale = sorted(holding - set(passed))
    if stale or from_scratch or held is None:
        judged = {m["batch"] for m in map(_RUN_FILE.fullmatch, keys) if m and m["name"] in (GATE_PASSED, GATE_FAILED)}
        settling = sorted({run.split("/run=")[0] for run in stale} - judged)
        return PromotionPlan(passed, True, passed, new, stale, settling)
    return PromotionPlan(new, False, sorted(holding | set(new)), new, [])


def build_folder(number: int, attempt: str) -> str:
    """The folder of one attempt at build `number` of a table (`attempt`: unique to the promotion's run), so
    that two promotions of one table at once never write into each other's files; the pointer names the
    one made current."""
    return f"build={number:06d}-{attempt}"


PARTITION = PARTITION_COLUMN
"""A build folder's partitions' folders are `partition=<token>` (`etl_spark.transforms.partition_token`), a
name no contract column may take."""


def partition_folder(folder: str, token: str) -> str:
    """Partition `token`'s folder in build folder `folder`, relative to the table's."""
    return f"{folder}/{PARTITION}={token}"


def build_number(folder: str) -> int | None:
    """The build number of a `build_folder`; None for any other name."""
    match = re.fullmatch(r"build=([0-9]+)-[A-Za-z0-9]+", folder)
    return int(match[1]) if match else None


def raw_key_of_staged(staged: str) -> str:
    """The raw key a passed run staged (`<dataset>/<table>/created_at=<ts>/file=<file>[/run=<run>]`): the
    ledger's id of the file."""
    match = re.fullmatch(
        rf"(?P<partition>[^/]+/[^/]+/created_at=[^/]+)/file=(?P<file>[^/]+)(?:/run={_RUN_ID_PATTERN})?", staged
    )
    if not match:
        raise LayoutError(f"{staged!r} is not <dataset>/<table>/created_at=<ts>/file=<file>[/run=<run>]")
    return f"{match['partition']}/{match['file']}"


def table_prefix(dataset: str, table: str) -> str:
    """A table's folder in curated (every build), and in staging (its batches' staged data)."""
    return f"{dataset}/{table}/"


def table_runs_prefix(dataset: str, table: str) -> str:
    """Every run's profile and verdict of a table's batches, in staging: what promotion lists."""
    return f"{RUNS_FOLDER}/{table_prefix(dataset, table)}"


def current_build_key(dataset: str, table: str) -> str:
    return f"{table_prefix(dataset, table)}{CURRENT_BUILD}"


DELETED_FOLDER = "_deleted"
"""Beside a table's builds: each build's deleted keys (`<table>/_deleted/<build folder>/`), with their order
only, out of the readers' way."""
