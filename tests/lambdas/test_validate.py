"""validate: a readable file goes on; a file that cannot be read goes to quarantine whole, with the reason."""

from __future__ import annotations

import json

import pytest

from lambdas.validate import handler as validate
from lambdas.validate.logic import inspect
from pipeline.contract import load_contracts
from pipeline.sample_data import write_sample
from tests.lambdas.conftest import BUCKETS, FakeContext, keys, ledger_items

CONTRACTS = load_contracts()
CONTRACT = CONTRACTS["diabetes/patients"]
KEY = "diabetes/patients/created_at=20261122T103005Z/visits.csv"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("sample"))


def test_readable_file_passes_with_unknown_columns_reported(s3, sample, monkeypatch) -> None:
    s3.put_object(Bucket=BUCKETS["raw"], Key=KEY, Body=sample.defects.read_bytes())
    monkeypatch.setenv("QUARANTINE_BUCKET", BUCKETS["quarantine"])
    result = validate.handler({"bucket": BUCKETS["raw"], "key": KEY}, FakeContext())
    assert result["valid"] is True
    assert result["batch"] == "diabetes/patients/created_at=20261122T103005Z/file=visits.csv"
    assert result["unknown_columns"] == ["notes"]
    assert result["read_whole"] == "false", "no line break in quotes, no line of blanks: read by lines"
    assert keys(s3, BUCKETS["quarantine"]) == []
    (record,) = ledger_items()
    assert (record["file"], record["state"], record["validated_unknown_columns"]) == (KEY, "validated", ["notes"])


def test_a_quarantined_file_is_quarantined_in_the_ledger_with_the_reason(s3, monkeypatch) -> None:
    s3.put_object(Bucket=BUCKETS["raw"], Key=KEY, Body=b"")
    monkeypatch.setenv("QUARANTINE_BUCKET", BUCKETS["quarantine"])
    result = validate.handler({"bucket": BUCKETS["raw"], "key": KEY}, FakeContext())
    (record,) = ledger_items()
    assert record["state"] == "quarantined" and record["quarantined_reason"] == result["reason"]
    assert record["quarantined_location"] == result["quarantined"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "the file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "binary"),
        (b"\xff\xfe\xfa not utf8,at all\n", "not utf-8 text: byte 0"),
        (b'{"patient_id": "P00001", "age": 40}\n', "not a CSV header"),
        (b"patient_id,age,sex\nP00001,40,1\n", "lacks the contract's columns ['bmi', 'bp'"),
    ],
)
def test_unreadable_files_go_to_quarantine_whole(s3, body: bytes, reason: str) -> None:
    s3.put_object(Bucket=BUCKETS["raw"], Key=KEY, Body=body)
    result = validate.validate_object(s3, BUCKETS["raw"], KEY, BUCKETS["quarantine"], CONTRACTS)
    assert result["valid"] is False and reason in result["reason"]
    assert keys(s3, BUCKETS["quarantine"]) == [f"files/{KEY}", f"files/{KEY}.reason.json"]
    assert s3.get_object(Bucket=BUCKETS["quarantine"], Key=f"files/{KEY}")["Body"].read() == body, "kept whole"
    note = json.loads(s3.get_object(Bucket=BUCKETS["quarantine"], Key=f"files/{KEY}.reason.json")["Body"].read())
    assert note == {"source": f"s3://{BUCKETS['raw']}/{KEY}", "reason": result["reason"]}
    assert keys(s3, BUCKETS["raw"]) == [KEY], "raw is write-once: the original stays"


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("diabetes/unknown/created_at=20261122T103005Z/x.csv", "no data contract for diabetes/unknown"),
        ("diabetes/patients/x.csv", "is not <dataset>/<table>/created_at="),
    ],
)
def test_files_outside_the_layout_or_without_contract_are_quarantined(s3, key: str, reason: str) -> None:
    s3.put_object(Bucket=BUCKETS["raw"], Key=key, Body=b"a,b\n1,2\n")
    result = validate.validate_object(s3, BUCKETS["raw"], key, BUCKETS["quarantine"], CONTRACTS)
    assert result["valid"] is False and reason in result["reason"]
    assert f"files/{key}" in keys(s3, BUCKETS["quarantine"])


class Chunked:
    """A stream that hands out at most `size` bytes per read, as S3's body may."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data, self.size = data, size

    def read(self, n: int = -1, /) -> bytes:
        part, self.data = self.data[: min(n, self.size)], self.data[min(n, self.size) :]
        return part


def test_a_multibyte_character_split_between_reads_is_not_an_error() -> None:
    body = ",".join(CONTRACT.column_names).encode() + b"\n" + "é".encode() * 10
    assert inspect(Chunked(body, len(body) - 3), "x.csv", CONTRACT).readable


def test_a_bad_byte_deep_in_the_file_is_found_with_its_offset() -> None:
    """The whole file is read, not a sample: a Latin-1 byte 3 MB in is named by its offset."""
    good = ",".join(CONTRACT.column_names).encode() + b"\n" + b"P00001,40,1,25,80,,,,,,,100\n" * 110_000
    verdict = inspect(Chunked(good + b"P00002,M\xfcller\n", 1 << 20), "x.csv", CONTRACT)
    assert not verdict.readable and verdict.reason.startswith(f"the file is not utf-8 text: byte {len(good) + 8} ")


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ([*CONTRACT.column_names, "age"], "repeats the column names ['age']"),
        (
            [*CONTRACT.column_names, "P01234", "P01234"],
            "the header repeats 1 name that is not a column of the contract",
        ),
        (
            [*CONTRACT.column_names, "sex", "x1", "x2", "x1", "x2"],
            "the header repeats the column names ['sex'] and 2 names that are not columns of the contract",
        ),
        ([*CONTRACT.column_names[:2], "", *CONTRACT.column_names[2:]], "empty column name at position 3 (contract"),
        ([*CONTRACT.column_names, ""], "empty column name at position 13 (a delimiter at the end of the header line?)"),
    ],
)
def test_repeated_and_empty_column_names_are_caught_with_the_reason(header: list[str], reason: str) -> None:
    verdict = inspect(Chunked(",".join(header).encode() + b"\n", 1 << 20), "x.csv", CONTRACT)
    assert not verdict.readable and reason in verdict.reason


def test_the_reason_names_the_likely_delimiter_or_missing_header_and_quotes_no_value() -> None:
    semicolon = inspect(Chunked(";".join(CONTRACT.column_names).encode() + b"\n", 99), "x.csv", CONTRACT)
    assert "splits into the columns on ';'" in semicolon.reason
    values = b"P00001,40,1,25,80,1,2,3,4,5,6,100\n"
    headless = inspect(Chunked(values, 99), "x.csv", CONTRACT)
    assert "declare format.header: false" in headless.reason
    assert "P00001" not in headless.reason, "a reason may reach logs and e-mail: it never quotes the data"


@pytest.mark.parametrize(("policy", "valid"), [("accept", True), ("quarantine", False)])
def test_a_column_the_contract_does_not_name_is_accepted_or_quarantines_the_file_as_it_says(
    policy: str, valid: bool
) -> None:
    import io
    from dataclasses import replace

    contract = replace(CONTRACT, unknown_columns=policy)
    header = ",".join([*CONTRACT.column_names, "notes", "secret-name"]) + "\n"
    verdict = inspect(io.BytesIO(header.encode()), "visits.csv", contract)
    assert verdict.readable is valid
    if valid:
        assert verdict.unknown_columns == ["notes", "secret-name"]
    else:
        assert "the header has 2 column(s) the contract does not name" in verdict.reason
        assert "unknown_columns: quarantine" in verdict.reason and "secret-name" not in verdict.reason


# ---- verdicts, exact --------------------------------------------------------------------------------------


def _verdict(text: str, contract=CONTRACT):
    import io

    from lambdas.validate.logic import inspect as inspected

    return inspected(io.BytesIO(text.encode()), "x.csv", contract)


def test_every_verdict_word_for_word() -> None:
    from dataclasses import replace

    from lambdas.validate.logic import Verdict

    names = CONTRACT.column_names
    name = CONTRACT.name
    where = f"contracts/{name}.yaml"
    assert _verdict("") == Verdict(False, "the file is empty")
    assert _verdict("\n") == Verdict(False, "the file is empty")
    assert _verdict(",".join(names) + "\n") == Verdict(True, "", [], read_whole=False)
    assert _verdict(",".join(names) + '\nP1,"a\nb"\n').read_whole, "a line break in quotes: read whole"
    assert _verdict(",".join(names[:-1]) + "\n") == Verdict(
        False, f"the header lacks the contract's columns ['{names[-1]}'] (contract {name})"
    )
    assert _verdict(",".join([*names, "age"]) + "\n") == Verdict(
        False, f"the header repeats the column names ['age'] (contract {name})"
    )
    assert _verdict(";".join(names) + "\n") == Verdict(
        False,
        f"the first line is not a CSV header of {name}: none of its 1 field(s) is a column of the contract "
        f"(it splits into the columns on ';': declare format.delimiter in {where})",
    )
    assert _verdict("a,b,c,d,e,f,g,h,i,j,k,l\n") == Verdict(
        False,
        f"the first line is not a CSV header of {name}: none of its 12 field(s) is a column of the contract "
        f"(a file without a header line? declare format.header: false in {where})",
    )
    assert _verdict("a,b\n") == Verdict(
        False, f"the first line is not a CSV header of {name}: none of its 2 field(s) is a column of the contract"
    ), "no hint: neither another delimiter nor as many fields as columns"
    assert _verdict("patient_id\n") == Verdict(
        False, f"the first line is not a CSV header of {name}: none of its 1 field(s) is a column of the contract"
    ), "one field is never a header, even a column's name"
    assert _verdict("patient_id,age\n").reason.startswith("the header lacks the contract's columns"), "two may be"
    quarantining = replace(CONTRACT, unknown_columns="quarantine")
    assert _verdict(",".join([*names, "x"]) + "\n", quarantining) == Verdict(
        False,
        f"the header has 1 column(s) the contract does not name, and {name} quarantines such files "
        f"(unknown_columns: quarantine in {where}): add them to the contract, or accept them",
    )
    headless = replace(CONTRACT, format=replace(CONTRACT.format, header=False))
    assert _verdict("", headless) == Verdict(False, "the file is empty")
    assert _verdict("P00001,40,1,25,80,1,2,3,4,5,6,100\n", headless).readable is True
    import io

    bad = inspect(io.BytesIO(",".join(names).encode() + b"\n\xff\n"), "x.csv", CONTRACT)
    assert bad.readable is False and bad.reason.startswith("the file is not utf-8 text: byte "), bad
