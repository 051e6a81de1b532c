"""A table's extractor: a Lambda function that reads the rows changed in its operational database and writes
them to raw (lambdas/extract), its secret, its schedule and what its role may do.

A Lambda in the source's VPC rather than a Glue job with a JDBC connection: pg8000 is pure Python, so the
function runs the extractor the tests run against a real PostgreSQL, on the runtime they run on; it costs
nothing between runs (a Glue job bills a minute at least, per run); and a run of 50,000-row pages moves about
60,000 rows a second (make benchmark-extract), some 50 million rows inside Lambda's 15 minutes, where a run
stops between pages and the next goes on. A table whose first snapshot is larger still takes several runs.

Its role may read its own secret and nothing else of Secrets Manager, write new objects under its table's
prefix of raw and nowhere else, record in the ledger, and read and move its own position there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.checkov import skip_checkov
from infra.config import DatabaseSource
from infra.construct_tree import cfn_resource
from infra.constructs.alarms import alarm_above
from infra.constructs.data_bucket import DataBucket
from infra.constructs.pipeline_function import Network, PipelineFunction
from infra.nag import acknowledge, acknowledge_compliance
from lambdas.extract.logic import RAW_BUCKET_ENV, SECRET_ENV, SOURCE_ENV, TABLE_ENV
from lambdas.telemetry import Metric
from pipeline.ledger import LEDGER_TABLE_ENV, position_id
from pipeline.sources import ENGINES, PLACEHOLDER_HOST

DRIVER_MODULES = ("pg8000", "scramp", "asn1crypto", "dateutil", "six")
"""pg8000 and what it imports, bundled as installed (the versions the tests ran against a real PostgreSQL)."""
OUTSIDE_A_VPC = (
    "A feature stage's extractor with no network in config (etl.database_sources.<table>.subnet_ids): it reaches "
    "a database with a public address over TLS; config validation refuses this in int and prd."
)


class Extractor(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: str,
        source_file: Mapping[str, Any],
        settings: DatabaseSource,
        workspace: str,
        raw: DataBucket,
        ledger: dynamodb.ITable,
        alarm_topic: sns.ITopic,
        dead_letter_queue: sqs.IQueue,
        log_retention_days: int,
        data_key: kms.IKey | None,
    ) -> None:
        """`table` (`<dataset>/<table>`) with its source file's parsed YAML; `data_key` encrypts the placeholder
        secret and the logs where the stage has one (int, prd)."""
        super().__init__(scope, construct_id)
        self.secret = self._secret(table, settings, data_key)
        network = Network(settings.subnet_ids, settings.security_group_ids) if settings.subnet_ids else None
        self.function = PipelineFunction(
            self,
            "Extract",
            name="extract",
            workspace=workspace,
            description=f"Extracts {table}'s changed rows from its database into raw",
            environment={
                TABLE_ENV: table,
                SOURCE_ENV: json.dumps(source_file, sort_keys=True, default=str),
                SECRET_ENV: self.secret.secret_arn,
                RAW_BUCKET_ENV: raw.bucket_name,
                LEDGER_TABLE_ENV: ledger.table_name,
            },
            alarm_topic=alarm_topic,
            log_retention_days=log_retention_days,
            log_key=data_key,
            timeout=Duration.minutes(settings.timeout_minutes),
            memory_mib=settings.memory_mib,
            dead_letter_queue=dead_letter_queue,
            modules=DRIVER_MODULES,
            trees=[("sources", "sources")],  # sslmode verify-full trusts sources/ca-bundle.pem where it exists
            network=network,
            outside_a_vpc=OUTSIDE_A_VPC,
        )
        if network:
            acknowledge_compliance(
                cfn_resource(self.function.function),
                "LambdaInsideVPC",
                "It is in the VPC: its VpcConfig (config's subnets and security groups) is set on the resource "
                "(PipelineFunction._place_in), which cdk-nag does not read; tests/infra/test_extractor.py checks it.",
            )
        role = self.function.role
        self._may_read_secret(role, settings, data_key)
        role.add_managed_policy(raw.append_under_policy(table))
        # the ledger: the records of its own files (raw keys under its table's prefix) and its own position, and
        # no other item (the shared ledger policy would let it rewrite any file's record, any source's position)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:UpdateItem"],
                resources=[ledger.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{table}/*", position_id(table)]}},
            )
        )
        alarm_above(
            self,
            "FallingBehindAlarm",
            description=f"Every extraction of {table} in the last hour stopped for want of time: it is behind its "
            "database (a first snapshot this large, or too small a timeout_minutes or memory_mib)",
            metric=self.function.metric(
                Metric.EXTRACT_INCOMPLETE, statistic=cloudwatch.Stats.MINIMUM, table=table
            ).with_(period=Duration.hours(1)),
            threshold=0,
            topic=alarm_topic,
        )
        self.schedule = (
            events.Rule(
                self,
                "Schedule",
                description=f"Extracts {table}'s changed rows",
                schedule=events.Schedule.expression(settings.schedule),
                targets=[
                    targets.LambdaFunction(
                        self.function.function, dead_letter_queue=dead_letter_queue, retry_attempts=2
                    )
                ],
            )
            if settings.schedule
            else None
        )

    def _may_read_secret(self, role: iam.IRole, settings: DatabaseSource, data_key: kms.IKey | None) -> None:
        """Its secret's current value, and the key that encrypts it through Secrets Manager only. Granted on the
        role, not on the key: the workspace's key lives in the storage stack, whose policy would then name
        this stack's role (a cycle), and its policy already lets the account's IAM policies grant its use."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                resources=[self.secret.secret_arn],
            )
        )
        key_arn = settings.secret_key_arn if settings.secret_arn else (data_key.key_arn if data_key else None)
        if key_arn:
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["kms:Decrypt"],
                    resources=[key_arn],
                    conditions={
                        "StringEquals": {"kms:ViaService": f"secretsmanager.{Stack.of(self).region}.amazonaws.com"}
                    },
                )
            )

    def _secret(self, table: str, settings: DatabaseSource, data_key: kms.IKey | None) -> secretsmanager.ISecret:
        """The secret config names, or a new one holding a placeholder the extractor refuses by name until
        someone puts the database's details in it (README: Tables from a database)."""
        if settings.secret_arn:
            return secretsmanager.Secret.from_secret_complete_arn(self, "Secret", settings.secret_arn)
        template = {
            "engine": "postgres",
            "host": PLACEHOLDER_HOST,
            "port": ENGINES["postgresql"],
            "dbname": "",
            "username": "",
        }
        secret = secretsmanager.Secret(
            self,
            "Secret",
            description=f"Connection to {table}'s database (RDS's shape): replace the placeholder (README)",
            encryption_key=data_key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps(template),
                generate_string_key="password",
                exclude_punctuation=True,
            ),
        )
        reason = (
            "The database's owner rotates its password (RDS-managed secrets rotate themselves; a rotation "
            "function can be attached to this one); the extractor reads the current version on every run, so a "
            "rotated password applies at the next run."
        )
        acknowledge(cfn_resource(secret), "SMG4", reason=reason)
        acknowledge_compliance(cfn_resource(secret), "SecretsManagerRotationEnabled", reason)
        if data_key is None:
            reason = (
                "A feature stage has no customer-managed key (one would outlive the workspace in its deletion "
                "window): AWS's own key for Secrets Manager encrypts it."
            )
            acknowledge_compliance(cfn_resource(secret), "SecretsManagerUsingKMSKey", reason)
            skip_checkov(cfn_resource(secret), CKV_AWS_149=reason)
        return secret
