"""Generated test data (pipeline/generate.py) through the local pipeline, as a new dataset would use it: the
valid file is staged whole and passes its gate into curated; every row of the broken file is quarantined, each
with the reason the generator gave it."""

from __future__ import annotations

import json
import os
from collections import Counter
from unittest import mock

from pipeline.contract import load_contracts
from pipeline.generate import reasons_file, write_files
from pipeline.steps import PIPELINE


def test_generated_files_run_through_the_pipeline_as_the_generator_says(spark, tmp_path) -> None:
    contract = load_contracts()["clinic/appointments"]
    data = tmp_path / "data"
    write_files(contract, data, 30, seed=7)
    expected = json.loads(reasons_file(contract, data).read_text())
    with mock.patch.dict(os.environ):  # the script sets local AWS defaults: keep them out of other tests
        from scripts.run_pipeline_local import run

        reports, stages = run(data, [], tmp_path / "out", spark=spark)
    assert [stage[0] for stage in stages] == [step.value for step in PIPELINE], "the state machine's order"
    assert [stage[1:4] for stage in stages] == [
        (2, 2, 0),
        (2, 2, 0),
        (30 + len(expected), 30, len(expected)),
        (2, 1, 1),
        (30, 30, 0),
    ], stages
    by_file = {report.file.rsplit("/", 1)[1]: report for report in reports}
    valid, invalid = by_file["generated-valid.csv"], by_file["generated-invalid.csv"]
    assert (valid.rows_in, valid.rows_written, valid.rows_quarantined, valid.gate) == (30, 30, 0, "passed")
    assert (invalid.rows_in, invalid.rows_written, invalid.rows_quarantined) == (len(expected), 0, len(expected))
    counts = Counter(e["reason"] for e in expected)
    reported = [line for line in invalid.reasons if not line.startswith("gate: ")]
    assert len(reported) == min(len(counts), 20), "the report lists the 20 commonest reasons"
    for line in reported:
        reason, rows = line.rsplit(" (", 1)
        assert int(rows.split()[0]) == counts[reason], line
    assert set(by_file) == {"generated-valid.csv", "generated-invalid.csv"}, "nothing else landed"
    catalog = json.loads((tmp_path / "out" / "catalog.json").read_text())
    assert catalog["clinic_appointments"]["partitions"], "the valid rows reached curated and the catalog"
