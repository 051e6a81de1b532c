"""`make cost` on the shipped stages: every resource priced, a feature workspace with an unpriced one failing
the check, and the README's table the figures `make cost` gives (each synthesises: kept apart from the fast,
hand-worked tests of tests/unit/test_cost.py, which the mutation run uses)."""

from __future__ import annotations

from pathlib import Path

import yaml

from infra import cost, cost_cli


def test_the_shipped_stages_are_priced_and_the_readme_says_what_make_cost_says(capsys, tmp_path: Path) -> None:
    """README's table comes from `make cost`: every stage, and a feature stage with storage and ETL only."""
    import re

    from infra.config import DEFAULT_CONFIG_PATH

    assert cost_cli.main(["feature/x", "main", "v1.0.0", "--check"]) == 0
    out = capsys.readouterr().out
    assert "not priced" not in out
    totals = dict(re.findall(r"^\S+ \((\w+)\): (\$[\d,.]+)/month", out, re.MULTILINE))
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["stages"]["feature"]["components"] = {"notebook": False, "mlflow": False, "model_service": False}
    (tmp_path / "etl-only.yaml").write_text(yaml.safe_dump(raw))
    assert cost_cli.main(["feature/x", "--check", "--config", str(tmp_path / "etl-only.yaml")]) == 0
    (etl_only,) = re.findall(r"\(feature\): (\$[\d,.]+)/month", capsys.readouterr().out)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = {
        "feature, every component": totals["feature"],
        "feature, storage and ETL only (`components`)": etl_only,
        "int": totals["int"],
        "prd": totals["prd"],
    }
    for row, figure in rows.items():
        assert f"| {row} | **{figure}/month** |" in readme, f"README's {row} row: run make cost and copy {figure}"


def test_check_fails_a_feature_workspace_with_an_unpriced_resource(monkeypatch, capsys) -> None:
    free = dict(cost.FREE_AT_REST)
    free.pop("AWS::Lambda::Function")
    monkeypatch.setattr(cost, "FREE_AT_REST", free)
    assert cost_cli.main(["feature/x", "--check"]) == 1
    captured = capsys.readouterr()
    assert "not priced: dataplat-x-etl/" in captured.out and "(AWS::Lambda::Function)" in captured.out
    assert "a feature workspace with resources not priced" in captured.err
