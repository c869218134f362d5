"""python-fido2 (not written here) judges authenticators added through the automation API of
`vu2f serve --control`: its Fido2Client makes and uses a discoverable credential with user
verification on one, its Fido2Server verifies both, and its Ctap2 sees the answers change as the
API flips user verification and consent; one added without resident keys is refused rk by the
client itself, from getInfo.

Credentials and faults, as a test writer uses them:
* a credential added with a private key the test made signs in with no registration ceremony:
  the server verifies with that key's public half, and the sign count Get Credentials reads back
  is the one the server saw;
* a credential the token makes is listed with its key (an ephemeral authenticator is exportable),
  and the listed key is the one that signs; removed, it signs no more;
* each fault is observed where a relying party or a host would: the corrupted signature is
  refused by the server, the counter that went back is flagged by the relying party's counter
  check, the busy token answers CTAPHID CHANNEL_BUSY to python-fido2, the delayed answer comes
  late with KEEPALIVE PROCESSING meanwhile;
* requests without the bearer token get 401, bad fields 400 naming the field."""
import hashlib
import time
import urllib.error

import pytest
from cryptography.hazmat.primitives import serialization
from fido2.client import ClientError, DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2
from fido2.hid import CTAPHID, STATUS
from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity

from automation_api import Api, b64url, credential_data, injected_key, unb64url

RP_ID = "vu2f.example"
ORIGIN = "https://vu2f.example"
ES256_PARAM = {"type": "public-key", "alg": -7}
FLAG_UV = 0x04
# A refused built-in UV: OPERATION_DENIED, or UV_INVALID where built-in UV counts retries.
UV_REFUSED = (CtapError.ERR.OPERATION_DENIED, CtapError.ERR.UV_INVALID)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@pytest.fixture
def api(tmp_path):
    served = Api(str(tmp_path))
    yield served
    served.stop()


def test_python_fido2_sees_the_switches_of_an_added_authenticator(api):
    authenticator = api.add(hasResidentKey=True, hasUserVerification=True, isUserVerified=True)
    device = api.device(authenticator)
    ctap2 = Ctap2(device)
    assert ctap2.info.options["uv"] is True and ctap2.info.options["rk"] is True

    rp = RelyingParty(device)
    server, client = rp.server, rp.client
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
    rp = RelyingParty(device)
    server, client = rp.server, rp.client
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


class CounterWentBack(Exception):
    pass


class RelyingParty:
    """python-fido2's Fido2Server, with the counter check a relying party adds to it (WebAuthn
    §7.2 step 21: a stored counter that does not rise flags a cloned authenticator)."""

    def __init__(self, device):
        self.server = Fido2Server(PublicKeyCredentialRpEntity(id=RP_ID, name="vu2f"))
        self.client = Fido2Client(device, client_data_collector=DefaultClientDataCollector(ORIGIN),
                                  user_interaction=UserInteraction())
        self.counters = {}

    def sign_in(self, credentials, allow=True):
        """One assertion, verified by the server (which raises on a bad signature); returns the
        credential id and its counter, or raises CounterWentBack."""
        options, state = self.server.authenticate_begin(credentials if allow else None,
                                                        user_verification="discouraged")
        selection = self.client.get_assertion(options.public_key)
        self.server.authenticate_complete(state, credentials, selection.get_response(0))
        assertion = selection.get_assertions()[0]
        credential_id, counter = assertion.credential["id"], assertion.auth_data.counter
        last = self.counters.get(credential_id)
        self.counters[credential_id] = counter
        if last is not None and counter <= last:
            raise CounterWentBack(f"{last} then {counter}")
        return credential_id, counter


def test_an_added_credential_signs_in_without_registration_and_its_count_reads_back(api):
    authenticator = api.add(hasResidentKey=True)
    key, pkcs8 = injected_key()
    credential_id = b"injected-" + bytes(range(16))
    api.call("POST", f"/webauthn/authenticator/{authenticator}/credential", {
        "credentialId": b64url(credential_id), "isResidentCredential": True, "rpId": RP_ID,
        "privateKey": b64url(pkcs8), "userHandle": b64url(b"alice"), "signCount": 100})
    rp = RelyingParty(api.device(authenticator))
    stored = [credential_data(credential_id, key.public_key())]
    for allow in (False, True):  # discovered by rpId alone, then named in the allowList
        signed_id, counter = rp.sign_in(stored, allow=allow)
        assert signed_id == credential_id
        assert counter > 100
        listed = api.call("GET", f"/webauthn/authenticator/{authenticator}/credentials")
        assert [c["credentialId"] for c in listed] == [b64url(credential_id)]
        assert listed[0]["signCount"] == counter
        assert listed[0]["isResidentCredential"] is True
        assert unb64url(listed[0]["userHandle"]) == b"alice"


def test_a_made_credential_is_listed_with_the_key_that_signs(api):
    authenticator = api.add()
    rp = RelyingParty(api.device(authenticator))
    options, state = rp.server.register_begin(
        PublicKeyCredentialUserEntity(id=b"bob", name="bob"), user_verification="discouraged")
    made = rp.server.register_complete(state, rp.client.make_credential(options.public_key))
    listed = api.call("GET", f"/webauthn/authenticator/{authenticator}/credentials")
    assert len(listed) == 1
    assert unb64url(listed[0]["credentialId"]) == made.credential_data.credential_id
    key = serialization.load_der_private_key(unb64url(listed[0]["privateKey"]), None)
    exported = credential_data(made.credential_data.credential_id, key.public_key())
    assert exported.public_key == made.credential_data.public_key
    _, counter = rp.sign_in([made.credential_data])
    listed = api.call("GET", f"/webauthn/authenticator/{authenticator}/credentials")
    assert listed[0]["signCount"] == counter
    # Its id is the whole credential; removed, the token refuses it all the same.
    api.call("DELETE", f"/webauthn/authenticator/{authenticator}/credentials/"
                       f"{listed[0]['credentialId']}")
    assert api.call("GET", f"/webauthn/authenticator/{authenticator}/credentials") == []
    with pytest.raises(ClientError) as refused:
        rp.sign_in([made.credential_data])
    assert refused.value.code == ClientError.ERR.DEVICE_INELIGIBLE, refused.value


def test_a_relying_party_refuses_the_corrupted_signature_and_flags_the_counter(api):
    authenticator = api.add()
    key, pkcs8 = injected_key()
    credential_id = b"faulty"
    api.call("POST", f"/webauthn/authenticator/{authenticator}/credential", {
        "credentialId": b64url(credential_id), "isResidentCredential": False, "rpId": RP_ID,
        "privateKey": b64url(pkcs8), "signCount": 0})
    rp = RelyingParty(api.device(authenticator))
    stored = [credential_data(credential_id, key.public_key())]
    _, first = rp.sign_in(stored)
    faults = f"/webauthn/authenticator/{authenticator}/faults"
    assert api.call("POST", faults, {"corruptSignature": True})["corruptSignature"] is True
    with pytest.raises(ValueError, match="(?i)signature"):
        rp.sign_in(stored)
    assert api.call("GET", faults)["corruptSignature"] is False, "spent"
    rp.sign_in(stored)
    api.call("POST", faults, {"counter": first})
    with pytest.raises(CounterWentBack):
        rp.sign_in(stored)
    _, after = rp.sign_in(stored)
    assert after > first + 2, "the token's own counter went on"


def test_a_host_sees_the_busy_and_the_delayed_answer(api, caplog):
    """python-fido2 meets CHANNEL_BUSY as it meets a real key's: it says so and tries again."""
    authenticator = api.add()
    device = api.device(authenticator)
    faults = f"/webauthn/authenticator/{authenticator}/faults"
    Ctap2(device).get_info()
    assert "busy" not in caplog.text
    api.call("POST", faults, {"busy": True})
    assert Ctap2(device).get_info().versions
    assert caplog.text.count("CTAP channel busy") == 1, caplog.text
    assert api.call("GET", faults)["busy"] is False, "spent"
    api.call("POST", faults, {"delayMs": 1500})
    statuses = []
    started = time.monotonic()
    answer = device.call(CTAPHID.CBOR, b"\x04", on_keepalive=statuses.append)
    took = time.monotonic() - started
    assert answer[0] == 0, "getInfo answered after the delay"
    assert took >= 1.4, f"answered after {took:.2f} s"
    assert statuses and set(statuses) == {STATUS.PROCESSING}


def test_requests_without_the_bearer_or_with_bad_fields_are_refused(api):
    status, _ = api.answer("GET", "/webauthn/authenticators", bearer=False)
    assert status == 401
    authenticator = api.add()
    status, answer = api.answer("POST", f"/webauthn/authenticator/{authenticator}/credential", {
        "credentialId": b64url(b"x"), "isResidentCredential": False, "rpId": RP_ID,
        "privateKey": b64url(b"not a key")})
    assert status == 400
    assert answer["value"]["error"] == "invalid argument"
    assert answer["value"]["message"].startswith("field `privateKey`")
    status, answer = api.answer("POST", f"/webauthn/authenticator/{authenticator}/faults",
                                {"delayMs": "soon"})
    assert status == 400
    assert "delayMs" in answer["value"]["message"]
