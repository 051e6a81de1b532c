"""The local session behaves as Glue 5.1's Spark (3.5.6, ANSI off), not as Spark 4's defaults."""

from __future__ import annotations


def test_a_bad_cast_gives_null_as_on_glue_not_an_error(spark) -> None:
    row = spark.sql("SELECT CAST('abc' AS INT) AS bad, CAST(2147483647 AS INT) + 1 AS wrapped").first()
    assert row.bad is None, "Spark 4 (ANSI on) raises here; Glue 5.1 gives null"
    assert row.wrapped == -2147483648, "integer overflow wraps as on Glue (ANSI off)"
    assert spark.conf.get("spark.sql.ansi.enabled") == "false"
