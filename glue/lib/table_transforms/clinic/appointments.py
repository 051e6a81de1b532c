"""clinic/appointments in curated: a booking the front desk made without a department is the general
clinic's (the booking system leaves it empty; raw and staging keep it as it came)."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

UNASSIGNED_DEPARTMENT = "general"


def transform(staged: DataFrame) -> DataFrame:
    return staged.withColumn("department", F.coalesce(F.col("department"), F.lit(UNASSIGNED_DEPARTMENT)))
