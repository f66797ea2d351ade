"""The Python client across two hosts: network namespaces joined by a veth pair (tests/integration/netns.sh, addresses
we create and remove), each host started by `xoscar up FILE --host NAME` inside its namespace. A client process in
host a's namespace, with the secret from the cluster file, creates and calls C actors in host b's sub pool through
b's main pool (asyncio and blocking APIs), gets ActorNotExist from b for a missing actor, and ServerClosed once b is
down. Skipped where namespaces cannot be made (not root, no iproute2)."""
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import MODULE, REPO, SECRET, XOSCAR

NETNS = os.path.join(REPO, "tests", "integration", "netns.sh")
TAG = f"xpy{os.getpid() % 100000}"
SUBNET = "10.237.0"


def _sh(script, check=True):
    return subprocess.run(["bash", "-c", f". {NETNS}; {script}"], capture_output=True, text=True, timeout=60,
                          check=check)


@pytest.fixture(scope="module")
def two_hosts(port_base, workdir):
    if os.geteuid() != 0 or _sh(f"netns_up {TAG} {SUBNET}", check=False).returncode != 0:
        _sh(f"nsa={TAG}a nsb={TAG}b; netns_down", check=False)
        pytest.skip("network namespaces cannot be made here (root and iproute2)")
    nsa, nsb = f"{TAG}a", f"{TAG}b"
    port = port_base + 5  # the session cluster keeps port_base..+3
    path = os.path.join(workdir, "twohosts.yaml")
    with open(path, "w") as f:
        f.write(textwrap.dedent(f"""\
            name: pytwohosts
            secret: "{SECRET}"
            modules: [{MODULE}]
            log_level: error
            hosts:
              - {{name: a, address: {SUBNET}.1, port: {port}, launcher: none, pools: [{{count: 1, threads: 1}}]}}
              - {{name: b, address: {SUBNET}.2, port: {port}, launcher: none, pools: [{{count: 1, threads: 1}}]}}
            """))
    env = dict(os.environ, XO_RUN_DIR=os.path.join(workdir, "run2"), XO_LISTEN_ANY="1")
    log = os.path.join(workdir, "twohosts.log")
    started = []
    try:
        for host, ns in (("a", nsa), ("b", nsb)):
            with open(log, "a") as out:
                rc = subprocess.run(["ip", "netns", "exec", ns, XOSCAR, "up", path, "--host", host], env=env,
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    timeout=60).returncode
            if rc != 0:
                with open(log) as f:
                    pytest.fail(f"xoscar up --host {host} failed ({rc}): {f.read()}")
            started.append((host, ns))
        yield {"path": path, "nsa": nsa, "nsb": nsb, "a": f"{SUBNET}.1:{port}", "b": f"{SUBNET}.2:{port}",
               "env": env, "down_b": lambda: _down(path, env, "b", nsb)}
    finally:
        for host, ns in started:
            _down(path, env, host, ns)
        _sh(f"nsa={nsa} nsb={nsb}; netns_down", check=False)


def _down(path, env, host, ns):
    subprocess.run(["ip", "netns", "exec", ns, XOSCAR, "down", path, "--host", host], env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=60)


def _client(two_hosts, code):
    """Runs code in a Python process inside host a's namespace; returns its stdout's last line."""
    script = textwrap.dedent("""\
        import asyncio, sys, xoscar_c
        from xoscar_c import sync
        cluster = xoscar_c.Cluster.from_file(sys.argv[1]).connect()
        A, B = sys.argv[2], sys.argv[3]
        """) + textwrap.dedent(code)
    r = subprocess.run(["ip", "netns", "exec", two_hosts["nsa"], sys.executable, "-c", script, two_hosts["path"],
                        two_hosts["a"], two_hosts["b"]], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, XO_RUN_DIR=two_hosts["env"]["XO_RUN_DIR"]))
    assert r.returncode == 0, f"client failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r.stdout.strip().splitlines()[-1]


def test_calls_from_host_a_reach_c_actors_on_host_b(two_hosts):
    out = _client(two_hosts, """
        async def main():
            ref = await xoscar_c.create_actor("Counter", 40, address=B + "/1", uid="over-there")
            assert ref.address.startswith(B), ref.address
            assert await ref.add(2) == 42
            again = await xoscar_c.actor_ref(B, "over-there")  # found through b's main pool
            assert await again.get() == 42
            assert await xoscar_c.has_actor(again)
            blocking = sync.actor_ref(B + "/1", "over-there")
            assert blocking.add(1) == 43
            try:
                await xoscar_c.actor_ref(B, "nobody")
                raise AssertionError("no ActorNotExist")
            except xoscar_c.ActorNotExist as e:
                assert e.status_name == "XO_ENOACTOR"
            await xoscar_c.destroy_actor(ref)
            print("ok", await asyncio.gather(*(sync_free_call(i) for i in range(3))))

        async def sync_free_call(i):
            r = await xoscar_c.create_actor("Counter", i, address=B + "/1")
            v = await r.add(10)
            await xoscar_c.destroy_actor(r)
            return v

        asyncio.run(main())
        """)
    assert out == "ok [10, 11, 12]"


def test_a_host_that_goes_down_is_server_closed_not_a_hang(two_hosts):
    _client(two_hosts, """
        ref = sync.create_actor("Counter", 1, address=B + "/1", uid="doomed")
        assert ref.get() == 1
        print("ok")
        """)
    two_hosts["down_b"]()
    out = _client(two_hosts, """
        import time
        t0 = time.monotonic()
        try:
            sync.actor_ref(B + "/1", "doomed").get()
            raise AssertionError("no error from a host that is down")
        except xoscar_c.ServerClosed as e:
            print("closed", e.status_name, round(time.monotonic() - t0, 1) < 10)
        """)
    assert out.startswith("closed XO_E") and out.endswith("True"), out
