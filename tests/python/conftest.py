"""Fixtures: a fresh store and a running `vu2f serve --udp` on a loopback port."""
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def vu2f_binary() -> str:
    path = os.environ.get("VU2F_BIN", os.path.join(ROOT, "target", "release", "vu2f"))
    if not os.access(path, os.X_OK):
        pytest.fail(f"vu2f binary not found at {path}: build it (cargo build --release) or set VU2F_BIN")
    return path


@pytest.fixture
def served(tmp_path):
    """Yields a function that serves tokens and returns {name: (host, port)}."""
    store = str(tmp_path / "store")
    children = []

    def serve(*names, presence="auto"):
        for name in names:
            subprocess.run([vu2f_binary(), "--store", store, "token", "create", name], check=True,
                           stdout=subprocess.DEVNULL)
        args = [vu2f_binary(), "--store", store, "--json", "serve", "--udp", "127.0.0.1:0",
                "--presence", presence]
        for name in names:
            args += ["--token", name]
        child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        children.append(child)
        addrs = {}
        for _ in names:
            line = json.loads(child.stdout.readline())
            host, port = line["udp"].rsplit(":", 1)
            addrs[line["token"]] = (host, int(port))
        return addrs

    yield serve
    for child in children:
        child.kill()
        child.wait()


def uhid_available() -> bool:
    """Whether /dev/uhid is writable; fails when VU2F_REQUIRE_UHID says it must be."""
    writable = os.access("/dev/uhid", os.R_OK | os.W_OK)
    if not writable and os.environ.get("VU2F_REQUIRE_UHID"):
        pytest.fail("VU2F_REQUIRE_UHID is set, but /dev/uhid is not writable")
    return writable


@pytest.fixture
def served_uhid(tmp_path):
    """Yields a function that serves tokens as uhid devices and returns {name: hidraw path}."""
    if not uhid_available():
        pytest.skip("/dev/uhid is not writable here; scripts/vm-test.sh runs this in a VM")
    store = str(tmp_path / "store")
    children = []

    def serve(*names):
        for name in names:
            subprocess.run([vu2f_binary(), "--store", store, "token", "create", name], check=True,
                           stdout=subprocess.DEVNULL)
        args = [vu2f_binary(), "--store", store, "--json", "serve", "--uhid"]
        for name in names:
            args += ["--token", name]
        child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        children.append(child)
        nodes = {}
        for _ in names:
            line = json.loads(child.stdout.readline())
            nodes[line["token"]] = line["hidraw"]
        return nodes

    yield serve
    for child in children:
        child.kill()
        child.wait()
