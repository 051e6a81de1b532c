"""Partitioned curated builds on a local SparkSession: a build rewrites only the partitions its batches touch,
the pointer names each partition's folder, checks combine the partitions' figures, and a partition no kept
build reads is removed (the builds themselves: test_builds.py, whose helpers these use)."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from etl_spark import jobs
from etl_spark.jobs import CuratedCheckFailed, promote
from etl_spark.local import local_curated
from etl_spark.transforms import partition_token

from pipeline.builds import Partition, combined_moments, table_moments
from pipeline.gate import Moments
from pipeline.sample_data import prices_contract
from tests.glue.test_builds import CONTRACT, Row, build, stage_batch, table


def tokens_of(spark, contract, keys: list[tuple]) -> list[str]:
    """The partition token of each key (its key columns' values), as a build computes it."""
    names = ", ".join(f"{k} {'bigint' if contract.column(k).type == 'integer' else 'string'}" for k in contract.key)
    return [r[0] for r in spark.createDataFrame(keys, names).select(partition_token(contract)).collect()]


def test_a_partition_is_named_by_a_plain_value_or_its_hash_and_buckets_by_number(spark) -> None:
    by_sku = prices_contract(key=["sku", "seq"], partition={"column": "sku"})
    odd = ["a/b", "../up", ".hidden", "_hidden", "x" * 64, "caf\u00e9", "a b", "abc\n"]
    plain = ["eu-west-1", "S00042", "x" * 63]
    tokens = tokens_of(spark, by_sku, [(v, 1) for v in [*plain, *odd]])
    assert tokens[:3] == ["veu-west-1", "vS00042", "v" + "x" * 63], "a plain value names its folder"
    assert all(re.fullmatch("h[0-9a-f]{16}", t) for t in tokens[3:]), tokens[3:]
    assert len(set(tokens[3:])) == len(odd), "no two values meet"
    by_seq = prices_contract(key=["sku", "seq"], partition={"column": "seq"})
    day, negative = tokens_of(spark, by_seq, [("a", 20240101), ("a", -5)])
    assert day == "v20240101" and re.fullmatch("h[0-9a-f]{16}", negative), "a folder name starts with a letter or digit"
    buckets = prices_contract(partition={"buckets": 16})
    keys = [(f"S{n:05d}",) for n in range(200)]
    spread = tokens_of(spark, buckets, keys)
    assert set(spread) == {f"b{n:02d}" for n in range(16)}, "zero-padded, every bucket used by 200 keys"
    assert tokens_of(spark, buckets, keys) == spread, "a key's bucket never changes"


def test_a_build_rewrites_only_the_partitions_its_batches_touch(spark, tmp_path: Path) -> None:
    contract = prices_contract(partition={"buckets": 8})
    staging, root = tmp_path / "staging", tmp_path / "curated"
    day = datetime(2026, 11, 1)
    rows = [(f"sku-{i:02d}", 1, float(i), None) for i in range(40)]
    first = build(spark, staging, root, [stage_batch(spark, staging, day, "a.csv", rows)], contract=contract)
    assert first.partitions is not None and sorted(first.partitions) == [f"b{n}" for n in range(8)]
    change = [("sku-03", 2, 33.0, None), ("sku-99", 1, 9.0, None)]
    second = build(
        spark, staging, root, [stage_batch(spark, staging, day + timedelta(days=1), "b.csv", change)], contract=contract
    )
    assert second.partitions is not None
    touched = set(tokens_of(spark, contract, [("sku-03",), ("sku-99",)]))
    assert {t for t, p in second.partitions.items() if p.folder == second.folder} == touched
    assert {t: p for t, p in second.partitions.items() if t not in touched} == {
        t: p for t, p in first.partitions.items() if t not in touched
    }, "the untouched partitions as build 1 left them"
    written = sorted(d.name for d in (root / "shop" / "prices" / second.folder).iterdir() if d.is_dir())
    assert written == [f"partition={t}" for t in sorted(touched)], "nothing else rewritten"
    assert second.superseded == {t: first.folder for t in touched}
    expected = {sku: (seq, price) for sku, seq, price, _ in [*rows, *change]}
    assert {k: v[:2] for k, v in table(spark, root).items()} == expected and second.rows == 41


def test_partitions_nothing_reads_are_removed_and_a_kept_build_reads_across_folders(
    spark, tmp_path: Path, monkeypatch
) -> None:
    from training.train import load_features

    monkeypatch.setattr(jobs, "KEEP_BUILDS", 2)
    contract = prices_contract(partition={"buckets": 4})
    staging, root = tmp_path / "staging", tmp_path / "curated"
    day = datetime(2026, 11, 1)
    rows = [(f"k{i:02d}", 1, float(i), None) for i in range(20)]
    made = [build(spark, staging, root, [stage_batch(spark, staging, day, "a.csv", rows)], contract=contract)]
    for n in range(2, 6):  # builds 2-5 each change k00 alone: one partition each
        run = stage_batch(spark, staging, day + timedelta(days=n), f"d{n}.csv", [("k00", n, 100.0 * n, None)])
        made.append(build(spark, staging, root, [run], contract=contract))
    (k00,) = tokens_of(spark, contract, [("k00",)])
    folder = root / "shop" / "prices"
    present = sorted(p.name for p in folder.iterdir() if p.name.startswith("build="))
    assert present == [made[0].folder, made[2].folder, made[3].folder, made[4].folder], (
        "build 2 is read by nothing; build 1 still holds the partitions no later build rewrote"
    )
    first_partitions = sorted(p.name for p in (folder / made[0].folder).iterdir() if p.is_dir())
    assert first_partitions == sorted(f"partition={t}" for t in made[0].partitions or {} if t != k00)
    assert not (folder / "_deleted" / made[0].folder / f"partition={k00}").exists()
    frame, source = load_features(folder, build=3)  # k00 from build 3's folder, the rest from build 1's
    assert source.endswith("build 3") and len(frame) == 20
    assert frame.set_index("sku").loc["k00", "seq"] == 3 and frame.set_index("sku").loc["k07", "seq"] == 1
    assert table(spark, root)["k00"][:2] == (5, 500.0)


def test_a_table_built_before_partitions_is_read_and_built_onto(spark, tmp_path: Path) -> None:
    """A build as the code before partitions left it: its rows at its folder's root, a pointer and a manifest
    without partitions."""
    import json
    import shutil

    from training.train import load_features

    staging, root = tmp_path / "staging", tmp_path / "curated"
    day = datetime(2026, 11, 1)
    runs = [stage_batch(spark, staging, day, "a.csv", [("x", 1, 1.0, None), ("y", 1, 2.0, "D")])]
    first = build(spark, staging, root, runs)
    table_folder = root / "shop" / "prices"
    for base in (table_folder, table_folder / "_deleted"):
        (only,) = (base / first.folder).glob("partition=*")
        for part in only.iterdir():
            shutil.move(part, base / first.folder / part.name)
        only.rmdir()
    legacy = {k: v for k, v in json.loads(first.to_json()).items() if k not in ("partitions", "superseded")}
    (table_folder / "_CURRENT.json").write_text(json.dumps(legacy), encoding="utf-8")
    (table_folder / first.folder / "_manifest.json").write_text(json.dumps({"runs": runs}), encoding="utf-8")
    assert load_features(table_folder)[0]["sku"].tolist() == ["x"]
    later = stage_batch(spark, staging, day + timedelta(days=1), "b.csv", [("y", 2, 3.0, None), ("z", 1, 4.0, None)])
    expected = {"x": (1, 1.0), "y": (2, 3.0), "z": (1, 4.0)}

    upgraded = tmp_path / "upgraded"  # as it happens: the pointer's fingerprint is from before partitions
    shutil.copytree(root, upgraded)
    pointer = upgraded / "shop" / "prices" / "_CURRENT.json"
    pointer.write_text(json.dumps(legacy | {"contract": "0123456789abcdef"}), encoding="utf-8")
    passes = [f"_runs/{run}/{name}" for run in (*runs, later) for name in ("profile.json", "_GATE_PASSED.json")]
    rebuilt, taken = promote(
        spark, CONTRACT, marker_keys=passes, staging_root=str(staging), curated=local_curated(upgraded)
    )
    assert rebuilt.from_scratch and sorted(taken) == sorted([*runs, later]) and rebuilt.partitions is not None
    assert {k: v[:2] for k, v in table(spark, upgraded).items()} == expected

    second = build(spark, staging, root, [later])  # a build onto it by hand: its folder read whole
    assert not second.from_scratch and second.partitions is not None
    assert {k: v[:2] for k, v in table(spark, root).items()} == expected
    pinned, _ = load_features(table_folder, build=1)
    assert pinned["sku"].tolist() == ["x"], "the old build, still kept, reads as it did"


@pytest.mark.parametrize("offset", [0.0, 1e9])
def test_moments_combined_over_partitions_are_the_tables(offset: float) -> None:
    import statistics

    rng = random.Random(3)  # noqa: S311 (test data, reproducible)
    parts = [[offset + rng.gauss(50, 5) for _ in range(n)] for n in (7, 1, 0, 30, 2)]
    figures = [
        [float(len(p)), statistics.fmean(p) if p else 0.0, sum((v - statistics.fmean(p)) ** 2 for v in p) if p else 0]
        for p in parts
    ]
    values = [v for p in parts for v in p]
    combined = combined_moments(figures)
    assert combined.mean == pytest.approx(statistics.fmean(values), rel=1e-12)
    assert combined.sd == pytest.approx(statistics.stdev(values), rel=1e-6)
    assert combined_moments([[0.0, 0.0, 0.0]]) == Moments(None, None)
    assert combined_moments([[1.0, 4.0, 0.0]]) == Moments(4.0, None), "one value: no spread"
    partitions = {"b0": Partition("f", 7, moments={"price": figures[0]}), "b1": Partition("f", 1)}
    assert table_moments(partitions, ["price"]) == {"price": None}, "b1 has no figures of price: to be read"
    empty = {"b0": Partition("f", 7, moments={"price": figures[0]}), "b1": Partition("f", 0)}
    assert table_moments(empty, ["price"]) == {"price": combined_moments(figures[:1])}, "b1 has no rows"


def one_key_per_bucket(spark, contract, buckets: int) -> list[str]:
    """A key of each bucket, in bucket order."""
    candidates = [f"k{n:03d}" for n in range(100)]
    found: dict[str, str] = {}
    for key, token in zip(candidates, tokens_of(spark, contract, [(k,) for k in candidates]), strict=True):
        found.setdefault(token, key)
    assert len(found) == buckets
    return [found[token] for token in sorted(found)]


def test_a_partition_an_older_kept_build_reads_stays_until_no_kept_build_reads_it(
    spark, tmp_path: Path, monkeypatch
) -> None:
    """Two buckets A and B, two builds kept behind the current one. Build 2 rewrites A, 3 B, 4 A: build 2 is
    kept and reads B from build 1's folder, which neither build 4 nor the kept folders name."""
    from training.train import load_features

    monkeypatch.setattr(jobs, "KEEP_BUILDS", 2)
    contract = prices_contract(partition={"buckets": 2})
    a, b = one_key_per_bucket(spark, contract, 2)
    staging, root = tmp_path / "staging", tmp_path / "curated"
    day = datetime(2026, 11, 1)

    def promoted(n: int, rows: list[Row]):
        return build(
            spark,
            staging,
            root,
            [stage_batch(spark, staging, day + timedelta(days=n), f"d{n}.csv", rows)],
            contract=contract,
        )

    made = [promoted(1, [(a, 1, 1.0, None), (b, 1, 1.0, None)])]
    for n, key in ((2, a), (3, b), (4, a)):
        made.append(promoted(n, [(key, n, float(n), None)]))
    folder = root / "shop" / "prices"
    pinned, _ = load_features(folder, build=2)
    assert dict(zip(pinned["sku"], pinned["seq"], strict=True)) == {a: 2, b: 1}, "build 2 reads B from build 1's folder"
    assert not (folder / made[0].folder / "partition=b0").exists(), "A of build 1: no kept build reads it"
    made.append(promoted(5, [(b, 5, 5.0, None)]))
    assert not (folder / made[0].folder).exists(), "once build 2 is no longer kept, build 1's folder goes"
    assert (folder / made[1].folder).exists(), "build 3 (kept) reads A from build 2's folder"
    pinned, _ = load_features(folder, build=3)
    assert dict(zip(pinned["sku"], pinned["seq"], strict=True)) == {a: 2, b: 3}


def test_a_build_onto_one_cut_another_way_is_refused_and_a_promotion_rebuilds_from_scratch(
    spark, tmp_path: Path
) -> None:
    from pipeline.builds import BuildError

    staging, root = tmp_path / "staging", tmp_path / "curated"
    run = stage_batch(spark, staging, datetime(2026, 11, 1), "a.csv", [("x", 1, 1.0, None), ("y", 1, 2.0, None)])
    build(spark, staging, root, [run], contract=prices_contract(partition={"buckets": 2}))
    recut = prices_contract(partition={"buckets": 4})
    with pytest.raises(BuildError, match=r"partitioned as \{'buckets': 2\}, the contract now says \{'buckets': 4\}"):
        build(spark, staging, root, [run], contract=recut)
    passes = [f"_runs/{run}/{name}" for name in ("profile.json", "_GATE_PASSED.json")]
    rebuilt, _ = promote(spark, recut, marker_keys=passes, staging_root=str(staging), curated=local_curated(root))
    assert rebuilt.from_scratch and rebuilt.partitioning == {"buckets": 4} and set(table(spark, root)) == {"x", "y"}


def test_the_mean_shift_check_holds_over_partitions_and_from_the_build_a_column_is_first_checked(
    spark, tmp_path: Path
) -> None:
    """Build 1 is made with no mean checked (no figures recorded); build 2's contract checks price: the
    untouched partitions' figures and the previous build's are read from their rows. Deleted keys' values
    count for nothing."""
    import statistics
    from dataclasses import replace

    plain = prices_contract(partition={"buckets": 4})

    def checking(limit: float):
        return replace(plain, quality=replace(plain.quality, max_mean_shift={"price": limit}))

    staging, root = tmp_path / "staging", tmp_path / "curated"
    day = datetime(2026, 11, 1)
    old = {f"k{n:02d}": float(n) for n in range(20)}
    first = [(k, 1, v, None) for k, v in old.items()] + [("gone", 2, 1000.0, "D")]
    build(spark, staging, root, [stage_batch(spark, staging, day, "a.csv", first)], contract=plain)
    raised = {f"k{n:02d}": float(n) + 60 for n in range(5)}
    deleting = [(k, 2, v, None) for k, v in raised.items()] + [("k19", 2, 1000.0, "D")]  # a delete's value
    second = stage_batch(spark, staging, day + timedelta(days=1), "b.csv", deleting)
    new = {k: v for k, v in (old | raised).items() if k != "k19"}
    shift = abs(statistics.fmean(new.values()) - statistics.fmean(old.values())) / statistics.stdev(old.values())
    with pytest.raises(CuratedCheckFailed, match=rf'Mean "price" within 1 sd .*\(observed {shift:.2f} sd\)'):
        build(spark, staging, root, [second], contract=checking(1.0))
    made = build(spark, staging, root, [second], contract=checking(3.0))
    assert made.partitions is not None and all("price" in p.moments for p in made.partitions.values() if p.rows)
    back = {f"k{n:02d}": float(n) for n in range(5)}
    third = stage_batch(spark, staging, day + timedelta(days=2), "c.csv", [(k, 3, v, None) for k, v in back.items()])
    restored = {k: old[k] for k in new}
    again = abs(statistics.fmean(restored.values()) - statistics.fmean(new.values())) / statistics.stdev(new.values())
    with pytest.raises(CuratedCheckFailed, match=rf"\(observed {again:.2f} sd\)"):  # from the recorded figures
        build(spark, staging, root, [third], contract=checking(0.1))


def test_a_sensitive_columns_figures_are_never_recorded_and_its_mean_is_still_checked(spark, tmp_path: Path) -> None:
    from dataclasses import replace

    base = prices_contract(partition={"buckets": 4})
    columns = tuple(replace(c, sensitive=True) if c.name == "price" else c for c in base.columns)
    contract = replace(base, columns=columns, quality=replace(base.quality, max_mean_shift={"price": 0.5}))
    staging, root = tmp_path / "staging", tmp_path / "curated"
    day = datetime(2026, 11, 1)
    rows = [(f"k{n:02d}", 1, float(n), None) for n in range(20)]
    first = build(spark, staging, root, [stage_batch(spark, staging, day, "a.csv", rows)], contract=contract)
    assert first.partitions is not None and not any(p.moments for p in first.partitions.values())
    assert '"price"' not in (root / "shop" / "prices" / "_CURRENT.json").read_text(encoding="utf-8")
    jump = stage_batch(spark, staging, day + timedelta(days=1), "b.csv", [("k00", 2, 500.0, None)])
    with pytest.raises(CuratedCheckFailed, match=r'Mean "price" within 0.5 sd .*\(observed figures withheld\)'):
        build(spark, staging, root, [jump], contract=contract)
