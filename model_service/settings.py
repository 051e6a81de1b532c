"""The service's one settings object, parsed from the environment at start-up (the edge)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.registry import CHAMPION_ALIAS, ModelError, trained_model

ENV_PREFIX = "MODEL_SERVICE_"


class SettingsError(ValueError):
    """Settings that cannot start the service; names the variable and the fix."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    model_name: str = Field(
        default_factory=lambda: str(trained_model().model),
        min_length=1,
        description="registered model to serve (default: the one its table's contract names)",
    )
    model_alias: str = Field(
        CHAMPION_ALIAS,
        min_length=1,
        pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$",
        description="registry alias the service follows (a version number is not an alias)",
    )
    refresh_seconds: float = Field(
        60, ge=1, le=3600, description="how often the alias is checked; a move is served within this time"
    )
    tracking_uri: str | None = Field(None, description="MLflow tracking URI (the workspace's MLflow ARN in AWS)")
    max_batch_size: int = Field(1000, ge=1, le=10000, description="records per request; more is a 413")
    max_body_bytes: int = Field(
        1 << 20, ge=1 << 10, le=16 << 20, description="request body size, checked before it is parsed; more is a 413"
    )
    drift_window: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="records per drift report: the window whose means are compared with the training profile",
    )
    contract: str = Field(
        default_factory=lambda: trained_model().name, description="the table whose features the model takes"
    )
    contract_version: int | None = Field(
        None,
        ge=1,
        description="the contract version the deployment was synthesised with; the service refuses to start on "
        "another (its image and its task definition come from different commits)",
    )
    model_uri: str | None = Field(
        None,
        min_length=1,
        description="a fixed MLflow model to serve instead of following the alias (s3://... or a directory): "
        "what a stage without MLflow serves (config service.model_uri)",
    )

    @property
    def source(self) -> str:
        """What the service serves: the fixed model, or the alias it follows in the registry."""
        return self.model_uri or f"models:/{self.model_name}@{self.model_alias}"


def settings_from_env(environ: Mapping[str, str]) -> Settings:
    values = {k.removeprefix(ENV_PREFIX).lower(): v for k, v in environ.items() if k.startswith(ENV_PREFIX)}
    if "tracking_uri" not in values and environ.get("MLFLOW_TRACKING_URI"):
        values["tracking_uri"] = environ["MLFLOW_TRACKING_URI"]
    try:
        return Settings.model_validate(values)
    except ModelError as exc:  # a default the contracts cannot give (pydantic passes a factory's error through)
        raise SettingsError(
            f"invalid service settings: {exc} (or set {ENV_PREFIX}MODEL_NAME and {ENV_PREFIX}CONTRACT)"
        ) from None
    except ValidationError as exc:
        problems = "; ".join(f"{ENV_PREFIX}{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise SettingsError(
            f"invalid service settings: {problems} (e.g. {ENV_PREFIX}MODEL_NAME="
            "diabetes-progression, MODEL_SERVICE_MODEL_ALIAS=champion, "
            "MODEL_SERVICE_REFRESH_SECONDS=60)"
        ) from None
