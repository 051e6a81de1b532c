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


def old_botocore(put_object):
    """`put_object` as a botocore older than S3's conditional writes has it: IfMatch or IfNoneMatch refused before
    anything is sent, naming the parameter."""
    from botocore.exceptions import ParamValidationError

    def put(**kwargs):
        for condition in ("IfMatch", "IfNoneMatch"):
            if condition in kwargs:
                raise ParamValidationError(report=f'Unknown parameter in input: "{condition}"')
        return put_object(**kwargs)

    return put


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
    first, second = ConditionalTexts(s3, "curated-x"), ConditionalTexts(s3, "curated-x")
    assert first.read(KEY) is None and second.read(KEY) is None
    real = s3.put_object
    monkeypatch.setattr(s3, "put_object", old_botocore(real))
    first.swap(KEY, "build 1", None)
    with pytest.raises(BuildConflict):
        second.swap(KEY, "another build 1", None)
    assert first.read(KEY) == "build 1"
    first.swap(KEY, "build 2", "build 1")
    assert s3.get_object(Bucket="curated-x", Key=KEY)["Body"].read() == b"build 2"


# ---- the prefix operations the jobs and the local run share, and what a swap does besides the happy path


def test_keys_are_listed_across_pages_and_deleted_in_batches_of_a_thousand(s3, monkeypatch) -> None:
    from pipeline import s3_objects

    for i in range(1003):
        s3.put_object(Bucket="curated-x", Key=f"t/run=1/part-{i:04d}", Body=b"x")
    s3.put_object(Bucket="curated-x", Key="t/run=10/kept", Body=b"x")
    s3.put_object(Bucket="curated-x", Key="other", Body=b"x")
    keys = s3_objects.keys_under(s3, "curated-x", "t/run=1/")
    assert len(keys) == 1003 and keys[0] == "t/run=1/part-0000" and keys[-1] == "t/run=1/part-1002"
    assert s3_objects.keys_under(s3, "curated-x", "nothing/") == []
    batches = []
    real = s3.delete_objects
    monkeypatch.setattr(s3, "delete_objects", lambda **kw: batches.append(kw["Delete"]) or real(**kw))
    assert s3_objects.delete_under(s3, "curated-x", "t/run=1/") == 1003
    assert [len(b["Objects"]) for b in batches] == [1000, 3] and all(b["Quiet"] is True for b in batches)
    assert batches[0]["Objects"][0] == {"Key": "t/run=1/part-0000"}
    left = [o["Key"] for o in s3.list_objects_v2(Bucket="curated-x")["Contents"]]
    assert left == ["other", "t/run=10/kept"]
    assert s3_objects.delete_under(s3, "curated-x", "t/run=1/") == 0


def test_a_key_s3_could_not_delete_is_an_error_naming_it(s3, monkeypatch) -> None:
    from pipeline import s3_objects

    s3.put_object(Bucket="curated-x", Key="t/a", Body=b"x")
    refused = {"Errors": [{"Key": "t/a", "Code": "AccessDenied", "Message": "Access Denied"}]}
    monkeypatch.setattr(s3, "delete_objects", lambda **kw: refused)
    with pytest.raises(RuntimeError) as failed:
        s3_objects.delete_under(s3, "curated-x", "t/")
    assert str(failed.value) == "could not delete s3://curated-x/t/a: Access Denied"


def test_a_text_is_read_as_utf8_or_none_where_there_is_no_such_key(s3) -> None:
    from pipeline import s3_objects

    s3.put_object(Bucket="curated-x", Key="t/x.json", Body="Übersicht".encode())
    assert s3_objects.read_text_or_none(s3, "curated-x", "t/x.json") == "Übersicht"
    assert s3_objects.read_text_or_none(s3, "curated-x", "t/absent") is None
    with pytest.raises(Exception, match="NoSuchBucket"):
        s3_objects.read_text_or_none(s3, "no-such-bucket", "t/x.json")


def test_a_pointer_is_written_as_json_and_a_read_of_a_gone_key_forgets_its_etag(s3, monkeypatch) -> None:
    def listed(**kwargs):
        raise AssertionError("a botocore that knows conditional writes never compares by listing")

    monkeypatch.setattr(s3, "list_objects_v2", listed)
    texts = ConditionalTexts(s3, "curated-x")
    assert texts.read(KEY) is None
    texts.swap(KEY, "Ünïcode build 0", None)
    assert s3.get_object(Bucket="curated-x", Key=KEY)["ContentType"] == "application/json", "the first write too"
    texts.swap(KEY, "Ünïcode build", "Ünïcode build 0")
    written = s3.get_object(Bucket="curated-x", Key=KEY)
    assert written["ContentType"] == "application/json" and written["Body"].read() == "Ünïcode build".encode()
    assert texts.read(KEY) == "Ünïcode build"
    s3.delete_object(Bucket="curated-x", Key=KEY)
    assert texts.read(KEY) is None
    texts.swap(KEY, "again", None)  # absent when read: written only if still absent
    with pytest.raises(ValueError) as refused:
        ConditionalTexts(s3, "curated-x").swap(KEY, "x", "again")  # never read: no ETag to switch from
    assert str(refused.value) == f"swap of {KEY} without reading it first: read it, then swap from what was read"


def test_a_conditional_write_refused_for_another_reason_is_raised_as_it_is(s3, monkeypatch) -> None:
    from botocore.exceptions import ClientError

    texts = ConditionalTexts(s3, "curated-x")
    texts.read(KEY)
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "PutObject")
    monkeypatch.setattr(s3, "put_object", lambda **kw: (_ for _ in ()).throw(denied))
    with pytest.raises(ClientError, match="AccessDenied"):
        texts.swap(KEY, "build 1", None)
    conflict = ClientError({"Error": {"Code": "ConditionalRequestConflict", "Message": "busy"}}, "PutObject")
    monkeypatch.setattr(s3, "put_object", lambda **kw: (_ for _ in ()).throw(conflict))
    with pytest.raises(BuildConflict) as lost:
        texts.swap(KEY, "build 1", None)
    assert str(lost.value) == f"s3://curated-x/{KEY} changed since it was read"
    bare = ClientError({}, "PutObject")  # no Error in the response: no code to tell a conflict by
    monkeypatch.setattr(s3, "put_object", lambda **kw: (_ for _ in ()).throw(bare))
    with pytest.raises(ClientError):
        texts.swap(KEY, "build 1", None)


def test_a_request_refused_before_sending_for_another_reason_is_never_written_unconditionally(s3, monkeypatch) -> None:
    """The fallback is for a botocore that does not know IfMatch or IfNoneMatch, not for any refused request."""
    from botocore.exceptions import ParamValidationError

    texts = ConditionalTexts(s3, "curated-x")
    texts.read(KEY)
    refused = ParamValidationError(report="Invalid type for parameter Body, value: None")
    monkeypatch.setattr(s3, "put_object", lambda **kw: (_ for _ in ()).throw(refused))
    with pytest.raises(ParamValidationError):
        texts.swap(KEY, "build 1", None)


def test_without_conditional_writes_a_pointer_changed_since_the_read_is_a_conflict(s3, monkeypatch) -> None:
    texts = ConditionalTexts(s3, "curated-x")
    s3.put_object(Bucket="curated-x", Key=KEY, Body=b"build 1")
    s3.put_object(Bucket="curated-x", Key=KEY + ".bak", Body=b"other")  # a key the prefix lists too
    assert texts.read(KEY) == "build 1"
    real = s3.put_object
    monkeypatch.setattr(s3, "put_object", old_botocore(real))
    texts.swap(KEY, "build 2", "build 1")
    written = s3.get_object(Bucket="curated-x", Key=KEY)
    assert written["Body"].read() == b"build 2" and written["ContentType"] == "application/json"
    real(Bucket="curated-x", Key=KEY, Body=b"someone else's build")
    with pytest.raises(BuildConflict) as lost:
        texts.swap(KEY, "build 3", "build 2")
    assert str(lost.value) == f"s3://curated-x/{KEY} changed since it was read"
