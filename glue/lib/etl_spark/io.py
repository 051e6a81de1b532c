"""Reading one raw file with Spark exactly as `pipeline.csv_format` reads it in Python (a test runs both
over the landing corpus and requires the same records): RFC 4180 quoting, the contract's delimiter, quote
and encoding, gzip/bz2 by suffix, and the one object named, never a glob pattern."""

from __future__ import annotations

import re
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from pipeline.csv_format import CsvFormat, always_read_whole

CORRUPT = "_corrupt_record"
SPARK_MAX_COLUMNS = 20480
SCAN_FROM_BYTES = 8 << 20
"""Below this a file is one or two tasks whatever the mode (Spark splits no finer than 4 MB): read it
multiLine without scanning it first."""
_GLOB = re.compile(r"([\\*?\[\]{}])")


def field_name(position: int) -> str:
    """The column of the file's field at `position` (0-based). Fields are read by position, so a header
    name (spaces, dots, backticks, repeats) never reaches Spark's analyser."""
    return f"_f{position}"


def raw_schema(width: int) -> StructType:
    """`width` text fields by position, plus Spark's column for a record it cannot split into them."""
    return StructType(
        [StructField(field_name(i), StringType()) for i in range(width)] + [StructField(CORRUPT, StringType())]
    )


def exact_path(path: str) -> str:
    """`path` with Hadoop's glob characters escaped: `a[1]*.csv` names that one file and reads nothing else."""
    return _GLOB.sub(r"\\\1", path)


def must_read_whole(spark: SparkSession, path: str, fmt: CsvFormat) -> bool:
    """Whether the file must be read whole (multiLine, one task) rather than split by lines (one task per block,
    as a plain copy reads it), by the rules of `pipeline.csv_format.LineModeHazards`: a line with an odd number
    of quote characters (a quoted field holds a line break), or a line of nothing but spaces and control
    characters (the line reader would drop it). The validate step decides the same as it reads the file, and
    the job reads its answer (`--read_whole`) instead of this scan, where the run has it.

    One scan of the lines, splittable and far cheaper than the parse: one aggregate over the lines that hold a
    quote or begin with a blank (byte comparisons), whose quotes alone are counted (a `where(odd).limit(1)
    .count()` took 0.35 s on 1M lines without a quote, this takes 0.19 s). UTF-16 (a line break is two bytes)
    and gzip (one task whatever the mode) are read whole without a scan (`always_read_whole`)."""
    if always_read_whole(path, fmt):
        return True
    line = F.col("value")
    quotes = F.length(line) - F.length(F.regexp_replace(line, re.escape(fmt.quote), ""))
    blank = line.rlike(r"^[\x00-\x20]+\z")  # Java's trim leaves nothing of it (a line holds no line break)
    candidates = spark.read.text(exact_path(path)).where(line.contains(fmt.quote) | (line < "!"))  # "!": 0x21
    (hazard,) = candidates.agg(F.max((quotes % 2 == 1) | blank)).first() or (None,)  # None: no such line
    return bool(hazard)


def read_raw_csv(
    spark: SparkSession, path: str, fmt: CsvFormat, width: int, multiline: bool | None = None, size: int | None = None
) -> DataFrame:
    """All fields as text. A record with another number of fields keeps its text in CORRUPT; the quote
    doubles as its own escape (RFC 4180's ""). Read whole (multiLine) where the file's `size` is under
    SCAN_FROM_BYTES whatever `multiline` says, else where `multiline` (what the validate step found) or, where
    that is None, `must_read_whole`: then a quoted field may hold line breaks and Spark detects \\r, \\n
    or \\r\\n itself; else Hadoop's line reader splits on the same three."""
    if size is not None and size < SCAN_FROM_BYTES:
        multiline = True  # whatever the validate step found: the same tasks, and no difference between modes
    elif multiline is None:
        multiline = must_read_whole(spark, path, fmt)
    return (
        spark.read.option("header", fmt.header)
        .option("multiLine", multiline)
        .option("sep", fmt.delimiter)
        .option("quote", fmt.quote)
        .option("escape", fmt.quote)
        .option("encoding", fmt.java_charset)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .option("maxColumns", max(SPARK_MAX_COLUMNS, width + 1))
        .schema(raw_schema(width))
        .csv(exact_path(path))
    )


def _hadoop_path(spark: SparkSession, location: str) -> tuple[Any, Any]:
    """(file system, path) of `location` as Spark reads and writes it (S3 in Glue, the local disk here)."""
    jvm = spark.sparkContext._jvm
    if jvm is None:
        raise RuntimeError("the Spark session has stopped: its file system is gone with it")
    path = jvm.org.apache.hadoop.fs.Path(location)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


def delete_tree(spark: SparkSession, location: str) -> None:
    """Delete `location` and everything under it, through the file system Spark writes with, so that what a
    job wrote is removed the way it was written. Absent is not an error."""
    fs, path = _hadoop_path(spark, location)
    fs.delete(path, True)


def path_exists(spark: SparkSession, location: str) -> bool:
    fs, path = _hadoop_path(spark, location)
    return bool(fs.exists(path))


def child_names(spark: SparkSession, location: str) -> list[str]:
    """The names of what is directly under `location` (folders and objects); none where it is absent."""
    fs, path = _hadoop_path(spark, location)
    if not fs.exists(path):
        return []
    return [str(status.getPath().getName()) for status in fs.listStatus(path)]
