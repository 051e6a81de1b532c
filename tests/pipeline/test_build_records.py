"""pipeline/builds.py without Spark: what a build pointer says (its folders, partitions and references), how
it is read back, what a build's checks combine, which builds and partitions a promotion keeps or removes, and
the fingerprint that makes a build from scratch. The Spark tests (tests/glue/test_builds.py,
test_partitions.py) write and read real builds with the same functions; these are fast, for mutation testing."""

from __future__ import annotations

import dataclasses
import json
import statistics

import pytest

from pipeline.builds import (
    KEEP_BUILDS,
    MANIFEST,
    Build,
    BuildError,
    Partition,
    build_fingerprint,
    combined_moments,
    current_build,
    current_pointer,
    folders_to_remove,
    held_runs,
    kept_build,
    manifest,
    next_number,
    partitions_to_remove,
    pinned_folder,
    promoted_entries,
    table_moments,
)
from pipeline.contract import DeleteWhen, Partitioning, load_contracts
from pipeline.gate import Moments
from pipeline.ledger import Entry, Step

F1, F2, F3, F4 = "build=000001-aaaa", "build=000002-bbbb", "build=000003-cccc", "build=000004-dddd"


def build(folder: str = F3, number: int = 3, rows: int = 10, **fields) -> Build:
    return Build("ds", "tb", number, rows, "2026-12-04T00:00:00+00:00", folder, **fields)


def partitioned(**fields) -> Build:
    """Build 3, whose partition b0 it rewrote, b1 it kept from build 2 (with deleted keys), b2 empty."""
    parts = {
        "b1": Partition(F2, 4, deleted=2, moments={"x": [4.0, 1.0, 0.5]}),
        "b0": Partition(F3, 6, moments={"x": [6.0, 2.0, 1.0]}),
        "b2": Partition(F3, 0, deleted=1),
    }
    return build(partitions=parts, **fields)


# ---- the pointer


def test_a_builds_folders_are_under_its_tables() -> None:
    old = build()
    assert (old.prefix, old.manifest_key, old.deleted_prefix) == (
        f"ds/tb/{F3}/",
        f"ds/tb/{F3}/{MANIFEST}",
        f"ds/tb/_deleted/{F3}/",
    )
    assert MANIFEST == "_manifest.json"
    assert old.live_folders() == [F3] and old.live_prefixes() == [f"ds/tb/{F3}/"], "before partitions: its folder"
    assert old.deleted_prefixes(["b0"]) == [f"ds/tb/_deleted/{F3}/"]
    assert old.references() == {(F3, None)}


def test_a_partitioned_build_reads_each_partition_with_rows_from_the_folder_that_holds_it() -> None:
    current = partitioned()
    assert current.live_folders() == [f"{F3}/partition=b0", f"{F2}/partition=b1"], "token order, no empty one"
    assert current.live_folders(["b1", "b2", "b9"]) == [f"{F2}/partition=b1"]
    assert current.live_folders([]) == []
    assert current.live_prefixes(["b0"]) == [f"ds/tb/{F3}/partition=b0/"]
    assert current.deleted_prefixes(["b2", "b1", "b0", "b9"]) == [
        f"ds/tb/_deleted/{F2}/partition=b1/",
        f"ds/tb/_deleted/{F3}/partition=b2/",
    ], "the partitions asked for that have deleted keys, in token order"
    assert current.references() == {(F2, "b1"), (F3, "b0"), (F3, "b2")}
    assert build(partitions={}).live_folders() == [], "a build of no rows reads nothing"


def test_a_pointer_is_read_back_as_written_and_anything_else_is_refused_naming_it() -> None:
    current = partitioned(merged=2, from_scratch=True, contract="abc", kept=[F2, F1], superseded={"b0": F2})
    assert Build.from_json(current.to_json(), "k") == current
    assert current.to_json().endswith("}\n") and json.loads(current.to_json())["partitions"]["b1"]["deleted"] == 2
    assert Build.from_json(build().to_json(), "k").partitions is None
    for text in ["not json", "[]", '{"dataset": "ds"}', json.dumps(json.loads(current.to_json()) | {"partitions": []})]:
        with pytest.raises(
            BuildError, match=r"^ds/tb/_CURRENT.json is not a build pointer \(pipeline/builds.py: Build\): "
        ):
            Build.from_json(text, "ds/tb/_CURRENT.json")


def test_the_current_pointer_is_read_by_its_key_with_its_text() -> None:
    text = partitioned().to_json()
    store = {"ds/tb/_CURRENT.json": text}
    assert current_pointer(store.get, "ds", "tb") == (partitioned(), text)
    assert current_build(store.get, "ds", "tb") == partitioned()
    assert current_pointer(store.get, "ds", "other") is None and current_build(store.get, "ds", "other") is None
    with pytest.raises(BuildError, match=r"^ds/tb/_CURRENT.json is not a build pointer"):
        current_pointer({"ds/tb/_CURRENT.json": "{}"}.get, "ds", "tb")
    assert '\n  "dataset": "ds",\n' in text, "indented, a field a line, for whoever reads the bucket"


# ---- checks over partitions


def test_moments_combined_over_partitions_are_those_of_all_their_values() -> None:
    groups = [[1.0, 2.0, 4.0], [10.0], [], [3.0, 3.5]]

    def part(values: list[float]) -> list[float]:
        mean = statistics.fmean(values) if values else 0.0
        return [float(len(values)), mean, sum((v - mean) ** 2 for v in values)]

    values = [v for g in groups for v in g]
    combined = combined_moments(part(g) for g in groups)
    assert combined.mean == pytest.approx(statistics.fmean(values))
    assert combined.sd == pytest.approx(statistics.stdev(values))
    assert combined_moments([part([5.0])]) == Moments(5.0, None), "one value has no deviation"
    assert combined_moments([part([]), part([])]) == Moments(None, None)
    assert combined_moments([]) == Moments(None, None)
    assert combined_moments([part([1.0]), part([3.0])]) == Moments(2.0, pytest.approx(2**0.5)), "two values"
    large = combined_moments([part([1e9 + 1, 1e9 + 2]), part([1e9 + 3])])
    assert large.sd == pytest.approx(1.0) and large.mean == pytest.approx(1e9 + 2)


def test_a_tables_moments_need_every_partition_with_rows_to_have_the_columns_figures() -> None:
    parts = partitioned().partitions or {}
    moments = table_moments(parts, ["x", "y"])
    assert moments["y"] is None, "no partition recorded y"
    assert moments["x"] == combined_moments([[4.0, 1.0, 0.5], [6.0, 2.0, 1.0]])
    lacking = parts | {"b3": Partition(F3, 5)}
    assert table_moments(lacking, ["x"]) == {"x": None}, "a partition with rows and no figure: read the rows"
    assert table_moments(parts | {"b3": Partition(F3, 0)}, ["x"]) == {"x": moments["x"]}, "an empty one has none"


# ---- the fingerprint


def test_the_fingerprint_changes_with_what_the_rows_depend_on_and_nothing_else() -> None:
    contract = load_contracts()["diabetes/patients"]
    base = build_fingerprint(contract)
    assert len(base) == 16 and base == build_fingerprint(contract)
    first = contract.columns[0]
    changed = {
        "a column renamed": dataclasses.replace(
            contract, columns=[dataclasses.replace(first, name="id2"), *contract.columns[1:]]
        ),
        "a column retyped": dataclasses.replace(
            contract, columns=[*contract.columns[:-1], dataclasses.replace(contract.columns[-1], type="integer")]
        ),
        "the key": dataclasses.replace(contract, key=("patient_id", "age")),
        "the features": dataclasses.replace(contract, features=contract.features[:-1]),
        "the label": dataclasses.replace(contract, label="bmi"),
        "the version": dataclasses.replace(contract, version="age"),
        "the delete rule": dataclasses.replace(contract, delete_when=DeleteWhen("sex", ("2",))),
        "the delete values": dataclasses.replace(contract, delete_when=DeleteWhen("sex", ("1",))),
        "the partitioning": dataclasses.replace(contract, partition=Partitioning(buckets=4)),
        "the transform": dataclasses.replace(contract, transform="SELECT * FROM batch"),
    }
    prints = {what: build_fingerprint(c) for what, c in changed.items()}
    assert base not in prints.values() and len(set(prints.values())) == len(prints), prints
    unchanged = dataclasses.replace(
        contract,
        description="other words",
        columns=[dataclasses.replace(first, description="other", nullable=True), *contract.columns[1:]],
    )
    assert build_fingerprint(unchanged) == base, "descriptions and row rules do not change the rows' shape"


def test_the_fingerprints_of_builds_already_made_do_not_change() -> None:
    """Each current build records the fingerprint it was made under: a changed formula (a renamed entry, another
    serialisation) would make every table's next build one from scratch. The shipped contracts' values, written
    out (the clinic's has a transform and a version column; a delete rule is added to the diabetes one)."""
    contracts = load_contracts()
    assert {name: build_fingerprint(c) for name, c in contracts.items()} == {
        "clinic/appointments": "5f79c5c7377936b2",
        "diabetes/patients": "4ad2a2849c2dfdc1",
        "platform_check/smoke": "90ca151e46d7c4d6",
    }
    deleting = dataclasses.replace(contracts["diabetes/patients"], delete_when=DeleteWhen("sex", ("2",)), version="age")
    assert build_fingerprint(deleting) == "a8430221c273416f"


# ---- manifests and kept builds


def test_a_manifest_holds_the_runs_sorted_and_is_read_back_strictly() -> None:
    current = build()
    text = manifest(["b/run=2", "a/run=1"], current)
    assert json.loads(text) == {"runs": ["a/run=1", "b/run=2"], "build": json.loads(current.to_json())}
    assert text.endswith("}\n")
    assert held_runs({current.manifest_key: text}.get, current) == ["a/run=1", "b/run=2"]
    with pytest.raises(BuildError, match=rf"^{current.manifest_key} is missing: the build's folder is not whole"):
        held_runs({}.get, current)
    for runs in ['"a"', "[1]", '["a", null]']:
        with pytest.raises(BuildError, match=rf"^{current.manifest_key} is not a manifest of runs$"):
            held_runs({current.manifest_key: f'{{"runs": {runs}}}'}.get, current)


def test_a_kept_build_is_read_from_its_manifest_and_one_from_before_manifests_from_its_folder() -> None:
    current = partitioned(kept=[F2, F1])
    assert kept_build({}.get, current, F3) is current
    older = build(F2, 2, rows=7)
    store = {f"ds/tb/{F2}/{MANIFEST}": manifest(["r"], older), f"ds/tb/{F1}/{MANIFEST}": '{"runs": []}'}
    assert kept_build(store.get, current, F2) == older
    assert kept_build(store.get, current, F1) == Build("ds", "tb", 1, 0, "", F1), "its rows in its folder"
    with pytest.raises(BuildError, match=rf"^ds/tb/{F4}/{MANIFEST} is missing: build 4's folder is not whole$"):
        kept_build({}.get, current, F4)
    legacy = kept_build({f"ds/tb/legacy/{MANIFEST}": '{"runs": []}'}.get, current, "legacy")
    assert (legacy.number, legacy.folder) == (0, "legacy"), "a folder of no build number: number 0"
    with pytest.raises(BuildError, match=rf"^ds/tb/{F2}/{MANIFEST} is not a build pointer"):
        kept_build({f"ds/tb/{F2}/{MANIFEST}": '{"runs": [], "build": {"dataset": "ds"}}'}.get, current, F2)


def test_the_next_number_follows_every_build_folder_and_the_current_build() -> None:
    assert next_number([], None) == 1
    assert next_number([F1, F3, "_deleted", "build=x", "other"], None) == 4
    assert next_number([F1], build(F3, 3)) == 4, "a restored older pointer's successor gets a number of its own"
    assert next_number([F1, F4], build(F3, 3)) == 5


def test_a_pinned_number_is_the_current_build_or_one_it_keeps() -> None:
    current = build(F3, 3, kept=[F2, F1])
    assert [pinned_folder(current, n) for n in (3, 2, 1)] == [F3, F2, F1]
    with pytest.raises(BuildError) as refused:
        pinned_folder(current, 4)
    assert str(refused.value) == (
        f"build 4 of ds/tb is not kept (the current build is 3; the {KEEP_BUILDS} before it are kept): pin a kept "
        "build, or none for the current one"
    )
    assert KEEP_BUILDS == 10


# ---- what a promotion removes


def test_a_promotion_removes_the_build_folders_nobody_reads_up_to_its_own_number() -> None:
    attempt = "build=000002-zzzz"  # a promotion of build 2 that lost
    later = "build=000005-eeee"  # a promotion still running
    current = build(F3, 3, kept=[F2])
    rival = "build=000003-yyyy"  # a promotion of build 3 that lost to the current one
    folders = [F1, F2, attempt, F3, rival, later, "_deleted", "other"]
    assert folders_to_remove(folders, current) == [F1, attempt, rival], "in name order"
    partition_holder = build(F4, 4, partitions={"b0": Partition(F1, 3)}, kept=[F3])
    assert folders_to_remove([F1, F2, F3, F4], partition_holder) == [F2], "build 1 holds a partition build 4 reads"
    kept = build(F3, 3, partitions={"b0": Partition(F2, 3)})
    assert folders_to_remove([F1, F2, F3, F4], build(F4, 4, kept=[F3]), [kept]) == [F1], "one a kept build reads"


def test_superseded_partitions_go_once_no_kept_build_reads_them() -> None:
    b2 = build(F2, 2, partitions={"b0": Partition(F1, 3), "b1": Partition(F2, 3)}, superseded={"b1": F1})
    b3 = build(F3, 3, partitions={"b0": Partition(F3, 3), "b1": Partition(F2, 3)}, superseded={"b0": F1})
    assert partitions_to_remove(b3, [b2]) == [f"{F1}/partition=b1"], "b0 of build 1: build 2 still reads it"
    assert partitions_to_remove(b3, []) == [f"{F1}/partition=b0"], "build 2's are for it to supersede, once kept"
    b4 = build(F4, 4, partitions={"b0": Partition(F4, 3), "b1": Partition(F4, 3)}, superseded={"b0": F3, "b1": F2})
    assert partitions_to_remove(b4, [b3, b2]) == [f"{F1}/partition=b1"], "what a kept build reads stays"
    assert partitions_to_remove(b4, []) == [f"{F2}/partition=b1", f"{F3}/partition=b0"], "in folder order"
    assert partitions_to_remove(build(), []) == []


def test_the_ledger_records_each_promoted_file_with_its_build() -> None:
    runs = ["ds/tb/created_at=20261122T000000Z/file=a.csv/run=jr_1", "ds/tb/created_at=20261122T000000Z/file=b.csv"]
    assert promoted_entries(build(number=7), runs) == [
        Entry("ds/tb/created_at=20261122T000000Z/a.csv", Step.PROMOTED, {"build": 7}),
        Entry("ds/tb/created_at=20261122T000000Z/b.csv", Step.PROMOTED, {"build": 7}),
    ]
