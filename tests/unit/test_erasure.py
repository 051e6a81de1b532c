"""What erasing a subject leaves of one object, per format (pipeline/erasure.py), and the walk over the
stores' versions (infra/erasure.py) against a versioned bucket in moto."""

from __future__ import annotations

import bz2
import gzip
import io
import json
from dataclasses import replace

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from infra.erasure import Record, S3Store, erase_subject, kind_of, main, prefixes, write_record
from pipeline.contract import load_contracts
from pipeline.erasure import Erased, ErasureError, Kind, Subject, erase

CONTRACT = load_contracts()["diabetes/patients"]
SUBJECT = Subject.of(CONTRACT, ["P00002"])
HEADER = ",".join(CONTRACT.column_names)


def _row(patient: str, age: str = "50") -> str:
    return f"{patient},{age},1,25.5,90,180,100,50,4,4.5,90,150"


def test_a_subject_has_one_value_per_key_column() -> None:
    with pytest.raises(ErasureError, match=r"key is patient_id: give one non-empty value for each \(2 given\)"):
        Subject.of(CONTRACT, ["P00002", "P00003"])
    with pytest.raises(ErasureError, match="1 given"):
        Subject.of(CONTRACT, [" "])


def test_csv_rows_of_the_subject_go_and_the_rest_stay_as_the_contract_reads_them() -> None:
    text = f"{HEADER}\n{_row('P00001')}\n{_row('P00002')}\n{_row('P000021')}\n{_row(' P00002 ', '51')}\n"
    erased = erase(Kind.CSV, "a.csv", text.encode(), SUBJECT)
    assert erased is not None and erased.rows == 2, "both rows of the key (the value trimmed, as checked)"
    assert erased.data == f"{HEADER}\n{_row('P00001')}\n{_row('P000021')}\n".encode(), "a longer key is another subject"
    assert erase(Kind.CSV, "a.csv", f"{HEADER}\n{_row('P00001')}\n".encode(), SUBJECT) is None, "untouched"


def test_compressed_headerless_and_latin_1_files_are_rewritten_in_their_own_form() -> None:
    fmt = replace(CONTRACT.format, header=False, encoding="latin-1", delimiter=";")
    subject = Subject.of(replace(CONTRACT, format=fmt), ["P00002"])
    text = f"{_row('P00001')};é\n{_row('P00002')};ü\n".replace(",", ";")
    erased = erase(Kind.CSV, "a.csv.gz", gzip.compress(text.encode("latin-1")), subject)
    assert erased is not None and erased.rows == 1
    assert gzip.decompress(erased.data).decode("latin-1") == f"{_row('P00001')};é\n".replace(",", ";")


def test_an_unreadable_file_holding_the_key_is_deleted_whole_and_one_without_it_left() -> None:
    binary = b"\x00\x01P00002\x00"
    assert erase(Kind.CSV, "bad.csv", binary, SUBJECT).data is None
    assert erase(Kind.CSV, "bad.csv", b"\x00\x01P00001\x00", SUBJECT) is None


def test_rejected_rows_go_by_their_raw_key_or_their_unparsed_text() -> None:
    lines = [
        {"raw_patient_id": "P00002", "reject_reason": "age: not an integer", "source_row": 3},
        {"raw_patient_id": "P00001", "reject_reason": "age: not an integer", "source_row": 4},
        {"_corrupt_record": f"{_row('P00002')},extra", "reject_reason": "malformed", "source_row": 5},
        {"_corrupt_record": f"{_row('P000021')},extra", "reject_reason": "malformed", "source_row": 6},
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    erased = erase(Kind.REJECTED_ROWS, "rows/x/part-0.json", data, SUBJECT)
    assert erased is not None and erased.rows == 2
    assert [json.loads(line)["source_row"] for line in erased.data.decode().splitlines()] == [4, 6]


def test_parquet_rows_of_the_subject_go() -> None:
    out = io.BytesIO()
    pq.write_table(pa.table({"patient_id": ["P00001", "P00002", None], "age": [50, 60, 70]}), out)
    erased = erase(Kind.PARQUET, "part-0.parquet", out.getvalue(), SUBJECT)
    assert erased is not None and erased.rows == 1
    assert pq.read_table(io.BytesIO(erased.data)).to_pydict() == {"patient_id": ["P00001", None], "age": [50, 70]}
    assert erase(Kind.PARQUET, "part-0.parquet", erased.data, SUBJECT) is None


def test_another_object_holding_the_key_is_reported_not_kept_silently() -> None:
    with pytest.raises(ErasureError, match="holds the subject's key and is not a file of rows"):
        erase(Kind.OTHER, "_runs/x/profile.json", b'{"min": "P00002"}', SUBJECT)
    assert erase(Kind.OTHER, "_runs/x/profile.json", b'{"rows": 3}', SUBJECT) is None


def test_kinds_and_prefixes_follow_the_layout() -> None:
    assert kind_of("raw", "diabetes/patients/created_at=20260101T000000Z/a.csv") is Kind.CSV
    assert kind_of("quarantine", "files/landing/x.bin") is Kind.CSV
    assert kind_of("quarantine", "files/landing/x.bin.reason.json") is Kind.OTHER
    assert kind_of("quarantine", "rows/diabetes/patients/b/part-0.json") is Kind.REJECTED_ROWS
    assert kind_of("staging", "diabetes/patients/b/part-0.snappy.parquet") is Kind.PARQUET
    assert kind_of("staging", "diabetes/patients/b/.part-0.snappy.parquet.crc") is None
    assert prefixes(CONTRACT)["staging"] == ["diabetes/patients/", "_runs/diabetes/patients/"]


@mock_aws
def test_in_a_versioned_bucket_every_version_holding_the_subject_is_deleted_and_the_latest_rewritten() -> None:
    s3 = boto3.client("s3", region_name="eu-west-1")
    stores = {}
    for name in ("landing", "raw", "quarantine", "staging", "curated"):
        s3.create_bucket(Bucket=f"b-{name}", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3.put_bucket_versioning(Bucket=f"b-{name}", VersioningConfiguration={"Status": "Enabled"})
        stores[name] = S3Store(name, s3, f"b-{name}")
    key = "diabetes/patients/created_at=20260101T000000Z/a.csv"
    old = f"{HEADER}\n{_row('P00002')}\n".encode()
    s3.put_object(Bucket="b-raw", Key=key, Body=old)
    s3.put_object(
        Bucket="b-raw",
        Key=key,
        Body=f"{HEADER}\n{_row('P00001')}\n{_row('P00002')}\n".encode(),
        Metadata={"landing-key": "diabetes/patients/a.csv"},
    )
    s3.put_object(Bucket="b-landing", Key="diabetes/patients/a.csv", Body=old)
    s3.delete_object(Bucket="b-landing", Key="diabetes/patients/a.csv")  # moved by ingest: a noncurrent version
    record = erase_subject(stores, SUBJECT, "DSR-1")
    assert record.rows_removed == {"raw": 2, "landing": 1}
    assert record.rewritten == [f"raw/{key}"] and record.versions_deleted == 3
    assert len(s3.list_object_versions(Bucket="b-raw")["Versions"]) == 1, "the rewrite alone is left"
    body = s3.get_object(Bucket="b-raw", Key=key)
    assert body["Body"].read() == f"{HEADER}\n{_row('P00001')}\n".encode()
    assert body["Metadata"] == {"landing-key": "diabetes/patients/a.csv"}, "the object's metadata is kept"
    assert "Versions" not in s3.list_object_versions(Bucket="b-landing")
    again = erase_subject(stores, SUBJECT, "DSR-1")
    assert not again.found, "a second run finds nothing"
    with pytest.raises(ErasureError, match="request"):
        erase_subject(stores, SUBJECT, "no spaces please")


def test_the_record_names_the_request_and_what_was_done_never_the_key() -> None:
    saved: dict[str, bytes] = {}
    record = Record("DSR-7", "diabetes/patients", "2026-12-02T00:00:00Z", rewritten=["raw/k"], rows_removed={"raw": 1})
    assert write_record(record, saved.__setitem__) == "erasures/DSR-7.json"
    assert json.loads(saved["erasures/DSR-7.json"])["rows_removed"] == {"raw": 1}
    assert b"P00002" not in saved["erasures/DSR-7.json"]


def test_the_command_refuses_an_unknown_table_and_a_missing_folder(tmp_path, capsys) -> None:
    assert (
        main(
            [
                "--local",
                str(tmp_path / "none"),
                "--dataset",
                "diabetes",
                "--table",
                "patients",
                "--key",
                "P00002",
                "--request",
                "DSR-1",
            ]
        )
        == 2
    )
    assert "run `make pipeline` first" in capsys.readouterr().err
    assert main(["--local", str(tmp_path), "--dataset", "nope", "--table", "x", "--key", "1", "--request", "R"]) == 2


def _versioned(s3, *names: str) -> dict[str, S3Store]:
    stores = {}
    for name in names:
        s3.create_bucket(Bucket=f"b-{name}", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3.put_bucket_versioning(Bucket=f"b-{name}", VersioningConfiguration={"Status": "Enabled"})
        stores[name] = S3Store(name, s3, f"b-{name}")
    return stores


STORE_NAMES = ("landing", "raw", "quarantine", "staging", "curated")


@mock_aws
def test_a_file_deleted_whole_leaves_no_older_version_current_and_other_tables_files_are_only_named() -> None:
    s3 = boto3.client("s3", region_name="eu-west-1")
    stores = _versioned(s3, *STORE_NAMES)
    mine, other = "files/landing/diabetes/patients/x.csv", "files/landing/other/thing/y.bin"
    s3.put_object(Bucket="b-quarantine", Key=mine, Body=b"clean older version")
    s3.put_object(Bucket="b-quarantine", Key=mine, Body=b"\x00 P00002 \x00")  # unreadable, holds the key
    s3.put_object(Bucket="b-quarantine", Key=other, Body=b"\x00 P00002 \x00")
    s3.put_object(Bucket="b-quarantine", Key="files/landing/other/thing/z.bin", Body=b"\x00 P000021 \x00")
    record = erase_subject(stores, SUBJECT, "DSR-3")
    assert record.deleted == [f"quarantine/{mine}"]
    with pytest.raises(s3.exceptions.ClientError):
        s3.head_object(Bucket="b-quarantine", Key=mine)  # a delete marker, not the older version, is current
    assert [v["Key"] for v in s3.list_object_versions(Bucket="b-quarantine")["Versions"]] != [mine] * 2
    (named,) = record.unresolved
    assert named.startswith(f"quarantine/{other} holds the subject's key"), "another table's file: named, kept"
    assert s3.get_object(Bucket="b-quarantine", Key=other)["Body"].read() == b"\x00 P00002 \x00"


@mock_aws
def test_an_object_that_cannot_be_erased_is_named_and_the_rest_still_are() -> None:
    s3 = boto3.client("s3", region_name="eu-west-1")
    stores = _versioned(s3, *STORE_NAMES)
    s3.put_object(Bucket="b-curated", Key="diabetes/patients/part-0.parquet", Body=b"not parquet")
    s3.put_object(
        Bucket="b-raw",
        Key="diabetes/patients/created_at=20260101T000000Z/a.csv",
        Body=f"{HEADER}\n{_row('P00002')}\n{_row('P00001')}\n".encode(),
    )
    record = erase_subject(stores, SUBJECT, "DSR-4")
    assert record.rows_removed == {"raw": 1}
    (problem,) = record.unresolved
    assert problem.startswith("curated/diabetes/patients/part-0.parquet: ArrowInvalid")


class _Rewriting(S3Store):
    """A store into which a 'pipeline run' writes the subject again before each of the first `times` walks."""

    def __init__(self, *args, times: int) -> None:
        super().__init__(*args)
        self.times = times

    def versions(self, prefix: str):
        if self.times and prefix == "diabetes/patients/":
            self.times -= 1
            self.s3.put_object(
                Bucket=self.bucket, Key="diabetes/patients/again.csv", Body=f"{HEADER}\n{_row('P00002')}\n".encode()
            )
        return super().versions(prefix)


@pytest.mark.parametrize(("times", "settled"), [(1, True), (3, False)])
@mock_aws
def test_the_walk_repeats_until_it_finds_nothing(times: int, settled: bool) -> None:
    s3 = boto3.client("s3", region_name="eu-west-1")
    stores = _versioned(s3, *STORE_NAMES)
    stores["raw"] = _Rewriting("raw", s3, "b-raw", times=times)
    record = erase_subject(stores, SUBJECT, "DSR-5")
    assert record.rows_removed == {"raw": times}, "each walk erased what the 'pipeline' wrote after the one before"
    assert (record.unresolved == []) is settled
    if not settled:
        assert "written again during each of 3 walks" in record.unresolved[-1]


@mock_aws
def test_replicas_are_erased_too() -> None:
    """S3 replicates delete markers, never the deletion of a version: the copies are erased themselves."""
    s3 = boto3.client("s3", region_name="eu-west-1")
    stores = _versioned(s3, *STORE_NAMES)
    replica = _versioned(s3, "curated-replica")["curated-replica"]
    out = io.BytesIO()
    pq.write_table(pa.table({"patient_id": ["P00001", "P00002"]}), out)
    for bucket in ("b-curated", "b-curated-replica"):
        s3.put_object(Bucket=bucket, Key="diabetes/patients/part-0.parquet", Body=out.getvalue())
    record = erase_subject(stores, SUBJECT, "DSR-6", replicas={"curated": [replica]})
    assert record.rows_removed == {"curated": 1, "curated-replica": 1}


@mock_aws
def test_the_command_finds_a_deployed_workspaces_buckets_by_its_storage_outputs(capsys) -> None:
    from infra.erasure import OUTPUT_OF_STORE
    from infra.naming import Component, stack_name

    cfn = boto3.client("cloudformation", region_name="eu-west-1")
    args = ["--branch", "main", "--dataset", "diabetes", "--table", "patients", "--key", "P00002", "--request", "R-1"]
    assert main(args) == 2
    assert "dataplat-int-storage does not exist" in capsys.readouterr().err
    resources = {
        store.capitalize(): {
            "Type": "AWS::S3::Bucket",
            "Properties": {"VersioningConfiguration": {"Status": "Enabled"}},
        }
        for store in OUTPUT_OF_STORE
    }
    outputs = {key: {"Value": {"Ref": store.capitalize()}} for store, key in OUTPUT_OF_STORE.items()}
    cfn.create_stack(
        StackName=stack_name("dataplat", "int", Component.STORAGE),
        TemplateBody=json.dumps({"Resources": resources, "Outputs": outputs}),
    )
    names = {
        o["OutputKey"]: o["OutputValue"]
        for o in cfn.describe_stacks(StackName="dataplat-int-storage")["Stacks"][0]["Outputs"]
    }
    s3 = boto3.client("s3", region_name="eu-west-1")
    key = "diabetes/patients/created_at=20260101T000000Z/a.csv"
    s3.put_object(Bucket=names["RawBucketName"], Key=key, Body=f"{HEADER}\n{_row('P00002')}\n{_row('P00001')}\n")
    assert main(args) == 0
    rewritten = s3.get_object(Bucket=names["RawBucketName"], Key=key)["Body"].read()
    assert rewritten == f"{HEADER}\n{_row('P00001')}\n".encode()
    record = json.loads(s3.get_object(Bucket=names["ArtifactsBucketName"], Key="erasures/R-1.json")["Body"].read())
    assert record["rows_removed"] == {"raw": 1} and "P00002" not in json.dumps(record)


# ---- each rule of pipeline/erasure.py on its own (fast, for mutation testing)

TWO_KEYS = replace(CONTRACT, key=("patient_id", "age"))


def test_a_subject_of_a_two_column_key_is_both_values_and_a_wrong_count_names_the_columns() -> None:
    with pytest.raises(ErasureError) as refused:
        Subject.of(TWO_KEYS, ["P00002"])
    assert str(refused.value) == (
        "diabetes/patients's key is patient_id, age: give one non-empty value for each (1 given)"
    )
    subject = Subject.of(TWO_KEYS, ["P00002", " 50 "])
    text = f"{HEADER}\n{_row('P00002', '50')}\n{_row('P00002', '51')}\n{_row('P00003', '50')}\n"
    erased = erase(Kind.CSV, "a.csv", text.encode(), subject)
    assert erased is not None and erased.rows == 1, "the rows with both values only"
    assert erased.data == f"{HEADER}\n{_row('P00002', '51')}\n{_row('P00003', '50')}\n".encode()
    out = io.BytesIO()
    pq.write_table(pa.table({"patient_id": ["P00002", "P00002", "P00003"], "age": [50, 51, 50]}), out)
    parquet = erase(Kind.PARQUET, "p.parquet", out.getvalue(), subject)
    assert parquet is not None and parquet.rows == 1
    assert pq.read_table(io.BytesIO(parquet.data)).to_pydict() == {"patient_id": ["P00002", "P00003"], "age": [51, 50]}


@pytest.mark.parametrize(
    ("name", "compress", "decompress", "magic"),
    [
        ("a.csv.gz", lambda b: gzip.compress(b, mtime=7), gzip.decompress, b"\x1f\x8b"),
        ("a.csv.bz2", bz2.compress, bz2.decompress, b"BZh"),
        ("a.csv", lambda b: b, lambda b: b, HEADER[:3].encode()),
    ],
)
def test_a_rewritten_file_keeps_its_compression(name, compress, decompress, magic) -> None:
    text = f"{HEADER}\n{_row('P00001')}\n{_row('P00002')}\n"
    erased = erase(Kind.CSV, name, compress(text.encode()), SUBJECT)
    assert erased is not None and erased.data.startswith(magic)
    assert decompress(erased.data) == f"{HEADER}\n{_row('P00001')}\n".encode()
    if name.endswith(".gz"):
        assert erased.data[4:8] == b"\0\0\0\0", "no modification time: the same rows give the same bytes"


def test_a_short_row_is_judged_by_the_fields_it_has_and_a_quoted_field_is_written_quoted() -> None:
    fmt = replace(CONTRACT.format, quote="'", delimiter=";")
    subject = Subject.of(replace(CONTRACT, format=fmt), ["P00002"])
    header = HEADER.replace(",", ";")
    text = f"{header}\nP00002;50\n'P00001';'5;0'\n"
    erased = erase(Kind.CSV, "a.csv", text.encode(), subject)
    assert erased is not None and erased.rows == 1
    assert erased.data == f"{header}\nP00001;'5;0'\n".encode()


def test_an_undecodable_file_naming_the_subject_is_deleted_whole_with_no_rows_counted() -> None:
    undecodable = f"{HEADER}\n{_row('P00002')}\n".encode() + b"\xff\xfe\n"
    erased = erase(Kind.CSV, "a.csv", undecodable, SUBJECT)
    assert erased == Erased(None, 0)
    with pytest.raises(ErasureError, match=r"^x\.bin holds the subject's key"):
        erase(Kind.OTHER, "x.bin", b"\xff P00002 \xfe", SUBJECT)


def test_rejected_rows_after_a_blank_line_are_judged_and_a_semicolon_files_unparsed_text_is_split_by_it() -> None:
    rows = [{"raw_patient_id": "P00001"}, {"raw_patient_id": "P00002"}]
    data = (json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n").encode()
    erased = erase(Kind.REJECTED_ROWS, "rows/x.json", data, SUBJECT)
    assert erased is not None and erased.rows == 1 and erased.data == (json.dumps(rows[0]) + "\n").encode()
    fmt = replace(CONTRACT.format, delimiter=";", quote="'")
    subject = Subject.of(replace(CONTRACT, format=fmt), ["P00002"])
    corrupt = [{"_corrupt_record": "'P00002';'a,b';x"}, {"_corrupt_record": "P00002,a"}]
    lines = "".join(json.dumps(r) + "\n" for r in corrupt).encode()
    split = erase(Kind.REJECTED_ROWS, "rows/y.json", lines, subject)
    assert split is not None and split.rows == 1, "the field P00002 of a ';' file, not the text P00002,a"
    assert split.data == (json.dumps(corrupt[1]) + "\n").encode()


def test_parquet_timestamps_are_written_back_as_spark_reads_them() -> None:
    from datetime import datetime

    table = pa.table(
        {"patient_id": ["P00001", "P00002"], "created_at": pa.array([datetime(2026, 1, 1)] * 2, pa.timestamp("us"))}
    )
    for int96, physical in ((True, "INT96"), (False, "INT64")):
        out = io.BytesIO()
        pq.write_table(table, out, use_deprecated_int96_timestamps=int96)
        erased = erase(Kind.PARQUET, "p.parquet", out.getvalue(), SUBJECT)
        assert erased is not None and erased.rows == 1
        written = pq.ParquetFile(io.BytesIO(erased.data))
        assert written.schema.column(1).physical_type == physical
        assert written.schema_arrow.field("created_at").type == pa.timestamp("us" if not int96 else "ns")
    nanos = pa.table({"patient_id": ["P00001", "P00002"], "t": pa.array([1, 2], pa.timestamp("ns"))})
    out = io.BytesIO()
    pq.write_table(nanos, out, coerce_timestamps=None, version="2.6")
    with pytest.raises(pa.ArrowInvalid, match="would lose data"):
        erase(Kind.PARQUET, "p.parquet", out.getvalue(), SUBJECT)
