"""python-fido2 (not written here) judges the token: its Ctap1 class registers and authenticates
over `vu2f serve --udp`, and its own verification code checks every signature."""
import hashlib
import os

import pytest
from fido2.ctap import CtapError
from fido2.ctap1 import APDU, ApduError, Ctap1

from udp_hid import open_device


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


APP = sha256(b"https://python-fido2.vu2f.invalid")


def test_version_register_authenticate_verified_by_python_fido2(served):
    addrs = served("py")
    device = open_device(*addrs["py"])
    ctap1 = Ctap1(device)
    assert ctap1.get_version() == "U2F_V2"

    client_param = sha256(os.urandom(32))
    registration = ctap1.register(client_param, APP)
    registration.verify(APP, client_param)  # raises on a bad attestation signature

    last = -1
    for _ in range(10):
        challenge = sha256(os.urandom(32))
        signature = ctap1.authenticate(challenge, APP, registration.key_handle)
        signature.verify(APP, challenge, registration.public_key)
        assert signature.user_presence & 1 == 1
        assert signature.counter > last
        last = signature.counter


def test_check_only_and_wrong_app_id_give_the_spec_errors(served):
    addrs = served("py")
    ctap1 = Ctap1(open_device(*addrs["py"]))
    client_param = sha256(b"c")
    registration = ctap1.register(client_param, APP)

    with pytest.raises(ApduError) as check_only:
        ctap1.authenticate(client_param, APP, registration.key_handle, check_only=True)
    assert check_only.value.code == APDU.USE_NOT_SATISFIED  # 0x6985: the handle is ours

    with pytest.raises(ApduError) as wrong_app:
        ctap1.authenticate(client_param, sha256(b"https://elsewhere.invalid"), registration.key_handle)
    assert wrong_app.value.code == APDU.WRONG_DATA  # 0x6A80

    forged = bytearray(registration.key_handle)
    forged[20] ^= 1
    with pytest.raises(ApduError) as forged_error:
        ctap1.authenticate(client_param, APP, bytes(forged))
    assert forged_error.value.code == APDU.WRONG_DATA


def test_handles_do_not_cross_tokens(served):
    addrs = served("one", "two")
    one, two = Ctap1(open_device(*addrs["one"])), Ctap1(open_device(*addrs["two"]))
    registration = one.register(sha256(b"c"), APP)
    with pytest.raises(ApduError) as refused:
        two.authenticate(sha256(b"c"), APP, registration.key_handle)
    assert refused.value.code == APDU.WRONG_DATA


def test_ctaphid_ping_wink_and_capabilities(served):
    addrs = served("py")
    device = open_device(*addrs["py"])
    payload = os.urandom(1000)
    assert device.ping(payload) == payload
    device.wink()
    assert device.version == 2
    with pytest.raises(CtapError):
        device.call(0x10)  # CTAPHID_CBOR without the CBOR capability: ERR_INVALID_CMD


def test_presence_denied_answers_6985(served):
    addrs = served("py", presence="deny")
    ctap1 = Ctap1(open_device(*addrs["py"]))
    with pytest.raises(ApduError) as denied:
        ctap1.register(sha256(b"c"), APP)
    assert denied.value.code == APDU.USE_NOT_SATISFIED
