"""boto3 clients of a service named at run time (the lifecycle's, the smoke check's and the emulator's
client factories, which take the service as an argument)."""

from __future__ import annotations

from typing import Any


def client(service: str, **options: Any) -> Any:
    """`boto3.client(service, **options)`, looked up at each call (so that a test's patch of it holds).
    boto3 is imported here, not at module import: the commands that use this import it only when they run."""
    import boto3

    # boto3-stubs has one overload of client() per literal service name and none for a str: a name known
    # only at run time matches no overload, though boto3 takes any service name
    return boto3.client(service, **options)  # type: ignore[call-overload]
