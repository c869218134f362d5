"""A client of `vu2f serve --control` (the automation API) for the python tests, and what a test
writer needs besides it: a private key to inject and what a relying party stores of it.

`Api` starts a `vu2f serve` with no token and its API on a loopback port; authenticators added
through it are served over UDP (`transport="udp"`, opened with `device()`) or as uhid devices
(`transport="uhid"`, their hidraw node in `hidraw()`)."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import urllib.error
import urllib.request

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fido2.cose import ES256
from fido2.webauthn import AttestedCredentialData

from conftest import vu2f_binary
from udp_hid import open_device


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Api:
    """A `vu2f serve --control` with no token, in `directory` (its store and runtime directory),
    and its API."""

    def __init__(self, directory, transport: str = "udp"):
        assert transport in ("udp", "uhid"), transport
        self.transport = transport
        runtime = os.path.join(directory, "runtime")
        os.mkdir(runtime, 0o700)
        served = ["--udp", "127.0.0.1:0"] if transport == "udp" else ["--uhid"]
        self.child = subprocess.Popen(
            [vu2f_binary(), "--store", os.path.join(directory, "store"), "--json", "serve",
             *served, "--control", "127.0.0.1:0"],
            stdout=subprocess.PIPE, text=True, env=dict(os.environ, XDG_RUNTIME_DIR=runtime))
        line = json.loads(self.child.stdout.readline())
        self.url = line["automation"]
        with open(line["token_file"]) as file:
            self.bearer = file.read().strip()

    def call(self, method, path, body=None):
        """The `value` of a successful answer; raises urllib.error.HTTPError otherwise."""
        request = urllib.request.Request(
            self.url + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.bearer}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(request) as response:
            return json.load(response)["value"]

    def answer(self, method, path, body=None, bearer=True):
        """(HTTP status, JSON body), whatever the status."""
        headers = {"Content-Type": "application/json"}
        if bearer:
            headers["Authorization"] = f"Bearer {self.bearer}"
        request = urllib.request.Request(
            self.url + path, method=method,
            data=None if body is None else json.dumps(body).encode(), headers=headers)
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def add(self, **configuration) -> str:
        """Adds a ctap2 authenticator (over UDP too when the transport is udp) with
        `configuration` on top; its id."""
        return self.call("POST", "/webauthn/authenticator",
                         {"protocol": "ctap2", "transport": "usb",
                          "udp": self.transport == "udp", **configuration})

    def device(self, authenticator_id):
        """python-fido2's device of an authenticator served over UDP."""
        host, port = self.call("GET", f"/webauthn/authenticator/{authenticator_id}")["udp"] \
            .rsplit(":", 1)
        return open_device(host, int(port))

    def hidraw(self, authenticator_id) -> str:
        """The hidraw node of an authenticator served through uhid."""
        node = self.call("GET", f"/webauthn/authenticator/{authenticator_id}")["hidraw"]
        assert node, f"authenticator {authenticator_id} has no hidraw node"
        return node

    def stop(self):
        self.child.kill()
        self.child.wait()


def injected_key():
    """A P-256 key the test made: the key, and its PKCS#8."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key, key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())


def credential_data(credential_id: bytes, public_key) -> AttestedCredentialData:
    """What a relying party stores of a credential: its id and its public key."""
    return AttestedCredentialData.create(b"\0" * 16, credential_id,
                                         ES256.from_cryptography_key(public_key))
