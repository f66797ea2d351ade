"""A real cluster for the client tests: `xoscar up` of a small cluster file (a main pool and two sub pool processes
loading the test actor module), on a port range reserved with tests/integration/ports.sh's free_port_base, and
`xoscar down` at the end. XOSCAR_C_BUILD_DIR names the build tree (default: ../../build)."""
import os
import subprocess
import tempfile

import pytest

import xoscar_c

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.abspath(os.environ.get("XOSCAR_C_BUILD_DIR", os.path.join(REPO, "build")))
XOSCAR = os.path.join(BUILD, "cluster", "xoscar")
MODULE = os.path.join(BUILD, "tests", "modules", "libxo_test_actors.so")
SECRET = "python client test secret"


@pytest.fixture(scope="session")
def port_base():
    # The reservation belongs to the reserving shell's pid: keep that shell alive (exec sleep) for the session.
    p = subprocess.Popen(["bash", "-c", f". {REPO}/tests/integration/ports.sh; free_port_base || exit 1; exec sleep 3600"],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    if not line.isdigit():
        p.kill()
        pytest.fail("free_port_base found no free port range")
    yield int(line)
    p.kill()
    p.wait()


class ClusterProc:
    """One cluster file brought up with xoscar up, brought down at the end."""

    def __init__(self, workdir, name, port, restart="none"):
        self.path = os.path.join(workdir, f"{name}.yaml")
        self.env = dict(os.environ, XO_RUN_DIR=os.path.join(workdir, "run"))
        with open(self.path, "w") as f:
            f.write(f"""name: {name}
secret: "{SECRET}"
modules: [{MODULE}]
log_level: error
restart: {restart}
hosts:
  - name: local
    address: 127.0.0.1
    port: {port}
    launcher: local
    pools:
      - count: 2
        threads: 1
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
