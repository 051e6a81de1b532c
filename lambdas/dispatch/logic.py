"""Which raw-file events start a pipeline execution now, and under which name: decided without touching
AWS, so that tests can call it directly."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from pipeline.layout import event_key_candidates

NAME_LIMIT = 80
"""Step Functions' limit on an execution name."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class MalformedEvent(ValueError):
    """A queued message that is not the S3 "Object Created" event EventBridge sends."""


@dataclass(frozen=True)
class RawFileEvent:
    bucket: str
    key: str
    version: str | None
    """The object's version id (raw is versioned), else its ETag: what tells two objects under one key apart."""
    replay: str | None = None
    """A backfill's id (infra/backfill.py puts it in the event's detail): the object runs again, once per
    backfill, though its own execution ran."""


def raw_file_event(body: str) -> RawFileEvent:
    """The raw object an EventBridge "Object Created" event (a queued message's body) names."""
    try:
        detail = json.loads(body)["detail"]
        bucket, obj = detail["bucket"]["name"], detail["object"]
        key = obj["key"]
    except (ValueError, KeyError, TypeError) as exc:
        raise MalformedEvent(
            f"not an S3 Object Created event (detail.bucket.name, detail.object.key): {body[:200]!r}"
        ) from exc
    if not isinstance(bucket, str) or not isinstance(key, str) or not key:
        raise MalformedEvent(f"the event names no object: bucket {bucket!r}, key {key!r}")
    version = obj.get("version-id") or obj.get("etag")
    replay = detail.get("replay")
    return RawFileEvent(bucket, key, str(version) if version else None, str(replay) if replay else None)


def execution_name(event: RawFileEvent) -> str:
    """The same name for every delivery of one object's event, another for any other object (a new version
    under the same key included): Step Functions refuses a second execution of a name, so a duplicate event
    starts nothing; a backfill's replay of it is another name, once per backfill. Readable where it can be
    (the key's last part), unique by a hash of all of it."""
    named = f"{event.bucket}\n{event.key}\n{event.version or ''}" + (f"\n{event.replay}" if event.replay else "")
    digest = hashlib.sha256(named.encode()).hexdigest()[:40]
    readable = _UNSAFE.sub("-", event.key.rsplit("/", 1)[-1]).strip("-")[: NAME_LIMIT - len(digest) - 1]
    return f"{readable}-{digest}" if readable else digest


def raw_key_of(event: RawFileEvent) -> str:
    """The raw key the event names, decoded as validate decodes it (raw keys are safe names: the form
    decoding of an encoded one is the key itself), so that the ledger records one file under one key."""
    return event_key_candidates(event.key)[0]


def start_now(running: int, limit: int) -> bool:
    """Whether another execution may start while `running` are: at most `limit` files go through the
    pipeline at once (Glue's concurrent runs of raw_to_staging); the rest wait in the queue."""
    return running < limit


RETRY_STEP_SECONDS = 60
RETRY_CAP_SECONDS = 840
JITTER_SECONDS = 60
"""A waiting message is tried again after 60 s x its receives so far, at most 14 minutes, plus up to a minute
of jitter: a burst spreads, a long backlog costs few receives (the queue's limit before the dead-letter queue
then spans about ten days), and every waiting file is seen at least every 15 minutes (the wait metric's
period)."""


def retry_seconds(receives: int, draw: float) -> int:
    """The visibility timeout of a message that must wait, received `receives` times; `draw` in [0, 1)."""
    return min(RETRY_STEP_SECONDS * max(receives, 1), RETRY_CAP_SECONDS) + int(draw * JITTER_SECONDS)


def waited_seconds(sent_ms: int, now_ms: int) -> float:
    """How long a message has been in the queue (SQS's SentTimestamp, epoch milliseconds)."""
    return max(now_ms - sent_ms, 0) / 1000
