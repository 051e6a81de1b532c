"""Lambda's runtime API on 127.0.0.1, as much of it as the runtime interface client (awslambdaric) uses, so that
the image's Lambda entry point runs here the way Lambda runs it: `python -m awslambdaric <handler>` polls
`/invocation/next` for an event, runs the handler, and posts its result (or the error, or an init error).

Used by tests/model_service/test_image.py and scripts/benchmark_cold_start.py.
"""

from __future__ import annotations

import http.server
import json
import queue
import re
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

API = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:eu-west-1:111111111111:function:dataplat-we-1-service"


@dataclass
class Invocations:
    events: queue.Queue[tuple[str, dict[str, Any]]] = field(default_factory=queue.Queue)
    results: dict[str, tuple[str, Any]] = field(default_factory=dict)
    """By request id: ("response", the handler's result) or ("error", the error document)."""
    init_error: dict[str, Any] | None = None
    done: threading.Condition = field(default_factory=threading.Condition)
    polled_at: list[float] = field(default_factory=list)
    """When each `next` came (time.perf_counter): the first is the end of the function's initialisation."""


class _Handler(http.server.BaseHTTPRequestHandler):
    invocations: ClassVar[Invocations]
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # small replies on a kept-alive connection: without this, Nagle's algorithm and the client's delayed
        # ACK hold each one back for tens of milliseconds (not what Lambda's runtime API costs)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        if self.path != f"{API}/invocation/next":
            self._reply(404, {"error": self.path})
            return
        self.invocations.polled_at.append(time.perf_counter())
        request_id, event = self.invocations.events.get()  # blocks, as Lambda's does, until there is an event
        self._reply(
            200,
            event,
            {
                "Lambda-Runtime-Aws-Request-Id": request_id,
                "Lambda-Runtime-Deadline-Ms": str(int((time.time() + 60) * 1000)),
                "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
            },
        )

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        document = json.loads(body) if body else None
        matched = re.fullmatch(rf"{API}/invocation/([^/]+)/(response|error)", self.path)
        with self.invocations.done:
            if matched:
                self.invocations.results[matched[1]] = (matched[2], document)
            elif self.path == f"{API}/init/error":
                self.invocations.init_error = document or {}
            else:
                self._reply(404, {"error": self.path})
                return
            self.invocations.done.notify_all()
        self._reply(202, {"status": "OK"})

    def _reply(self, status: int, document: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A function process stopped while it waited for its next event: nothing to report."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class RuntimeApi:
    """Start it, give its `address` to the process as AWS_LAMBDA_RUNTIME_API, then `invoke` events."""

    def __init__(self) -> None:
        self.invocations = Invocations()
        handler = type("Handler", (_Handler,), {"invocations": self.invocations})
        self._server = _Server(("127.0.0.1", 0), handler)
        self.address = f"127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> RuntimeApi:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def invoke(self, event: dict[str, Any], timeout: float = 120) -> tuple[str, Any]:
        """Queue `event`, wait for the function's result: ("response", its return value) or ("error", ...).
        Raises TimeoutError, or RuntimeError with the init error the function posted."""
        request_id = str(uuid.uuid4())
        self.invocations.events.put((request_id, event))
        deadline = time.monotonic() + timeout
        with self.invocations.done:
            while request_id not in self.invocations.results:
                if self.invocations.init_error is not None:
                    raise RuntimeError(f"the function failed to initialise: {self.invocations.init_error}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no result for {event.get('rawPath')} in {timeout} s")
                self.invocations.done.wait(left)
            return self.invocations.results[request_id]


def function_url_event(method: str, path: str, body: str | None = None, query: str = "") -> dict[str, Any]:
    """A function-URL request as Lambda hands it to the function (payload format 2.0), IAM-authenticated."""
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {
            "host": "abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws",
            "content-type": "application/json",
            "x-forwarded-proto": "https",
            "x-forwarded-for": "198.51.100.7",
            "user-agent": "test",
        },
        "requestContext": {
            "accountId": "111111111111",
            "apiId": "abcdefghijklmnopqrstuvwxyz012345",
            "authorizer": {"iam": {"accessKey": "AKIDEXAMPLE", "accountId": "111111111111"}},
            "domainName": "abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws",
            "domainPrefix": "abcdefghijklmnopqrstuvwxyz012345",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "198.51.100.7",
                "userAgent": "test",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": body,
        "isBase64Encoded": False,
    }
