"""Reusable constructs with safe defaults (not a top-level `constructs` package: that would shadow
the `constructs` library that aws_cdk imports)."""
