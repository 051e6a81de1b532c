"""Curated builds on a local SparkSession: a build merges only what passed since the one before, and gives what
a build from scratch over every passed batch gives (deletes, versions and late files included); readers see
one whole build or the one before, never a partial one; old builds are removed, a kept one can be pinned."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from etl_spark import jobs
from etl_spark.jobs import CuratedCheckFailed, build_onto_current, promote, read_build, run_staging_to_curated
from etl_spark.local import local_curated
from etl_spark.transforms import staging_schema

from pipeline.builds import (
    Build,
    BuildConflict,
    current_build,
    folders_to_remove,
    held_runs,
    kept_build,
    pinned_folder,
    promoted_entries,
)
from pipeline.layout import build_number, parse_raw_key
from pipeline.ledger import Step
from pipeline.sample_data import prices_contract

CONTRACT = prices_contract()
Row = tuple[str, int, float, str | None]  # sku, seq, price, op


def stage_batch(spark, staging: Path, landed: datetime, name: str, rows: list[Row], run: str = "") -> str:
    """A passed run's staged Parquet, as raw_to_staging writes it; returns the run as passed_runs names it."""
    raw = parse_raw_key(f"shop/prices/created_at={landed:%Y%m%dT%H%M%SZ}/{name}")
    run = f"{raw.batch}/run={run or 'jr_' + name.replace('.', '_')}"
    source = f"s3://raw/{raw.key}"
    frame = spark.createDataFrame(
        [(sku, seq, price, op, landed, landed, source, None, line) for line, (sku, seq, price, op) in enumerate(rows)],
        staging_schema(CONTRACT),
    )
    frame.write.mode("overwrite").parquet(str(staging / run))
    return run


def build(spark, staging: Path, root: Path, runs: list[str], *, from_scratch: bool = False, contract=CONTRACT):
    return build_onto_current(
        spark, contract, staging_root=str(staging), runs=runs, curated=local_curated(root), from_scratch=from_scratch
    )


def table(spark, root: Path, number: int | None = None) -> dict[str, tuple]:
    """The rows a reader reads (the current build, or build `number`), by key."""
    store = local_curated(root)
    current = current_build(store.read_text, "shop", "prices")
    assert current is not None
    chosen = current if number is None else kept_build(store.read_text, current, pinned_folder(current, number))
    rows = read_build(spark, CONTRACT, store, chosen).collect()
    return {r["sku"]: (r["seq"], r["price"], r["source_file"], r["source_row"]) for r in rows}


def random_batches(seed: int, count: int) -> list[tuple[datetime, str, list[Row]]]:
    """Change extracts of 30 rows over 25 keys: inserts, updates and deletes at random versions, some landing
    late (older data after newer), two in one second."""
    rng = random.Random(seed)  # noqa: S311 (test data, reproducible)
    start = datetime(2026, 11, 1)
    batches = []
    for index in range(count):
        landed = start + timedelta(hours=index if index % 5 else index - 7)  # every fifth lands before others
        if index == 3:
            landed = batches[2][0]  # the same second as the batch before: told apart by name
        rows = [
            (f"sku-{rng.randrange(25):02d}", rng.randrange(100), float(rng.randrange(1000)), rng.choice("IUUD"))
            for _ in range(30)
        ]
        batches.append((landed, f"extract-{index:02d}.csv", rows))
    return batches


@pytest.mark.parametrize(
    ("seed", "extra"),
    [
        (7, {}),
        (11, {"partition": {"buckets": 4}}),
        (7, {"key": ["sku", "seq"], "partition": {"column": "seq"}}),
    ],
)
def test_builds_onto_each_other_give_what_one_build_from_scratch_gives(
    spark, tmp_path: Path, seed: int, extra: dict
) -> None:
    """Whatever the partitioning: one bucket (the whole table rewritten each build), key hash buckets, or a
    key column's value (here (sku, seq) keys by seq: up to 100 partitions)."""
    contract = prices_contract(**extra)
    staging = tmp_path / "staging"
    batches = random_batches(seed, 12)
    runs = [stage_batch(spark, staging, *batch) for batch in batches]
    step = 0
    for size in (3, 1, 4, 2, 2):  # five promotions, each of what passed since the one before
        made = build(spark, staging, tmp_path / "incremental", runs[step : step + size], contract=contract)
        step += size
        assert (made.number, made.merged) == (5 if step == 12 else made.number, size)
    assert made.number == 5 and not made.from_scratch
    scratch = build(spark, staging, tmp_path / "scratch", runs, contract=contract)
    versions = len({seq for _, _, rows in batches for _, seq, _, _ in rows})
    expected = versions if "key" in extra else extra.get("partition", {"buckets": 1})["buckets"]
    assert made.partitions is not None and len(made.partitions) == expected, "every partition the batches touch"
    assert scratch.from_scratch and scratch.number == 1

    def live(root: Path) -> dict[tuple, tuple]:
        store = local_curated(root)
        rows = read_build(spark, contract, store, current_build(store.read_text, "shop", "prices")).collect()
        return {
            tuple(r[k] for k in contract.key): (r["seq"], r["price"], r["source_file"], r["source_row"]) for r in rows
        }

    assert live(tmp_path / "incremental") == live(tmp_path / "scratch")
    assert made.rows == scratch.rows == len(live(tmp_path / "scratch"))
    tombstones = spark.read.parquet(
        *[str(tmp_path / "incremental" / prefix) for prefix in made.deleted_prefixes(made.partitions)]
    )
    deleted = {tuple(r[k] for k in contract.key) for r in tombstones.collect()}
    assert deleted and not deleted & set(live(tmp_path / "incremental")), "a key is live or deleted"
    assert tombstones.columns == ["sku", "seq", "created_at", "source_file", "source_row"], "its order, no value"


def test_a_delete_and_a_newer_version_hold_against_older_rows_landing_in_a_later_build(spark, tmp_path: Path) -> None:
    staging, root = tmp_path / "staging", tmp_path / "curated"
    day = datetime(2026, 11, 1)
    first = stage_batch(spark, staging, day, "a.csv", [("kept", 7, 70.0, "U"), ("gone", 9, 90.0, "D")])
    build(spark, staging, root, [first])
    assert set(table(spark, root)) == {"kept"}
    late = stage_batch(
        spark,
        staging,
        day + timedelta(days=1),
        "late.csv",
        [("kept", 6, 60.0, "U"), ("gone", 8, 80.0, "I"), ("new", 1, 10.0, None)],
    )
    build(spark, staging, root, [late])
    assert {k: v[:2] for k, v in table(spark, root).items()} == {"kept": (7, 70.0), "new": (1, 10.0)}, (
        "an older version of a kept key changes nothing; one of a key deleted at a newer version does not bring it back"
    )
    newer = stage_batch(spark, staging, day + timedelta(days=2), "newer.csv", [("gone", 10, 100.0, "I")])
    build(spark, staging, root, [newer])
    assert table(spark, root)["gone"][:2] == (10, 100.0), "a version newer than the delete brings it back"


def test_a_build_that_fails_its_checks_or_dies_before_its_switch_leaves_readers_the_build_before(
    spark, tmp_path: Path, monkeypatch
) -> None:
    from dataclasses import replace

    staging, root = tmp_path / "staging", tmp_path / "curated"
    day = datetime(2026, 11, 1)
    first = build(
        spark, staging, root, [stage_batch(spark, staging, day, "a.csv", [("x", 1, 1.0, None), ("z", 1, 1.0, None)])]
    )
    before = table(spark, root)
    second = stage_batch(spark, staging, day + timedelta(days=1), "b.csv", [("x", 2, 3.0, "D")])
    strict = replace(CONTRACT, quality=replace(CONTRACT.quality, max_row_drop_fraction=0.0))
    with pytest.raises(
        CuratedCheckFailed, match=r"build 2 of shop/prices was not made current: RowCount >= 1 x .*1 after 2"
    ):
        build(spark, staging, root, [second], contract=strict)
    assert table(spark, root) == before and current_build(local_curated(root).read_text, "shop", "prices") == first

    store = local_curated(root)

    def crash(key: str, text: str, expected: str | None) -> None:
        raise OSError("the job died before its switch")

    with pytest.raises(OSError, match="before its switch"):
        run_staging_to_curated(
            spark,
            CONTRACT,
            staging_root=str(staging),
            runs=[second],
            curated=replace(store, swap=crash),
            onto=first,
            expected=store.read_text("shop/prices/_CURRENT.json"),
        )
    (dead,) = [p for p in (root / "shop" / "prices").iterdir() if build_number(p.name) == 2]
    assert dead.is_dir() and table(spark, root) == before, "written in full, never made current"
    retried = build(spark, staging, root, [second])
    assert retried.number == 3 and set(table(spark, root)) == {"z"}, "the retry's build, numbered after the dead one"
    assert not dead.exists(), "the dead attempt's folder is removed once a later build is current"


def test_of_two_promotions_of_a_table_at_once_one_is_made_current_and_the_others_build_is_removed(
    spark, tmp_path: Path
) -> None:
    staging, root = tmp_path / "staging", tmp_path / "curated"
    day = datetime(2026, 11, 1)
    first_run = stage_batch(spark, staging, day, "a.csv", [("x", 1, 1.0, None)])
    first = build(spark, staging, root, [first_run])
    store = local_curated(root)
    pointer = store.read_text("shop/prices/_CURRENT.json")
    b = stage_batch(spark, staging, day + timedelta(days=1), "b.csv", [("y", 1, 2.0, None)])
    c = stage_batch(spark, staging, day + timedelta(days=2), "c.csv", [("w", 1, 3.0, None)])

    def promotion(runs: list[str]):
        return run_staging_to_curated(
            spark, CONTRACT, staging_root=str(staging), runs=runs, curated=store, onto=first, expected=pointer
        )

    winner = promotion([b])  # both started from build 1; this one switched first
    with pytest.raises(BuildConflict, match="another promotion made its build current"):
        promotion([b, c])  # it listed staging later: it held c as well
    assert current_build(store.read_text, "shop", "prices") == winner and set(table(spark, root)) == {"x", "y"}
    assert held_runs(store.read_text, winner) == sorted([first_run, b]), "the loser's manifest counts for nothing"
    passes = [f"_runs/{run}/{name}" for run in (first_run, b, c) for name in ("profile.json", "_GATE_PASSED.json")]
    third, runs = promote(spark, CONTRACT, marker_keys=passes, staging_root=str(staging), curated=store)
    assert runs == [c] and not third.from_scratch, "c waits still, and is taken in by the next build"
    assert set(table(spark, root)) == {"x", "y", "w"}
    folders = sorted(p.name for p in (root / "shop" / "prices").iterdir() if p.name.startswith("build="))
    assert folders == sorted([first.folder, winner.folder, third.folder]), "the loser's folder is gone"


def test_a_contract_change_makes_the_next_build_one_from_scratch(spark, tmp_path: Path) -> None:
    from dataclasses import replace

    staging, root = tmp_path / "staging", tmp_path / "curated"
    first = stage_batch(spark, staging, datetime(2026, 11, 1), "a.csv", [("x", 1, 1.0, None)])

    def promoted(contract):
        passes = [f"_runs/{first}/{name}" for name in ("profile.json", "_GATE_PASSED.json")]
        return promote(spark, contract, marker_keys=passes, staging_root=str(staging), curated=local_curated(root))

    assert promoted(CONTRACT)[0].from_scratch
    assert promoted(CONTRACT) is None, "nothing waits"
    no_deletes = replace(CONTRACT, delete_when=None)
    rebuilt, runs = promoted(no_deletes)
    assert rebuilt.from_scratch and rebuilt.number == 2 and runs == [first]
    assert promoted(no_deletes) is None


def test_old_builds_are_removed_and_a_kept_one_can_be_pinned(spark, tmp_path: Path, monkeypatch) -> None:
    from training.train import TrainingDataError, load_features

    monkeypatch.setattr(jobs, "KEEP_BUILDS", 2)
    staging, root = tmp_path / "staging", tmp_path / "curated"
    for day in range(5):
        run = stage_batch(spark, staging, datetime(2026, 11, 1 + day), f"d{day}.csv", [("x", day, float(day), None)])
        build(spark, staging, root, [run])
    table_folder = root / "shop" / "prices"
    kept = sorted(p.name for p in table_folder.iterdir() if p.name.startswith("build="))
    assert [build_number(f) for f in kept] == [3, 4, 5], "the current build and the 2 before it"
    assert sorted(p.name for p in (table_folder / "_deleted").iterdir()) == kept

    frame, source = load_features(table_folder)
    assert source.endswith("build 5") and frame["seq"].tolist() == [4]
    pinned, source = load_features(table_folder, build=3)
    assert source.endswith("build 3") and pinned["seq"].tolist() == [2]
    with pytest.raises(TrainingDataError, match=r"build 1 of .* is not kept \(the current build is 5"):
        load_features(table_folder, build=1)

    # in AWS the training task reads the same table from the curated bucket: the same builds, the same rows
    import boto3
    from moto import mock_aws

    from tests.lambdas.harness import AWS_TEST_ENVIRONMENT

    for key, value in AWS_TEST_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="curated", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        for file in (p for p in table_folder.rglob("*") if p.is_file()):
            s3.upload_file(str(file), "curated", f"shop/prices/{file.relative_to(table_folder).as_posix()}")
        frame, source = load_features("s3://curated/shop/prices")
        assert source == "s3://curated/shop/prices build 5" and frame["seq"].tolist() == [4]
        pinned, source = load_features("s3://curated/shop/prices/", build=3)
        assert source == "s3://curated/shop/prices build 3" and pinned["seq"].tolist() == [2]
        with pytest.raises(TrainingDataError, match=r"build 1 of .* is not kept \(the current build is 5"):
            load_features("s3://curated/shop/prices", build=1)
        with pytest.raises(TrainingDataError, match=r"^s3://curated/shop/nothing is not a curated table's folder"):
            load_features("s3://curated/shop/nothing")


def test_which_build_folders_a_promotion_removes() -> None:
    current = Build("shop", "prices", 5, 1, "t", folder="build=000005-e", kept=["build=000004-d", "build=000003-c"])
    folders = [f"build=00000{n}-{c}" for n, c in ((1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "e"), (5, "x"), (6, "f"))]
    assert folders_to_remove([*folders, "part-0.parquet"], current) == [
        "build=000001-a",
        "build=000002-b",
        "build=000005-x",  # a build 5 never made current
    ], "build 6 (a promotion still running, or dead) is left to the promotion that passes it"


def test_the_ledger_records_each_file_a_build_took_in_under_its_raw_key() -> None:
    made = Build("shop", "prices", 4, rows=10, built_at="2026-12-03T00:00:00+00:00", folder="build=000004-a", merged=2)
    runs = [
        "shop/prices/created_at=20261101T000000Z/file=a.csv/run=jr_1",
        "shop/prices/created_at=20261101T000000Z/file=b-v1a2b3c4d.csv.gz",  # a pass from before runs had folders
    ]
    entries = promoted_entries(made, runs)
    assert [(e.file_id, e.step, dict(e.fields)) for e in entries] == [
        ("shop/prices/created_at=20261101T000000Z/a.csv", Step.PROMOTED, {"build": 4}),
        ("shop/prices/created_at=20261101T000000Z/b-v1a2b3c4d.csv.gz", Step.PROMOTED, {"build": 4}),
    ]
    assert Build.from_json(made.to_json(), "x") == made
