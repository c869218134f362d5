"""python-fido2 (not written here) judges authenticators added through the automation API of
`vu2f serve --control`: its Fido2Client makes and uses a discoverable credential with user
verification on one, its Fido2Server verifies both, and its Ctap2 sees the answers change as the
API flips user verification and consent; one added without resident keys is refused rk by the
client itself, from getInfo."""
import hashlib
import json
import os
import subprocess
import urllib.error
import urllib.request

import pytest
from fido2.client import ClientError, DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2
from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity

from conftest import vu2f_binary
from udp_hid import open_device

RP_ID = "vu2f.example"
ORIGIN = "https://vu2f.example"
ES256_PARAM = {"type": "public-key", "alg": -7}
FLAG_UV = 0x04
# A refused built-in UV: OPERATION_DENIED, or UV_INVALID where built-in UV counts retries.
UV_REFUSED = (CtapError.ERR.OPERATION_DENIED, CtapError.ERR.UV_INVALID)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class Api:
    """A `vu2f serve --udp --control` with no token, and its API."""

    def __init__(self, tmp_path):
        env = dict(os.environ, XDG_RUNTIME_DIR=str(tmp_path / "runtime"))
        os.mkdir(tmp_path / "runtime", 0o700)
        self.child = subprocess.Popen(
            [vu2f_binary(), "--store", str(tmp_path / "store"), "--json", "serve", "--udp",
             "127.0.0.1:0", "--control", "127.0.0.1:0"],
            stdout=subprocess.PIPE, text=True, env=env)
        line = json.loads(self.child.stdout.readline())
        self.url = line["automation"]
        with open(line["token_file"]) as file:
            self.bearer = file.read().strip()

    def call(self, method, path, body=None):
        request = urllib.request.Request(
            self.url + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.bearer}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(request) as response:
            return json.load(response)["value"]

    def add(self, **configuration):
        return self.call("POST", "/webauthn/authenticator",
                         {"protocol": "ctap2", "transport": "usb", "udp": True, **configuration})

    def device(self, authenticator_id):
        host, port = self.call("GET", f"/webauthn/authenticator/{authenticator_id}")["udp"] \
            .rsplit(":", 1)
        return open_device(host, int(port))

    def stop(self):
        self.child.kill()
        self.child.wait()


@pytest.fixture
def api(tmp_path):
    served = Api(tmp_path)
    yield served
    served.stop()


def test_python_fido2_sees_the_switches_of_an_added_authenticator(api):
    authenticator = api.add(hasResidentKey=True, hasUserVerification=True, isUserVerified=True)
    device = api.device(authenticator)
    ctap2 = Ctap2(device)
    assert ctap2.info.options["uv"] is True and ctap2.info.options["rk"] is True

    server = Fido2Server(PublicKeyCredentialRpEntity(id=RP_ID, name="vu2f"))
    client = Fido2Client(device, client_data_collector=DefaultClientDataCollector(ORIGIN),
                         user_interaction=UserInteraction())
    user = PublicKeyCredentialUserEntity(id=b"alice-id", name="alice")
    options, state = server.register_begin(user, resident_key_requirement="required",
                                           user_verification="required")
    auth_data = server.register_complete(state, client.make_credential(options.public_key))
    assert auth_data.flags & FLAG_UV
    credentials = [auth_data.credential_data]
    options, state = server.authenticate_begin(user_verification="required")
    selection = client.get_assertion(options.public_key)
    assert selection.get_response(0).response.user_handle == b"alice-id"
    server.authenticate_complete(state, credentials, selection.get_response(0))

    api.call("POST", f"/webauthn/authenticator/{authenticator}/uv", {"isUserVerified": False})
    with pytest.raises(CtapError) as refused:
        ctap2.make_credential(sha256(b"uv"), {"id": RP_ID, "name": "x"},
                              {"id": b"bob", "name": "bob"}, [ES256_PARAM], options={"uv": True})
    assert refused.value.code in UV_REFUSED
    made = ctap2.make_credential(sha256(b"up"), {"id": RP_ID, "name": "x"},
                                 {"id": b"bob", "name": "bob"}, [ES256_PARAM])
    assert not made.auth_data.flags & FLAG_UV

    api.call("POST", f"/webauthn/authenticator/{authenticator}/consenting",
             {"isUserConsenting": False})
    with pytest.raises(CtapError) as denied:
        ctap2.make_credential(sha256(b"up"), {"id": RP_ID, "name": "x"},
                              {"id": b"bob", "name": "bob"}, [ES256_PARAM])
    assert denied.value.code == CtapError.ERR.OPERATION_DENIED
    api.call("POST", f"/webauthn/authenticator/{authenticator}/consenting",
             {"isUserConsenting": True})
    ctap2.make_credential(sha256(b"up"), {"id": RP_ID, "name": "x"},
                          {"id": b"bob", "name": "bob"}, [ES256_PARAM])

    api.call("DELETE", f"/webauthn/authenticator/{authenticator}")
    assert api.call("GET", "/webauthn/authenticators") == []
    with pytest.raises(urllib.error.HTTPError) as gone:
        api.call("GET", f"/webauthn/authenticator/{authenticator}")
    assert gone.value.code == 404


def test_python_fido2_refuses_rk_on_an_authenticator_without_resident_keys(api):
    authenticator = api.add(hasResidentKey=False)
    device = api.device(authenticator)
    assert Ctap2(device).info.options["rk"] is False
    server = Fido2Server(PublicKeyCredentialRpEntity(id=RP_ID, name="vu2f"))
    client = Fido2Client(device, client_data_collector=DefaultClientDataCollector(ORIGIN),
                         user_interaction=UserInteraction())
    user = PublicKeyCredentialUserEntity(id=b"carol-id", name="carol")
    options, _ = server.register_begin(user, resident_key_requirement="required",
                                       user_verification="discouraged")
    with pytest.raises(ClientError) as refused:
        client.make_credential(options.public_key)
    assert refused.value.code == ClientError.ERR.CONFIGURATION_UNSUPPORTED
    assert "Resident key not supported" in str(refused.value)
    options, state = server.register_begin(user, resident_key_requirement="discouraged",
                                           user_verification="discouraged")
    server.register_complete(state, client.make_credential(options.public_key))
