"""Glue entry: staging_to_curated. Rebuilds the curated table of the raw file's dataset/table (`--key`,
from the state machine) from the batches that passed the quality gate (a batch that failed it is never
promoted, now or later). A check-only dataset is refused: its data never reach curated."""

from __future__ import annotations

import json
import sys

import boto3
from awsglue.context import GlueContext  # type: ignore[import-not-found]
from awsglue.utils import getResolvedOptions  # type: ignore[import-not-found]
from etl_spark.jobs import passed_partitions, run_staging_to_curated
from pyspark.context import SparkContext

from pipeline.contract import contract_named, contracts_from_json
from pipeline.layout import parse_raw_key
from pipeline.s3_objects import keys_under


def main() -> None:
    args = getResolvedOptions(sys.argv, ["staging_bucket", "curated_bucket", "contracts", "key"])
    spark = GlueContext(SparkContext.getOrCreate()).spark_session
    contract = contract_named(
        contracts_from_json(args["contracts"]), parse_raw_key(args["key"]).contract_name, promote=True
    )
    markers = keys_under(boto3.client("s3"), args["staging_bucket"], f"_runs/{contract.dataset}/{contract.table}/")
    rows = run_staging_to_curated(
        spark,
        contract,
        staging_root=f"s3://{args['staging_bucket']}",
        passed_partitions=passed_partitions(markers),
        curated_root=f"s3://{args['curated_bucket']}",
    )
    print(json.dumps({"curated_rows": rows}))


if __name__ == "__main__":
    main()
