"""A person moves a workspace's `champion` alias: approve the challenger (where config ml.training.require_approval
makes a better version `challenger`: prd) or roll `champion` back to the version it replaced. The model-alias
workflow runs it in the stage's deploy environment, so that prd's required reviewers approve the run itself; the
model service follows `champion` within its refresh interval, with no deploy.

    python -m infra.model_alias approve|rollback --branch <ref of the workspace>
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

MLFLOW_ACTIONS = (
    "GetModelVersionByAlias",  # the challenger, the champion
    "GetRegisteredModel",  # MLflow's client reads the model before it moves an alias
    "SetModelVersionTag",  # the champion it replaces, for a rollback
    "SetRegisteredModelAlias",
    "DeleteRegisteredModelAlias",  # the challenger, once approved
)
"""What training.aliases asks MLflow (prefix sagemaker-mlflow): what the deploy role is granted for it. The list is
what approve and rollback were seen to call (tests/model_service/test_image.py records them through a proxy)."""


class ModelAliasError(RuntimeError):
    """The workspace has no MLflow to move an alias in: says which and what to do."""


def tracking_arn(branch: str, cfn: Any = None) -> tuple[str, str]:
    """(workspace, its MLflow's ARN) of the workspace `branch` deploys, from its ML stack's output."""
    import boto3

    from infra.config import DEFAULT_CONFIG_PATH, load_config
    from infra.naming import Component, stack_name
    from infra.smoke import stack_outputs
    from infra.stack_outputs import MLFLOW_TRACKING_OUTPUT
    from infra.workspace import resolve

    config = load_config(DEFAULT_CONFIG_PATH)
    target = resolve(branch, config.naming_rules)
    cfn = cfn or boto3.client("cloudformation", region_name=config.stage(target.stage).region)
    outputs = stack_outputs(cfn, stack_name(config.project, target.workspace, Component.ML))
    if not outputs or MLFLOW_TRACKING_OUTPUT not in outputs:
        raise ModelAliasError(
            f"the workspace {target.workspace} has no ML stack with MLflow: deploy it (config components.mlflow) first"
        )
    return target.workspace, outputs[MLFLOW_TRACKING_OUTPUT]


def main(argv: list[str] | None = None) -> int:
    from mlflow.tracking import MlflowClient

    from pipeline.registry import trained_model
    from training.aliases import AliasError, approve, rollback

    parser = argparse.ArgumentParser(prog="python -m infra.model_alias", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("action", choices=["approve", "rollback"])
    parser.add_argument("--branch", required=True, help="the workspace's git ref (a release tag: prd; main: int)")
    args = parser.parse_args(argv)
    try:
        workspace, arn = tracking_arn(args.branch)
        client = MlflowClient(tracking_uri=arn, registry_uri=arn)
        outcome = (approve if args.action == "approve" else rollback)(client, str(trained_model().model))
    except (ModelAliasError, AliasError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{workspace}: {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
