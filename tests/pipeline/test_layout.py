"""Raw keys that no URL encoding changes; the landing key kept in metadata; event keys decoded."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from urllib.parse import quote_plus

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pipeline.layout import (
    LANDING_KEY_METADATA,
    LayoutError,
    checked_run_id,
    event_key_candidates,
    landing_key_from_metadata,
    landing_metadata,
    parse_raw_key,
    passed_runs,
    raw_object_for_landing,
    safe_file_name,
)

AT = datetime(2026, 11, 22, 10, 30, 5, tzinfo=UTC)
SAFE = re.compile(r"^[A-Za-z0-9._-]+$")
AWKWARD = " +%=:([]*)&?#~'\"\\,;@!$^{}|<>`ÜüäÄöéñß日本\t"
file_names = st.text(
    st.one_of(st.sampled_from(AWKWARD + "._-aZ9"), st.characters(exclude_categories=("Cs",))), min_size=1
).filter(lambda name: "/" not in name)
"""File names as users make them: mostly the characters that encodings change, and any other (no surrogates:
S3 keys are UTF-8)."""


def short_hash(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]


@pytest.mark.parametrize("name", ["visits.csv", "visits-2026-11.csv", "a_b.C-d.csv.gz", "x.", ".env"])
def test_a_safe_name_is_unchanged(name: str) -> None:
    assert safe_file_name(name) == name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("my export (1).csv.gz", "my_export_1_-{h}.csv.gz"),
        ("a+b.csv", "a_b-{h}.csv"),
        ("a b.csv", "a_b-{h}.csv"),
        ("100%.csv", "100_-{h}.csv"),
        ("k=v.csv", "k_v-{h}.csv"),
        ("10:30:05.csv", "10_30_05-{h}.csv"),
        ("(draft).csv", "_draft_-{h}.csv"),
        ("[a]*.csv", "_a_-{h}.csv"),
        ("Übersicht März.csv", "_bersicht_M_rz-{h}.csv"),
        ("README file", "README_file-{h}"),
        (".env file.csv", ".env_file-{h}.csv"),
        ("..", "_-{h}"),
    ],
)
def test_unsafe_runs_become_one_underscore_and_the_hash_goes_before_every_suffix(name: str, expected: str) -> None:
    assert safe_file_name(name) == expected.format(h=short_hash(name))


def test_names_that_clean_up_alike_stay_apart() -> None:
    names = ["a b.csv", "a+b.csv", "a_b.csv", "a  b.csv", "a%20b.csv", "a:b.csv"]
    assert len({safe_file_name(n) for n in names}) == len(names)


def test_an_empty_name_is_a_layout_error() -> None:
    with pytest.raises(LayoutError, match="cannot be empty"):
        safe_file_name("")


@given(file_names)
@example("my export (1).csv.gz")
def test_a_safe_name_is_plain_ascii_that_no_encoding_changes(name: str) -> None:
    safe = safe_file_name(name)
    assert SAFE.match(safe) and safe.strip("."), safe
    assert quote_plus(safe, safe="") == safe
    assert safe_file_name(safe) == safe, "safe names are fixed points"
    assert safe == name or short_hash(name) in safe


@given(file_names)
@example("Übersicht März.csv")
@example("a+b=c%3D.csv")
def test_every_raw_key_reads_back_from_any_encoding_of_it(name: str) -> None:
    raw = raw_object_for_landing(f"diabetes/patients/{name}", AT)
    assert (raw.dataset, raw.table, raw.created_at) == ("diabetes", "patients", "20261122T103005Z")
    assert parse_raw_key(raw.key) == raw
    assert event_key_candidates(raw.key) == [raw.key], "a raw key decodes to itself"
    for event_key in (quote_plus(raw.key, safe="/"), quote_plus(raw.key, safe="")):
        assert event_key_candidates(event_key)[0] == raw.key, event_key


def test_the_raw_key_of_a_safe_landing_name_is_as_before() -> None:
    raw_key = raw_object_for_landing("diabetes/patients/a.csv", AT).key
    assert raw_key == "diabetes/patients/created_at=20261122T103005Z/a.csv"


@pytest.mark.parametrize("landing_key", ["loose.csv", "Diabetes/patients/a.csv", "diabetes/patients/sub/a.csv"])
def test_landing_keys_outside_the_layout_are_still_refused_with_the_layout_named(landing_key: str) -> None:
    with pytest.raises(LayoutError, match=r"is not <dataset>/<table>/<file> \(lowercase names"):
        raw_object_for_landing(landing_key, AT)


@given(st.text(st.characters(exclude_categories=("Cs",)), min_size=1))
@example("diabetes/patients/Übersicht März (1) 100%+a=b.csv")
def test_the_landing_key_survives_the_metadata_as_ascii(landing_key: str) -> None:
    metadata = landing_metadata(landing_key)
    assert list(metadata) == [LANDING_KEY_METADATA]
    assert metadata[LANDING_KEY_METADATA].isascii() and metadata[LANDING_KEY_METADATA].isprintable()
    assert landing_key_from_metadata(metadata) == landing_key


def test_an_object_without_the_landing_key_has_none() -> None:
    assert landing_key_from_metadata({}) is None
    assert landing_key_from_metadata({"other": "x"}) is None


@pytest.mark.parametrize(
    ("event_key", "expected"),
    [
        (
            "d/t/created_at%3D20261122T103005Z/a.csv",
            ["d/t/created_at=20261122T103005Z/a.csv", "d/t/created_at%3D20261122T103005Z/a.csv"],
        ),
        (
            "d%2Ft%2Fcreated_at%3D20261122T103005Z%2Fa.csv",
            ["d/t/created_at=20261122T103005Z/a.csv", "d%2Ft%2Fcreated_at%3D20261122T103005Z%2Fa.csv"],
        ),
        ("d/t/created_at=20261122T103005Z/a.csv", ["d/t/created_at=20261122T103005Z/a.csv"]),
        ("d/t/a+b.csv", ["d/t/a b.csv", "d/t/a+b.csv"]),  # form-encoded space first, a raw `+` second
        ("d/t/a%2Bb.csv", ["d/t/a+b.csv", "d/t/a%2Bb.csv"]),
        ("d/t/%C3%9Cbersicht.csv", ["d/t/Übersicht.csv", "d/t/%C3%9Cbersicht.csv"]),
        ("d/t/100%25.csv", ["d/t/100%.csv", "d/t/100%25.csv"]),
        ("d/t/100%.csv", ["d/t/100%.csv"]),  # no escape to decode
        ("d/t/%FF.csv", ["d/t/%FF.csv"]),  # not UTF-8: S3 never encoded this; taken as it came
    ],
)
def test_an_event_key_is_tried_decoded_first_then_as_it_came(event_key: str, expected: list[str]) -> None:
    assert event_key_candidates(event_key) == expected


BATCH = "diabetes/patients/created_at=20261121T000000Z/file=visits.csv"


def run_files(run: str, *names: str) -> list[str]:
    return [f"_runs/{BATCH}/run={run}/{name}" for name in names]


@pytest.mark.parametrize(
    ("keys", "promoted"),
    [
        (run_files("jr_1", "profile.json", "_GATE_PASSED.json"), [f"{BATCH}/run=jr_1"]),
        (run_files("jr_1", "profile.json", "_GATE_FAILED.json"), []),
        (run_files("jr_1", "profile.json"), []),  # not judged yet
        (run_files("jr_1", "_GATE_PASSED.json"), []),  # its profile cleared by a later run while the gate ran
        ([f"_runs/{BATCH}/_GATE_PASSED.json"], [BATCH]),  # a pass from before runs had folders
        ([f"_runs/{BATCH}/_GATE_FAILED.json"], []),
        ([f"_runs/{BATCH}/run=../_GATE_PASSED.json", f"_runs/{BATCH}/run=a b/_GATE_PASSED.json"], []),
        (["_runs/x/_GATE_PASSED.json", f"{BATCH}/run=jr_1/_GATE_PASSED.json"], []),  # not a batch's run folder
    ],
)
def test_only_a_run_with_its_own_pass_and_profile_is_promoted(keys: list[str], promoted: list[str]) -> None:
    assert passed_runs(keys) == promoted


def test_a_file_passed_in_two_runs_is_refused_not_promoted_twice() -> None:
    keys = run_files("jr_1", "profile.json", "_GATE_PASSED.json") + run_files(
        "jr_2", "profile.json", "_GATE_PASSED.json"
    )
    with pytest.raises(RuntimeError, match=re.escape(f"more than one run, ['{BATCH}']")):
        passed_runs(keys)


@pytest.mark.parametrize("run_id", ["", "../x", "a/b", "jr 1", "x" * 129, "jr_1\n"])
def test_a_run_id_that_cannot_name_a_folder_is_refused(run_id: str) -> None:
    with pytest.raises(ValueError, match="cannot name a folder"):
        checked_run_id(run_id)


@pytest.mark.parametrize("run_id", ["jr_0123abcd", "jr_0123abcd_attempt_1", "f" * 32, "x" * 128])
def test_glue_and_local_run_ids_name_folders(run_id: str) -> None:
    assert checked_run_id(run_id) == run_id


def test_a_versions_own_raw_key_is_safe_stable_and_keeps_the_suffixes() -> None:
    from pipeline.layout import parse_raw_key

    raw = parse_raw_key("diabetes/patients/created_at=20261122T103005Z/my_export-0a1b2c3d.csv.gz")
    own = raw.for_version("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")
    assert own.file.endswith(".csv.gz") and own.file.startswith("my_export-0a1b2c3d-v")
    assert parse_raw_key(own.key) == own and own.partition == raw.partition, "a raw key like any other"
    assert raw.for_version("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY") == own, "a retry computes the same key"
    assert raw.for_version("another") != own


# ---- promotion plans, builds' names: pure, exact -----------------------------------------------------------

_A = "shop/prices/created_at=20261101T000000Z/file=a.csv"
_B = "shop/prices/created_at=20261102T000000Z/file=b.csv"


def _passed(batch: str, run: str) -> list[str]:
    return [f"_runs/{batch}/run={run}/profile.json", f"_runs/{batch}/run={run}/_GATE_PASSED.json"]


def test_a_first_promotion_takes_every_passed_run_from_scratch() -> None:
    from pipeline.layout import promotion_plan

    plan = promotion_plan([*_passed(_A, "jr_1"), *_passed(_B, "jr_2")], held=None)
    runs = [f"{_A}/run=jr_1", f"{_B}/run=jr_2"]
    assert (plan.runs, plan.from_scratch, plan.held, plan.new, plan.stale, plan.settling) == (
        runs,
        True,
        runs,
        runs,
        [],
        [],
    )
    assert plan.waiting


def test_a_promotion_onto_a_build_takes_only_what_it_does_not_hold() -> None:
    from pipeline.layout import promotion_plan

    keys = [*_passed(_A, "jr_1"), *_passed(_B, "jr_2")]
    plan = promotion_plan(keys, held=[f"{_A}/run=jr_1"])
    assert (plan.runs, plan.from_scratch, plan.held, plan.new, plan.stale) == (
        [f"{_B}/run=jr_2"],
        False,
        [f"{_A}/run=jr_1", f"{_B}/run=jr_2"],
        [f"{_B}/run=jr_2"],
        [],
    )
    idle = promotion_plan(keys, held=[f"{_A}/run=jr_1", f"{_B}/run=jr_2"])
    assert idle.runs == [] and not idle.from_scratch and not idle.waiting, "nothing new: nothing waits"
    asked = promotion_plan(keys, held=[f"{_A}/run=jr_1", f"{_B}/run=jr_2"], from_scratch=True)
    assert asked.from_scratch and asked.waiting and asked.runs == [f"{_A}/run=jr_1", f"{_B}/run=jr_2"]


def test_a_held_run_that_no_longer_passes_makes_the_build_one_from_scratch_and_settles_if_unjudged() -> None:
    from pipeline.layout import promotion_plan

    rerun_in_flight = [*_passed(_B, "jr_2"), f"_runs/{_A}/run=jr_3/profile.json"]  # a.csv staged again, no verdict
    plan = promotion_plan(rerun_in_flight, held=[f"{_A}/run=jr_1", f"{_B}/run=jr_2"])
    assert (plan.runs, plan.from_scratch, plan.stale, plan.settling, plan.new) == (
        [f"{_B}/run=jr_2"],
        True,
        [f"{_A}/run=jr_1"],
        [_A],
        [],
    )
    assert plan.waiting, "a run the build holds no longer passes: a build from scratch is due"
    failed = [*_passed(_B, "jr_2"), f"_runs/{_A}/run=jr_3/profile.json", f"_runs/{_A}/run=jr_3/_GATE_FAILED.json"]
    judged = promotion_plan(failed, held=[f"{_A}/run=jr_1", f"{_B}/run=jr_2"])
    assert judged.settling == [] and judged.stale == [f"{_A}/run=jr_1"], "judged (failed): nothing to wait for"
    nothing = promotion_plan([], held=[])
    assert not nothing.waiting and not nothing.from_scratch


def test_build_numbers_run_ids_and_raw_keys_are_read_back_exactly() -> None:
    from pipeline.layout import (
        LayoutError,
        build_folder,
        build_number,
        current_build_key,
        parse_raw_key,
        raw_key_of_staged,
        run_id_of,
    )

    assert build_folder(7, "a1b2") == "build=000007-a1b2" and build_number("build=000007-a1b2") == 7
    assert build_number("build=1234567-x") == 1234567
    assert [build_number(f) for f in ("build=7", "build=-a", "part-0.parquet", "build=7-a/b", "xbuild=7-a")] == [
        None
    ] * 5
    assert current_build_key("shop", "prices") == "shop/prices/_CURRENT.json"
    raw = parse_raw_key("shop/prices/created_at=20261101T000000Z/a.csv")
    assert run_id_of(f"_runs/{_A}/run=jr_9/profile.json", raw) == "jr_9"
    with pytest.raises(ValueError, match=r"_runs/.*/_GATE_PASSED.json is not in a run folder of shop/prices/"):
        run_id_of(f"_runs/{_A}/_GATE_PASSED.json", raw)
    assert raw_key_of_staged(f"{_A}/run=jr_1") == "shop/prices/created_at=20261101T000000Z/a.csv"
    assert raw_key_of_staged(_A) == "shop/prices/created_at=20261101T000000Z/a.csv", "a pass from before run folders"
    with pytest.raises(LayoutError, match=r"'shop/prices/a.csv' is not <dataset>/<table>/created_at=<ts>/file=<file>"):
        raw_key_of_staged("shop/prices/a.csv")
