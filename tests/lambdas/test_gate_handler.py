"""gate: evaluates the staging profile and leaves the verdict where staging_to_curated looks for it."""

from __future__ import annotations

import json

from lambdas.gate import handler as gate
from pipeline.contract import load_contracts
from tests.lambdas.conftest import BUCKETS, keys
from tests.pipeline.test_gate import GOOD

KEY = "diabetes/patients/created_at=20261122T103005Z/visits.csv"
RUN = "_runs/diabetes/patients/created_at=20261122T103005Z/file=visits.csv/"


def test_passing_profile_leaves_a_passed_marker(s3) -> None:
    s3.put_object(Bucket=BUCKETS["staging"], Key=RUN + "profile.json", Body=json.dumps(GOOD))
    result = gate.gate_batch(s3, BUCKETS["staging"], KEY, load_contracts())
    assert result["passed"] is True and result["failures"] == []
    assert RUN + "_GATE_PASSED.json" in keys(s3, BUCKETS["staging"])


def test_failing_profile_leaves_a_failed_marker_with_the_reasons(s3) -> None:
    bad = dict(GOOD, rows_written=90)
    s3.put_object(Bucket=BUCKETS["staging"], Key=RUN + "profile.json", Body=json.dumps(bad))
    result = gate.gate_batch(s3, BUCKETS["staging"], KEY, load_contracts())
    assert result["passed"] is False
    assert result["failures"] == ["rows in = rows written + rows rejected (observed 100 = 90 + 5)"]
    verdict = json.loads(s3.get_object(Bucket=BUCKETS["staging"], Key=RUN + "_GATE_FAILED.json")["Body"].read())
    assert verdict["passed"] is False
    assert RUN + "_GATE_PASSED.json" not in keys(s3, BUCKETS["staging"])
