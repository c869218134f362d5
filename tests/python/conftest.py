"""Fixtures: a fresh store and a running `vu2f serve`, over UDP on a loopback port (`served`) or
as uhid devices (`served_uhid`, and `served_hidraw`, which serves as `served` does)."""
import json
import os
import subprocess
import sys

import pytest
from fido2.hid import CtapHidDevice, get_descriptor

sys.path.insert(0, os.path.dirname(__file__))

from udp_hid import open_device  # noqa: E402 - found through the path above

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def vu2f_binary() -> str:
    path = os.environ.get("VU2F_BIN", os.path.join(ROOT, "target", "release", "vu2f"))
    if not os.access(path, os.X_OK):
        pytest.fail(f"vu2f binary not found at {path}: build it (cargo build --release) or set VU2F_BIN")
    return path


class Servers:
    """`vu2f serve` processes over one store, killed at the end of the test."""

    def __init__(self, store):
        self.store = store
        self.children = []

    def start(self, names, transport_args, key, profile=None, attestation=None):
        """Creates the tokens (with `profile` and `attestation`; None: what `token create` makes
        by default), serves them, and returns {name: the `key` of its JSON line}."""
        profile_args = [] if profile is None else ["--profile", profile]
        if attestation is not None:
            profile_args += ["--attestation", attestation]
        for name in names:
            subprocess.run([vu2f_binary(), "--store", self.store, "token", "create", name]
                           + profile_args, check=True, stdout=subprocess.DEVNULL)
        args = [vu2f_binary(), "--store", self.store, "--json", "serve"] + transport_args
        for name in names:
            args += ["--token", name]
        child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self.children.append(child)
        found = {}
        for _ in names:
            line = json.loads(child.stdout.readline())
            found[line["token"]] = line[key]
        return found

    def serve_uhid(self, names, presence="auto", profile=None, uv="none", attestation=None):
        """Creates the tokens and serves them as uhid devices, with `uv` the policy of built-in
        user verification (none: without); returns {name: hidraw path}."""
        transport = ["--uhid", "--presence", presence]
        if uv != "none":
            transport += ["--uv", uv]
        return self.start(names, transport, "hidraw", profile, attestation)

    def stop(self):
        for child in self.children:
            child.kill()
            child.wait()


@pytest.fixture
def served(tmp_path):
    """Yields a function that serves tokens over UDP and returns {name: (host, port)}: tokens of
    `profile` (u2f or fido2; None: the default of `token create`), with `uv` the policy of built-in
    user verification (none: without) and `attestation` the token's (batch or self). Its `store`
    attribute is the store directory (for `vu2f touch` and `vu2f token show`), its `open` the
    python-fido2 device of an address it returned (again after a `vu2f replug`)."""
    servers = Servers(str(tmp_path / "store"))

    def serve(*names, presence="auto", profile=None, uv="none", attestation=None):
        transport = ["--udp", "127.0.0.1:0", "--presence", presence]
        if uv != "none":
            transport += ["--uv", uv]
        addrs = servers.start(names, transport, "udp", profile, attestation)
        return {name: (addr.rsplit(":", 1)[0], int(addr.rsplit(":", 1)[1]))
                for name, addr in addrs.items()}

    serve.store = servers.store
    serve.open = lambda addr: open_device(*addr)
    yield serve
    servers.stop()


def uhid_available() -> bool:
    """Whether /dev/uhid is writable; fails when VU2F_REQUIRE_UHID says it must be."""
    writable = os.access("/dev/uhid", os.R_OK | os.W_OK)
    if not writable and os.environ.get("VU2F_REQUIRE_UHID"):
        pytest.fail("VU2F_REQUIRE_UHID is set, but /dev/uhid is not writable")
    return writable


@pytest.fixture
def served_uhid(tmp_path):
    """Yields a function that serves tokens as uhid devices and returns {name: hidraw path}:
    tokens of `profile` (u2f or fido2; None: the default), with `uv` the policy of built-in user
    verification (none: without), as `served` has them, and a `store` attribute as it has."""
    if not uhid_available():
        pytest.skip("/dev/uhid is not writable here; scripts/vm-test.sh runs this in a VM")
    servers = Servers(str(tmp_path / "store"))

    def serve(*names, presence="auto", profile=None, uv="none", attestation=None):
        return servers.serve_uhid(names, presence, profile, uv, attestation)

    serve.store = servers.store
    yield serve
    servers.stop()



def hidraw_device(uniq: str) -> CtapHidDevice:
    """python-fido2's device of the uhid token whose HID uniq is `uniq`, found as python-fido2
    finds keys: CtapHidDevice.list_devices reads every hidraw node's descriptor and uniq."""
    found = [d for d in CtapHidDevice.list_devices() if d.descriptor.serial_number == uniq]
    assert len(found) == 1, (uniq, [d.descriptor for d in CtapHidDevice.list_devices()])
    return found[0]


@pytest.fixture
def served_hidraw(served_uhid):
    """`served` through the kernel: the same call, each token a uhid device, returned as its HID
    uniq, which names it across a `vu2f replug` (its hidraw node may change); `open(uniq)` finds
    its node. A test module that overrides `served` with this runs tests written for `served`
    through hidraw."""

    def serve(*names, **options):
        nodes = served_uhid(*names, **options)
        return {name: get_descriptor(node).serial_number for name, node in nodes.items()}

    serve.store = served_uhid.store
    serve.open = hidraw_device
    return serve
