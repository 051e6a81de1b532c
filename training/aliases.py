"""What a person does to the registry's aliases: approve the challenger (prd: a better version waits for a
reviewer), or roll `champion` back to the version it replaced. The model service follows `champion` within its
refresh interval, with no redeploy.

    python -m training.aliases approve  [--model-name NAME] [--tracking-uri URI]
    python -m training.aliases rollback [--model-name NAME] [--tracking-uri URI]
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from pipeline.registry import CHAMPION_ALIAS
from training.promotion import CHALLENGER_ALIAS, PREVIOUS_CHAMPION_TAG


class AliasError(RuntimeError):
    """An alias move that cannot be made: says which alias and what to do."""


def _version_of(client: Any, model_name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


def approve(client: Any, model_name: str) -> str:
    """`champion` to the challenger's version (which keeps the champion it replaces, for a rollback); the
    challenger alias is removed. Returns what happened."""
    challenger = _version_of(client, model_name, CHALLENGER_ALIAS)
    if challenger is None:
        raise AliasError(f"{model_name} has no {CHALLENGER_ALIAS}: nothing waits for approval")
    champion = _version_of(client, model_name, CHAMPION_ALIAS)
    version = str(challenger.version)
    if champion is not None and str(champion.version) != version:
        client.set_model_version_tag(model_name, version, PREVIOUS_CHAMPION_TAG, str(champion.version))
    client.set_registered_model_alias(model_name, CHAMPION_ALIAS, version)
    client.delete_registered_model_alias(model_name, CHALLENGER_ALIAS)
    before = f" (was version {champion.version})" if champion is not None else ""
    return f"{model_name}: champion is now version {version}{before}"


def rollback(client: Any, model_name: str) -> str:
    """`champion` back to the version the current one replaced (its PREVIOUS_CHAMPION_TAG)."""
    champion = _version_of(client, model_name, CHAMPION_ALIAS)
    if champion is None:
        raise AliasError(f"{model_name} has no {CHAMPION_ALIAS}: nothing to roll back")
    previous = (champion.tags or {}).get(PREVIOUS_CHAMPION_TAG)
    if previous is None:
        raise AliasError(
            f"{model_name} version {champion.version} replaced no champion: there is no version to roll back to; "
            f"set the alias by hand if you must (MlflowClient.set_registered_model_alias)"
        )
    client.set_registered_model_alias(model_name, CHAMPION_ALIAS, previous)
    return f"{model_name}: champion rolled back from version {champion.version} to version {previous}"


def main(argv: list[str] | None = None) -> int:
    from mlflow.tracking import MlflowClient

    from training.train import MODEL_NAME, local_tracking_uri

    parser = argparse.ArgumentParser(prog="python -m training.aliases", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["approve", "rollback"])
    parser.add_argument("--model-name", default=MODEL_NAME)
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    args = parser.parse_args(argv)
    uri = args.tracking_uri or local_tracking_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        print((approve if args.action == "approve" else rollback)(client, args.model_name))
    except AliasError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
