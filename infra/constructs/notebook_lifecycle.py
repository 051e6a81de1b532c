"""The notebook's platform and its lifecycle scripts, rendered as text (pure, so that tests read exactly
what ships).

The platform is one fact kept here: which SageMaker notebook platform the stack pins, which interpreter
the idle check runs with on it, and which Python version that interpreter is. The stack, the schedule
below and the tests import it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

IDLE_STOP_SCRIPT = Path(__file__).resolve().parent.parent / "assets" / "notebook_idle_stop.py"
SCRIPT_LIMIT = 16384
"""SageMaker's limit for each lifecycle script."""


@dataclass(frozen=True)
class NotebookPlatform:
    identifier: str
    """The notebook instance's `PlatformIdentifier`."""
    system_python: str
    """The interpreter that root's scheduled jobs run with (not the kernels' conda Python)."""
    python_version: tuple[int, int]
    """What `system_python` is: the newest Python a script run by it may need."""


PLATFORM = NotebookPlatform(identifier="notebook-al2023-v1", system_python="/usr/bin/python3", python_version=(3, 9))
"""Amazon Linux 2023: AL2 notebook platforms reached end of support in June 2026. AWS's AL2023 user guide
("Python in AL2023") says `/usr/bin/python3` is the system Python and stays Python 3.9 for the life of
AL2023: https://docs.aws.amazon.com/linux/al2023/ug/python.html"""

KERNEL_PACKAGES = ("mlflow>=3.1,<4", "sagemaker-mlflow>=0.5,<0.6")
"""What a feature stage's notebook installs into its kernels at boot: MLflow and the plugin that resolves
the MLflow ARN used as tracking URI (the same ranges as the project's own dependencies)."""
KERNEL_ENV = "/home/ec2-user/anaconda3/envs/python3"
"""The conda environment behind the notebook's default `conda_python3` kernel."""

IDLE_STOP_PATH = "/usr/local/bin/notebook-idle-stop.py"
IDLE_STOP_UNIT = "notebook-idle-stop"
IDLE_STOP_LOG = "/var/log/notebook-idle-stop.log"
IDLE_CHECK_MINUTES = 5


def idle_stop_command(idle_minutes: int) -> str:
    """The scheduled command: the idle check on the platform's system interpreter."""
    return f"{PLATFORM.system_python} {IDLE_STOP_PATH} {idle_minutes}"


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


def _kernel_packages() -> str:
    """Feature stages only: pip from PyPI, in the background (a lifecycle script must end within 5
    minutes), into the kernels' environment, as ec2-user."""
    packages = " ".join(f'"{p}"' for p in KERNEL_PACKAGES)
    return f"""# 2. MLflow and the sagemaker-mlflow plugin (it resolves the ARN tracking URI) in the kernels'
#    environment: feature stages only, from PyPI (int and prd download nothing at boot)
if [ -x {KERNEL_ENV}/bin/pip ]; then
  nohup sudo -u ec2-user -H {KERNEL_ENV}/bin/pip install --quiet {packages} >> /var/log/notebook-kernel-packages.log 2>&1 &
else
  echo "no {KERNEL_ENV}: MLflow packages not installed"
fi
"""


def _idle_stop(idle_minutes: int) -> str:
    """A systemd timer, not cron: AL2023 does not install cron by default. The unit's PATH holds only
    root-owned directories, so that a user cannot put an `aws` of their own in front of root."""
    script = base64.b64encode(IDLE_STOP_SCRIPT.read_bytes()).decode()
    return f"""# 3. stop the instance after {idle_minutes} idle minutes (checked every {IDLE_CHECK_MINUTES} minutes)
echo '{script}' | base64 -d > {IDLE_STOP_PATH}
chmod 0755 {IDLE_STOP_PATH}
cat > /etc/systemd/system/{IDLE_STOP_UNIT}.service <<'UNIT'
[Unit]
Description=Stop this notebook instance after {idle_minutes} idle minutes
[Service]
Type=oneshot
Environment=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin
ExecStart={idle_stop_command(idle_minutes)}
StandardOutput=append:{IDLE_STOP_LOG}
StandardError=append:{IDLE_STOP_LOG}
UNIT
cat > /etc/systemd/system/{IDLE_STOP_UNIT}.timer <<'UNIT'
[Unit]
Description=Check every {IDLE_CHECK_MINUTES} minutes whether this notebook instance is idle
[Timer]
OnActiveSec={IDLE_CHECK_MINUTES}min
OnUnitActiveSec={IDLE_CHECK_MINUTES}min
[Install]
WantedBy=timers.target
UNIT
command -v aws > /dev/null || echo "no aws CLI on root's PATH: the idle stop cannot stop this instance"
systemctl daemon-reload
systemctl enable --now {IDLE_STOP_UNIT}.timer
"""


def on_start(tracking_uri: str, idle_minutes: int, *, install_packages: bool) -> str:
    """Sets MLFLOW_TRACKING_URI for every kernel, installs MLflow into the kernels when `install_packages`
    (feature stages), and schedules the idle stop (its script is inlined: nothing is fetched for it)."""
    packages = (
        _kernel_packages()
        if install_packages
        else ("# 2. nothing is installed at boot: the kernels keep the platform's packages\n")
    )
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
{packages}{_idle_stop(idle_minutes)}"""
