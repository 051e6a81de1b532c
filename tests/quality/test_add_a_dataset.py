"""Adding a dataset is adding a contract file (README: "Add a dataset"), tried as a team would, on a temporary
copy of the repository: a contract that is not in the repository is copied in under a new dataset and table,
with sample data under its landing path, and nothing else changes. Then the synthesised templates route that
table's files (the functions' bundled contracts, the jobs' `--contracts`), alarm on its failures (a gate alarm
of its own) and catalogue its curated table; and `make pipeline DATA=<folder>` takes its file through every
step to curated, with a passing gate, and into the catalog."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = (".venv", ".venv-checkov", "node_modules")
"""Installed once, shared by the copy (links): its files keep their times, so make finds them up to date."""
CONTRACT = """\
dataset: warehouse
table: shipments
description: Outbound shipments and whether they arrived late.
key: [shipment_id]
columns:
  - {name: shipment_id, type: string, nullable: false, pattern: "^S[0-9]{4}$", description: Shipment}
  - {name: weight_kg, type: double, nullable: false, min: 0, max: 1000, description: Gross weight}
  - {name: parcels, type: integer, nullable: false, min: 1, description: Parcels in it}
  - {name: carrier, type: string, nullable: true, description: "Carrier, if one was booked"}
  - {name: late, type: integer, nullable: false, allowed: [0, 1], description: 1 if it arrived late}
features: [weight_kg, parcels, carrier]
label: late
partition: {buckets: 4}
quality:
  min_rows: 5
  max_rejected_fraction: 0.1
"""
BRANCH = "feature/add-shipments"


def repository_copy(destination: Path) -> Path:
    """The repository's files as git sees them (tracked, and new ones not ignored), times kept."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    for name in SHARED:
        if (ROOT / name).exists():
            (destination / name).symlink_to(ROOT / name)
    return destination


def shipments_file() -> str:
    carrier = '"DHL, express"'  # quoted: a comma in a field
    rows = [f"S{i:04d},{i * 1.5:.1f},{1 + i % 3},{'' if i % 4 == 0 else carrier},{i % 2}" for i in range(1, 41)]
    rows.append("S9999,heavy,1,,0")  # not a number: quarantined with its reason, the gate still passes
    return "shipment_id,weight_kg,parcels,carrier,late\n" + "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def adopted(tmp_path_factory) -> dict[str, Any]:
    repo = repository_copy(tmp_path_factory.mktemp("adopted") / "repo")
    assert not (repo / "contracts" / "warehouse").exists()
    (repo / "contracts" / "warehouse").mkdir()
    (repo / "contracts" / "warehouse" / "shipments.yaml").write_text(CONTRACT)
    data = repo / "my-data" / "warehouse" / "shipments"
    data.mkdir(parents=True)
    (data / "shipments-2026-12-01.csv").write_text(shipments_file())
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20,22,24", "CDK_DISABLE_VERSION_CHECK": "1"}
    synth = subprocess.run(
        ["node_modules/.bin/cdk", "synth", "--quiet", "-c", f"branch={BRANCH}"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert synth.returncode == 0, synth.stderr[-3000:]
    pipeline = subprocess.run(
        ["make", "pipeline", f"DATA={repo / 'my-data'}"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert pipeline.returncode == 0, pipeline.stdout[-2000:] + pipeline.stderr[-3000:]
    out = repo / "build" / "pipeline-run"
    return {
        "repo": repo,
        "etl": json.loads((repo / "cdk.out" / "dataplat-add-shipments-etl.template.json").read_text()),
        "cdk_out": repo / "cdk.out",
        "report": json.loads((out / "report.json").read_text()),
        "catalog": json.loads((out / "catalog.json").read_text()),
        "stdout": pipeline.stdout,
    }


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r["Properties"] for lid, r in template["Resources"].items() if r["Type"] == kind}


def test_the_functions_and_jobs_route_the_new_tables_files(adopted) -> None:
    """Ingest, validate, gate and promote pick a file's contract by its key's dataset/table out of the contracts
    bundled with them; the jobs out of `--contracts`: the new table is in both."""
    jobs = of_type(adopted["etl"], "AWS::Glue::Job")
    assert len(jobs) == 2
    for job in jobs.values():
        names = [f"{c['dataset']}/{c['table']}" for c in json.loads(job["DefaultArguments"]["--contracts"])]
        assert "warehouse/shipments" in names
    bundled = list(adopted["cdk_out"].glob("asset.*/contracts/warehouse/shipments.json"))
    assert bundled, "the functions' code bundles the new contract"
    assert json.loads(bundled[0].read_text())["key"] == ["shipment_id"]


def test_a_failed_gate_of_the_new_table_alarms(adopted) -> None:
    alarms = [
        a
        for a in of_type(adopted["etl"], "AWS::CloudWatch::Alarm").values()
        if a.get("MetricName") == "BatchesFailed"
        and {"Name": "table", "Value": "warehouse/shipments"} in a.get("Dimensions", [])
    ]
    assert len(alarms) == 1 and alarms[0]["AlarmActions"], "an alarm of its own, wired to the topic"


def test_the_new_tables_curated_data_is_catalogued(adopted) -> None:
    tables = {t["TableInput"]["Name"]: t["TableInput"] for t in of_type(adopted["etl"], "AWS::Glue::Table").values()}
    table = tables["warehouse_shipments"]
    assert [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]] == [
        ("shipment_id", "string"),
        ("weight_kg", "double"),
        ("parcels", "bigint"),
        ("carrier", "string"),
        ("late", "bigint"),
        ("created_at", "timestamp"),
        ("source_file", "string"),
    ]


def test_make_pipeline_takes_the_new_tables_file_to_curated_and_the_catalog(adopted) -> None:
    (report,) = adopted["report"]
    assert report["file"] == "warehouse/shipments/shipments-2026-12-01.csv"
    assert (report["rows_in"], report["rows_written"], report["rows_quarantined"], report["gate"]) == (
        41,
        40,
        1,
        "passed",
    ), report["reasons"]
    assert any("weight_kg: not a number" in reason for reason in report["reasons"])
    table = adopted["catalog"]["warehouse_shipments"]
    assert table["contract"] == "warehouse/shipments"
    assert 1 <= len(table["partitions"]) <= 4, "cut into at most its 4 buckets"
    curated = adopted["repo"] / "build" / "pipeline-run" / "curated"
    for location in table["partitions"].values():
        assert list((curated / location.removeprefix("s3://curated/")).glob("*.parquet")), location
