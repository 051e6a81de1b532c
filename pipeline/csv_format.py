"""How a table's files are written (delimiter, quote, encoding, header, null spellings, compression) and
the Python reader of them: RFC 4180 records, streamed, with the byte offset of anything undecodable.

The Glue jobs read the same files with Spark's CSV reader, configured from the same `CsvFormat`
(`glue/lib/etl_spark/io.py`); a test runs both over the landing corpus (tests/data/landing/) and requires
the same records. The validate Lambda uses this reader to decide, before any Spark runs, whether a file can
be read at all: every byte decoded, a header whose names are present, unique and not empty.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, cast

ENCODINGS: Mapping[str, tuple[str, str]] = {
    "utf-8": ("utf-8", "UTF-8"),
    "latin-1": ("latin-1", "ISO-8859-1"),
    "windows-1252": ("cp1252", "windows-1252"),
    "utf-16": ("utf-16", "UTF-16"),
}
"""Declared name -> (Python codec, Java charset Spark reads with). utf-8 accepts and drops a byte-order
mark; utf-16 needs one (Excel's "Unicode text" writes it), since Java and Python disagree without it."""
COMPRESSIONS = (".gz", ".bz2")
"""Codecs both engines read natively, chosen by the file name's last suffix (Hadoop does the same)."""
CHUNK_BYTES = 1 << 20
csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # Spark has no limit on a field; 128 KB is Python's
_LINE_END = re.compile(r"\r\n|\r|\n")


class FormatError(ValueError):
    """A `format:` block that cannot be used: names the field and what it may be."""


class UnreadableFile(ValueError):
    """A file that cannot be read in its declared format, with what and where (byte offset)."""


@dataclass(frozen=True)
class CsvFormat:
    delimiter: str = ","
    quote: str = '"'
    encoding: str = "utf-8"
    header: bool = True
    """False: the file has no header line; its fields are the contract's columns in order."""
    null_values: tuple[str, ...] = ("",)
    """Spellings of a missing value (after trimming), e.g. ["", "NULL", "NA"]; exact, case-sensitive."""

    @property
    def python_codec(self) -> str:
        return ENCODINGS[self.encoding][0]

    @property
    def java_charset(self) -> str:
        return ENCODINGS[self.encoding][1]

    def as_dict(self) -> dict[str, Any]:
        return {
            "delimiter": self.delimiter,
            "quote": self.quote,
            "encoding": self.encoding,
            "header": self.header,
            "null_values": list(self.null_values),
        }


def parse_format(data: Mapping[str, Any] | None) -> CsvFormat:
    """The `format:` block of a contract (every key optional). Raises FormatError naming the field."""
    if data is None:
        return CsvFormat()
    if not isinstance(data, Mapping):
        raise FormatError(f"format must be a mapping of delimiter/quote/encoding/header/null_values, not {data!r}")
    unknown = sorted(set(data) - {"delimiter", "quote", "encoding", "header", "null_values"})
    if unknown:
        raise FormatError(f"format has unknown keys {unknown} (known: delimiter, quote, encoding, header, null_values)")
    default = CsvFormat()
    fmt = CsvFormat(
        delimiter=data.get("delimiter", default.delimiter),
        quote=data.get("quote", default.quote),
        encoding=str(data.get("encoding", default.encoding)).lower(),
        header=data.get("header", default.header),
        null_values=tuple(data.get("null_values", default.null_values)),
    )
    for name in ("delimiter", "quote"):
        value = getattr(fmt, name)
        if not isinstance(value, str) or len(value) != 1 or value in "\r\n":
            raise FormatError(f"format.{name} must be one character other than a line break, not {value!r}")
    if fmt.delimiter == fmt.quote:
        raise FormatError(f"format.delimiter and format.quote must differ (both {fmt.delimiter!r})")
    if fmt.encoding not in ENCODINGS:
        raise FormatError(f"format.encoding {fmt.encoding!r} is not one of {sorted(ENCODINGS)}")
    if not isinstance(fmt.header, bool):
        raise FormatError(f"format.header must be true or false, not {fmt.header!r}")
    if not all(isinstance(v, str) for v in fmt.null_values):
        raise FormatError(f"format.null_values must be a list of strings, not {list(fmt.null_values)!r}")
    return fmt


def compression_of(name: str) -> str | None:
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    return suffix if suffix in COMPRESSIONS else None


def always_read_whole(name: str, fmt: CsvFormat) -> bool:
    """Whether Spark reads the file whole (multiLine) whatever its lines hold: UTF-16, whose line break is
    two bytes Hadoop's line reader does not split on, and gzip, which is one task in either mode."""
    return fmt.encoding == "utf-16" or compression_of(name) == ".gz"


_BLANK = "\x00-\x09\x0b\x0c\x0e-\x20"
"""What Java's `trim` removes, but a line break: Spark's line reader drops a line of nothing else."""
_BLANK_LINES = tuple(re.compile(rf"{end}[{_BLANK}]+[\r\n]") for end in ("\n", "\r"))
"""A line of blanks after a line ending: one pattern per ending, as `re` finds a literal first character
quickly (a class of the two took 8 times as long)."""
_FIRST_BLANK_LINE = re.compile(rf"[{_BLANK}]+[\r\n]")
_LAST_BLANK_LINE = re.compile(rf"[{_BLANK}]+")


class LineModeHazards:
    """Whether Spark must read a file whole (multiLine) rather than by lines (one task per block), because
    reading by lines would change its records:
    - a line (ending at \\r, \\n or \\r\\n) with an odd number of quote characters: a quoted field holds a line
      break (each quoted field opens and closes once, a doubled quote counts two);
    - a line of nothing but spaces and control characters: Spark's line reader drops it, where the whole-file
      reader and the Python reader keep it (a malformed record, quarantined).

    `etl_spark.io.must_read_whole` decides the same with a scan of the file in Spark. This watches the chunks
    another reader consumes (`watch`): the validate step reads every byte of the file already, and passes what
    this found to raw_to_staging, which then reads the file once instead of scanning it first."""

    def __init__(self, quote: str) -> None:
        self.quote = quote
        self.found = False
        self._line = ""  # the line read so far: the text after the last line break

    def watch(self, chunks: Iterable[str]) -> Iterator[str]:
        """`chunks` as they are, noting their lines; `found` holds for the whole text once they are all
        consumed (the last line may end without a line break)."""
        for chunk in chunks:
            if not self.found:
                self._note(chunk)
            yield chunk
        last = self._line
        self.found = self.found or last.count(self.quote) % 2 == 1 or bool(_LAST_BLANK_LINE.fullmatch(last))

    def _note(self, chunk: str) -> None:
        text = self._line + chunk
        end = max(text.rfind("\n"), text.rfind("\r")) + 1  # the lines that end in this chunk, and the rest
        whole, self._line = text[:end], text[end:]
        if _FIRST_BLANK_LINE.match(whole) or any(blank.search(whole) for blank in _BLANK_LINES):
            self.found = True
        elif self.quote in whole:  # one search: most files' chunks hold no quote
            self.found = any(line.count(self.quote) % 2 == 1 for line in _LINE_END.split(whole))


class Readable(Protocol):
    """What a file is read from: an open file, an S3 body, a decompressor."""

    def read(self, size: int = ..., /) -> bytes: ...


def decompressed(stream: Readable, name: str) -> Readable:
    """The file's bytes as they were before compression (by its name's suffix), streamed."""
    compression = compression_of(name)
    if compression == ".gz":
        return gzip.GzipFile(fileobj=cast(BinaryIO, stream), mode="rb")
    if compression == ".bz2":
        return bz2.BZ2File(cast(BinaryIO, stream), mode="rb")
    return stream


def decoded_chunks(stream: Readable, name: str, fmt: CsvFormat) -> Iterator[str]:
    """Text of the file, strictly decoded. Raises UnreadableFile with the byte offset (in the
    uncompressed data) of the first byte that is not `fmt.encoding`, or the decompressor's complaint."""
    decoder = codecs.getincrementaldecoder(fmt.python_codec)(errors="strict")
    source = decompressed(stream, name)
    consumed, first = 0, True
    while True:
        try:
            chunk = source.read(CHUNK_BYTES)
        except (OSError, EOFError, ValueError) as exc:
            where = f" after {consumed} bytes" if consumed else ""
            raise UnreadableFile(f"the file is not valid {compression_of(name)} data{where} ({exc})") from None
        if b"\x00" in chunk and fmt.encoding != "utf-16":
            raise UnreadableFile(
                f"the file is binary (it contains NUL bytes, the first at byte "
                f"{consumed + chunk.index(0)}), not CSV text"
            )
        pending = len(decoder.getstate()[0])
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            raise UnreadableFile(
                f"the file is not {fmt.encoding} text: byte {consumed - pending + exc.start} "
                f"({exc.reason}); declare its encoding in the contract's format"
            ) from None
        if first and text:
            text, first = (text[1:] if fmt.encoding == "utf-8" and text.startswith("\ufeff") else text), False
        if text:
            yield text
        if not chunk:
            return
        consumed += len(chunk)


def lines(chunks: Iterable[str]) -> Iterator[str]:
    """Physical lines with their endings (\\r\\n, \\r or \\n, as Spark's reader detects them), across chunks."""
    carry = ""
    for chunk in chunks:
        text = carry + chunk
        start = 0
        for match in _LINE_END.finditer(text):
            if match.group() == "\r" and match.end() == len(text):
                break  # a \r at the end of a chunk may be the first half of \r\n
            yield text[start : match.end()]
            start = match.end()
        carry = text[start:]
    if carry:
        yield carry


def records(chunks: Iterable[str], fmt: CsvFormat) -> Iterator[list[str]]:
    """RFC 4180 records (quoted fields may hold the delimiter, doubled quotes and line breaks); blank
    lines are skipped, as Spark skips them. A line break inside a quoted field that is the file's own line
    ending (its first: \r\n or \r) becomes \n, as Spark's reader (univocity) normalises it."""
    ending: list[str] = []

    def noting_the_first_ending(source: Iterator[str]) -> Iterator[str]:
        for line in source:
            if not ending:
                ending.append(line[len(line.rstrip("\r\n")) :] or "\n")
            yield line

    reader = csv.reader(
        noting_the_first_ending(lines(chunks)),
        delimiter=fmt.delimiter,
        quotechar=fmt.quote,
        doublequote=True,
        strict=False,
    )
    try:
        for record in reader:
            if record:
                yield record if ending[0] == "\n" else [value.replace(ending[0], "\n") for value in record]
    except csv.Error as exc:
        raise UnreadableFile(f"line {reader.line_num} is not CSV ({exc})") from None


def header_and_records(
    chunks: Iterable[str], fmt: CsvFormat, columns: list[str]
) -> tuple[list[str], Iterator[list[str]]]:
    """(the header's names, the data records after it). Without a header line the names are `columns`."""
    rows = records(chunks, fmt)
    if not fmt.header:
        return list(columns), rows
    first = next(rows, None)
    return ([] if first is None else [name.strip() for name in first]), rows


def header_problem(header: list[str], columns: Sequence[str]) -> str | None:
    """Why a header cannot name columns (empty or repeated names), or None. Spark would refuse the first
    (an empty name) silently and crash on the second; both are a property of the file, so it is quarantined.
    Only the contract's `columns` are quoted: any other name may be data (a file without its header line)."""
    empty = [i + 1 for i, name in enumerate(header) if not name]
    if empty:
        trailing = " (a delimiter at the end of the header line?)" if empty == [len(header)] else ""
        return f"the header has an empty column name at position {', '.join(map(str, empty))}{trailing}"
    repeated = sorted({name for name in header if header.count(name) > 1})
    if not repeated:
        return None
    named = [name for name in repeated if name in columns]
    others = len(repeated) - len(named)
    parts = [f"the column names {named}"] if named else []
    if others == 1:
        parts.append("1 name that is not a column of the contract")
    elif others:
        parts.append(f"{others} names that are not columns of the contract")
    return "the header repeats " + " and ".join(parts)


def read_header(stream: Readable, name: str, fmt: CsvFormat, columns: list[str]) -> list[str]:
    """The header's names, reading no further into the file than its first record (the Glue job's
    driver, before Spark reads the rest); `columns` when the format says there is no header line."""
    header, _ = header_and_records(decoded_chunks(stream, name, fmt), fmt, columns)
    return header


def csv_text(fmt: CsvFormat, columns: Sequence[str], rows: Iterable[Mapping[str, str]]) -> str:
    """`rows` (text by column; "" where a value is missing) as a file of format `fmt` holds them: its delimiter
    and quote, its header, a missing value spelt as its first null spelling (empty where "" is one, as it is by
    default). What the generator and the database extractor write."""
    spellings = fmt.null_values
    null = spellings[0] if spellings and "" not in spellings else ""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=fmt.delimiter, quotechar=fmt.quote)
    if fmt.header:
        writer.writerow(columns)
    writer.writerows([[row[c] or null for c in columns] for row in rows])
    return buffer.getvalue()
