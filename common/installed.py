"""The connector's own commands, as a person types them in a message or a printed hint.

deploy/quickstart.sh installs ``ecr-connector`` and supervisord's ``supervisorctl`` in
``.venv/bin/``, beside the Python that runs them, and that folder is not on PATH: a hint
naming a bare ``ecr-connector doctor`` would answer "command not found".
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def command(name: str) -> str:
    """``name`` beside this Python (its full path), else as PATH finds it, else bare."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name) or name
