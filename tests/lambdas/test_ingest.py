"""ingest: landing -> raw, write-once, retry-safe; what cannot be routed goes to quarantine."""

from __future__ import annotations

import json
import re

import pytest

from lambdas.ingest import handler as ingest
from lambdas.ingest.logic import Landed, Move, Unroutable, plan
from pipeline.layout import landing_key_from_metadata, parse_raw_key, raw_object_for_landing
from tests.lambdas.conftest import BUCKETS, FakeContext, keys, recorder

CONTRACTS = {"diabetes/patients"}


def run(s3):
    return ingest.run(s3, BUCKETS["landing"], BUCKETS["raw"], BUCKETS["quarantine"], CONTRACTS, record=recorder())


def handler_environment(monkeypatch) -> None:
    """The environment the ingest function gets (the ledger's is the `s3` fixture's)."""
    for key, value in {
        "LANDING_BUCKET": BUCKETS["landing"],
        "RAW_BUCKET": BUCKETS["raw"],
        "QUARANTINE_BUCKET": BUCKETS["quarantine"],
    }.items():
        monkeypatch.setenv(key, value)


def test_plan_routes_known_tables_and_flags_the_rest() -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 11, 22, 10, 30, 5, tzinfo=UTC)
    actions = plan(
        [
            Landed("diabetes/patients/a.csv", at, 10),
            Landed("diabetes/other/b.csv", at, 1),
            Landed("loose.csv", at, 1),
            Landed("diabetes/patients/", at, 0),
        ],
        CONTRACTS,
    )
    by_key = {a.source.key: a for a in actions}
    assert set(by_key) == {"diabetes/patients/a.csv", "diabetes/other/b.csv", "loose.csv"}, "folder marker skipped"
    move = by_key["diabetes/patients/a.csv"]
    assert isinstance(move, Move) and move.target.key == "diabetes/patients/created_at=20261122T103005Z/a.csv"
    assert isinstance(by_key["diabetes/other/b.csv"], Unroutable)
    assert "no data contract for diabetes/other" in by_key["diabetes/other/b.csv"].reason
    assert "is not <dataset>/<table>/<file>" in by_key["loose.csv"].reason


def test_moves_landed_files_to_raw_under_created_at(s3) -> None:
    s3.put_object(Bucket=BUCKETS["landing"], Key="diabetes/patients/visits.csv", Body=b"patient_id,age\n")
    result = run(s3)
    (raw_key,) = keys(s3, BUCKETS["raw"])
    assert raw_key.startswith("diabetes/patients/created_at=") and raw_key.endswith("Z/visits.csv")
    assert result["moved"] == [raw_key]
    assert keys(s3, BUCKETS["landing"]) == []
    assert s3.get_object(Bucket=BUCKETS["raw"], Key=raw_key)["Body"].read() == b"patient_id,age\n"


def test_a_retry_after_an_interrupted_run_does_not_duplicate(s3, monkeypatch) -> None:
    s3.put_object(Bucket=BUCKETS["landing"], Key="diabetes/patients/visits.csv", Body=b"data")
    real_delete = s3.delete_object
    monkeypatch.setattr(s3, "delete_object", lambda **kw: (_ for _ in ()).throw(TimeoutError("lambda timed out")))
    with pytest.raises(TimeoutError):
        run(s3)  # copied, but the landing file was not deleted
    monkeypatch.setattr(s3, "delete_object", real_delete)
    result = run(s3)
    assert len(keys(s3, BUCKETS["raw"])) == 1, "the retry found the copy and did not make another"
    assert result["already_in_raw"] == keys(s3, BUCKETS["raw"]) and result["moved"] == []
    assert keys(s3, BUCKETS["landing"]) == []


def test_unroutable_files_are_quarantined_with_the_reason(s3) -> None:
    s3.put_object(Bucket=BUCKETS["landing"], Key="stray.csv", Body=b"x")
    result = run(s3)
    assert keys(s3, BUCKETS["quarantine"]) == ["files/landing/stray.csv", "files/landing/stray.csv.reason.json"]
    reason = json.loads(
        s3.get_object(Bucket=BUCKETS["quarantine"], Key="files/landing/stray.csv.reason.json")["Body"].read()
    )
    assert "is not <dataset>/<table>/<file>" in reason["reason"]
    assert result["quarantined"] == ["stray.csv"] and keys(s3, BUCKETS["landing"]) == []


def test_a_conflicting_raw_file_is_never_overwritten(s3, monkeypatch) -> None:
    """Other content under the raw key and under the landed version's own key (neither a copy of this
    version): nothing is overwritten, the landed file stays, the run fails (alarm)."""
    s3.put_object(Bucket=BUCKETS["landing"], Key="diabetes/patients/visits.csv", Body=b"new content")
    ((listed,), _) = ingest._landed(s3, BUCKETS["landing"], 10)
    (move,) = plan([listed], CONTRACTS)
    own = move.target.for_version(listed.version)
    for key in (move.target.key, own.key):
        s3.put_object(Bucket=BUCKETS["raw"], Key=key, Body=b"old")
    handler_environment(monkeypatch)
    with pytest.raises(ingest.IngestConflict, match="the landed files stay"):
        ingest.handler({}, FakeContext())
    for key in (move.target.key, own.key):
        assert s3.get_object(Bucket=BUCKETS["raw"], Key=key)["Body"].read() == b"old"
    assert keys(s3, BUCKETS["landing"]) == ["diabetes/patients/visits.csv"], "nothing lost"


AWKWARD_NAMES = [
    "my export (1).csv",
    "a+b.csv",
    "a b.csv",
    "100%.csv",
    "k=v.csv",
    "10:30:05.csv",
    "(draft).csv",
    "[a].csv",
    "*.csv",
    "Übersicht März.csv",
    "visits-2026-11.csv",
]
"""Landing names of CSV files that S3 and EventBridge events URL-encode (and one that is already safe)."""


@pytest.mark.parametrize("name", [*AWKWARD_NAMES, "my export (1).csv.gz"])
def test_an_awkward_landing_name_gets_a_safe_raw_key_and_keeps_its_name_in_metadata(s3, name: str) -> None:
    landing_key = f"diabetes/patients/{name}"
    s3.put_object(
        Bucket=BUCKETS["landing"],
        Key=landing_key,
        Body=b"patient_id,age\n",
        ContentType="text/csv",
        Metadata={"uploaded-by": "lab-export"},
    )
    landed_at = s3.head_object(Bucket=BUCKETS["landing"], Key=landing_key)["LastModified"]
    result = run(s3)
    (raw_key,) = keys(s3, BUCKETS["raw"])
    assert result["moved"] == [raw_key] and keys(s3, BUCKETS["landing"]) == []
    assert raw_key == raw_object_for_landing(landing_key, landed_at).key
    assert re.fullmatch(r"[A-Za-z0-9._-]+", parse_raw_key(raw_key).file), raw_key
    assert raw_key.endswith(".csv.gz" if name.endswith(".gz") else ".csv"), "every suffix is kept"
    head = s3.head_object(Bucket=BUCKETS["raw"], Key=raw_key)
    assert landing_key_from_metadata(head["Metadata"]) == landing_key
    assert head["Metadata"]["uploaded-by"] == "lab-export", "the source's own metadata are kept"
    assert head["ContentType"] == "text/csv", "REPLACE keeps the source's content type"
    assert s3.get_object(Bucket=BUCKETS["raw"], Key=raw_key)["Body"].read() == b"patient_id,age\n"


def test_two_landing_names_that_clean_up_alike_get_two_raw_files(s3) -> None:
    for name in ("a b.csv", "a+b.csv", "a_b.csv"):
        s3.put_object(Bucket=BUCKETS["landing"], Key=f"diabetes/patients/{name}", Body=name.encode())
    run(s3)
    raw = keys(s3, BUCKETS["raw"])
    assert len(raw) == 3
    by_landing = {landing_key_from_metadata(s3.head_object(Bucket=BUCKETS["raw"], Key=k)["Metadata"]): k for k in raw}
    for name in ("a b.csv", "a+b.csv", "a_b.csv"):
        body = s3.get_object(Bucket=BUCKETS["raw"], Key=by_landing[f"diabetes/patients/{name}"])["Body"].read()
        assert body == name.encode()


def test_a_retry_finds_the_safe_raw_key_of_an_awkward_name(s3, monkeypatch) -> None:
    s3.put_object(Bucket=BUCKETS["landing"], Key="diabetes/patients/my export (1).csv", Body=b"data")
    real_delete = s3.delete_object
    monkeypatch.setattr(s3, "delete_object", lambda **kw: (_ for _ in ()).throw(TimeoutError("lambda timed out")))
    with pytest.raises(TimeoutError):
        run(s3)
    monkeypatch.setattr(s3, "delete_object", real_delete)
    result = run(s3)
    assert result["moved"] == [] and result["already_in_raw"] == keys(s3, BUCKETS["raw"])
    assert len(keys(s3, BUCKETS["raw"])) == 1


def test_a_file_copied_in_parts_keeps_the_landing_key_and_content_type(s3) -> None:
    """Above boto3's multipart threshold (8 MiB) the copy is CreateMultipartUpload + UploadPartCopy, which copy
    no metadata of the source: the copy's arguments give them."""
    landing_key = "diabetes/patients/big export.csv"
    s3.put_object(Bucket=BUCKETS["landing"], Key=landing_key, Body=b"x" * (9 * 1024 * 1024), ContentType="text/csv")
    run(s3)
    (raw_key,) = keys(s3, BUCKETS["raw"])
    head = s3.head_object(Bucket=BUCKETS["raw"], Key=raw_key)
    assert head["ContentLength"] == 9 * 1024 * 1024 and head["ETag"].strip('"').endswith("-2"), "copied in parts"
    assert landing_key_from_metadata(head["Metadata"]) == landing_key and head["ContentType"] == "text/csv"


def versions(s3, key: str) -> list[bytes]:
    """The landed versions of `key` still in landing (a versioned bucket, as in AWS)."""
    listed = s3.list_object_versions(Bucket=BUCKETS["landing"], Prefix=key).get("Versions", [])
    ordered = sorted(listed, key=lambda v: v["LastModified"])
    return [s3.get_object(Bucket=BUCKETS["landing"], Key=key, VersionId=v["VersionId"])["Body"].read() for v in ordered]


def test_a_file_landed_again_while_ingest_copies_is_not_hidden_and_goes_next_run(s3, monkeypatch) -> None:
    """The landed version is deleted by its id: an upload under the same name between the copy and the delete
    stays current (a plain delete would hide it under a delete marker, never copied), and the next run takes it."""
    import time

    key = "diabetes/patients/visits.csv"
    s3.put_bucket_versioning(Bucket=BUCKETS["landing"], VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=BUCKETS["landing"], Key=key, Body=b"first")
    real_copy = s3.copy

    def copy_then_upload_again(*args, **kwargs):
        real_copy(*args, **kwargs)
        time.sleep(1.1)  # landed a second later: its own raw key
        s3.put_object(Bucket=BUCKETS["landing"], Key=key, Body=b"second")

    monkeypatch.setattr(s3, "copy", copy_then_upload_again)
    (first,) = run(s3)["moved"]
    assert versions(s3, key) == [b"second"] and keys(s3, BUCKETS["landing"]) == [key], "the new upload stays"
    monkeypatch.setattr(s3, "copy", real_copy)
    (second,) = run(s3)["moved"]
    assert keys(s3, BUCKETS["landing"]) == [] and versions(s3, key) == []
    bodies = [s3.get_object(Bucket=BUCKETS["raw"], Key=k)["Body"].read() for k in (first, second)]
    assert bodies == [b"first", b"second"]


def test_two_uploads_of_a_name_in_the_same_second_get_a_raw_file_each(s3, monkeypatch) -> None:
    """A run copied the file and died before deleting it; the file was landed again, other bytes of the same
    size, in the same second (the same raw key). The retry must not take the raw object for the new upload's
    copy (it would delete the new upload, never copied), nor stop there for good: the new upload goes under
    its own version's key, and both are ingested."""
    from dataclasses import replace

    key = "diabetes/patients/visits.csv"
    s3.put_object(Bucket=BUCKETS["landing"], Key=key, Body=b"aaaa")
    (move,) = plan(ingest._landed(s3, BUCKETS["landing"], 10)[0], CONTRACTS)
    real_delete = s3.delete_object
    monkeypatch.setattr(s3, "delete_object", lambda **kw: (_ for _ in ()).throw(TimeoutError("lambda timed out")))
    with pytest.raises(TimeoutError):
        run(s3)
    monkeypatch.setattr(s3, "delete_object", real_delete)
    s3.put_object(Bucket=BUCKETS["landing"], Key=key, Body=b"bbbb")
    listed, _ = ingest._landed(s3, BUCKETS["landing"], 10)
    same_second = [replace(v, last_modified=move.source.last_modified) for v in listed]
    monkeypatch.setattr(ingest, "_landed", lambda *a: (same_second, []))
    result = run(s3)
    (second,) = [v for v in listed if v.current]
    own = move.target.for_version(second.version).key
    assert result["already_in_raw"] == [move.target.key] and result["moved"] == [own] and result["conflicts"] == []
    assert versions(s3, key) == [], "both uploads ingested"
    assert s3.get_object(Bucket=BUCKETS["raw"], Key=move.target.key)["Body"].read() == b"aaaa"
    assert s3.get_object(Bucket=BUCKETS["raw"], Key=own)["Body"].read() == b"bbbb"
    assert parse_raw_key(own).file.startswith("visits-v") and own.endswith(".csv")
    again = run(s3)  # a retry finds both copies where they went
    assert again["moved"] == [] and again["conflicts"] == []


def test_a_file_another_run_moved_meanwhile_is_skipped_not_a_failure(s3, monkeypatch) -> None:
    """Two runs at once (the smoke check invokes ingest beside the schedule): what the other moved after this
    run listed it is gone by the time this run looks at it."""
    s3.put_object(Bucket=BUCKETS["landing"], Key="diabetes/patients/visits.csv", Body=b"data")
    listed = ingest._landed(s3, BUCKETS["landing"], 10)
    assert run(s3)["moved"]  # the other run
    monkeypatch.setattr(ingest, "_landed", lambda *a: listed)
    assert run(s3) == {
        "moved": [],
        "already_in_raw": [],
        "quarantined": [],
        "conflicts": [],
        "retracted": [],
        "ingested": [],
        "unroutable": [],
    }


def versioned_landing(s3) -> None:
    s3.put_bucket_versioning(Bucket=BUCKETS["landing"], VersioningConfiguration={"Status": "Enabled"})


def raw_bodies(s3) -> list[bytes]:
    return [s3.get_object(Bucket=BUCKETS["raw"], Key=k)["Body"].read() for k in keys(s3, BUCKETS["raw"])]


def test_a_name_landed_twice_before_a_run_is_two_uploads_both_ingested(s3) -> None:
    """Ingest runs hourly: a name reused within the hour has two versions, and each is a file of its own."""
    import time

    versioned_landing(s3)
    key = "diabetes/patients/visits.csv"
    s3.put_object(Bucket=BUCKETS["landing"], Key=key, Body=b"first")
    time.sleep(1.1)  # a raw key is to the second
    s3.put_object(Bucket=BUCKETS["landing"], Key=key, Body=b"second")
    result = run(s3)
    assert len(result["moved"]) == 2 and result["conflicts"] == []
    assert raw_bodies(s3) == [b"first", b"second"], "each version under its own landing time, in order"
    assert versions(s3, key) == []


def test_an_upload_after_the_listing_is_not_copied_for_the_listed_one(s3, monkeypatch) -> None:
    """The copy is of the version listed: bytes landed under the name after the listing are not copied under
    the listed version's raw key (and lost from landing with it), they stay for the next run."""
    versioned_landing(s3)
    key = "diabetes/patients/visits.csv"
    s3.put_object(Bucket=BUCKETS["landing"], Key=key, Body=b"listed")
    listed = ingest._landed(s3, BUCKETS["landing"], 10)
    s3.put_object(Bucket=BUCKETS["landing"], Key=key, Body=b"landed after the listing")
    monkeypatch.setattr(ingest, "_landed", lambda *a: listed)
    (moved,) = run(s3)["moved"]
    assert s3.get_object(Bucket=BUCKETS["raw"], Key=moved)["Body"].read() == b"listed"
    assert versions(s3, key) == [b"landed after the listing"]


def test_a_file_its_uploader_deleted_before_ingest_is_not_ingested_but_a_later_upload_is(s3) -> None:
    import time

    versioned_landing(s3)
    key = "diabetes/patients/visits.csv"
    s3.put_object(Bucket=BUCKETS["landing"], Key=key, Body=b"withdrawn")
    s3.delete_object(Bucket=BUCKETS["landing"], Key=key)  # a delete marker, as the uploader's delete leaves
    result = run(s3)
    assert result["moved"] == [] and result["retracted"] == [key] and keys(s3, BUCKETS["raw"]) == []
    time.sleep(1.1)
    s3.put_object(Bucket=BUCKETS["landing"], Key=key, Body=b"corrected")
    result = run(s3)
    assert len(result["moved"]) == 1 and result["retracted"] == [key]
    assert raw_bodies(s3) == [b"corrected"]


def test_uploads_are_every_version_newer_than_its_keys_latest_delete_marker() -> None:
    from datetime import UTC, datetime, timedelta

    from lambdas.ingest.logic import uploads

    t0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    a1, a2 = Landed("d/t/a.csv", t0, 1, "a1"), Landed("d/t/a.csv", t0 + timedelta(minutes=2), 1, "a2")
    b1 = Landed("d/t/b.csv", t0, 1, "b1")
    deleted = {"d/t/a.csv": t0 + timedelta(minutes=1), "d/t/b.csv": t0}
    assert uploads([a1, a2, b1], deleted) == ([a2], [a1, b1]), "deleted at the same second retracts it too"
    assert uploads([a1, a2, b1], {}) == ([a1, a2, b1], [])
    b2 = Landed("d/t/b.csv", t0, 1, "b2", current=True)  # landed after the delete marker, in the same second
    assert uploads([b1, b2], deleted) == ([b2], [b1])


def test_the_ledger_records_each_file_by_its_raw_key_or_its_landing_version(s3, monkeypatch) -> None:
    from tests.lambdas.conftest import ledger_items

    handler_environment(monkeypatch)
    s3.put_object(Bucket=BUCKETS["landing"], Key="diabetes/patients/visits.csv", Body=b"data")
    s3.put_object(Bucket=BUCKETS["landing"], Key="stray.csv", Body=b"x")
    versions = {v["Key"]: v["VersionId"] for v in s3.list_object_versions(Bucket=BUCKETS["landing"])["Versions"]}
    result = ingest.handler({}, FakeContext())
    (raw_key,) = result["moved"]
    by_file = {item["file"]: item for item in ledger_items()}
    assert set(by_file) == {raw_key, f"landing/stray.csv@{versions['stray.csv']}"}
    ingested = by_file[raw_key]
    assert ingested["state"] == "ingested" and ingested["ingested_landing_key"] == "diabetes/patients/visits.csv"
    assert ingested["ingested_landing_version"] == versions["diabetes/patients/visits.csv"]
    assert ingested["ingested_size"] == 4 and ingested["ingested_landing_etag"]
    refused = by_file[f"landing/stray.csv@{versions['stray.csv']}"]
    assert refused["state"] == "quarantined" and "is not <dataset>/<table>/<file>" in refused["quarantined_reason"]


def test_files_withdrawn_before_ingest_do_not_hold_back_new_uploads(s3) -> None:
    """Withdrawn versions stay listed until they expire: they must not fill a run's limit, or new uploads that
    list after them would never be ingested."""
    for name in ("a1.csv", "a2.csv", "a3.csv"):
        s3.put_object(Bucket=BUCKETS["landing"], Key=f"diabetes/patients/{name}", Body=b"withdrawn")
        s3.delete_object(Bucket=BUCKETS["landing"], Key=f"diabetes/patients/{name}")
    s3.put_object(Bucket=BUCKETS["landing"], Key="diabetes/patients/z.csv", Body=b"new")
    result = ingest.run(
        s3, BUCKETS["landing"], BUCKETS["raw"], BUCKETS["quarantine"], CONTRACTS, limit=2, record=recorder()
    )
    assert [parse_raw_key(k).file for k in result["moved"]] == ["z.csv"] and len(result["retracted"]) == 3


def test_a_file_is_recorded_before_it_leaves_landing_so_a_failed_record_loses_nothing(s3) -> None:
    """The ledger write fails (DynamoDB unreachable): the file stays in landing; the next run finds it copied,
    records it and only then deletes it."""
    from tests.lambdas.conftest import ledger_items

    s3.put_object(Bucket=BUCKETS["landing"], Key="diabetes/patients/visits.csv", Body=b"data")

    def unreachable(entry) -> None:
        raise ConnectionError("dynamodb unreachable")

    with pytest.raises(ConnectionError):
        ingest.run(s3, BUCKETS["landing"], BUCKETS["raw"], BUCKETS["quarantine"], CONTRACTS, record=unreachable)
    assert keys(s3, BUCKETS["landing"]) == ["diabetes/patients/visits.csv"] and ledger_items() == []
    result = run(s3)
    assert result["already_in_raw"] == keys(s3, BUCKETS["raw"]) and keys(s3, BUCKETS["landing"]) == []
    (record,) = ledger_items()
    assert record["file"] == result["already_in_raw"][0] and record["state"] == "ingested"
