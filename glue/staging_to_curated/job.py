"""Glue entry: staging_to_curated. Rebuilds the curated feature table from the batches that passed
the quality gate (a batch that failed it is never promoted, now or later)."""

from __future__ import annotations

import json
import sys

import boto3
from awsglue.context import GlueContext  # type: ignore[import-not-found]
from awsglue.utils import getResolvedOptions  # type: ignore[import-not-found]
from etl_spark.jobs import passed_partitions, run_staging_to_curated
from pyspark.context import SparkContext

from pipeline.contract import parse_contract


def main() -> None:
    args = getResolvedOptions(sys.argv, ["staging_bucket", "curated_bucket", "contract"])
    spark = GlueContext(SparkContext.getOrCreate()).spark_session
    contract = parse_contract(json.loads(args["contract"]), source="--contract")
    markers = []
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(
        Bucket=args["staging_bucket"], Prefix=f"_runs/{contract.dataset}/{contract.table}/")
    for page in pages:
        markers += [o["Key"] for o in page.get("Contents", [])]
    rows = run_staging_to_curated(spark, contract, staging_root=f"s3://{args['staging_bucket']}",
                                  passed_partitions=passed_partitions(markers),
                                  curated_root=f"s3://{args['curated_bucket']}")
    print(json.dumps({"curated_rows": rows}))


if __name__ == "__main__":
    main()
