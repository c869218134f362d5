"""python-fido2 (not written here) judges the CTAP2 extensions and authenticatorLargeBlobs of a
`fido2` token served over UDP: getInfo's extension list and limits; Fido2Client's PRF (over
hmac-secret, and hmac-secret-mc at creation) giving the same secret for the same salt and
credential, another with user verification (a PIN); credProtect 3 invisible without UV and
visible with it, credProtect 2 found only through an allowList without UV; credBlob kept and
returned; python-fido2's LargeBlobs reading and writing the large-blob array with a
pinUvAuthToken with the lbw permission, and CredentialManagement listing a credential's
largeBlobKey; and Fido2Client's largeBlob extension. Assertions are
verified with python-fido2's own classes (Fido2Server, the credential's CoseKey)."""
import os

import pytest
from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2
from fido2.ctap2.blob import LargeBlobs
from fido2.ctap2.credman import CredentialManagement
from fido2.ctap2.extensions import HmacSecretExtension
from fido2.ctap2.pin import ClientPin, PinProtocolV2

from test_client_pin_udp import PinInteraction
from test_ctap2_udp import (ES256_PARAM, FLAG_UV, ORIGIN, RP_ID, RelyingParty, fido2_device,
                            sha256, user)

PIN = "135790"
ERR = CtapError.ERR
PERMISSION = ClientPin.PERMISSION


def pinned(served):
    """A fido2 token with the PIN set; its device, store facts and Ctap2."""
    device, facts = fido2_device(served)
    ctap2 = Ctap2(device)
    ClientPin(ctap2).set_pin(PIN)
    return device, facts, ctap2


def pin_token(ctap2, permissions, rp_id=None):
    protocol = PinProtocolV2()
    token = ClientPin(ctap2, protocol).get_pin_token(PIN, permissions, rp_id)
    return protocol, token


def pin_auth(token, client_data_hash):
    """The pinUvAuthParam and protocol of `token` ((protocol, pinUvAuthToken), or None)."""
    if token is None:
        return {}
    protocol, pin_uv_token = token
    return {"pin_uv_param": protocol.authenticate(pin_uv_token, client_data_hash),
            "pin_uv_protocol": protocol.VERSION}


def ctap_make(ctap2, account, rk=False, extensions=None, token=None):
    """makeCredential with Ctap2 (and a pinUvAuthParam of `token`); the response."""
    client_data_hash = sha256(os.urandom(16))
    auth = pin_auth(token, client_data_hash)
    return ctap2.make_credential(client_data_hash, {"id": RP_ID, "name": "x"}, account,
                                 [ES256_PARAM], options={"rk": True} if rk else None,
                                 extensions=extensions, **auth)


def ctap_get(ctap2, credential=None, extensions=None, token=None):
    """getAssertion with Ctap2; the response, its signature verified with the credential's key
    (python-fido2's CoseKey) when `credential` (its AttestedCredentialData) is given."""
    client_data_hash = sha256(os.urandom(16))
    auth = pin_auth(token, client_data_hash)
    allow = None
    if credential is not None:
        allow = [{"type": "public-key", "id": credential.credential_id}]
    got = ctap2.get_assertion(RP_ID, client_data_hash, allow, extensions=extensions, **auth)
    if credential is not None:
        credential.public_key.verify(bytes(got.auth_data) + client_data_hash, got.signature)
    return got


def refused(code, call, *args, **kwargs):
    with pytest.raises(CtapError) as error:
        call(*args, **kwargs)
    assert error.value.code == code, f"{error.value.code!r}, expected {code!r}"


def test_get_info_lists_the_extensions_and_their_limits(served):
    device, _ = fido2_device(served)
    info = Ctap2(device).info
    assert set(info.extensions) == {"credBlob", "credProtect", "hmac-secret", "hmac-secret-mc",
                                    "largeBlobKey", "minPinLength"}
    assert info.options["largeBlobs"] is True
    assert info.max_cred_blob_length == 32
    assert info.max_large_blob == 4096
    assert info.max_cred_id_length == 162
    assert LargeBlobs.is_supported(info)


def prf_value(response):
    """The first PRF result of a Fido2Client response."""
    return response.client_extension_results.prf.results.first


def test_prf_gives_one_secret_per_salt_and_credential_and_another_with_uv(served):
    device, facts, _ = pinned(served)
    interaction = PinInteraction(PIN)
    rp = RelyingParty(device, facts, user_interaction=interaction)
    salt = os.urandom(32)
    options, state = rp.server.register_begin(user(1), user_verification="required",
                                              extensions={"prf": {"eval": {"first": salt}}})
    made = rp.client.make_credential(options.public_key)
    auth_data = rp.server.register_complete(state, made)
    assert made.client_extension_results.prf.enabled is True
    at_creation = prf_value(made)  # hmac-secret-mc, with UV
    assert len(at_creation) == 32
    credential = auth_data.credential_data

    def evaluate(uv, first=salt, second=None):
        values = {"first": first} if second is None else {"first": first, "second": second}
        options, state = rp.server.authenticate_begin(
            [credential], user_verification=uv, extensions={"prf": {"eval": values}})
        selection = rp.client.get_assertion(options.public_key)
        response = selection.get_response(0)
        rp.server.authenticate_complete(state, [credential], response)
        flags = selection.get_assertions()[0].auth_data.flags
        return response.client_extension_results.prf.results, flags

    verified, flags = evaluate("required")
    assert flags & FLAG_UV
    assert verified.first == at_creation
    again, _ = evaluate("required")
    assert again.first == verified.first
    plain, flags = evaluate("discouraged")
    assert not flags & FLAG_UV
    assert plain.first != verified.first, "CredRandomWithoutUV is another secret"
    assert evaluate("discouraged")[0].first == plain.first
    other_salt = os.urandom(32)
    both, _ = evaluate("discouraged", salt, other_salt)
    assert both.first == plain.first
    assert both.second not in (None, plain.first)
    assert evaluate("discouraged", other_salt)[0].first == both.second


def test_hmac_secret_of_a_non_discoverable_credential_over_ctap2(served):
    """hmac-secret itself (python-fido2's HmacSecretExtension with allow_hmac_secret) on a
    credential made without a PIN token: the same output for the same salt."""
    device, facts, _ = pinned(served)
    rp = RelyingParty(device, facts, user_interaction=PinInteraction(PIN))
    rp.client = Fido2Client(device, client_data_collector=DefaultClientDataCollector(ORIGIN),
                            user_interaction=PinInteraction(PIN),
                            extensions=[HmacSecretExtension(allow_hmac_secret=True)])
    options, state = rp.server.register_begin(user(2), user_verification="discouraged",
                                              extensions={"hmacCreateSecret": True})
    made = rp.client.make_credential(options.public_key)
    auth_data = rp.server.register_complete(state, made)
    assert auth_data.extensions == {"hmac-secret": True}
    salt = os.urandom(32)
    outputs = []
    for _ in range(2):
        options, state = rp.server.authenticate_begin(
            [auth_data.credential_data], user_verification="discouraged",
            extensions={"hmacGetSecret": {"salt1": salt}})
        response = rp.client.get_assertion(options.public_key).get_response(0)
        rp.server.authenticate_complete(state, [auth_data.credential_data], response)
        outputs.append(response.client_extension_results.hmac_get_secret.output1)
    assert outputs[0] == outputs[1] and len(outputs[0]) == 32


def protected(ctap2, level, n):
    """A discoverable credential with credProtect `level` for user `n` (made with a PIN token);
    its data, once the output says the level."""
    made = ctap_make(ctap2, user(n), rk=True, extensions={"credProtect": level},
                     token=pin_token(ctap2, PERMISSION.MAKE_CREDENTIAL))
    assert made.auth_data.extensions == {"credProtect": level}
    return made.auth_data.credential_data


def test_cred_protect_3_is_invisible_without_uv_and_visible_with_it(served):
    device, facts, ctap2 = pinned(served)
    credential = protected(ctap2, 3, 3)
    refused(ERR.NO_CREDENTIALS, ctap_get, ctap2)
    refused(ERR.NO_CREDENTIALS, ctap_get, ctap2, credential)
    got = ctap_get(ctap2, credential, token=pin_token(ctap2, PERMISSION.GET_ASSERTION))
    assert got.auth_data.flags & FLAG_UV
    got = ctap_get(ctap2, token=pin_token(ctap2, PERMISSION.GET_ASSERTION))
    assert got.credential["id"] == credential.credential_id
    assert got.user["id"] == user(3)["id"]
    # Fido2Client with userVerification "required" (the PIN) and Fido2Server: visible.
    rp = RelyingParty(device, facts, user_interaction=PinInteraction(PIN))
    [(assertion, verified)] = rp.authenticate([credential], allow=False,
                                              user_verification="required")
    assert verified.credential_id == credential.credential_id


def test_cred_protect_2_needs_the_credential_id_list_without_uv(served):
    _, _, ctap2 = pinned(served)
    credential = protected(ctap2, 2, 4)
    refused(ERR.NO_CREDENTIALS, ctap_get, ctap2)
    got = ctap_get(ctap2, credential)
    assert not got.auth_data.flags & FLAG_UV
    got = ctap_get(ctap2, token=pin_token(ctap2, PERMISSION.GET_ASSERTION))
    assert got.credential["id"] == credential.credential_id
    # A non-discoverable level-2 credential is used through its id, as ever.
    server_side = ctap_make(ctap2, user(5), extensions={"credProtect": 2})
    ctap_get(ctap2, server_side.auth_data.credential_data)


def test_cred_blob_round_trip(served):
    device, facts, ctap2 = pinned(served)
    blob = os.urandom(32)
    made = ctap_make(ctap2, user(6), extensions={"credBlob": blob})
    assert made.auth_data.extensions == {"credBlob": True}
    credential = made.auth_data.credential_data
    got = ctap_get(ctap2, credential, extensions={"credBlob": True})
    assert got.auth_data.extensions == {"credBlob": blob}
    # Through Fido2Client (python-fido2's CredBlobExtension: credBlob in, getCredBlob out).
    rp = RelyingParty(device, facts, user_interaction=PinInteraction(PIN))
    options, state = rp.server.register_begin(user(7), user_verification="discouraged",
                                              extensions={"credBlob": blob[:20]})
    response = rp.client.make_credential(options.public_key)
    auth_data = rp.server.register_complete(state, response)
    assert auth_data.extensions == {"credBlob": True}
    options, state = rp.server.authenticate_begin([auth_data.credential_data],
                                                  user_verification="discouraged",
                                                  extensions={"getCredBlob": True})
    selection = rp.client.get_assertion(options.public_key)
    rp.server.authenticate_complete(state, [auth_data.credential_data], selection.get_response(0))
    assert selection.get_assertions()[0].auth_data.extensions == {"credBlob": blob[:20]}


def test_large_blobs_with_an_lbw_token(served):
    _, _, ctap2 = pinned(served)
    assert LargeBlobs(ctap2).read_blob_array() == []
    made = ctap_make(ctap2, user(8), rk=True, extensions={"largeBlobKey": True},
                     token=pin_token(ctap2, PERMISSION.MAKE_CREDENTIAL))
    key = made.large_blob_key
    assert len(key) == 32
    got = ctap_get(ctap2, made.auth_data.credential_data, extensions={"largeBlobKey": True})
    assert got.large_blob_key == key
    # Credential management lists the key with the credential made with one, and none with one
    # made without.
    plain = ctap_make(ctap2, user(9), rk=True, token=pin_token(ctap2, PERMISSION.MAKE_CREDENTIAL))
    result = CredentialManagement.RESULT
    listed = {
        bytes(c[result.CREDENTIAL_ID]["id"]): c.get(result.LARGE_BLOB_KEY)
        for c in CredentialManagement(ctap2, *pin_token(ctap2, PERMISSION.CREDENTIAL_MGMT))
        .enumerate_creds(sha256(RP_ID.encode()))
    }
    assert listed == {made.auth_data.credential_data.credential_id: key,
                      plain.auth_data.credential_data.credential_id: None}
    # Without the lbw permission a write is refused; with it, written across fragments.
    protocol, mc_token = pin_token(ctap2, PERMISSION.MAKE_CREDENTIAL)
    refused(ERR.PIN_AUTH_INVALID, LargeBlobs(ctap2, protocol, mc_token).put_blob, key, b"x")
    refused(ERR.PUAT_REQUIRED, LargeBlobs(ctap2).put_blob, key, b"x")
    data = os.urandom(3000)  # random: zlib leaves it over two fragments
    protocol, lbw = pin_token(ctap2, PERMISSION.LARGE_BLOB_WRITE)
    LargeBlobs(ctap2, protocol, lbw).put_blob(key, data)
    assert LargeBlobs(ctap2).get_blob(key) == data
    assert len(LargeBlobs(ctap2).read_blob_array()) == 1
    refused(ERR.LARGE_BLOB_STORAGE_FULL, LargeBlobs(ctap2, protocol, lbw).put_blob, key,
            os.urandom(5000))
    assert LargeBlobs(ctap2).get_blob(key) == data, "the refused write changed nothing"
    LargeBlobs(ctap2, protocol, lbw).delete_blob(key)
    assert LargeBlobs(ctap2).read_blob_array() == []


def test_large_blob_through_fido2_client(served):
    device, facts, _ = pinned(served)
    rp = RelyingParty(device, facts, user_interaction=PinInteraction(PIN))
    options, state = rp.server.register_begin(user(9), resident_key_requirement="required",
                                              user_verification="required",
                                              extensions={"largeBlob": {"support": "required"}})
    response = rp.client.make_credential(options.public_key)
    auth_data = rp.server.register_complete(state, response)
    assert response.client_extension_results.large_blob.supported is True
    credential = auth_data.credential_data
    data = b"vu2f large blob " * 10

    def get(extension):
        options, state = rp.server.authenticate_begin([credential], user_verification="required",
                                                      extensions={"largeBlob": extension})
        response = rp.client.get_assertion(options.public_key).get_response(0)
        rp.server.authenticate_complete(state, [credential], response)
        return response.client_extension_results.large_blob

    assert get({"write": data}).written is True
    assert get({"read": True}).blob == data
