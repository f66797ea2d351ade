"""A real cluster for the client tests: `xoscar up` of a small cluster file (a main pool and two sub pool processes
loading the test actor module), on a port range reserved with tests/integration/ports.sh's free_port_base, and
`xoscar down` at the end. XOSCAR_C_BUILD_DIR names the build tree (default: ../../build)."""
import os
import subprocess
import sys
import tempfile

import pytest

import xoscar_c

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.abspath(os.environ.get("XOSCAR_C_BUILD_DIR", os.path.join(REPO, "build")))
XOSCAR = os.path.join(BUILD, "cluster", "xoscar")
MODULE = os.path.join(BUILD, "tests", "modules", "libxo_test_actors.so")
SECRET = "python client test secret"


def _reserve_ports():
    # The reservation belongs to the reserving shell's pid: keep that shell alive (exec sleep) for the session.
    p = subprocess.Popen(["bash", "-c", f". {REPO}/tests/integration/ports.sh; free_port_base || exit 1; exec sleep 3600"],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    if not line.isdigit():
        p.kill()
        pytest.fail("free_port_base found no free port range")
    return p, int(line)


@pytest.fixture(scope="session")
def port_base():
    p, base = _reserve_ports()
    yield base
    p.kill()
    p.wait()


@pytest.fixture(scope="session")
def py_port_base():
    """A second range (base..base+9), for the clusters of Python actors."""
    p, base = _reserve_ports()
    yield base
    p.kill()
    p.wait()


class ClusterProc:
    """One cluster file brought up with xoscar up, brought down at the end."""

    def __init__(self, workdir, name, port, restart="none", modules=(), threads=1, env=None):
        self.path = os.path.join(workdir, f"{name}.yaml")
        self.env = dict(os.environ, XO_RUN_DIR=os.path.join(workdir, "run"), **(env or {}))
        with open(self.path, "w") as f:
            f.write(f"""name: {name}
secret: "{SECRET}"
modules: [{", ".join([MODULE, *modules])}]
log_level: error
restart: {restart}
hosts:
  - name: local
    address: 127.0.0.1
    port: {port}
    launcher: local
    pools:
      - count: 2
        threads: {threads}
""")
        self.main = f"127.0.0.1:{port}"
        # Output to a file, not a pipe: the daemon that `up` leaves running inherits it and would hold a pipe open.
        log = os.path.join(workdir, f"{name}.log")
        with open(log, "w") as out:
            rc = subprocess.run([XOSCAR, "up", self.path], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, timeout=60).returncode
        if rc != 0:
            self.down()
            with open(log) as f:
                raise RuntimeError(f"xoscar up failed ({rc}): {f.read()}")

    def down(self):
        subprocess.run([XOSCAR, "down", self.path], env=self.env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=60)


@pytest.fixture(scope="session")
def workdir():
    with tempfile.TemporaryDirectory(prefix="xoscar-c-py-") as d:
        yield d


@pytest.fixture(scope="session")
def cluster(port_base, workdir):
    c = ClusterProc(workdir, "pyclient", port_base)
    try:
        # the client side: the file's secret and main address, as a Python user gets them
        handle = xoscar_c.Cluster.from_file(c.path).connect()
        assert handle.main_address == c.main and handle.secret == SECRET
        c.handle = handle
        yield c
    finally:
        c.down()


# Python actors: the pools' embedded interpreter runs this test environment's Python (XO_PYTHON: its site-packages,
# where test-python.sh installed xoscar_c) and finds the test actor modules (python/tests/pyactors) on PYTHONPATH.
PY_ENV = {"XO_PYTHON": sys.executable, "PYTHONPATH": HERE}
PY_MODULE = "python:pyactors.basic"


@pytest.fixture(scope="session")
def pycluster(py_port_base, workdir):
    """A main pool and two sub pool processes (two scheduler threads each) hosting the C test module and the Python
    actors of pyactors/basic.py."""
    c = ClusterProc(workdir, "pyactors", py_port_base, modules=[PY_MODULE], threads=2, env=PY_ENV)
    try:
        xoscar_c.Cluster.from_file(c.path).connect()
        yield c
    finally:
        c.down()
