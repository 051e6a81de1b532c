"""CloudFormation resource types that hold data (kept in int and prd; flagged when a diff would
delete or replace them). Plain data, so that the workflow tools need no CDK import."""

STATEFUL_RESOURCE_TYPES = frozenset(
    {
        "AWS::S3::Bucket",
        "AWS::Glue::Database",
        "AWS::Glue::Table",
        "AWS::ECR::Repository",
        "AWS::Logs::LogGroup",
        "AWS::KMS::Key",
        "AWS::DynamoDB::Table",
        "AWS::SageMaker::MlflowApp",
        "AWS::SageMaker::MlflowTrackingServer",
    }
)
"""Resources whose loss loses data: kept in int and prd."""
