"""Glue entry: raw_to_staging for one raw file. Arguments come from the stack (buckets, every contract)
and from the state machine (the raw key, whose dataset/table picks the contract). The only module, with
its twin, that imports awsglue."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import boto3
from awsglue.context import GlueContext  # type: ignore[import-not-found]
from awsglue.utils import getResolvedOptions  # type: ignore[import-not-found]
from etl_spark.jobs import run_raw_to_staging
from pyspark.context import SparkContext

from pipeline.contract import contract_named, contracts_from_json
from pipeline.csv_format import read_header
from pipeline.job_arguments import RAW_TO_STAGING, Argument, read_whole_of
from pipeline.layout import landing_key_from_metadata, parse_raw_key, timestamp
from pipeline.s3_objects import delete_under


def main() -> None:
    args = getResolvedOptions(sys.argv, [argument.value for argument in RAW_TO_STAGING])
    # Glue passes its own --JOB_RUN_ID to every run, and getResolvedOptions refuses to be asked for it (a
    # reserved name) but returns it when present
    run_id = args.get("JOB_RUN_ID")
    if not run_id:
        raise RuntimeError("no --JOB_RUN_ID among the job's arguments: Glue passes one to every run")
    spark = GlueContext(SparkContext.getOrCreate()).spark_session
    s3 = boto3.client("s3")
    raw = parse_raw_key(args[Argument.KEY])
    contract = contract_named(contracts_from_json(args[Argument.CONTRACTS]), raw.contract_name)
    obj = s3.get_object(Bucket=args[Argument.RAW_BUCKET], Key=raw.key)  # streamed: only the header record is read
    header = read_header(obj["Body"], raw.file, contract.format, contract.column_names)
    obj["Body"].close()

    def write_text(location: str, text: str) -> None:
        bucket, key = location.removeprefix("s3://").split("/", 1)
        s3.put_object(Bucket=bucket, Key=key, Body=text.encode(), ContentType="application/json")

    def delete_texts(location: str) -> None:
        bucket, prefix = location.removeprefix("s3://").split("/", 1)
        delete_under(s3, bucket, prefix)

    report = run_raw_to_staging(
        spark,
        contract,
        raw,
        raw_root=f"s3://{args[Argument.RAW_BUCKET]}",
        staging_root=f"s3://{args[Argument.STAGING_BUCKET]}",
        quarantine_root=f"s3://{args[Argument.QUARANTINE_BUCKET]}",
        header=header,
        updated_at=timestamp(datetime.now(UTC)),
        write_text=write_text,
        delete_texts=delete_texts,
        run_id=run_id,  # Glue's id of this run (an attempt's retry has its own): the verdict's run
        landing_key=landing_key_from_metadata(obj.get("Metadata", {})),
        size=obj["ContentLength"],
        multiline=read_whole_of(args[Argument.READ_WHOLE]),  # as validate found it reading the file
    )
    print(json.dumps({k: report[k] for k in ("rows_in", "rows_written", "rows_rejected")}))


if __name__ == "__main__":
    main()
