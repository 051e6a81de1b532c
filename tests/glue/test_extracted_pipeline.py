"""From a database table to curated, locally (`make pipeline SOURCE=postgresql://...`): the extractor reads the
table of a source file into files of the contract's format, and those go through ingest, validation, the gate
and promotion as landed files do: the curated table holds the source's rows, a bad row is quarantined with its
reason, and the run's report names each extracted file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pipeline.sample_data import appointment_rows
from scripts.local_postgres import load_appointments


def test_a_database_table_reaches_curated_through_the_local_pipeline(postgres, spark, tmp_path: Path) -> None:
    from scripts.run_pipeline_local import Extraction, run

    rows = appointment_rows(40)
    rows[5]["duration_minutes"] = "999"  # above the contract's maximum: quarantined, the rest goes on
    load_appointments(postgres.target(), rows, datetime(2026, 12, 1, tzinfo=UTC))
    sources = tmp_path / "sources" / "clinic"
    sources.mkdir(parents=True)
    (sources / "appointments.yaml").write_text(
        "engine: postgresql\ntable: appointments\nwatermark: {column: updated_at, type: timestamp}\nchunk_rows: 15\n"
    )
    extraction = Extraction(postgres.target(), tmp_path / "sources")
    reports, stages = run(None, [], tmp_path / "run", spark=spark, extraction=extraction)

    assert [r.file.rsplit("-", 1)[-1] for r in reports] == ["00000.csv", "00001.csv", "00002.csv"], "pages of 15"
    assert sum(r.rows_in for r in reports) == 40 and sum(r.rows_quarantined for r in reports) == 1
    assert all(r.gate == "passed" for r in reports)
    assert any("duration_minutes: above the maximum 240" in reason for r in reports for reason in r.reasons)
    curated = dict((stage, written) for stage, _, written, _, _ in stages)["staging_to_curated"]
    assert curated == 39, "every accepted row, one per (day, appointment_id)"
