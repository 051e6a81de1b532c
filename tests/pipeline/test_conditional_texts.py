"""The switch of a curated build in S3 (pipeline.s3_objects.ConditionalTexts, the Glue job's): a conditional
PUT, so that of two promotions of one table that read the same pointer only the first to switch does (moto's
S3, which answers If-Match and If-None-Match as S3 does: 412 PreconditionFailed)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from pipeline.builds import BuildConflict
from pipeline.s3_objects import ConditionalTexts

KEY = "shop/prices/_CURRENT.json"


@pytest.fixture
def s3(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(Bucket="curated-x", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        yield client


def test_of_two_promotions_that_read_one_pointer_only_the_first_switches_it(s3) -> None:
    first, second = ConditionalTexts(s3, "curated-x"), ConditionalTexts(s3, "curated-x")
    assert first.read(KEY) is None and second.read(KEY) is None
    first.swap(KEY, "build 1", None)
    with pytest.raises(BuildConflict, match="changed since it was read"):
        second.swap(KEY, "another build 1", None)
    assert first.read(KEY) == "build 1" and second.read(KEY) == "build 1"
    first.swap(KEY, "build 2", "build 1")
    with pytest.raises(BuildConflict):
        second.swap(KEY, "another build 2", "build 1")
    assert s3.get_object(Bucket="curated-x", Key=KEY)["Body"].read() == b"build 2"
    first.swap(KEY, "build 3", "build 2")  # its own write is what it switches from next


def test_a_swap_without_a_read_is_refused_before_anything_is_written(s3) -> None:
    texts = ConditionalTexts(s3, "curated-x")
    with pytest.raises(ValueError, match="without reading it first"):
        texts.swap(KEY, "build 1", "build 0")
    assert "Contents" not in s3.list_objects_v2(Bucket="curated-x")


def test_a_botocore_without_conditional_writes_compares_then_puts(s3, monkeypatch) -> None:
    """Glue bundles its own boto3: one older than S3's conditional writes refuses IfMatch before sending
    anything. The switch then compares the ETag itself before an unconditional PUT (a narrow race, not none)."""
    from botocore.exceptions import ParamValidationError

    first, second = ConditionalTexts(s3, "curated-x"), ConditionalTexts(s3, "curated-x")
    assert first.read(KEY) is None and second.read(KEY) is None
    real = s3.put_object

    def old_botocore(**kwargs):
        if "IfMatch" in kwargs or "IfNoneMatch" in kwargs:
            raise ParamValidationError(report="Unknown parameter in input: IfMatch")
        return real(**kwargs)

    monkeypatch.setattr(s3, "put_object", old_botocore)
    first.swap(KEY, "build 1", None)
    with pytest.raises(BuildConflict):
        second.swap(KEY, "another build 1", None)
    assert first.read(KEY) == "build 1"
    first.swap(KEY, "build 2", "build 1")
    assert s3.get_object(Bucket="curated-x", Key=KEY)["Body"].read() == b"build 2"
