"""The contract's rules are SQL text: literals and names from a contract must reach Spark unchanged."""

from __future__ import annotations

import pytest
from etl_spark.rules import identifier, sql_string

TEXTS = ["plain", "it's", "back\\slash", "^P\\d{5}$", "quote ' and \\' both", "\ufeffBOM", "a\nb", "Übersicht", ""]


@pytest.mark.parametrize("text", TEXTS)
def test_a_string_literal_reads_back_as_written(spark, text: str) -> None:
    assert spark.sql(f"SELECT {sql_string(text)} AS v").first().v == text


def test_a_regex_with_backslash_classes_matches_as_in_python(spark) -> None:
    pattern = sql_string(r"^P\d{5}$")
    row = spark.sql(f"SELECT 'P12345' RLIKE {pattern} AS yes, 'Pabcde' RLIKE {pattern} AS no").first()
    assert (row.yes, row.no) == (True, False)


@pytest.mark.parametrize("name", ["age", "weird`name", "with space", "dot.ted"])
def test_any_column_name_is_one_identifier(spark, name: str) -> None:
    frame = spark.createDataFrame([(1,)], [name])
    assert frame.selectExpr(f"{identifier(name)} + 1 AS v").first().v == 2
