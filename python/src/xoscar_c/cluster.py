"""A cluster handle from a cluster file: its secret and main pool address, as `xoscar run FILE -- ...` gives them
to a client (the file is read by the xoscar CLI itself, so every rule of docs/cluster-file.md applies)."""
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Optional

from . import _api


def xoscar_binary() -> str:
    """$XOSCAR_BIN, else the xoscar of the tree or prefix this package was built against, else xoscar on PATH."""
    env = os.environ.get("XOSCAR_BIN")
    if env:
        return env
    try:
        from ._build_info import XOSCAR_BIN
    except ImportError:
        XOSCAR_BIN = None
    if XOSCAR_BIN and os.access(XOSCAR_BIN, os.X_OK):
        return XOSCAR_BIN
    found = shutil.which("xoscar")
    if found:
        return found
    raise FileNotFoundError("the xoscar command was not found: set XOSCAR_BIN or put it on PATH")


_PRINT_ENV = "import json, os; print(json.dumps([os.environ['XO_SECRET'], os.environ['XO_CLUSTER_MAIN']]))"


@dataclass(frozen=True)
class Cluster:
    path: Optional[str]
    secret: str
    main_address: str

    @classmethod
    def from_file(cls, path: str) -> "Cluster":
        r = subprocess.run([xoscar_binary(), "run", path, "--", sys.executable, "-c", _PRINT_ENV],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise ValueError(f"cluster file {path}: {r.stderr.strip() or 'xoscar run exited %d' % r.returncode}")
        secret, main = json.loads(r.stdout.strip().splitlines()[-1])
        return cls(path, secret, main)

    @classmethod
    def from_env(cls) -> "Cluster":
        """What `xoscar run FILE -- python script.py` passes: $XO_SECRET and $XO_CLUSTER_MAIN."""
        main = os.environ.get("XO_CLUSTER_MAIN")
        if not main:
            raise ValueError("XO_CLUSTER_MAIN is not set (run under `xoscar run FILE -- ...`)")
        return cls(None, os.environ.get("XO_SECRET", ""), main)

    def connect(self) -> "Cluster":
        """Makes this process use the cluster's secret (before its first call to the cluster). Returns self."""
        _api.set_secret(self.secret)
        return self
