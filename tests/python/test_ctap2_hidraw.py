"""python-fido2 (not written here) as CTAP2 host of a `fido2` token through the kernel: its
CtapHidDevice finds the uhid token's hidraw node, its Ctap2 reads getInfo, and its Fido2Client
makes and uses credentials that its Fido2Server verifies (packed attestation up to the store's
CA, every assertion), ES256 and EdDSA, server-side and discoverable, several discoverable ones
walked with getNextAssertion. The same ceremonies as test_ctap2_udp.py, whose relying party and
helpers these tests share, but over hidraw, where the kernel's HID layer carries every report
(PIN, credential management and the extensions: test_ctap21_hidraw.py).
Runs where /dev/uhid is writable: in the VM of scripts/vm-test.sh."""
import pytest
from fido2.cose import ES256, EdDSA
from fido2.ctap2 import Ctap2
from fido2.hid import CAPABILITY

from test_ctap2_udp import (ES256_PARAM, FLAG_AT, FLAG_UP, RP_ID, RelyingParty, fido2_device,
                            sha256, user)


def test_ctap2_get_info_through_the_kernel(served_hidraw):
    device, facts = fido2_device(served_hidraw)
    assert device.capabilities & CAPABILITY.CBOR
    info = Ctap2(device).get_info()
    assert {"U2F_V2", "FIDO_2_0", "FIDO_2_1"} <= set(info.versions)
    assert info.aaguid == facts.aaguid
    assert info.options["rk"] and info.options["up"]
    assert [a["alg"] for a in info.algorithms] == [-7, -8]


@pytest.mark.parametrize("alg, key_type", [(-7, ES256), (-8, EdDSA)], ids=["ES256", "EdDSA"])
@pytest.mark.parametrize("discoverable", [False, True], ids=["server-side", "discoverable"])
def test_fido2_client_registers_and_signs_through_the_kernel(served_hidraw, alg, key_type,
                                                             discoverable):
    device, facts = fido2_device(served_hidraw)
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


def test_discoverable_credentials_come_back_through_get_next_assertion(served_hidraw):
    device, _ = fido2_device(served_hidraw)
    ctap2 = Ctap2(device)
    for n in (1, 2, 3):
        ctap2.make_credential(sha256(bytes([n])), {"id": RP_ID, "name": "x"}, user(n),
                              [ES256_PARAM], options={"rk": True})
    first = ctap2.get_assertion(RP_ID, sha256(b"c"))
    assert first.number_of_credentials == 3
    users = [first.user["id"]] + [ctap2.get_next_assertion().user["id"] for _ in range(2)]
    assert users == [user(3)["id"], user(2)["id"], user(1)["id"]]

