"""python-fido2 (not written here) as CTAP2 host of a `fido2` token through the kernel: its
CtapHidDevice finds the uhid token's hidraw node, its Ctap2 reads getInfo, and its Fido2Client
makes and uses credentials that its Fido2Server verifies (packed attestation up to the store's
CA, every assertion), ES256 and EdDSA, server-side and discoverable, several discoverable ones
walked with getNextAssertion, and the PRF extension over hmac-secret. The same ceremonies as
test_ctap2_udp.py, whose relying party and helpers these tests share, but over hidraw, where the
kernel's HID layer carries every report.
Runs where /dev/uhid is writable: in the VM of scripts/vm-test.sh."""
import os

import pytest
from fido2.cose import ES256, EdDSA
from fido2.ctap2 import Ctap2
from fido2.ctap2.pin import ClientPin
from fido2.hid import CAPABILITY, CtapHidDevice

from test_client_pin_udp import PinInteraction
from test_ctap2_udp import (ES256_PARAM, FLAG_AT, FLAG_UP, FLAG_UV, RP_ID, RelyingParty,
                            StoreFacts, sha256, user)


def fido2_hidraw_device(served_uhid):
    """Serves one token as `token create` makes it (fido2); returns its python-fido2 device,
    found through the kernel by its node, and the store's facts."""
    facts = StoreFacts(served_uhid.store)
    node = served_uhid("hidraw")["hidraw"]
    found = [d for d in CtapHidDevice.list_devices() if d.descriptor.path == node]
    assert len(found) == 1, [d.descriptor for d in CtapHidDevice.list_devices()]
    return found[0], facts


def test_ctap2_get_info_through_the_kernel(served_uhid):
    device, facts = fido2_hidraw_device(served_uhid)
    assert device.capabilities & CAPABILITY.CBOR
    info = Ctap2(device).get_info()
    assert {"U2F_V2", "FIDO_2_0", "FIDO_2_1"} <= set(info.versions)
    assert info.aaguid == facts.aaguid
    assert info.options["rk"] and info.options["up"]
    assert [a["alg"] for a in info.algorithms] == [-7, -8]


@pytest.mark.parametrize("alg, key_type", [(-7, ES256), (-8, EdDSA)], ids=["ES256", "EdDSA"])
@pytest.mark.parametrize("discoverable", [False, True], ids=["server-side", "discoverable"])
def test_fido2_client_registers_and_signs_through_the_kernel(served_uhid, alg, key_type,
                                                             discoverable):
    device, facts = fido2_hidraw_device(served_uhid)
    rp = RelyingParty(device, facts, algorithms=[alg])
    auth_data = rp.register(user(1), resident_key="required" if discoverable else "discouraged")
    credential = auth_data.credential_data
    assert isinstance(credential.public_key, key_type)
    assert auth_data.flags & (FLAG_UP | FLAG_AT) == FLAG_UP | FLAG_AT
    last = auth_data.counter
    for _ in range(2):
        [(assertion, verified)] = rp.authenticate([credential], allow=not discoverable)
        assert verified.credential_id == credential.credential_id
        assert assertion.auth_data.counter > last
        last = assertion.auth_data.counter


def test_discoverable_credentials_come_back_through_get_next_assertion(served_uhid):
    device, _ = fido2_hidraw_device(served_uhid)
    ctap2 = Ctap2(device)
    for n in (1, 2, 3):
        ctap2.make_credential(sha256(bytes([n])), {"id": RP_ID, "name": "x"}, user(n),
                              [ES256_PARAM], options={"rk": True})
    first = ctap2.get_assertion(RP_ID, sha256(b"c"))
    assert first.number_of_credentials == 3
    users = [first.user["id"]] + [ctap2.get_next_assertion().user["id"] for _ in range(2)]
    assert users == [user(3)["id"], user(2)["id"], user(1)["id"]]


def test_prf_over_hmac_secret_through_the_kernel(served_uhid):
    """Fido2Client's PRF extension (hmac-secret, and hmac-secret-mc at creation) through hidraw:
    the secret given at creation comes back for the same salt, and another without UV."""
    device, facts = fido2_hidraw_device(served_uhid)
    ClientPin(Ctap2(device)).set_pin("864200")
    rp = RelyingParty(device, facts, user_interaction=PinInteraction("864200"))
    salt = os.urandom(32)
    options, state = rp.server.register_begin(user(4), user_verification="required",
                                              extensions={"prf": {"eval": {"first": salt}}})
    made = rp.client.make_credential(options.public_key)
    credential = rp.server.register_complete(state, made).credential_data
    at_creation = made.client_extension_results.prf.results.first

    def evaluate(uv):
        options, state = rp.server.authenticate_begin(
            [credential], user_verification=uv, extensions={"prf": {"eval": {"first": salt}}})
        selection = rp.client.get_assertion(options.public_key)
        rp.server.authenticate_complete(state, [credential], selection.get_response(0))
        flags = selection.get_assertions()[0].auth_data.flags
        return selection.get_response(0).client_extension_results.prf.results.first, flags

    verified, flags = evaluate("required")
    assert flags & FLAG_UV and verified == at_creation
    plain, flags = evaluate("discouraged")
    assert not flags & FLAG_UV and plain != verified
    assert evaluate("discouraged")[0] == plain
