"""Restoring what prd cannot rebuild, as an operator would (README: "Backups and restore"): the run ledger
from DynamoDB's point-in-time recovery into a table of its own, and a curated table to an earlier build by
putting back an earlier version of its `_CURRENT.json` (the curated bucket is versioned). After a restore
the pipeline carries on: the runs passed since count as waiting again (the restored build's manifest does not
hold them), so the next build takes them in once more and equals a build from scratch."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import boto3
from etl_spark.jobs import promote
from etl_spark.local import local_curated
from moto import mock_aws

from pipeline.builds import current_build
from pipeline.layout import current_build_key
from pipeline.ledger import DynamoLedger, Step, create_table
from pipeline.sample_data import prices_contract
from tests.glue.test_builds import stage_batch, table

CONTRACT = prices_contract()


def test_the_ledger_restores_from_point_in_time_recovery_and_records_on(monkeypatch) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        ledger = create_table(client, "ledger")
        client.update_continuous_backups(
            TableName="ledger", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
        key = "shop/prices/created_at=20261101T000000Z/a.csv"
        ledger.record(key, Step.INGESTED, landing_key="shop/prices/a.csv")
        ledger.record(key, Step.PROMOTED, build=3)
        before = ledger.items()
        client.restore_table_to_point_in_time(
            SourceTableName="ledger", TargetTableName="ledger-restored", UseLatestRestorableTime=True
        )
        restored = DynamoLedger(client, "ledger-restored")
        assert restored.items() == before
        restored.record(key, Step.GATED, passed=True)  # a late record: the state stays as far as it got
        (item,) = restored.items()
        assert item["state"] == "promoted" and item["gated_passed"] is True and item["promoted_build"] == 3


def test_a_curated_table_restored_to_an_earlier_build_carries_on_from_it(spark, tmp_path: Path) -> None:
    """Build 1 holds a.csv; a.csv is run again (its rows change) and b.csv lands; build 2 is from scratch. Then
    build 1's pointer is put back: readers read build 1; the next build sees that build 1 holds a run of a.csv
    that no longer passes and is from scratch, and the table is what it was before the restore."""
    staging, root = tmp_path / "staging", tmp_path / "curated"
    store = local_curated(root)
    day = datetime(2026, 11, 1)
    runs: dict[str, str] = {}

    def promoted():
        keys = [f"_runs/{run}/{name}" for run in runs.values() for name in ("profile.json", "_GATE_PASSED.json")]
        return promote(spark, CONTRACT, marker_keys=keys, staging_root=str(staging), curated=store)

    runs["a"] = stage_batch(spark, staging, day, "a.csv", [("x", 1, 1.0, None), ("y", 1, 1.0, None)])
    first, _ = promoted()
    pointer_of_build_1 = store.read_text(current_build_key("shop", "prices"))  # an earlier version, in S3
    runs["a"] = stage_batch(spark, staging, day, "a.csv", [("x", 1, 1.0, None)], run="jr_again")  # y dropped
    runs["b"] = stage_batch(spark, staging, day + timedelta(days=1), "b.csv", [("z", 1, 3.0, None)])
    second, _ = promoted()
    assert second.from_scratch and set(table(spark, root)) == {"x", "z"}
    assert promoted() is None, "nothing waits after build 2"

    # the restore: build 1's pointer put back (aws s3api copy-object --copy-source <bucket>/<key>?versionId=<v>)
    (root / current_build_key("shop", "prices")).write_text(pointer_of_build_1, encoding="utf-8")
    assert current_build(store.read_text, "shop", "prices") == first
    assert set(table(spark, root)) == {"x", "y"}, "readers read build 1 again (it is kept)"
    again, taken = promoted()
    assert again.from_scratch and sorted(taken) == sorted(runs.values()), "build 1 holds a run that no longer passes"
    assert again.number == 3, "a number of its own: build 2 still names what it named"
    assert set(table(spark, root)) == {"x", "z"}, "and the table is as it was before the restore"
