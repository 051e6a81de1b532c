"""The command line of infra/cost.py: what the workspaces of refs cost at rest, each synthesised in this process,
and the PR comment's cost lines (kept apart from the pricing, which its fast tests and the mutation run cover).

    python -m infra.cost <ref>... [--config F] [--check]     (make cost: the three stages)
    python -m infra.cost --compare NAME AGAINST BEFORE AFTER ...  (the PR comment's lines)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from infra.cost import CostError, compare_line, estimate, load_prices, render


def synthesised_templates(ref: str, config_path: Path | None = None) -> tuple[str, str, dict[str, dict[str, Any]]]:
    """(stage, region, templates) of the workspace `ref` deploys, synthesised in this process (no CLI)."""
    import tempfile

    from aws_cdk.assertions import Template

    from infra.config import DEFAULT_CONFIG_PATH, load_config
    from infra.platform import build_workspace, create_app
    from infra.workspace import resolve

    config = load_config(config_path or DEFAULT_CONFIG_PATH)
    target = resolve(ref, config.naming_rules)
    with tempfile.TemporaryDirectory() as outdir:
        app = create_app(outdir=outdir)
        stacks = build_workspace(app, config, target)
        app.synth()
        templates = {stack.stack_name: dict(Template.from_stack(stack).to_json()) for stack in stacks.values()}
    return target.stage.value, config.stage(target.stage).region, templates


def main(argv: list[str] | None = None) -> int:
    import os

    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20,22,24")  # as app.py does
    parser = argparse.ArgumentParser(prog="python -m infra.cost", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("refs", nargs="*", help="the refs whose workspaces to price (e.g. feature/x main v1.0.0)")
    parser.add_argument(
        "--compare",
        nargs=4,
        action="append",
        default=[],
        metavar=("NAME", "AGAINST", "BEFORE", "AFTER"),
        help="markdown lines for the PR comment: NAME's cost in folder AFTER and its change from BEFORE, which "
        "AGAINST names (cloud assemblies or baseline folders)",
    )
    parser.add_argument("--region", default="eu-west-1", help="the price table of --compare")
    parser.add_argument("--check", action="store_true", help="fail when a feature workspace has an unpriced resource")
    parser.add_argument("--config", type=Path, default=None, help="project config file (default config/project.yaml)")
    args = parser.parse_args(argv)
    if args.compare:
        prices = load_prices(args.region)
        print(f"**Cost at rest** (`make cost`, {prices.region} prices of {prices.checked}):")
        for name, against, before, after in args.compare:
            print(compare_line(name, against, Path(before), Path(after), prices))
        return 0
    failed = False
    for ref in args.refs:
        try:
            stage, region, templates = synthesised_templates(ref, args.config)
            result = estimate(templates, load_prices(region))
        except (CostError, ValueError) as exc:
            print(f"error: {ref}: {exc}", file=sys.stderr)
            return 2
        print(render(f"{ref} ({stage})", result))
        if args.check and stage == "feature" and result.not_priced:
            print(f"error: {ref}: a feature workspace with resources not priced: add a rule", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
