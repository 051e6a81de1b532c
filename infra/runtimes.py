"""The runtimes AWS runs this code on, pinned here and held to what the tests run (tests/infra/test_runtimes.py):
a transform that passes on the local Spark must pass on Glue's, and a handler imported by the tests must
import on the Lambda runtime.

- Glue 5.1 (AWS's default for new jobs): Spark 3.5.6, Python 3.11, Java 17. `pyspark` in pyproject.toml
  is pinned to exactly GLUE_SPARK[GLUE_VERSION], and the local session keeps Glue's (Spark 3.5's) defaults:
  ANSI mode off, where Spark 4 turns it on (casts, overflow and bad input then raise instead of giving null).
- Lambda python3.11: the Python the tests run. Lambda deprecates it on 2027-06-30 (creating functions is
  blocked from 2027-07-31, updating them from 2027-08-31), and its Amazon Linux 2 gets only critical
  patches after 2026-06-30: move the tests and this pin together to a newer Python before then.
"""

from __future__ import annotations

from aws_cdk import aws_glue as glue
from aws_cdk import aws_lambda as lambda_

GLUE_VERSION = glue.GlueVersion.V5_1
GLUE_SPARK = {"5.0": "3.5.4", "5.1": "3.5.6"}
"""The Spark each Glue version runs (AWS Glue release notes); the local pyspark must be this exactly."""
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_11
LAMBDA_RUNTIME_DEPRECATION = "2027-06-30"
