"""promote: a curated build is started per table with passed batches no build took in yet, the longest waiting
first, never a second one for a table whose build runs (moto's S3 and Glue: moto runs no job, so the
state of a run is set here)."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import boto3
import pytest

from lambdas.promote import handler as promote
from lambdas.promote.logic import Refused, Waiting, running_tables, to_start, waiting
from pipeline.builds import Build, build_fingerprint
from pipeline.contract import load_contracts
from pipeline.layout import GATE_PASSED, PROFILE_FILE
from tests.lambdas.conftest import BUCKETS, FakeContext
from tests.lambdas.harness import CATALOG_DATABASE, REGION, promotion_job

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
BATCH = "diabetes/patients/created_at=20261201T120000Z/file=a.csv"
CONTRACT = load_contracts()["diabetes/patients"]


def built(number: int, *held: str, contract=CONTRACT) -> tuple[Build, list[str]]:
    """The table's current build, as its pointer says, and the runs it holds (its manifest)."""
    build = Build(
        "diabetes", "patients", number, 10, "t", f"build={number:06d}-a", contract=build_fingerprint(contract)
    )
    return build, list(held)


def listed(*entries: tuple[str, int]) -> list[tuple[str, datetime]]:
    """Keys under `_runs/` and when each was written (minutes after T0)."""
    return [(key if key.startswith("_runs/") else f"_runs/{key}", T0 + timedelta(minutes=m)) for key, m in entries]


def test_a_table_waits_from_its_oldest_pass_no_build_took_in() -> None:
    runs = listed(
        (f"{BATCH}/run=jr_1/{PROFILE_FILE}", 0),
        (f"{BATCH}/run=jr_1/{GATE_PASSED}", 1),
        (f"{BATCH.replace('a.csv', 'b.csv')}/run=jr_2/{PROFILE_FILE}", 40),
        (f"{BATCH.replace('a.csv', 'b.csv')}/run=jr_2/{GATE_PASSED}", 41),
        (f"{BATCH.replace('a.csv', 'c.csv')}/run=jr_3/{PROFILE_FILE}", 50),
        (f"{BATCH.replace('a.csv', 'c.csv')}/run=jr_3/{GATE_PASSED}", 52),
        (f"{BATCH.replace('a.csv', 'd.csv')}/run=jr_4/{PROFILE_FILE}", 45),  # not judged yet
    )
    table, now = "diabetes/patients", T0 + timedelta(days=1)
    one = built(1, f"{BATCH}/run=jr_1")  # build 1 holds a.csv's run
    assert waiting(table, runs, one, CONTRACT, now) == Waiting(table, 2, T0 + timedelta(minutes=41))
    assert waiting(table, runs[:2], one, CONTRACT, now) is None, "everything passed is in a build"
    assert waiting(table, runs[:2], None, CONTRACT, now) == Waiting(table, 1, T0 + timedelta(minutes=1)), (
        "no build yet: the first"
    )
    assert waiting(table, [], None, CONTRACT, now) is None, "no build, nothing passed"
    again = listed((f"{BATCH}/run=jr_9/{PROFILE_FILE}", 60), (f"{BATCH}/run=jr_9/{GATE_PASSED}", 61))
    assert waiting(table, again, one, CONTRACT, now) == Waiting(table, 1, T0 + timedelta(minutes=61)), (
        "a batch build 1 holds, staged again: its new run waits (for a build from scratch)"
    )
    staged_again = listed((f"{BATCH}/run=jr_9/{PROFILE_FILE}", 600))  # jr_1 cleared, jr_9 not judged yet
    assert waiting(table, staged_again, one, CONTRACT, now) == Waiting(
        table, 0, T0 + timedelta(minutes=600), settling=True
    ), "a batch the table holds is being run again: the build from scratch waits for its verdict, measured"
    failed = [*staged_again, *listed((f"{BATCH}/run=jr_9/_GATE_FAILED.json", 601))]
    assert waiting(table, failed, one, CONTRACT, now) == Waiting(table, 0, T0 + timedelta(minutes=601)), (
        "its re-run failed the gate: the table holds a run that no longer passes, a build from scratch is due"
    )
    changed = replace(CONTRACT, features=CONTRACT.features[:-1])
    assert waiting(table, runs[:2], one, changed, now) == Waiting(table, 0, now), (
        "a changed contract: a build from scratch, though nothing new passed, waiting from now"
    )


def test_a_batch_passed_in_two_runs_is_refused_not_started() -> None:
    twice = listed(
        *[(f"{BATCH}/run={run}/{name}", 0) for run in ("jr_1", "jr_2") for name in (PROFILE_FILE, GATE_PASSED)]
    )
    found = waiting("diabetes/patients", twice, built(1), CONTRACT, T0)
    assert isinstance(found, Refused) and "more than one run" in found.reason


def test_the_longest_waiting_table_goes_first_and_a_running_one_is_left_to_its_run() -> None:
    tables = [Waiting("a/new", 1, T0 + timedelta(hours=1)), Waiting("b/old", 3, T0), Waiting("c/mid", 1, T0)]
    assert to_start(tables, set()) == ["b/old", "c/mid", "a/new"]
    assert to_start(tables, {"b/old"}) == ["c/mid", "a/new"]
    assert to_start([*tables, Waiting("d/settling", 1, T0 - timedelta(days=1), settling=True)], set()) == [
        "b/old",
        "c/mid",
        "a/new",
    ], "a table whose batches are being run again waits, however long"
    runs = [
        {"JobRunState": "RUNNING", "Arguments": {"--table": "b/old"}},
        {"JobRunState": "SUCCEEDED", "Arguments": {"--table": "c/mid"}},
        {"JobRunState": "STARTING", "Arguments": {"--table": "a/new"}},
        {"JobRunState": "FAILED", "Arguments": {"--table": "d/x"}},
        {"JobRunState": "RUNNING"},  # a run without the argument (started by hand, say): no table's
    ]
    assert running_tables(runs) == {"b/old", "a/new"}


def _pass(s3, batch: str, run: str) -> None:
    for name in (PROFILE_FILE, GATE_PASSED):
        s3.put_object(Bucket=BUCKETS["staging"], Key=f"_runs/{batch}/run={run}/{name}", Body=b"{}")


def test_the_handler_starts_a_build_of_a_waiting_table_once(s3, monkeypatch) -> None:
    job = promotion_job()
    glue = boto3.client("glue", region_name=REGION)
    monkeypatch.setenv("STAGING_BUCKET", BUCKETS["staging"])
    monkeypatch.setenv("CURATED_BUCKET", BUCKETS["curated"])
    monkeypatch.setenv("PROMOTION_JOB", job)
    monkeypatch.setenv("CATALOG_DATABASE", CATALOG_DATABASE)
    assert promote.handler({}, FakeContext())["started"] == [], "nothing passed: nothing started"
    _pass(s3, BATCH, "jr_1")
    result = promote.handler({}, FakeContext())
    assert result["started"] == ["diabetes/patients"] and result["waiting"] == {"diabetes/patients": 1}
    (run,) = glue.get_job_runs(JobName=job)["JobRuns"]
    assert run["Arguments"] == {"--table": "diabetes/patients"}
    assert 0 <= result["oldest_wait_seconds"] < 60
    state = run["JobRunState"]
    again = promote.handler({}, FakeContext())
    if state in ("STARTING", "RUNNING", "WAITING"):
        assert again["started"] == [], "its build runs: none started beside it"
    assert len(glue.get_job_runs(JobName=job)["JobRuns"]) == 1 + len(again["started"])


class PassedOnce:
    """S3 as the promote function reads it: no table has a build yet, and each has one batch that passed at T0."""

    class exceptions:
        class NoSuchKey(Exception):
            pass

    def get_object(self, **_: object) -> dict:
        raise self.exceptions.NoSuchKey  # no build yet

    def get_paginator(self, _: str):
        return self

    def paginate(self, Prefix: str, **_: object):
        batch = Prefix.removeprefix("_runs/") + "created_at=20260101T000000Z/file=a.csv"
        names = ("profile.json", GATE_PASSED)
        return [{"Contents": [{"Key": f"_runs/{batch}/run=jr_1/{n}", "LastModified": T0} for n in names]}]


def test_no_second_build_starts_for_a_table_whose_build_runs() -> None:
    class Glue:
        class exceptions:
            class ConcurrentRunsExceededException(Exception):
                pass

        def __init__(self, state: str) -> None:
            self.state, self.started = state, []

        def get_job_runs(self, **_: object) -> dict:
            return {"JobRuns": [{"JobRunState": self.state, "Arguments": {"--table": "diabetes/patients"}}]}

        def start_job_run(self, JobName: str, Arguments: dict) -> None:
            self.started.append(Arguments["--table"])

    for state, started in (("RUNNING", []), ("SUCCEEDED", ["diabetes/patients"])):
        glue = Glue(state)
        result = promote.promote_waiting(
            PassedOnce(), glue, ("staging", "curated"), "job", [CONTRACT], T0 + timedelta(hours=2)
        )
        assert glue.started == started and result["oldest_wait_seconds"] == 7200


def test_a_table_with_a_job_of_its_own_is_built_there_and_a_full_job_holds_back_only_its_tables() -> None:
    """config etl.dedicated_jobs: the table's builds start in its own job (TABLE_PROMOTION_JOBS), whether one
    runs is asked of that job, and Glue refusing one job's run leaves the other job's tables to start."""
    other = dataclasses.replace(CONTRACT, dataset="clinic", table="appointments")
    third = dataclasses.replace(CONTRACT, dataset="shop", table="orders")

    class Glue:
        class exceptions:
            class ConcurrentRunsExceededException(Exception):
                pass

        def __init__(self, running: dict[str, list[str]], full: set[str]) -> None:
            self.running, self.full, self.started, self.asked = running, full, [], []

        def get_job_runs(self, JobName: str, **_: object) -> dict:
            self.asked.append(JobName)
            runs = [{"JobRunState": "RUNNING", "Arguments": {"--table": t}} for t in self.running.get(JobName, [])]
            return {"JobRuns": runs}

        def start_job_run(self, JobName: str, Arguments: dict) -> None:
            if JobName in self.full:
                raise self.exceptions.ConcurrentRunsExceededException
            self.started.append((JobName, Arguments["--table"]))

    contracts = [CONTRACT, other, third]
    own = {other.name: "own-job"}
    now = T0 + timedelta(hours=1)
    glue = Glue({}, set())
    promote.promote_waiting(PassedOnce(), glue, ("staging", "curated"), "shared", contracts, now, table_jobs=own)
    assert sorted(glue.started) == [("own-job", other.name), ("shared", CONTRACT.name), ("shared", third.name)]
    assert sorted(glue.asked) == ["own-job", "shared"], "each job asked once whether a table's build runs"
    glue = Glue({"own-job": [other.name]}, set())  # its build runs in its own job: none beside it
    promote.promote_waiting(PassedOnce(), glue, ("staging", "curated"), "shared", contracts, now, table_jobs=own)
    assert sorted(glue.started) == [("shared", CONTRACT.name), ("shared", third.name)]
    glue = Glue({}, {"shared"})  # the shared job at Glue's limit: the table with its own job still starts
    promote.promote_waiting(PassedOnce(), glue, ("staging", "curated"), "shared", contracts, now, table_jobs=own)
    assert glue.started == [("own-job", other.name)]
    glue = Glue({}, set())
    promote.promote_waiting(PassedOnce(), glue, ("staging", "curated"), "shared", contracts, now)
    assert {job for job, _ in glue.started} == {"shared"}, "without table_jobs every table shares the job"


def test_a_table_that_cannot_be_promoted_fails_the_invocation_after_the_others_started(s3, monkeypatch) -> None:
    monkeypatch.setenv("STAGING_BUCKET", BUCKETS["staging"])
    monkeypatch.setenv("CURATED_BUCKET", BUCKETS["curated"])
    monkeypatch.setenv("PROMOTION_JOB", promotion_job())
    monkeypatch.setenv("CATALOG_DATABASE", CATALOG_DATABASE)
    for run in ("jr_1", "jr_2"):
        _pass(s3, BATCH, run)
    with pytest.raises(promote.PromotionRefused, match="more than one run"):
        promote.handler({}, FakeContext())


def test_the_catalog_of_a_table_no_run_builds_is_brought_to_its_current_build(s3, monkeypatch) -> None:
    """A new workspace's catalog (or one a failed run left behind) is current within a tick, with no new data."""
    from pipeline.builds import Build, Partition, manifest
    from pipeline.layout import current_build_key

    monkeypatch.setenv("STAGING_BUCKET", BUCKETS["staging"])
    monkeypatch.setenv("CURATED_BUCKET", BUCKETS["curated"])
    monkeypatch.setenv("PROMOTION_JOB", promotion_job())
    monkeypatch.setenv("CATALOG_DATABASE", CATALOG_DATABASE)
    current = Build(
        "diabetes", "patients", 3, 5, "t", "build=000003-a", partitions={"b0": Partition("build=000002-b", 5)}
    )
    s3.put_object(Bucket=BUCKETS["curated"], Key=current_build_key("diabetes", "patients"), Body=current.to_json())
    s3.put_object(Bucket=BUCKETS["curated"], Key=current.manifest_key, Body=manifest([], current).encode())
    first = promote.handler({}, FakeContext())
    assert first["started"] == [] and first["catalog"] == {"diabetes/patients": {"create": 1, "update": 0, "delete": 0}}
    glue = boto3.client("glue", region_name=REGION)
    (partition,) = glue.get_partitions(DatabaseName=CATALOG_DATABASE, TableName="diabetes_patients")["Partitions"]
    location = f"s3://{BUCKETS['curated']}/diabetes/patients/build=000002-b/partition=b0/"
    assert (partition["Values"], partition["StorageDescriptor"]["Location"]) == (["b0"], location)
    assert promote.handler({}, FakeContext())["catalog"] == {}, "current: nothing to change"


def test_a_table_being_built_is_left_to_its_run_and_the_others_are_synced() -> None:
    from pipeline.contract import load_contracts

    class Glue:
        class exceptions:
            class ConcurrentRunsExceededException(Exception):
                pass

        synced: ClassVar[list[str]] = []

        def get_job_runs(self, **_: object) -> dict:
            return {"JobRuns": [{"JobRunState": "RUNNING", "Arguments": {"--table": "diabetes/patients"}}]}

        def get_paginator(self, _: str):
            return self

        def paginate(self, TableName: str, **_: object) -> list:
            self.synced.append(TableName)
            return [{"Partitions": []}]

    class S3:
        class exceptions:
            class NoSuchKey(Exception):
                pass

        def get_object(self, **_: object) -> dict:
            raise self.exceptions.NoSuchKey  # no build yet: nothing to catalogue, but each idle table is looked at

        def get_paginator(self, _: str):
            return self

        def paginate(self, **_: object) -> list:
            return [{"Contents": []}]

    contracts = [c for c in load_contracts().values() if not c.check_only]
    glue = Glue()
    result = promote.promote_waiting(S3(), glue, ("staging", "curated"), "job", contracts, T0, "db")
    assert glue.synced == ["clinic_appointments"] and result["catalog"] == {}
    Glue.synced = []
    promote.promote_waiting(S3(), glue, ("staging", "curated"), "job", contracts, T0)
    assert glue.synced == [], "no catalog given: none synced"


def test_a_table_whose_catalog_sync_fails_leaves_the_others_synced_and_fails_the_invocation_after(
    s3, monkeypatch
) -> None:
    """One table's catalog refusing (here: its catalog table is missing) must not stop the others' sync nor the
    metrics; the invocation then fails (its errors alarm), naming the table and the reason."""
    from pipeline.builds import Build, Partition, manifest
    from pipeline.layout import current_build_key

    monkeypatch.setenv("STAGING_BUCKET", BUCKETS["staging"])
    monkeypatch.setenv("CURATED_BUCKET", BUCKETS["curated"])
    monkeypatch.setenv("PROMOTION_JOB", promotion_job())
    monkeypatch.setenv("CATALOG_DATABASE", CATALOG_DATABASE)
    glue = boto3.client("glue", region_name=REGION)
    glue.delete_table(DatabaseName=CATALOG_DATABASE, Name="clinic_appointments")
    current = Build(
        "diabetes", "patients", 1, 5, "t", "build=000001-a", partitions={"b0": Partition("build=000001-a", 5)}
    )
    s3.put_object(Bucket=BUCKETS["curated"], Key=current_build_key("diabetes", "patients"), Body=current.to_json())
    s3.put_object(Bucket=BUCKETS["curated"], Key=current.manifest_key, Body=manifest([], current).encode())
    with pytest.raises(
        promote.PromotionRefused, match=r"catalog could not be synced: \{'clinic/appointments': 'Entity"
    ):
        promote.handler({}, FakeContext())
    (partition,) = glue.get_partitions(DatabaseName=CATALOG_DATABASE, TableName="diabetes_patients")["Partitions"]
    assert partition["Values"] == ["b0"], "the table after the failing one was synced"
