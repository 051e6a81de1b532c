"""Reading a raw CSV file the way both the Glue job and the local run do."""

from __future__ import annotations

import csv
import io

from pyspark.sql import DataFrame, SparkSession

from etl_spark.transforms import CORRUPT, raw_schema
from pipeline.contract import Contract


def header_of(first_line: str) -> list[str]:
    return [h.strip() for h in next(csv.reader(io.StringIO(first_line)))]


def read_raw_csv(spark: SparkSession, path: str, contract: Contract, header: list[str]) -> DataFrame:
    """All columns as text, lines that do not split into the header's columns kept in CORRUPT."""
    return (spark.read.option("header", True).option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT).option("encoding", "UTF-8")
            .schema(raw_schema(contract, header)).csv(path))
