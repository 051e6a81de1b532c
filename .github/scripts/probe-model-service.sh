#!/usr/bin/env bash
# The model service before any model exists, as a load balancer and a caller see it: `/health` answers 200
# (live), `/ready` answers 503 with a JSON `reason` (not ready, and why), and the process stays up.
# Used by .github/workflows/ci.yml (job `image`) against the container it started; tested in
# tests/workflows/test_ci_upkeep.py against the service run from the project's environment.
#
#   probe-model-service.sh --url http://127.0.0.1:8080 --reason-mentions TEXT [--container NAME] [--timeout S]
#
# --reason-mentions: text the reason must contain once the service has looked for a model (the tracking URI
# it could not use): until then the reason is that the first check has not finished, which proves nothing.
# Exits 1 on any mismatch, after printing the last answer and, with --container, the container's logs.
set -euo pipefail

url="" container="" mentions="" timeout=180
while [ $# -gt 0 ]; do
  case "$1" in
    --url) url=$2; shift 2 ;;
    --container) container=$2; shift 2 ;;
    --reason-mentions) mentions=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
if [ -z "$url" ] || [ -z "$mentions" ]; then
  echo "usage: $0 --url URL --reason-mentions TEXT [--container NAME] [--timeout SECONDS]" >&2
  exit 2
fi

body=$(mktemp)
trap 'rm -f "$body"' EXIT
deadline=$((SECONDS + timeout))

fail() {
  echo "::error::model service: $*"
  echo "last answer: $(head -c 2000 "$body" 2>/dev/null)"
  if [ -n "$container" ]; then
    echo "--- docker logs $container ---"
    docker logs "$container" 2>&1 || true
  fi
  exit 1
}

# GET $1; prints the status code (000 when nothing answers), the body goes to $body
get() {
  curl --silent --max-time 10 --output "$body" --write-out '%{http_code}' "$url$1" || true
}

alive() {
  if [ -n "$container" ] && [ "$(docker inspect --format '{{.State.Running}}' "$container" 2>/dev/null)" != "true" ]; then
    fail "the container $container is not running"
  fi
}

status=$(get /health)
until [ "$status" = "200" ]; do
  alive
  [ "$SECONDS" -lt "$deadline" ] || fail "/health answered $status, not 200, within ${timeout}s"
  sleep 2
  status=$(get /health)
done
echo "/health: 200 $(cat "$body")"

while :; do
  alive
  status=$(get /ready)
  case "$status" in
    200) fail "/ready answered 200: a model is served, but none exists" ;;
    503)
      reason=$(jq -r '.reason // empty' "$body" 2>/dev/null || true)
      [ -n "$reason" ] || fail "/ready answered 503 without a reason"
      if [[ "$reason" == *"$mentions"* ]]; then
        break
      fi
      ;;
  esac
  [ "$SECONDS" -lt "$deadline" ] || fail "/ready did not answer 503 with a reason mentioning '$mentions' within ${timeout}s (last: $status)"
  sleep 2
done
echo "/ready: 503 $(cat "$body")"

status=$(get /health)
[ "$status" = "200" ] || fail "/health answered $status after /ready: the process did not stay up"
alive
echo "live and not ready, with the reason: as expected before the first model"
