"""python-fido2 (not written here) judges the CTAP2 engine: its Ctap2 class and Fido2Client drive a
`fido2` token over `vu2f serve --udp`, and its Fido2Server verifies every registration (packed
attestation, chained to the store's CA) and every assertion, as a relying party would."""
import hashlib
import json
import os
import subprocess
import threading
import time
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fido2.attestation import AttestationType, AttestationVerifier, PackedAttestation
from fido2.client import ClientError, DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.cose import ES256, EdDSA
from fido2.ctap import CtapError
from fido2.ctap1 import Ctap1
from fido2.ctap2 import Ctap2
from fido2.hid import CAPABILITY, CTAPHID, STATUS
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestedCredentialData,
    PublicKeyCredentialParameters,
    PublicKeyCredentialType,
)

from conftest import vu2f_binary
from udp_hid import open_device

RP_ID = "vu2f.example"
ORIGIN = "https://vu2f.example"
OID_FIDO_AAGUID = x509.ObjectIdentifier("1.3.6.1.4.1.45724.1.1.4")
FLAG_UP, FLAG_UV, FLAG_AT = 0x01, 0x04, 0x40
ES256_PARAM = {"type": "public-key", "alg": -7}
EDDSA_PARAM = {"type": "public-key", "alg": -8}


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def vu2f(store: str, *args: str) -> str:
    return subprocess.run([vu2f_binary(), "--store", store, *args], check=True,
                          stdout=subprocess.PIPE, text=True).stdout


class StoreFacts:
    """What the store tells relying parties, read before `vu2f serve` locks it: its attestation CA
    (DER, as `vu2f token export-ca` prints it) and the AAGUID its tokens claim (`vu2f token show`
    of a token created for the purpose, never served)."""

    def __init__(self, store: str):
        pem = vu2f(store, "token", "export-ca").encode()
        self.ca = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
        vu2f(store, "token", "create", "facts", "--profile", "fido2")
        shown = json.loads(vu2f(store, "--json", "token", "show", "facts"))
        self.aaguid = uuid.UUID(shown["aaguid"]).bytes
        self.discoverable_limit = shown["discoverable_limit"]


class TrustStoreCa(AttestationVerifier):
    """python-fido2's attestation check (format verifier, then the x5c chain) rooted in the CA."""

    def __init__(self, ca: bytes):
        super().__init__()
        self.ca = ca

    def ca_lookup(self, attestation_result, auth_data):
        return self.ca


def aaguid_extension(certificate_der: bytes) -> bytes:
    """The id-fido-gen-ce-aaguid extension of a certificate: an OCTET STRING of 16 bytes."""
    certificate = x509.load_der_x509_certificate(certificate_der)
    extension = certificate.extensions.get_extension_for_oid(OID_FIDO_AAGUID)  # raises if absent
    assert not extension.critical
    value = extension.value.value
    assert value[:2] == b"\x04\x10", value.hex()
    return value[2:]


class RelyingParty:
    """A python-fido2 server and client for RP_ID on one device; the attestation it demands is
    `fmt` (packed for CTAP2, fido-u2f for a U2F-only token), verified up to the store's CA."""

    def __init__(self, device, facts: StoreFacts, fmt: str = "packed", algorithms=None,
                 self_attested=False, user_interaction=None):
        self.fmt = fmt
        self.self_attested = self_attested
        self.verifier = TrustStoreCa(facts.ca)
        self.server = Fido2Server({"id": RP_ID, "name": "vu2f tests"}, attestation="direct",
                                  verify_origin=lambda origin: origin == ORIGIN,
                                  verify_attestation=self.verify_attestation)
        if algorithms is not None:
            self.server.allowed_algorithms = [
                PublicKeyCredentialParameters(type=PublicKeyCredentialType.PUBLIC_KEY, alg=alg)
                for alg in algorithms]
        self.client = Fido2Client(device, client_data_collector=DefaultClientDataCollector(ORIGIN),
                                  user_interaction=user_interaction or UserInteraction())
        self.attestations = []

    def verify_attestation(self, attestation_object, client_data_hash):
        assert attestation_object.fmt == self.fmt
        statement = attestation_object.att_stmt
        if self.self_attested:  # no certificate; signed by the credential, in its algorithm
            assert "x5c" not in statement
            assert attestation_object.auth_data.credential_data.aaguid == b"\0" * 16
            credential_key = attestation_object.auth_data.credential_data.public_key
            assert statement["alg"] == credential_key[3]
            result = PackedAttestation().verify(statement, attestation_object.auth_data,
                                                client_data_hash)
            assert result.attestation_type == AttestationType.SELF
            self.attestations.append(attestation_object)
            return
        assert len(statement["x5c"]) >= 1  # basic attestation, not self attestation
        self.verifier(attestation_object, client_data_hash)  # python-fido2: statement and chain
        if self.fmt == "packed":
            assert statement["alg"] == -7
            # python-fido2 checks the extension only when present: insist that it is.
            assert aaguid_extension(statement["x5c"][0]) == \
                attestation_object.auth_data.credential_data.aaguid
        self.attestations.append(attestation_object)

    def register(self, user, exclude=None, resident_key=None, user_verification="discouraged"):
        """Registers through Fido2Client; returns the verified authenticator data. The token
        can have a PIN (getInfo's clientPin is there, false until one is set), and python-fido2's
        client refuses "preferred" (WebAuthn's default) on such a key until it has one, as it
        does with any hardware key: the tests say what they want."""
        options, state = self.server.register_begin(
            user, credentials=exclude, resident_key_requirement=resident_key,
            user_verification=user_verification)
        response = self.client.make_credential(options.public_key)
        auth_data = self.server.register_complete(state, response)
        assert self.attestations[-1].auth_data == auth_data  # the attestation was checked
        return auth_data

    def authenticate(self, credentials, allow=True, user_verification="discouraged"):
        """Gets assertions through Fido2Client (with an allowList of `credentials` unless not
        `allow`); verifies each with the server; returns [(assertion, credential it verified)]."""
        options, state = self.server.authenticate_begin(
            credentials if allow else None, user_verification=user_verification)
        selection = self.client.get_assertion(options.public_key)
        results = []
        for index, assertion in enumerate(selection.get_assertions()):
            verified = self.server.authenticate_complete(state, credentials,
                                                         selection.get_response(index))
            results.append((assertion, verified))
        return results


def fido2_device(served, name="key", **kwargs):
    """Serves one fido2 token; returns its device (over `served`'s transport) and the store's
    facts."""
    facts = StoreFacts(served.store)
    addrs = served(name, profile="fido2", **kwargs)
    return served.open(addrs[name]), facts


def user(n: int):
    return {"id": f"user-{n}".encode(), "name": f"user{n}@vu2f.example",
            "displayName": f"User Number {n}"}


def make(ctap2, account, rk=False):
    """A credential made with Ctap2 directly (its attestation checked by no one): its data."""
    made = ctap2.make_credential(sha256(os.urandom(8)), {"id": RP_ID, "name": "x"}, account,
                                 [ES256_PARAM], options={"rk": True} if rk else None)
    return made.auth_data.credential_data


def press_later(store: str, name: str, delay: float = 0.5):
    """Runs `vu2f touch NAME` after `delay` in a thread; join() it, then check `.errors`."""
    def press():
        time.sleep(delay)
        try:
            vu2f(store, "touch", name)
        except Exception as error:  # noqa: BLE001 - reported by the test
            thread.errors.append(error)

    thread = threading.Thread(target=press)
    thread.errors = []
    thread.start()
    return thread


# --- getInfo ------------------------------------------------------------------------------------

def test_get_info_claims_fido_2_1_beside_u2f(served):
    device, facts = fido2_device(served)
    assert device.capabilities & CAPABILITY.CBOR
    ctap2 = Ctap2(device)  # Ctap2 itself refuses a device without the CBOR capability
    info = ctap2.get_info()
    assert {"FIDO_2_0", "FIDO_2_1", "U2F_V2"} <= set(info.versions)
    assert len(bytes(info.aaguid)) == 16
    assert bytes(info.aaguid) == facts.aaguid
    assert info.options["rk"] is True
    assert "uv" not in info.options  # no built-in UV without --uv: absent, not false
    assert info.options["clientPin"] is False  # a PIN is possible, none is set yet
    assert info.options["pinUvAuthToken"] is True
    assert info.pin_uv_protocols == [2, 1]
    assert info.min_pin_length == 4
    assert info.algorithms == [ES256_PARAM, EDDSA_PARAM]  # ES256 first
    assert info.remaining_disc_creds == facts.discoverable_limit > 0  # none stored yet
    assert info.max_msg_size >= 1024


def test_get_info_lists_uv_with_built_in_verification(served):
    info = Ctap2(fido2_device(served, uv="auto")[0]).get_info()
    assert info.options.get("uv") is True
    assert info.options["rk"] is True


def test_uv_option_without_built_in_verification_is_invalid_option(served):
    ctap2 = Ctap2(fido2_device(served)[0])
    with pytest.raises(CtapError) as refused:
        ctap2.make_credential(sha256(b"c"), {"id": RP_ID, "name": "x"}, user(1), [ES256_PARAM],
                              options={"uv": True})
    assert refused.value.code == CtapError.ERR.INVALID_OPTION  # 0x2C


# --- makeCredential / getAssertion through Fido2Client and Fido2Server ---------------------------

@pytest.mark.parametrize("alg, key_type", [(-7, ES256), (-8, EdDSA)], ids=["ES256", "EdDSA"])
@pytest.mark.parametrize("discoverable", [False, True], ids=["server-side", "discoverable"])
def test_register_and_authenticate_verified_by_fido2_server(served, alg, key_type, discoverable):
    device, facts = fido2_device(served)
    rp = RelyingParty(device, facts, algorithms=[alg])
    remaining = Ctap2(device).get_info().remaining_disc_creds

    auth_data = rp.register(user(1), resident_key="required" if discoverable else "discouraged")
    credential = auth_data.credential_data
    assert isinstance(credential.public_key, key_type)
    assert auth_data.flags & (FLAG_UP | FLAG_AT) == FLAG_UP | FLAG_AT
    assert not auth_data.flags & FLAG_UV
    assert credential.aaguid == facts.aaguid
    assert Ctap2(device).get_info().remaining_disc_creds == remaining - (1 if discoverable else 0)

    last = auth_data.counter
    for _ in range(3):
        [(assertion, verified)] = rp.authenticate([credential])
        assert verified.credential_id == credential.credential_id
        assert assertion.auth_data.flags & FLAG_UP
        assert assertion.auth_data.counter > last
        last = assertion.auth_data.counter
        assert assertion.number_of_credentials is None  # an allowList: no count

    if discoverable:  # found without an allowList, with its user handle
        [(assertion, verified)] = rp.authenticate([credential], allow=False)
        assert verified.credential_id == credential.credential_id
        assert assertion.user == {"id": user(1)["id"]}  # no names without UV
        assert assertion.auth_data.counter > last
    else:
        with pytest.raises(ClientError) as none:
            rp.authenticate([credential], allow=False)
        assert none.value.cause.code == CtapError.ERR.NO_CREDENTIALS  # 0x2E


@pytest.mark.parametrize("alg", [-7, -8], ids=["ES256", "EdDSA"])
def test_self_attestation_is_verified_by_fido2_server(served, alg):
    """A token created with `--attestation self`: python-fido2's packed verifier accepts the
    attestation as SELF (no x5c, signed by the new credential's key), and the credential signs."""
    device, facts = fido2_device(served, attestation="self")
    rp = RelyingParty(device, facts, algorithms=[alg], self_attested=True)
    auth_data = rp.register(user(1))
    [(assertion, verified)] = rp.authenticate([auth_data.credential_data])
    assert verified.credential_id == auth_data.credential_data.credential_id
    assert assertion.auth_data.counter > auth_data.counter


def test_first_supported_algorithm_of_the_rp_wins(served):
    ctap2 = Ctap2(fido2_device(served)[0])
    rp_entity = {"id": RP_ID, "name": "x"}
    unknown = {"type": "public-key", "alg": -257}  # RS256: skipped
    made = ctap2.make_credential(sha256(b"1"), rp_entity, user(1),
                                 [unknown, EDDSA_PARAM, ES256_PARAM])
    assert isinstance(made.auth_data.credential_data.public_key, EdDSA)
    made = ctap2.make_credential(sha256(b"2"), rp_entity, user(1), [ES256_PARAM, EDDSA_PARAM])
    assert isinstance(made.auth_data.credential_data.public_key, ES256)
    with pytest.raises(CtapError) as unsupported:
        ctap2.make_credential(sha256(b"3"), rp_entity, user(1), [unknown])
    assert unsupported.value.code == CtapError.ERR.UNSUPPORTED_ALGORITHM  # 0x26


# --- discoverable credentials --------------------------------------------------------------------

def test_discoverable_credentials_come_most_recent_first_and_replace_per_user(served):
    device, facts = fido2_device(served)
    rp = RelyingParty(device, facts)
    credentials = []
    for n, alg in ((1, -7), (2, -8), (3, -7)):
        rp.server.allowed_algorithms = [PublicKeyCredentialParameters(
            type=PublicKeyCredentialType.PUBLIC_KEY, alg=alg)]
        credentials.append(rp.register(user(n), resident_key="required").credential_data)
    remaining = Ctap2(device).get_info().remaining_disc_creds

    results = rp.authenticate(credentials, allow=False)
    assert [a.user["id"] for a, _ in results] == [user(3)["id"], user(2)["id"], user(1)["id"]]
    assert [v.credential_id for _, v in results] == [c.credential_id for c in reversed(credentials)]
    assert results[0][0].number_of_credentials == 3
    counters = [a.auth_data.counter for a, _ in results]
    assert counters == sorted(set(counters))  # each a fresh, higher counter
    assert all("name" not in a.user and "displayName" not in a.user for a, _ in results)

    # Same user id again: replaces user 2's credential, which comes first as the newest.
    replacement = rp.register(user(2), resident_key="required").credential_data
    assert replacement.credential_id != credentials[1].credential_id
    assert Ctap2(device).get_info().remaining_disc_creds == remaining  # the count stays
    known = credentials + [replacement]
    results = rp.authenticate(known, allow=False)
    assert [v.credential_id for _, v in results] == [
        replacement.credential_id, credentials[2].credential_id, credentials[0].credential_id]
    assert results[0][0].number_of_credentials == 3


def test_a_replaced_discoverable_credential_is_gone(served):
    """CTAP 2.1 section 6.1.2 step 17: a discoverable credential for the same rp.id and user.id
    "overwrites" the old one, which then no longer exists: listed in an allowList it is none of
    the token's credentials (NO_CREDENTIALS), as after a deletion."""
    ctap2 = Ctap2(fido2_device(served)[0])
    old = make(ctap2, user(1), rk=True).credential_id
    new = make(ctap2, user(1), rk=True).credential_id
    assert [a.credential["id"] for a in ctap2.get_assertions(RP_ID, sha256(b"c"))] == [new]
    with pytest.raises(CtapError) as gone:
        ctap2.get_assertion(RP_ID, sha256(b"c"), [{"type": "public-key", "id": old}])
    assert gone.value.code == CtapError.ERR.NO_CREDENTIALS


def test_get_next_assertion_walks_the_list_then_is_not_allowed(served):
    ctap2 = Ctap2(fido2_device(served)[0])
    make(ctap2, user(1), rk=True)
    make(ctap2, user(2), rk=True)
    first = ctap2.get_assertion(RP_ID, sha256(b"c"))
    assert first.number_of_credentials == 2
    assert first.user["id"] == user(2)["id"]
    second = ctap2.get_next_assertion()
    assert second.user["id"] == user(1)["id"]
    assert second.number_of_credentials is None
    with pytest.raises(CtapError) as exhausted:
        ctap2.get_next_assertion()
    assert exhausted.value.code == CtapError.ERR.NOT_ALLOWED  # 0x30


# --- excludeList ---------------------------------------------------------------------------------

def test_exclude_list_with_our_credential_is_credential_excluded(served):
    facts = StoreFacts(served.store)
    addrs = served("key", "other", profile="fido2")
    device = open_device(*addrs["key"])
    ctap2 = Ctap2(device)
    existing = make(ctap2, user(1))
    exclude = [{"type": "public-key", "id": existing.credential_id}]
    with pytest.raises(CtapError) as excluded:
        ctap2.make_credential(sha256(b"c"), {"id": RP_ID, "name": "x"}, user(1), [ES256_PARAM],
                              exclude_list=exclude)
    assert excluded.value.code == CtapError.ERR.CREDENTIAL_EXCLUDED  # 0x19

    with pytest.raises(ClientError) as client_error:  # the host's path: probe, then the request
        RelyingParty(device, facts).register(user(1), exclude=[existing])
    assert client_error.value.code == ClientError.ERR.DEVICE_INELIGIBLE
    assert client_error.value.cause.code == CtapError.ERR.CREDENTIAL_EXCLUDED

    # Another token's credential, or the same one for another RP, is not ours: no exclusion.
    foreign = make(Ctap2(open_device(*addrs["other"])), user(1))
    made = ctap2.make_credential(sha256(b"c"), {"id": RP_ID, "name": "x"}, user(1), [ES256_PARAM],
                                 exclude_list=[{"type": "public-key", "id": foreign.credential_id}])
    assert made.auth_data.credential_data is not None
    made = ctap2.make_credential(sha256(b"c"), {"id": "elsewhere.example", "name": "x"}, user(1),
                                 [ES256_PARAM], exclude_list=exclude)
    assert made.auth_data.credential_data is not None


# --- waiting for the user: keepalives, touch, CANCEL, deny ---------------------------------------

def test_touch_policy_waits_with_upneeded_keepalives_until_touched(served):
    device, _ = fido2_device(served, presence="touch")
    ctap2 = Ctap2(device)
    rp_entity = {"id": RP_ID, "name": "x"}

    for operation in ("make", "get"):
        seen = []
        presser = press_later(served.store, "key")
        started = time.monotonic()
        if operation == "make":
            client_data_hash = sha256(b"make")
            made = ctap2.make_credential(client_data_hash, rp_entity, user(1), [ES256_PARAM],
                                         on_keepalive=seen.append)
            auth_data = made.auth_data
            credential = auth_data.credential_data
        else:
            client_data_hash = sha256(b"get")
            got = ctap2.get_assertion(RP_ID, client_data_hash,
                                      [{"type": "public-key", "id": credential.credential_id}],
                                      on_keepalive=seen.append)
            got.verify(client_data_hash, credential.public_key)
            auth_data = got.auth_data
        elapsed = time.monotonic() - started
        presser.join()
        assert not presser.errors, presser.errors
        assert elapsed >= 0.45, f"{operation} answered before the touch"
        assert STATUS.UPNEEDED in seen, seen
        assert auth_data.flags & FLAG_UP


def test_cancel_ends_a_waiting_request_with_keepalive_cancel(served):
    device, _ = fido2_device(served, presence="touch")
    ctap2 = Ctap2(device)
    seen = []
    cancel = threading.Event()
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    started = time.monotonic()
    with pytest.raises(CtapError) as cancelled:
        ctap2.make_credential(sha256(b"c"), {"id": RP_ID, "name": "x"}, user(1), [ES256_PARAM],
                              event=cancel, on_keepalive=seen.append)
    elapsed = time.monotonic() - started
    timer.join()
    assert cancelled.value.code == CtapError.ERR.KEEPALIVE_CANCEL  # 0x2D
    assert STATUS.UPNEEDED in seen
    assert 0.45 <= elapsed < 5

    # The channel is free again, and the next request waits for its own touch.
    assert "FIDO_2_1" in ctap2.get_info().versions
    presser = press_later(served.store, "key")
    made = ctap2.make_credential(sha256(b"d"), {"id": RP_ID, "name": "x"}, user(1), [ES256_PARAM])
    presser.join()
    assert not presser.errors, presser.errors
    assert made.auth_data.flags & FLAG_UP


def test_denied_presence_is_operation_denied(served):
    device, facts = fido2_device(served, presence="deny")
    ctap2 = Ctap2(device)
    with pytest.raises(CtapError) as denied:
        ctap2.make_credential(sha256(b"c"), {"id": RP_ID, "name": "x"}, user(1), [ES256_PARAM])
    assert denied.value.code == CtapError.ERR.OPERATION_DENIED  # 0x27
    with pytest.raises(CtapError) as selection:
        ctap2.selection()
    assert selection.value.code == CtapError.ERR.OPERATION_DENIED

    with pytest.raises(ClientError) as client_error:
        RelyingParty(device, facts).register(user(1))
    assert client_error.value.cause.code == CtapError.ERR.OPERATION_DENIED


# --- built-in user verification ------------------------------------------------------------------

def test_built_in_uv_sets_uv_and_returns_user_names(served):
    """Ctap2 directly: uv: true sets the UV flag; names come back only from a verified assertion."""
    ctap2 = Ctap2(fido2_device(served, uv="auto")[0])
    made = ctap2.make_credential(sha256(b"m"), {"id": RP_ID, "name": "x"}, user(7), [ES256_PARAM],
                                 options={"rk": True, "uv": True})
    assert made.auth_data.flags & (FLAG_UP | FLAG_UV) == FLAG_UP | FLAG_UV
    public_key = made.auth_data.credential_data.public_key

    verified = ctap2.get_assertion(RP_ID, sha256(b"g"), options={"uv": True})
    verified.verify(sha256(b"g"), public_key)
    assert verified.auth_data.flags & (FLAG_UP | FLAG_UV) == FLAG_UP | FLAG_UV
    assert verified.user == user(7)

    present = ctap2.get_assertion(RP_ID, sha256(b"h"))
    present.verify(sha256(b"h"), public_key)
    assert not present.auth_data.flags & FLAG_UV
    assert present.user == {"id": user(7)["id"]}


def test_fido2_client_uses_built_in_uv_when_required(served):
    """Fido2Client with userVerification "required", judged by Fido2Server (which refuses a
    response without the UV flag): python-fido2 gets a pinUvAuthToken through built-in UV
    (clientPIN's getPinUvAuthTokenUsingUvWithPermissions) and signs the requests with it."""
    device, facts = fido2_device(served, uv="auto")
    rp = RelyingParty(device, facts)
    auth_data = rp.register(user(8), resident_key="required", user_verification="required")
    assert auth_data.flags & FLAG_UV
    [(assertion, verified)] = rp.authenticate([auth_data.credential_data], allow=False,
                                              user_verification="required")
    assert verified.credential_id == auth_data.credential_data.credential_id
    assert assertion.auth_data.flags & FLAG_UV
    assert assertion.user["name"] == user(8)["name"]
    assert assertion.user["displayName"] == user(8)["displayName"]


# --- U2F: the u2f profile, and U2F credentials over CTAP2 ----------------------------------------

def test_u2f_profile_token_is_registered_over_ctap1_by_fido2_client(served):
    facts = StoreFacts(served.store)
    vu2f(served.store, "token", "create", "default")
    assert json.loads(vu2f(served.store, "--json", "token", "show", "default"))["profile"] == \
        "fido2"  # the default for new tokens
    addrs = served("legacy", profile="u2f")
    device = open_device(*addrs["legacy"])
    assert not device.capabilities & CAPABILITY.CBOR
    with pytest.raises(CtapError) as invalid:
        device.call(CTAPHID.CBOR, b"\x04")
    assert invalid.value.code == CtapError.ERR.INVALID_COMMAND
    with pytest.raises(ValueError):
        Ctap2(device)

    rp = RelyingParty(device, facts, fmt="fido-u2f")
    auth_data = rp.register(user(1))
    credential = auth_data.credential_data
    assert credential.aaguid == b"\0" * 16  # made by the client from a U2F REGISTER
    [(assertion, verified)] = rp.authenticate([credential])
    assert verified.credential_id == credential.credential_id
    assert assertion.auth_data.counter > auth_data.counter


def test_u2f_registration_signs_ctap2_assertions_for_the_same_rp_id_hash(served):
    device, facts = fido2_device(served)
    registration = Ctap1(device).register(sha256(b"client"), sha256(RP_ID.encode()))
    credential = AttestedCredentialData.from_ctap1(registration.key_handle,
                                                   registration.public_key)
    rp = RelyingParty(device, facts)
    [(assertion, verified)] = rp.authenticate([credential])
    assert verified.credential_id == registration.key_handle
    assert assertion.user is None  # not discoverable: no user entity
