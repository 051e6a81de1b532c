"""The suite's scheduling list names files that exist: a renamed slow file would silently run last again."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SLOWEST_FIRST

ROOT = Path(__file__).resolve().parents[2]


def test_every_file_started_first_exists_once() -> None:
    assert [p for p in SLOWEST_FIRST if not (ROOT / p).is_file()] == []
    assert len(set(SLOWEST_FIRST)) == len(SLOWEST_FIRST)


def test_make_test_keeps_the_collection_order() -> None:
    recipe = (ROOT / "Makefile").read_text(encoding="utf-8").split("\ntest: ", 1)[1].split("\n\n", 1)[0]
    assert "--dist loadfile --no-loadscope-reorder" in recipe
