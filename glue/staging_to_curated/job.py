"""Glue entry: staging_to_curated for one table (`--table <dataset>/<table>`): the batches that passed the
quality gate since the table's current build are merged into a new build, made current once it passes the
table's checks, and each file it took in is recorded in the ledger. `--from_scratch true` (a backfill)
builds from every passed batch instead. A check-only dataset is refused: its data never reach curated.
Then the table's catalog partitions (`--catalog_database`) are brought to its current build's, with or
without a new one: a sync a failed run left half done is finished by the next (pipeline/catalog.py)."""

from __future__ import annotations

import json
import sys

import boto3
from awsglue.context import GlueContext  # type: ignore[import-not-found]
from awsglue.utils import getResolvedOptions  # type: ignore[import-not-found]
from etl_spark.jobs import CuratedStore, promote
from pyspark.context import SparkContext

from pipeline.builds import current_build, promoted_entries
from pipeline.catalog import sync_partitions
from pipeline.contract import contract_named, contracts_from_json
from pipeline.job_arguments import STAGING_TO_CURATED, Argument
from pipeline.layout import table_runs_prefix
from pipeline.ledger import DynamoLedger, record_all
from pipeline.s3_objects import ConditionalTexts, keys_under


def main() -> None:
    args = getResolvedOptions(sys.argv, [argument.value for argument in STAGING_TO_CURATED])
    spark = GlueContext(SparkContext.getOrCreate()).spark_session
    s3 = boto3.client("s3")
    contract = contract_named(contracts_from_json(args[Argument.CONTRACTS]), args[Argument.TABLE], promote=True)
    staging, curated = args[Argument.STAGING_BUCKET], args[Argument.CURATED_BUCKET]

    pointers = ConditionalTexts(s3, curated)  # the switch of a build: a conditional PUT

    outcome = promote(
        spark,
        contract,
        marker_keys=keys_under(s3, staging, table_runs_prefix(contract.dataset, contract.table)),
        staging_root=f"s3://{staging}",
        curated=CuratedStore(f"s3://{curated}", pointers.read, pointers.swap),
        from_scratch=args[Argument.FROM_SCRATCH].lower() == "true",
    )
    if outcome is None:
        print(json.dumps({"table": contract.name, "build": None, "reason": "no batch passed since the current build"}))
    else:
        build, runs = outcome
        ledger = DynamoLedger(
            boto3.client("dynamodb", region_name=args[Argument.LEDGER_REGION]), args[Argument.LEDGER_TABLE]
        )
        record_all(ledger, promoted_entries(build, runs))
        print(json.dumps({"table": contract.name, "build": build.number, "rows": build.rows, "merged": build.merged}))
    glue = boto3.client("glue", region_name=args[Argument.LEDGER_REGION])
    current = current_build(pointers.read, contract.dataset, contract.table)
    changes = sync_partitions(glue, args[Argument.CATALOG_DATABASE], contract, current, curated)
    print(json.dumps({"table": contract.name, "catalog": {k: len(v) for k, v in vars(changes).items()}}))


if __name__ == "__main__":
    main()
