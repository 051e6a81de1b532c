"""The notebook's lifecycle scripts, rendered as text (pure, so that tests read exactly what ships)."""

from __future__ import annotations

import base64
from pathlib import Path

IDLE_STOP_SCRIPT = Path(__file__).resolve().parent.parent / "assets" / "notebook_idle_stop.py"
SCRIPT_LIMIT = 16384
"""SageMaker's limit for each lifecycle script."""


def on_create(notebooks_s3_uri: str) -> str:
    """Copies the project's example notebooks into the instance, once, at creation."""
    return f"""#!/bin/bash
set -euo pipefail
sudo -u ec2-user -i <<'NOTEBOOKS'
mkdir -p /home/ec2-user/SageMaker/examples
aws s3 cp "{notebooks_s3_uri}" /tmp/notebooks.zip
unzip -o /tmp/notebooks.zip -d /home/ec2-user/SageMaker/examples
rm /tmp/notebooks.zip
NOTEBOOKS
"""


def on_start(tracking_uri: str, idle_minutes: int) -> str:
    """Sets MLFLOW_TRACKING_URI for every kernel, installs the sagemaker-mlflow plugin into the kernels'
    environment, and schedules the idle stop (its script is inlined: nothing is fetched at boot)."""
    idle_script = base64.b64encode(IDLE_STOP_SCRIPT.read_bytes()).decode()
    return f"""#!/bin/bash
set -euo pipefail
# 1. the workspace's MLflow for every notebook kernel and shell
echo 'export MLFLOW_TRACKING_URI="{tracking_uri}"' > /etc/profile.d/mlflow.sh
mkdir -p /home/ec2-user/.ipython/profile_default/startup
cat > /home/ec2-user/.ipython/profile_default/startup/00-mlflow.py <<'PY'
import os
os.environ.setdefault("MLFLOW_TRACKING_URI", "{tracking_uri}")
PY
chown -R ec2-user:ec2-user /home/ec2-user/.ipython
# 2. the sagemaker-mlflow plugin (it resolves the ARN tracking URI) in the kernels' environment
sudo -u ec2-user -i bash -c 'source /home/ec2-user/anaconda3/bin/activate python3 && pip install --quiet "mlflow>=3.1,<4" "sagemaker-mlflow>=0.1"' &
# 3. stop the instance after {idle_minutes} idle minutes (checked every 5 minutes)
echo '{idle_script}' | base64 -d > /usr/local/bin/notebook-idle-stop.py
echo "*/5 * * * * root /usr/bin/python3 /usr/local/bin/notebook-idle-stop.py {idle_minutes} >> /var/log/notebook-idle-stop.log 2>&1" > /etc/cron.d/notebook-idle-stop
"""
