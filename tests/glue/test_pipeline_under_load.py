"""Proof under load (issue 18, item 8): the local pipeline (scripts/run_pipeline_local.py's LocalPipeline: the
functions' code on moto, the jobs' on local Spark) driven in rounds, with a burst of files, duplicate events,
a name landed twice before ingest, a late file of older data, a crash between raw_to_staging and the gate, a
batch that fails the gate when run again after it was promoted, and a duplicate event after promotion.
Afterwards every landed version is in the ledger exactly once, each file's rows in = written + quarantined,
and curated is what one build from scratch over the batches passed now gives."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from pipeline.sample_data import prices_contract

CONTRACT = prices_contract(quality={"min_rows": 1, "max_rejected_fraction": 0.5})
BURST = 14
SKUS = 40


def extract(rng: random.Random, rows: int, seq_range: tuple[int, int], bad: int = 0) -> bytes:
    """A change extract: rows at versions in `seq_range`, inserts, updates and deletes; `bad` rows with a price
    that is no number (quarantined with their reason)."""
    lines = ["sku,seq,price,op"]
    for _ in range(rows):
        lines.append(
            f"S{rng.randrange(SKUS):03d},{rng.randrange(*seq_range)},{rng.randrange(1, 999)}.5,{rng.choice('IUUUD')}"
        )
    lines += [f"S{rng.randrange(SKUS):03d},{rng.randrange(*seq_range)},n/a,U" for _ in range(bad)]
    return ("\n".join(lines) + "\n").encode()


def land(pipeline: Any, name: str, body: bytes) -> None:
    pipeline.s3.put_object(Bucket="landing", Key=f"shop/prices/{name}", Body=body)


def stage_and_gate(pipeline: Any, raw_keys: list[str], *, crash_before_gate: set[str] = frozenset()) -> None:
    for key in raw_keys:
        pipeline.stage(key)
    for key in raw_keys:
        if key not in crash_before_gate:
            pipeline.gate(key)


@pytest.fixture(scope="module")
def loaded(spark, tmp_path_factory) -> dict[str, Any]:
    from scripts.run_pipeline_local import LocalPipeline

    rng = random.Random(18)  # noqa: S311 (test data, reproducible)
    out = tmp_path_factory.mktemp("load")
    landed = 0
    with mock_aws():
        pipeline = LocalPipeline(out, {CONTRACT.name: CONTRACT}, spark)
        builds = []

        # 1. a burst: every file at once, some with rows to quarantine; three events delivered twice
        for index in range(BURST):
            land(pipeline, f"extract-{index:02d}.csv", extract(rng, 25, (100, 900), bad=index % 3))
        landed += BURST
        burst = pipeline.ingest(limit=500)["moved"]
        assert len(burst) == BURST
        valid = [v["key"] for v in pipeline.validate(burst) if v["valid"]]
        stage_and_gate(pipeline, valid)
        stage_and_gate(pipeline, valid[:3])  # duplicate events: each re-run replaces the run before
        builds.append(pipeline.promote(CONTRACT))

        # 2. a name landed twice before ingest; a late file of older data; a crash before the gate; a promoted
        # batch that fails the gate when run again (a stricter contract), so the next build is from scratch
        land(pipeline, "extract-00.csv", extract(rng, 25, (900, 1000)))
        land(pipeline, "extract-00.csv", extract(rng, 25, (1000, 1100)))
        late = extract(rng, 30, (1, 50))
        land(pipeline, "late.csv", late)
        land(pipeline, "crash.csv", extract(rng, 25, (1100, 1200)))
        landed += 4
        second = pipeline.ingest(limit=500)["moved"]
        assert len(second) == 4, "both uploads of extract-00.csv are ingested, each under a key of its own"
        crashed = next(k for k in second if k.endswith("/crash.csv"))
        stage_and_gate(pipeline, second, crash_before_gate={crashed})
        with_rejects = next(k for k in burst if k.endswith("extract-01.csv"))  # 1 bad row of 26
        strict = replace(CONTRACT, quality=replace(CONTRACT.quality, max_rejected_fraction=0.0))
        pipeline.contracts[CONTRACT.name] = strict
        stage_and_gate(pipeline, [with_rejects])
        pipeline.contracts[CONTRACT.name] = CONTRACT
        builds.append(pipeline.promote(CONTRACT))

        # 3. the crashed file run again (a redrive), then a duplicate event of a promoted file
        stage_and_gate(pipeline, [crashed])
        builds.append(pipeline.promote(CONTRACT))
        stage_and_gate(pipeline, [second[0]])
        builds.append(pipeline.promote(CONTRACT))
        assert pipeline.promote(CONTRACT) is None, "nothing waits"

        from etl_spark.jobs import read_build, run_staging_to_curated
        from etl_spark.local import local_curated

        from pipeline.layout import passed_runs

        scratch = local_curated(out / "from-scratch")
        reference = run_staging_to_curated(
            spark,
            CONTRACT,
            staging_root=str(pipeline.mirror["staging"]),
            runs=passed_runs(pipeline.run_keys(CONTRACT)),
            curated=scratch,
            onto=None,
        )
        return {
            "pipeline": pipeline,
            "ledger": pipeline.ledger.items(),
            "landed": landed,
            "builds": builds,
            "reference": read_build(spark, CONTRACT, scratch, reference).collect(),
            "curated": read_build(spark, CONTRACT, local_curated(pipeline.mirror["curated"]), builds[-1][0]).collect(),
            "late": late,
            "failed_after_pass": with_rejects,
            "crashed": crashed,
        }


def test_every_landed_version_is_in_the_ledger_once_and_where_it_ended(loaded) -> None:
    ledger = loaded["ledger"]
    assert len(ledger) == loaded["landed"] == BURST + 4
    assert len({item["file"] for item in ledger}) == len(ledger)
    states = {item["file"]: item["state"] for item in ledger}
    assert states[loaded["failed_after_pass"]] == "promoted", "its state stays as far as it got"
    failed = next(i for i in ledger if i["file"] == loaded["failed_after_pass"])
    assert failed["gated_passed"] is False and failed["gated_failures"], "its last verdict, with the reason"
    assert states[loaded["crashed"]] == "promoted"
    assert set(states.values()) == {"promoted"}


def test_each_files_rows_in_are_its_rows_written_plus_quarantined(loaded) -> None:
    for item in loaded["ledger"]:
        assert item["gated_rows_in"] == item["gated_rows_written"] + item["gated_rows_rejected"], item["file"]
    assert sum(item["gated_rows_rejected"] for item in loaded["ledger"]) > 0, "the bad rows were quarantined"


def test_curated_is_what_one_build_from_scratch_over_the_passed_batches_gives(loaded) -> None:
    def rows(found: list) -> dict[str, tuple]:
        return {r["sku"]: (r["seq"], r["price"], r["source_file"], r["source_row"]) for r in found}

    assert rows(loaded["curated"]) == rows(loaded["reference"])
    assert loaded["curated"], "a table, not an empty one"
    sources = {r["source_file"].rsplit("/", 1)[-1] for r in loaded["curated"]}
    assert "late.csv" not in sources, "the late file's older versions overwrote nothing"
    assert not any(r["source_file"].endswith(loaded["failed_after_pass"]) for r in loaded["curated"])


def test_the_builds_were_incremental_but_where_a_promoted_batch_was_staged_again(loaded) -> None:
    made = [(build.number, build.from_scratch, len(runs)) for build, runs in loaded["builds"]]
    first, second, third, fourth = made
    assert first == (1, True, BURST)
    assert second[:2] == (2, True), "extract-01 passed, was promoted, then failed: from scratch"
    assert third == (3, False, 1), "the crashed file alone, onto build 2"
    assert fourth[:2] == (4, True), "a promoted batch staged again (a duplicate event): from scratch"
    ledger = {item["file"]: item for item in loaded["ledger"]}
    assert ledger[loaded["crashed"]]["promoted_build"] == 4, "recorded again by the build from scratch"
    assert json.loads(json.dumps(ledger[loaded["crashed"]]))["state"] == "promoted"


def test_the_load_tests_scenarios_happened(loaded) -> None:
    """Guards the scenario itself: a test of 'late data overwrites nothing' with no late key in curated, or
    of duplicates with none, would pass for nothing."""
    late_keys = {line.split(",")[0] for line in loaded["late"].decode().splitlines()[1:]}
    assert late_keys & {r["sku"] for r in loaded["curated"]}, "late keys exist in curated (from newer files)"
    two_uploads = [i["file"] for i in loaded["ledger"] if "extract-00" in i["file"]]
    assert len(two_uploads) == 3, two_uploads  # the burst's, then two uploads in one second
    assert Path(loaded["failed_after_pass"]).name == "extract-01.csv"
