"""The Python reader of landed files and the `format:` block of a contract."""

from __future__ import annotations

import bz2
import gzip
import io
import random
import re

import pytest

from pipeline.contract import ContractError, load_contracts, parse_contract
from pipeline.csv_format import (
    CsvFormat,
    FormatError,
    LineModeHazards,
    UnreadableFile,
    decoded_chunks,
    header_and_records,
    lines,
    parse_format,
    read_header,
    records,
)

DEFAULT = CsvFormat()


def read(data: bytes, name: str = "f.csv", fmt: CsvFormat = DEFAULT) -> list[list[str]]:
    return list(records(decoded_chunks(io.BytesIO(data), name, fmt), fmt))


def test_rfc4180_quoted_delimiters_doubled_quotes_and_line_breaks() -> None:
    data = b'a,b\n1,"x, y"\n2,"say ""hi"""\n3,"two\nlines"\n\n4,""\n'
    assert read(data) == [["a", "b"], ["1", "x, y"], ["2", 'say "hi"'], ["3", "two\nlines"], ["4", ""]]


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_every_line_ending_and_a_quoted_break_in_it_reads_as_spark_reads_it(ending: str) -> None:
    data = f'a,b{ending}1,"x{ending}y"{ending}2,z{ending}'.encode()
    assert read(data) == [["a", "b"], ["1", "x\ny"], ["2", "z"]]


def test_a_crlf_split_between_chunks_is_one_line_ending() -> None:
    assert list(lines(["a,b\r", "\n1,2\r", "\n"])) == ["a,b\r\n", "1,2\r\n"]
    assert list(lines(["a\r", "b"])) == ["a\r", "b"]


@pytest.mark.parametrize(
    ("name", "compress"), [("f.csv.gz", gzip.compress), ("f.csv.bz2", bz2.compress), ("F.CSV.GZ", gzip.compress)]
)
def test_compressed_files_are_read_by_their_suffix(name: str, compress) -> None:
    assert read(compress(b"a,b\n1,2\n"), name) == [["a", "b"], ["1", "2"]]


def test_a_corrupt_compressed_file_is_unreadable_with_the_reason() -> None:
    with pytest.raises(UnreadableFile, match=r"not valid \.gz data"):
        read(gzip.compress(b"a,b\n1,2\n" * 100)[:-10], "f.csv.gz")


def test_a_utf8_byte_order_mark_is_dropped_and_encodings_decode() -> None:
    assert read("\ufeffa,b\n1,2\n".encode()) == [["a", "b"], ["1", "2"]]
    assert read("a,b\nMüller,2\n".encode("latin-1"), fmt=CsvFormat(encoding="latin-1"))[1] == ["Müller", "2"]
    utf16 = CsvFormat(encoding="utf-16", delimiter="\t")
    assert read("a\tb\r\nZoë\t2\r\n".encode("utf-16"), fmt=utf16) == [["a", "b"], ["Zoë", "2"]]


def test_an_undecodable_byte_is_named_by_its_offset_in_the_uncompressed_data() -> None:
    data = b"a,b\n" + b"1,2\n" * 10 + b"M\xfcller,3\n"
    with pytest.raises(UnreadableFile, match=r"not utf-8 text: byte 45 \(invalid start byte\)"):
        read(gzip.compress(data), "f.csv.gz")


def test_nul_bytes_mean_binary_except_in_utf16() -> None:
    with pytest.raises(UnreadableFile, match=r"binary .* the first at byte 3"):
        read(b"a,b\x00\n")
    assert read("a,b\n".encode("utf-16"), fmt=CsvFormat(encoding="utf-16")) == [["a", "b"]]


def test_the_header_is_read_without_reading_the_rest_and_a_field_may_be_large() -> None:
    class Once(io.BytesIO):
        reads = 0

        def read(self, size: int | None = -1, /) -> bytes:
            self.reads += 1
            return super().read(size)

    body = Once(b"a,b\n" + b'1,"' + b"x" * 300_000 + b'"\n' + b"2,3\n" * 500_000)
    assert read_header(body, "f.csv", DEFAULT, []) == ["a", "b"]
    assert body.reads == 1, "only the first chunk"
    assert len(read(b'a,b\n1,"' + b"x" * 300_000 + b'"\n')[1][1]) == 300_000


def test_without_a_header_line_the_names_are_the_contracts_columns() -> None:
    fmt = CsvFormat(header=False)
    header, rows = header_and_records(decoded_chunks(io.BytesIO(b"1,2\n"), "f.csv", fmt), fmt, ["a", "b"])
    assert (header, list(rows)) == (["a", "b"], [["1", "2"]])


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"delimiter": ";;"}, "format.delimiter must be one character"),
        ({"delimiter": "\n"}, "format.delimiter must be one character other than a line break"),
        ({"quote": ","}, "format.delimiter and format.quote must differ"),
        ({"encoding": "ebcdic"}, "format.encoding 'ebcdic' is not one of"),
        ({"header": "yes"}, "format.header must be true or false"),
        ({"null_values": [1]}, "format.null_values must be a list of strings"),
        ({"delimter": ";"}, "format has unknown keys ['delimter']"),
        ("csv", "format must be a mapping"),
    ],
)
def test_a_bad_format_block_is_refused_naming_the_field(block, message: str) -> None:
    with pytest.raises(FormatError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_format(block)


def test_the_contract_carries_its_format_and_names_its_file_on_error() -> None:
    data = {
        "dataset": "d",
        "table": "t",
        "key": ["k"],
        "features": ["k"],
        "label": "k",
        "columns": [{"name": "k", "type": "string", "nullable": False}],
    }
    assert parse_contract(data).format == DEFAULT
    fmt = parse_contract(data | {"format": {"delimiter": ";", "encoding": "Latin-1"}}).format
    assert (fmt.delimiter, fmt.encoding, fmt.java_charset) == (";", "latin-1", "ISO-8859-1")
    with pytest.raises(ContractError, match=r"contracts/d/t.yaml: format.encoding 'x' is not one of"):
        parse_contract(data | {"format": {"encoding": "x"}}, source="contracts/d/t.yaml")


def test_null_spellings_are_missing_values_in_the_python_checks() -> None:
    column = load_contracts()["diabetes/patients"].column("s1")
    assert column.check("NULL") == (None, "s1: not a number")
    assert column.check(" NULL ", ("", "NULL")) == (None, None)
    required = load_contracts()["diabetes/patients"].column("bmi")
    assert required.check("NA", ("", "NA")) == (None, "bmi is missing (required)")


# ---- header problems and formats, word for word ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (["a", "b"], None),
        (["a", "", "b"], "the header has an empty column name at position 2"),
        (["", "a", ""], "the header has an empty column name at position 1, 3"),
        (
            ["a", "b", ""],
            "the header has an empty column name at position 3 (a delimiter at the end of the header line?)",
        ),
        (["a", "b", "a"], "the header repeats the column names ['a']"),
        (["b", "a", "b", "a"], "the header repeats the column names ['a', 'b']"),
        (["a", "x", "x"], "the header repeats 1 name that is not a column of the contract"),
        (["x", "y", "x", "y", "z"], "the header repeats 2 names that are not columns of the contract"),
        (
            ["a", "a", "x", "x", "y", "y", "y"],
            "the header repeats the column names ['a'] and 2 names that are not columns of the contract",
        ),
        (
            ["a", "a", "x", "x"],
            "the header repeats the column names ['a'] and 1 name that is not a column of the contract",
        ),
    ],
)
def test_a_header_problem_word_for_word(header: list[str], problem: str | None) -> None:
    from pipeline.csv_format import header_problem

    assert header_problem(header, ["a", "b"]) == problem


def test_a_format_as_the_glue_jobs_get_it() -> None:
    from pipeline.csv_format import CsvFormat, parse_format

    assert CsvFormat().as_dict() == {
        "delimiter": ",",
        "quote": '"',
        "encoding": "utf-8",
        "header": True,
        "null_values": [""],
    }
    declared = {"delimiter": ";", "quote": "'", "encoding": "latin-1", "header": False, "null_values": ["", "NA"]}
    assert parse_format(declared).as_dict() == declared


def _text(data: bytes, name: str = "x.csv", fmt=None, monkeypatch=None, chunk: int = 4) -> str:
    from pipeline import csv_format
    from pipeline.csv_format import CsvFormat, decoded_chunks

    if monkeypatch is not None:
        monkeypatch.setattr(csv_format, "CHUNK_BYTES", chunk)
    return "".join(decoded_chunks(io.BytesIO(data), name, fmt or CsvFormat()))


def test_offsets_are_of_the_whole_file_however_it_is_read(monkeypatch) -> None:
    from pipeline.csv_format import UnreadableFile

    with pytest.raises(UnreadableFile) as bad:
        _text("ab,cd\né".encode() + b"\xff" + b"zz", monkeypatch=monkeypatch, chunk=4)  # é spans two reads
    assert str(bad.value) == (
        "the file is not utf-8 text: byte 8 (invalid start byte); declare its encoding in the contract's format"
    )
    with pytest.raises(UnreadableFile) as binary:
        _text(b"abcdefg\x00h\x00", monkeypatch=monkeypatch, chunk=4)
    assert str(binary.value) == "the file is binary (it contains NUL bytes, the first at byte 7), not CSV text"
    with pytest.raises(UnreadableFile) as truncated:
        noise = random.Random(1).randbytes(30_000).hex().encode()  # noqa: S311 (test data: hardly compresses)
        _text(gzip.compress(noise)[:-12], "x.csv.gz", monkeypatch=monkeypatch, chunk=4096)
    assert str(truncated.value).startswith("the file is not valid .gz data after ")
    with pytest.raises(UnreadableFile) as garbage:
        _text(b"not gzip at all", "x.csv.gz")
    assert str(garbage.value).startswith("the file is not valid .gz data (")


def test_only_a_leading_byte_order_mark_goes_and_compression_is_by_suffix_in_any_case(monkeypatch) -> None:
    from pipeline.csv_format import compression_of

    assert _text("\ufeffa,b\n\ufeffc\n".encode(), monkeypatch=monkeypatch, chunk=2) == "a,b\n\ufeffc\n"
    assert _text("\ufeffa".encode("utf-8")) == "a"
    assert [compression_of(n) for n in ("x.CSV.GZ", "x.csv.bz2", "x.csv", "csv", "x.gz.csv")] == [
        ".gz",
        ".bz2",
        None,
        None,
        None,
    ]
    assert _text(bz2.compress(b"a,b\n"), "x.csv.bz2") == "a,b\n"


def hazard_by_lines(text: str, quote: str = '"') -> bool:
    """The rules as Spark's scan states them (etl_spark.io.must_read_whole), over the lines Hadoop's reader
    splits at \r\n, \r or \n: one with an odd number of quote characters, or one of nothing but characters
    Java's trim removes (the line reader drops it)."""
    return any(line.count(quote) % 2 or (line and max(line) <= " ") for line in re.split(r"\r\n|\r|\n", text))


HAZARD_TEXTS = [
    "a,b\n1,2\n",
    'a,b\n1,"x\ny"\n',
    'a,b\n1,"x\r\ny"\r\n',
    'a,b\r1,"x\ry"\r',
    'a,b\n1,"say ""hi"""\n2,"a,b"\n',
    'a,b\n1,"open at the end',
    'a,b\n1,"x"\n2,"\n"',
    '"a\nb",c',
    'a,b\n1,2\n3,"',
    "",
    '"',
    '""\n""\n',
    "a,b\n \n1,2\n",
    "a,b\r\n\t\r\n1,2\r\n",
    "a,b\n1,2\n\x0b",
    "a,b\n\n\r\n\r1,2\n",
    "a,b\n 1,2\n1,2 \n",
]


@pytest.mark.parametrize("text", HAZARD_TEXTS)
@pytest.mark.parametrize("size", [1, 2, 3, 7, 1 << 20])
def test_line_mode_hazards_are_found_as_sparks_scan_finds_them_however_the_text_is_chunked(
    text: str, size: int
) -> None:
    watcher = LineModeHazards('"')
    chunks = [text[i : i + size] for i in range(0, len(text), size)]
    assert list(watcher.watch(chunks)) == chunks, "the chunks pass through as they are"
    assert watcher.found is hazard_by_lines(text), (text, size)


def test_line_mode_hazards_hold_for_many_random_texts_and_chunkings() -> None:
    rng = random.Random(7)  # noqa: S311 (test data, reproducible)
    for _ in range(3000):
        text = "".join(rng.choice('ab,"\r\n \t') for _ in range(rng.randrange(0, 30)))
        size = rng.randrange(1, 8)
        watcher = LineModeHazards('"')
        list(watcher.watch([text[i : i + size] for i in range(0, len(text), size)]))
        assert watcher.found is hazard_by_lines(text), (text, size)


def test_line_mode_hazards_count_the_contracts_quote_character() -> None:
    watcher = LineModeHazards("'")
    list(watcher.watch(["a,'x\ny',\"\n"]))
    assert watcher.found
