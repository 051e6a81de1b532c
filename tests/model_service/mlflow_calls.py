"""Which MLflow REST calls a client makes, and the IAM action SageMaker managed MLflow checks for each
(Service Authorization Reference, "Amazon SageMaker with MLflow", prefix sagemaker-mlflow). A proxy
between the service and a local MLflow server records the calls; the test compares the actions with
what the task role is granted."""

from __future__ import annotations

import http.client
import http.server
import re
import threading
from urllib.parse import urlsplit

ACTIONS: tuple[tuple[str, str | None], ...] = (
    # a path of several methods: the method first (a request is matched as "<METHOD> <path>", then by its path)
    (r"POST /api/2\.0/mlflow/registered-models/alias$", "SetRegisteredModelAlias"),
    (r"DELETE /api/2\.0/mlflow/registered-models/alias$", "DeleteRegisteredModelAlias"),
    (r"POST /api/2\.0/mlflow/model-versions/set-tag$", "SetModelVersionTag"),
    (r"/api/2\.0/mlflow/registered-models/alias$", "GetModelVersionByAlias"),
    (r"/api/2\.0/mlflow/registered-models/get$", "GetRegisteredModel"),
    (r"/api/2\.0/mlflow/model-versions/get$", "GetModelVersion"),
    (r"/api/2\.0/mlflow/model-versions/get-download-uri$", "GetDownloadURIForModelVersionArtifacts"),
    (r"/api/2\.0/mlflow/runs/get$", "GetRun"),
    (r"/api/2\.0/mlflow/artifacts/list$", "ListArtifacts"),
    (r"/api/2\.0/mlflow/logged-models/[^/]+$", "GetLoggedModel"),
    (r"/api/2\.0/mlflow/logged-models/[^/]+/artifacts/directories$", "ListLoggedModelArtifacts"),
    # a local server proxies artifacts; managed MLflow's artifact store is S3, read with the bucket policy
    (r"/api/2\.0/mlflow-artifacts/artifacts(/.*)?$", None),
    (r"/api/3\.0/mlflow/server-info$", None),  # the artifact proxy's capability probe (mlflow-artifacts:/ only)
)


def action_of(path: str, method: str = "GET") -> str | None:
    """The sagemaker-mlflow action of a REST call (None: not an MLflow API action)."""
    for pattern, action in ACTIONS:
        if re.match(pattern, f"{method} {urlsplit(path).path}" if pattern[0] != "/" else urlsplit(path).path):
            return action
    raise LookupError(f"no IAM action known for the MLflow call {path}: add it to ACTIONS in {__name__}")


class RecordingProxy:
    """Forwards every request to `upstream` and remembers its path."""

    def __init__(self, upstream: str) -> None:
        self.calls: list[str] = []
        self.methods: list[str] = []
        target = urlsplit(upstream)
        calls, methods = self.calls, self.methods

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                calls.append(self.path)
                methods.append(self.command)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                connection.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def actions(self) -> set[str]:
        return {action for action in map(action_of, self.calls, self.methods) if action is not None}

    def close(self) -> None:
        self._server.shutdown()
