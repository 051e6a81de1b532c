"""The model the platform trains and serves, and the names the registry, training, the service and the stacks
share. The model is named by its table's contract (`model: <registered name>`), so that the table, its features
and label, and the model's name live in one file; the template trains and serves one model."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.contract import Contract, load_contracts

CHAMPION_ALIAS = "champion"
"""The alias training moves on improvement and the service follows."""


class ModelError(ValueError):
    """No contract, or more than one, names the model; or its table cannot train the template's model."""


def trained_model(contracts: Mapping[str, Contract] | None = None) -> Contract:
    """The contract of the table the model learns from: the one naming a `model` (its registered name in
    `.model`). Its features and label must be numbers: the template's model is a regressor over them."""
    contracts = load_contracts() if contracts is None else contracts
    named = sorted((c for c in contracts.values() if c.model), key=lambda c: c.name)
    if len(named) != 1:
        which = ", ".join(f"{c.name} ({c.model})" for c in named) or "none"
        raise ModelError(
            f"exactly one contract names the model the platform trains and serves (model: <name>), not {which}: "
            "add `model: <registered name>` to the table's contract, or remove it from all but one"
        )
    (contract,) = named
    text = [name for name in (*contract.features, contract.label) if contract.column(name).type == "string"]
    if text:
        raise ModelError(
            f"{contract.name}: model {contract.model} trains a regressor on its features and label, and {text} "
            "are strings: make them numbers in the contract, or train another table"
        )
    return contract
