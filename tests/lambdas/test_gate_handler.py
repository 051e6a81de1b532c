"""gate: evaluates the staging profile and leaves the verdict where staging_to_curated looks for it."""

from __future__ import annotations

import json

import pytest

from lambdas.gate import handler as gate
from pipeline.contract import load_contracts
from tests.lambdas.conftest import BUCKETS, keys
from tests.pipeline.test_gate import GOOD

KEY = "diabetes/patients/created_at=20261122T103005Z/visits.csv"
RUN = "_runs/diabetes/patients/created_at=20261122T103005Z/file=visits.csv/run=jr_1/"


def test_passing_profile_leaves_a_passed_marker(s3) -> None:
    s3.put_object(Bucket=BUCKETS["staging"], Key=RUN + "profile.json", Body=json.dumps(GOOD))
    result = gate.gate_batch(s3, BUCKETS["staging"], KEY, load_contracts())
    assert result["passed"] is True and result["failures"] == []
    assert RUN + "_GATE_PASSED.json" in keys(s3, BUCKETS["staging"])


def test_the_handler_records_the_verdict_and_the_judged_runs_counts_in_the_ledger(s3, monkeypatch) -> None:
    from tests.lambdas.conftest import FakeContext, ledger_items

    monkeypatch.setenv("STAGING_BUCKET", BUCKETS["staging"])
    s3.put_object(Bucket=BUCKETS["staging"], Key=RUN + "profile.json", Body=json.dumps(dict(GOOD, rows_written=90)))
    result = gate.handler({"key": KEY}, FakeContext())
    (record,) = ledger_items()
    assert record["file"] == KEY and record["state"] == "gated" and record["gated_passed"] is False
    assert record["gated_failures"] == result["failures"] != [] and record["gated_run_id"] == "jr_1"
    counts = (record["gated_rows_in"], record["gated_rows_written"], record["gated_rows_rejected"])
    assert counts == (GOOD["rows_in"], 90, GOOD["rows_rejected"])


def test_failing_profile_leaves_a_failed_marker_with_the_reasons(s3) -> None:
    bad = dict(GOOD, rows_written=90)
    s3.put_object(Bucket=BUCKETS["staging"], Key=RUN + "profile.json", Body=json.dumps(bad))
    result = gate.gate_batch(s3, BUCKETS["staging"], KEY, load_contracts())
    assert result["passed"] is False
    assert result["failures"] == ["rows in = rows written + rows rejected (observed 100 = 90 + 5)"]
    verdict = json.loads(s3.get_object(Bucket=BUCKETS["staging"], Key=RUN + "_GATE_FAILED.json")["Body"].read())
    assert verdict["passed"] is False
    assert RUN + "_GATE_PASSED.json" not in keys(s3, BUCKETS["staging"])


def test_judging_a_run_again_replaces_its_verdict(s3) -> None:
    """A pass, then the same run judged on a failing profile (the state machine's retry after a contract
    change): one verdict is left, the latest."""
    for profile, marker in ((GOOD, "_GATE_PASSED.json"), (dict(GOOD, rows_written=90), "_GATE_FAILED.json")):
        s3.put_object(Bucket=BUCKETS["staging"], Key=RUN + "profile.json", Body=json.dumps(profile))
        gate.gate_batch(s3, BUCKETS["staging"], KEY, load_contracts())
        assert [k for k in keys(s3, BUCKETS["staging"]) if "_GATE_" in k] == [RUN + marker]


def test_a_batch_with_no_staged_run_is_an_error_not_a_verdict(s3) -> None:
    with pytest.raises(RuntimeError, match="0 staged runs with a profile"):
        gate.gate_batch(s3, BUCKETS["staging"], KEY, load_contracts())
    assert keys(s3, BUCKETS["staging"]) == []


def test_the_tables_batches_failed_metric_is_1_for_a_failed_verdict_and_0_for_a_passed_one(
    s3, monkeypatch, capsys
) -> None:
    """What each table's gate alarm reads (BatchesFailed, per table): its value, not only its dimensions."""
    from tests.lambdas.conftest import FakeContext

    monkeypatch.setenv("STAGING_BUCKET", BUCKETS["staging"])
    values = []
    for profile in (GOOD, dict(GOOD, rows_written=90)):
        s3.put_object(Bucket=BUCKETS["staging"], Key=RUN + "profile.json", Body=json.dumps(profile))
        verdict = gate.handler({"key": KEY}, FakeContext())["passed"]
        records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"BatchesFailed"' in line]
        (record,) = [r for r in records if "_aws" in r]
        assert record["table"] == "diabetes/patients"
        values.append((verdict, record["BatchesFailed"]))
    assert values == [(True, [0.0]), (False, [1.0])]
