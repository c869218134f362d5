"""python-fido2 (not written here) judges credential management, authenticatorConfig and
authenticatorReset of a `fido2` token served over UDP (CTAP 2.1 §6.8, §6.11, §6.6): its
CredentialManagement lists, renames and deletes discoverable credentials with a pinUvAuthToken of
the cm permission (one bound to an RP sees only that RP's); its Config toggles alwaysUv (U2F goes
off, makeCredential wants a token) and raises the minimum PIN length with forceChangePin and the
RP IDs the minPinLength extension tells it to; Ctap2.reset erases everything only within 10 s of a
replug, and old credentials and U2F key handles stop working."""
import os
import time

import pytest
from fido2.ctap import CtapError
from fido2.ctap1 import ApduError, Ctap1
from fido2.ctap2 import Ctap2
from fido2.ctap2.config import Config
from fido2.ctap2.credman import CredentialManagement
from fido2.ctap2.pin import ClientPin, PinProtocolV1, PinProtocolV2

from test_client_pin_udp import Pinned, refused, served_addr
from test_ctap2_udp import ES256_PARAM, RP_ID, sha256, user

PERMISSION = ClientPin.PERMISSION
ERR = CtapError.ERR
RESULT = CredentialManagement.RESULT
OTHER_RP = "other.example"
PROTOCOLS = pytest.mark.parametrize("protocol", [PinProtocolV1, PinProtocolV2],
                                    ids=["protocol-1", "protocol-2"])


def make_discoverable(pinned, rp_id, account):
    """A discoverable credential made with a fresh mc token (its touch spends the token)."""
    token = pinned.pin.get_pin_token("1234", PERMISSION.MAKE_CREDENTIAL, rp_id)
    client_data_hash = sha256(os.urandom(16))
    made = pinned.ctap2.make_credential(
        client_data_hash, {"id": rp_id, "name": "x"}, account, [ES256_PARAM],
        options={"rk": True}, pin_uv_param=pinned.protocol.authenticate(token, client_data_hash),
        pin_uv_protocol=pinned.protocol.VERSION)
    return made.auth_data.credential_data


def credman(pinned, rp_id=None):
    token = pinned.pin.get_pin_token("1234", PERMISSION.CREDENTIAL_MGMT, rp_id)
    return CredentialManagement(pinned.ctap2, pinned.protocol, token)


@PROTOCOLS
def test_credentials_are_listed_renamed_and_deleted(served, protocol):
    pinned = Pinned(served, served_addr(served), protocol)
    pinned.pin.set_pin("1234")
    first = make_discoverable(pinned, RP_ID, user(1))
    make_discoverable(pinned, RP_ID, user(2))
    other = make_discoverable(pinned, OTHER_RP, user(3))
    limit = pinned.ctap2.get_info().remaining_disc_creds + 3

    manage = credman(pinned)
    metadata = manage.get_metadata()
    assert metadata[RESULT.EXISTING_CRED_COUNT] == 3
    assert metadata[RESULT.MAX_REMAINING_COUNT] == limit - 3
    rps = manage.enumerate_rps()
    assert sorted(rp[RESULT.RP]["id"] for rp in rps) == [OTHER_RP, RP_ID]
    assert all(rp[RESULT.RP_ID_HASH] == sha256(rp[RESULT.RP]["id"].encode()) for rp in rps)
    creds = manage.enumerate_creds(sha256(RP_ID.encode()))
    assert [c[RESULT.USER] for c in creds] == [user(2), user(1)]  # newest first
    assert {c[RESULT.CREDENTIAL_ID]["id"] for c in creds} >= {first.credential_id}
    assert all(RESULT.CRED_PROTECT not in c for c in creds)
    listed = next(c for c in creds if c[RESULT.CREDENTIAL_ID]["id"] == first.credential_id)
    assert listed[RESULT.PUBLIC_KEY] == dict(first.public_key)
    refused(ERR.NOT_ALLOWED, manage.enumerate_rps_next)  # nothing begun

    descriptor = {"id": first.credential_id, "type": "public-key"}
    manage.update_user_info(descriptor, {"id": user(1)["id"], "name": "renamed"})
    refused(ERR.INVALID_PARAMETER, manage.update_user_info, descriptor,
            {"id": b"someone else", "name": "x"})
    creds = manage.enumerate_creds(sha256(RP_ID.encode()))
    assert creds[1][RESULT.USER] == {"id": user(1)["id"], "name": "renamed"}

    manage.delete_cred(descriptor)
    refused(ERR.NO_CREDENTIALS, manage.delete_cred, descriptor)
    assert [c[RESULT.USER]["id"] for c in manage.enumerate_creds(sha256(RP_ID.encode()))] == [
        user(2)["id"]]
    assert manage.get_metadata()[RESULT.EXISTING_CRED_COUNT] == 2
    # The deleted credential no longer signs.
    refused(ERR.NO_CREDENTIALS, pinned.ctap2.get_assertion, RP_ID, sha256(b"g"),
            allow_list=[descriptor])

    # A token bound to the other RP: its credentials only.
    bound = credman(pinned, OTHER_RP)
    refused(ERR.PIN_AUTH_INVALID, bound.get_metadata)
    refused(ERR.PIN_AUTH_INVALID, bound.enumerate_rps)
    refused(ERR.PIN_AUTH_INVALID, bound.enumerate_creds, sha256(RP_ID.encode()))
    assert len(bound.enumerate_creds(sha256(OTHER_RP.encode()))) == 1
    bound.delete_cred({"id": other.credential_id, "type": "public-key"})
    # A token without cm, and a stale one after a replug.
    ga = pinned.pin.get_pin_token("1234", PERMISSION.GET_ASSERTION, RP_ID)
    refused(ERR.PIN_AUTH_INVALID, CredentialManagement(pinned.ctap2, protocol(), ga).get_metadata)
    stale = credman(pinned)
    pinned.replug()
    stale.ctap = pinned.ctap2
    refused(ERR.PIN_AUTH_INVALID, stale.get_metadata)
    assert credman(pinned).get_metadata()[RESULT.EXISTING_CRED_COUNT] == 1


@PROTOCOLS
def test_config_toggles_always_uv_and_raises_the_minimum_pin_length(served, protocol):
    pinned = Pinned(served, served_addr(served), protocol)
    ctap2, pin = pinned.ctap2, pinned.pin
    info = ctap2.get_info()
    assert info.options["authnrCfg"] is True and info.options["setMinPINLength"] is True
    assert info.options["alwaysUv"] is False and "minPinLength" in info.extensions
    assert info.max_rpids_for_min_pin == 8
    u2f = Ctap1(pinned.device)
    registered = u2f.register(sha256(b"c"), sha256(b"u2f.example"))
    pin.set_pin("1234")
    refused(ERR.PUAT_REQUIRED, Config(ctap2).toggle_always_uv)
    token = pin.get_pin_token("1234", PERMISSION.AUTHENTICATOR_CFG)
    forged = Config(ctap2, pinned.protocol, os.urandom(32))
    refused(ERR.PIN_AUTH_INVALID, forged.toggle_always_uv)  # not the token's param
    ga = pin.get_pin_token("1234", PERMISSION.GET_ASSERTION, RP_ID)
    refused(ERR.PIN_AUTH_INVALID, Config(ctap2, pinned.protocol, ga).toggle_always_uv)  # no acfg
    token = pin.get_pin_token("1234", PERMISSION.AUTHENTICATOR_CFG)
    config = Config(ctap2, pinned.protocol, token)
    config.toggle_always_uv()
    info = ctap2.get_info()
    assert info.options["alwaysUv"] is True and info.options["makeCredUvNotRqd"] is False
    assert "U2F_V2" not in info.versions
    refused(ERR.PUAT_REQUIRED, ctap2.make_credential, sha256(b"c"), {"id": RP_ID, "name": "x"},
            user(1), [ES256_PARAM])
    with pytest.raises(ApduError) as error:
        u2f.authenticate(sha256(b"c"), sha256(b"u2f.example"), registered.key_handle)
    assert error.value.code == 0x6986
    config.toggle_always_uv()
    assert ctap2.get_info().options["alwaysUv"] is False
    u2f.authenticate(sha256(b"c"), sha256(b"u2f.example"), registered.key_handle)

    refused(ERR.INVALID_PARAMETER, config.enable_enterprise_attestation)
    config.set_min_pin_length(6, rp_ids=[RP_ID])
    info = ctap2.get_info()
    assert info.min_pin_length == 6 and info.force_pin_change is True  # "1234" is too short
    refused(ERR.PIN_POLICY_VIOLATION, pin.get_pin_token, "1234", PERMISSION.GET_ASSERTION, RP_ID)
    refused(ERR.PIN_POLICY_VIOLATION, config.set_min_pin_length, 5)  # it only grows

    def min_pin_length_output(rp_id):
        made = ctap2.make_credential(sha256(b"c"), {"id": rp_id, "name": "x"}, user(1),
                                     [ES256_PARAM], extensions={"minPinLength": True})
        return (made.auth_data.extensions or {}).get("minPinLength")

    assert min_pin_length_output(RP_ID) == 6
    assert min_pin_length_output(OTHER_RP) is None

    refused(ERR.PIN_POLICY_VIOLATION, pin.change_pin, "1234", "12345")
    pin.change_pin("1234", "123456")
    assert ctap2.get_info().force_pin_change is False
    token = pin.get_pin_token("123456", PERMISSION.AUTHENTICATOR_CFG)
    Config(ctap2, pinned.protocol, token).set_min_pin_length(force_change_pin=True)
    assert ctap2.get_info().force_pin_change is True
    refused(ERR.PIN_POLICY_VIOLATION, pin.change_pin, "123456", "123456")  # not a change
    pin.change_pin("123456", "654321")
    assert pin.get_pin_token("654321", PERMISSION.GET_ASSERTION, RP_ID)


def test_reset_only_just_after_a_replug_and_old_credentials_stop_working(served):
    pinned = Pinned(served, served_addr(served), PinProtocolV2)
    ctap2 = pinned.ctap2
    pinned.pin.set_pin("1234")
    resident = make_discoverable(pinned, RP_ID, user(1))
    plain = ctap2.make_credential(sha256(b"c"), {"id": RP_ID, "name": "x"}, user(2),
                                  [ES256_PARAM])
    u2f = Ctap1(pinned.device)
    registered = u2f.register(sha256(b"c"), sha256(b"u2f.example"))

    pinned.replug()
    time.sleep(10.5)
    refused(ERR.NOT_ALLOWED, pinned.ctap2.reset)  # more than 10 s after power-up
    assert pinned.ctap2.get_info().options["clientPin"] is True
    pinned.replug()
    pinned.ctap2.reset()
    ctap2 = pinned.ctap2
    info = ctap2.get_info()
    assert info.options["clientPin"] is False
    assert ClientPin(ctap2, PinProtocolV2()).get_pin_retries() == (8, False)
    for old in (resident, plain.auth_data.credential_data):
        refused(ERR.NO_CREDENTIALS, ctap2.get_assertion, RP_ID, sha256(b"g"),
                allow_list=[{"id": old.credential_id, "type": "public-key"}])
    refused(ERR.NO_CREDENTIALS, ctap2.get_assertion, RP_ID, sha256(b"g"))  # no discoverable one
    with pytest.raises(ApduError) as error:
        Ctap1(pinned.device).authenticate(sha256(b"c"), sha256(b"u2f.example"),
                                          registered.key_handle, check_only=True)
    assert error.value.code == 0x6A80
    again = ctap2.make_credential(sha256(b"c"), {"id": RP_ID, "name": "x"}, user(2),
                                  [ES256_PARAM])
    assert again.auth_data.counter > plain.auth_data.counter  # the counter never goes back
