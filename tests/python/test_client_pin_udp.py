"""python-fido2 (not written here) judges clientPIN: its ClientPin class, with PIN/UV auth
protocol 1 and 2 (its own PinProtocolV1 and PinProtocolV2: key agreement, encryption, HMAC), sets
and changes the PIN of a `fido2` token served over UDP, gets pinUvAuthTokens with permissions and
uses them for makeCredential and getAssertion, whose attestation and assertion python-fido2's
classes verify; wrong PINs count down durably, three in a row want a replug (`vu2f replug`), and
none left blocks the PIN. Fido2Client with a PIN, and with built-in UV, makes and gets what
Fido2Server accepts with userVerification "required". Built-in UV that never matches (`--uv
deny`) counts getUVRetries down durably to UV_BLOCKED, where Fido2Client falls back to the PIN."""
import os

import pytest
from fido2.attestation import PackedAttestation
from fido2.client import UserInteraction
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2
from fido2.ctap2.pin import ClientPin, PinProtocolV1, PinProtocolV2

from test_ctap2_udp import (ES256_PARAM, FLAG_UP, FLAG_UV, RP_ID, RelyingParty, StoreFacts,
                            fido2_device, sha256, user, vu2f)

PERMISSION = ClientPin.PERMISSION
ERR = CtapError.ERR
PROTOCOLS = pytest.mark.parametrize("protocol", [PinProtocolV1, PinProtocolV2],
                                    ids=["protocol-1", "protocol-2"])


def refused(code, call, *args, **kwargs):
    """Asserts that `call` fails with the CTAP status `code`."""
    with pytest.raises(CtapError) as error:
        call(*args, **kwargs)
    assert error.value.code == code, f"{error.value.code!r}, expected {code!r}"


class Pinned:
    """A token that `served` serves at `addr`, its Ctap2 and a ClientPin of one protocol;
    `replug()` pulls it out and puts it back (`vu2f replug`) and opens it again, as a host must
    after a power cycle."""

    def __init__(self, served, addr, protocol):
        self.served, self.addr = served, addr
        self.protocol = protocol()
        self._open()

    def _open(self):
        self.device = self.served.open(self.addr)
        self.ctap2 = Ctap2(self.device)
        self.pin = ClientPin(self.ctap2, self.protocol)

    def replug(self):
        vu2f(self.served.store, "replug", "key")
        self._open()

    def make(self, token, rk=False):
        """makeCredential with the token's pinUvAuthParam over a fresh clientDataHash."""
        client_data_hash = sha256(os.urandom(16))
        made = self.ctap2.make_credential(
            client_data_hash, {"id": RP_ID, "name": "x"}, user(1), [ES256_PARAM],
            options={"rk": True} if rk else None,
            pin_uv_param=self.protocol.authenticate(token, client_data_hash),
            pin_uv_protocol=self.protocol.VERSION)
        return made, client_data_hash

    def get(self, token, rp_id=RP_ID):
        client_data_hash = sha256(os.urandom(16))
        got = self.ctap2.get_assertion(
            rp_id, client_data_hash,
            pin_uv_param=self.protocol.authenticate(token, client_data_hash),
            pin_uv_protocol=self.protocol.VERSION)
        return got, client_data_hash

    def set_padded(self, padded: bytes, authentic=True):
        """setPIN with newPinEnc made from `padded` as it is (python-fido2's set_pin checks and
        pads a PIN first, and would refuse some of the tests' PINs before the token sees them)."""
        key_agreement, shared = self.pin._get_shared_secret()
        new_pin_enc = self.protocol.encrypt(shared, padded)
        param = self.protocol.authenticate(shared, new_pin_enc if authentic else b"other")
        self.ctap2.client_pin(self.protocol.VERSION, ClientPin.CMD.SET_PIN,
                              key_agreement=key_agreement, new_pin_enc=new_pin_enc,
                              pin_uv_param=param)


def served_addr(served, **kwargs):
    """Serves token "key" (fido2); returns its address (of `served`'s transport)."""
    return served("key", profile="fido2", **kwargs)["key"]


@PROTOCOLS
def test_set_change_and_a_token_with_permissions_makes_and_gets_verified(served, protocol):
    pinned = Pinned(served, served_addr(served), protocol)
    ctap2, pin = pinned.ctap2, pinned.pin
    info = ctap2.get_info()
    assert info.options["clientPin"] is False and info.options["pinUvAuthToken"] is True
    assert info.pin_uv_protocols == [2, 1] and info.min_pin_length == 4
    assert pin.get_pin_retries() == (8, False)
    refused(ERR.PIN_NOT_SET, pin.get_pin_token, "1234", PERMISSION.GET_ASSERTION, RP_ID)
    # The zero-length pinUvAuthParam: a touch, then "no PIN" (python-fido2's selection probe).
    refused(ERR.PIN_NOT_SET, ctap2.make_credential, sha256(b"c"), {"id": RP_ID, "name": "x"},
            user(1), [ES256_PARAM], pin_uv_param=b"", pin_uv_protocol=protocol.VERSION)

    pin.set_pin("1234")
    assert ctap2.get_info().options["clientPin"] is True
    refused(ERR.PIN_AUTH_INVALID, pin.set_pin, "5678")  # set already: change it instead
    refused(ERR.PIN_INVALID, ctap2.make_credential, sha256(b"c"), {"id": RP_ID, "name": "x"},
            user(1), [ES256_PARAM], pin_uv_param=b"", pin_uv_protocol=protocol.VERSION)
    pin.change_pin("1234", "pässwörd")  # 8 code points, 10 bytes of UTF-8
    refused(ERR.PIN_INVALID, pin.get_pin_token, "1234", PERMISSION.MAKE_CREDENTIAL, RP_ID)
    assert pin.get_pin_retries() == (7, False)

    token = pin.get_pin_token("pässwörd", PERMISSION.MAKE_CREDENTIAL | PERMISSION.GET_ASSERTION,
                              RP_ID)
    assert pin.get_pin_retries() == (8, False)  # a right PIN gives every attempt back
    made, client_data_hash = pinned.make(token, rk=True)
    assert made.auth_data.flags & (FLAG_UP | FLAG_UV) == FLAG_UP | FLAG_UV
    result = PackedAttestation().verify(made.att_stmt, made.auth_data, client_data_hash)
    assert result.trust_path  # basic attestation, its signature verified by python-fido2
    credential = made.auth_data.credential_data
    # The touch spent the token's mc and ga permissions (CTAP 2.1 §6.1.2 step 14).
    refused(ERR.PIN_AUTH_INVALID, pinned.get, token)

    token = pin.get_pin_token("pässwörd", PERMISSION.GET_ASSERTION, RP_ID)
    refused(ERR.PIN_AUTH_INVALID, pinned.get, token, rp_id="elsewhere.example")  # bound to RP_ID
    refused(ERR.PIN_AUTH_INVALID, pinned.make, token)  # no mc permission
    got, client_data_hash = pinned.get(token)
    got.verify(client_data_hash, credential.public_key)
    assert got.auth_data.flags & (FLAG_UP | FLAG_UV) == FLAG_UP | FLAG_UV
    assert got.user == user(1)  # names only after UV: here they come

    # A discoverable credential on a token with a PIN needs it; a server-side one does not
    # (makeCredUvNotRqd), and is made without UV.
    refused(ERR.PUAT_REQUIRED, ctap2.make_credential, sha256(b"c"), {"id": RP_ID, "name": "x"},
            user(2), [ES256_PARAM], options={"rk": True})
    plain = ctap2.make_credential(sha256(b"c"), {"id": RP_ID, "name": "x"}, user(2),
                                  [ES256_PARAM])
    assert plain.auth_data.flags & (FLAG_UP | FLAG_UV) == FLAG_UP
    # Without a token, an assertion is only present, not verified, and keeps the names back.
    unverified = ctap2.get_assertion(RP_ID, sha256(b"g"))
    assert not unverified.auth_data.flags & FLAG_UV
    assert unverified.user == {"id": user(1)["id"]}


@PROTOCOLS
def test_the_specs_errors_for_bad_requests(served, protocol):
    pinned = Pinned(served, served_addr(served), protocol)
    ctap2, pin = pinned.ctap2, pinned.pin
    pad = lambda pin: pin.ljust(64, b"\0")  # noqa: E731
    refused(ERR.PIN_POLICY_VIOLATION, pinned.set_padded, pad("ab\u00e9".encode()))  # 3 code points
    refused(ERR.PIN_POLICY_VIOLATION, pinned.set_padded, pad(b"\xff\xfe12"))  # not UTF-8
    refused(ERR.PIN_POLICY_VIOLATION, pin.set_pin, "x" * 64)  # no room for one zero byte
    refused(ERR.INVALID_PARAMETER, pinned.set_padded, b"1234".ljust(48, b"\0"))  # not 64 bytes
    refused(ERR.PIN_AUTH_INVALID, pinned.set_padded, pad(b"1234"), authentic=False)
    assert ctap2.get_info().options["clientPin"] is False
    pin.set_pin("x" * 63)
    assert pin.get_pin_token("x" * 63, PERMISSION.GET_ASSERTION, RP_ID)
    refused(ERR.UNAUTHORIZED_PERMISSION, pin.get_pin_token, "x" * 63,
            PERMISSION.BIO_ENROLL)  # no bio enrollment on this token
    refused(ERR.INVALID_PARAMETER, ctap2.client_pin, protocol.VERSION,
            ClientPin.CMD.GET_TOKEN_USING_PIN, key_agreement={}, pin_hash_enc=b"\0" * 16,
            permissions=0)
    refused(ERR.MISSING_PARAMETER, ctap2.client_pin, protocol.VERSION, ClientPin.CMD.SET_PIN)
    refused(ERR.INVALID_PARAMETER, ctap2.client_pin, 3, ClientPin.CMD.GET_KEY_AGREEMENT)
    refused(ERR.INVALID_SUBCOMMAND, ctap2.client_pin, protocol.VERSION, 0x08)
    refused(ERR.INVALID_SUBCOMMAND, pin.get_uv_retries)  # no built-in UV
    # A pinUvAuthParam of a protocol the token does not speak, or without one.
    refused(ERR.INVALID_PARAMETER, ctap2.get_assertion, RP_ID, sha256(b"c"), pin_uv_param=b"1" * 32,
            pin_uv_protocol=7)
    refused(ERR.MISSING_PARAMETER, ctap2.get_assertion, RP_ID, sha256(b"c"),
            pin_uv_param=b"1" * 32)
    assert pin.get_pin_retries()[0] == 8  # nothing above counted as a PIN attempt


@PROTOCOLS
def test_wrong_pins_count_down_three_want_a_replug_and_none_left_blocks(served, protocol):
    pinned = Pinned(served, served_addr(served), protocol)
    pinned.pin.set_pin("1234")
    stale = pinned.pin.get_pin_token("1234", PERMISSION.GET_ASSERTION, RP_ID)

    def attempt(pin, code, retries, power_cycle=False):
        refused(code, pinned.pin.get_pin_token, pin, PERMISSION.GET_ASSERTION, RP_ID)
        assert pinned.pin.get_pin_retries() == (retries, power_cycle)

    attempt("4321", ERR.PIN_INVALID, 7)
    attempt("4321", ERR.PIN_INVALID, 6)
    attempt("4321", ERR.PIN_AUTH_BLOCKED, 5, power_cycle=True)  # three in a row
    attempt("1234", ERR.PIN_AUTH_BLOCKED, 5, power_cycle=True)  # even the right one waits
    pinned.replug()
    assert pinned.pin.get_pin_retries() == (5, False)
    refused(ERR.PIN_AUTH_INVALID, pinned.get, stale)  # the token of before the replug is dead
    attempt("4321", ERR.PIN_INVALID, 4)
    pinned.pin.get_pin_token("1234", PERMISSION.GET_ASSERTION, RP_ID)
    assert pinned.pin.get_pin_retries() == (8, False)  # a right PIN gives every attempt back

    # All eight, with a replug after each three, down to blocked; then nothing helps.
    for retries in range(7, -1, -1):
        if retries in (4, 1):
            pinned.replug()
        code = (ERR.PIN_BLOCKED if retries == 0 else
                ERR.PIN_AUTH_BLOCKED if retries in (5, 2) else ERR.PIN_INVALID)
        attempt("0000", code, retries, power_cycle=code == ERR.PIN_AUTH_BLOCKED)
    attempt("1234", ERR.PIN_BLOCKED, 0)
    pinned.replug()
    attempt("1234", ERR.PIN_BLOCKED, 0)
    refused(ERR.PIN_BLOCKED, pinned.pin.change_pin, "1234", "5678")


class PinInteraction(UserInteraction):
    """The user types `pin` when Fido2Client asks for one."""

    def __init__(self, pin):
        self.pin = pin
        self.asked = 0

    def request_pin(self, permissions, rp_id):
        self.asked += 1
        return self.pin


def test_fido2_client_with_a_pin_makes_and_gets_user_verified(served):
    """Fido2Client with userVerification "required" on a token with a PIN: it asks for the PIN,
    gets a pinUvAuthToken (protocol 2, the first of getInfo's), and Fido2Server accepts the
    registration and the assertion, which it refuses without the UV flag."""
    device, facts = fido2_device(served)
    ClientPin(Ctap2(device)).set_pin("246810")
    interaction = PinInteraction("246810")
    rp = RelyingParty(device, facts, user_interaction=interaction)
    auth_data = rp.register(user(9), resident_key="required", user_verification="required")
    assert auth_data.flags & (FLAG_UP | FLAG_UV) == FLAG_UP | FLAG_UV
    [(assertion, verified)] = rp.authenticate([auth_data.credential_data], allow=False,
                                              user_verification="required")
    assert verified.credential_id == auth_data.credential_data.credential_id
    assert assertion.auth_data.flags & FLAG_UV
    assert assertion.user == user(9)
    assert interaction.asked == 2

    interaction.pin = "wrong-pin"
    with pytest.raises(Exception) as wrong:
        rp.authenticate([auth_data.credential_data], user_verification="required")
    assert getattr(wrong.value, "cause", wrong.value).code == ERR.PIN_INVALID
    assert ClientPin(Ctap2(device)).get_pin_retries()[0] == 7


@PROTOCOLS
def test_a_token_through_built_in_uv(served, protocol):
    """getPinUvAuthTokenUsingUvWithPermissions on a token with built-in UV (`--uv auto`), and
    getUVRetries; the token verifies the user for a make and a get without a PIN."""
    pinned = Pinned(served, served_addr(served, uv="auto"), protocol)
    assert pinned.pin.get_uv_retries() == 8
    token = pinned.pin.get_uv_token(PERMISSION.MAKE_CREDENTIAL, RP_ID)
    made, _ = pinned.make(token, rk=True)
    assert made.auth_data.flags & (FLAG_UP | FLAG_UV) == FLAG_UP | FLAG_UV
    token = pinned.pin.get_uv_token(PERMISSION.GET_ASSERTION, RP_ID)
    got, client_data_hash = pinned.get(token)
    got.verify(client_data_hash, made.auth_data.credential_data.public_key)
    assert got.auth_data.flags & FLAG_UV
    refused(ERR.PIN_NOT_SET, pinned.pin.get_pin_token, "1234", PERMISSION.GET_ASSERTION, RP_ID)


def test_a_finger_that_never_matches_counts_uv_retries_down_to_the_pin(served):
    """`--uv deny`, a finger that never matches: getInfo tells preferredPlatformUVAttempts (3)
    and uvModality (fingerprint); each getPinUvAuthTokenUsingUvWithPermissions answers
    UV_INVALID and lowers getUVRetries by one, durably (a replug keeps it), the last UV_BLOCKED.
    Fido2Client then falls back to the PIN (python-fido2 retries once with it on UV_BLOCKED), and
    the right PIN gives every UV attempt back; the next failed match is UV_INVALID again."""
    facts = StoreFacts(served.store)
    pinned = Pinned(served, served_addr(served, uv="deny"), PinProtocolV2)
    info = pinned.ctap2.get_info()
    assert info.options["uv"] is True
    assert (info.preferred_platform_uv_attempts, info.uv_modality) == (3, 2)
    assert pinned.pin.get_uv_retries() == 8
    for left in range(7, 0, -1):
        refused(ERR.UV_INVALID, pinned.pin.get_uv_token, PERMISSION.GET_ASSERTION, RP_ID)
        assert pinned.pin.get_uv_retries() == left
        if left == 4:
            pinned.replug()
            assert pinned.pin.get_uv_retries() == 4
    refused(ERR.UV_BLOCKED, pinned.pin.get_uv_token, PERMISSION.GET_ASSERTION, RP_ID)
    refused(ERR.UV_BLOCKED, pinned.pin.get_uv_token, PERMISSION.GET_ASSERTION, RP_ID)
    assert pinned.pin.get_uv_retries() == 0

    pinned.pin.set_pin("1234")
    assert pinned.pin.get_uv_retries() == 0  # setting a PIN is not using one
    interaction = PinInteraction("1234")
    rp = RelyingParty(pinned.device, facts, user_interaction=interaction)
    auth_data = rp.register(user(4), resident_key="required", user_verification="required")
    assert auth_data.flags & (FLAG_UP | FLAG_UV) == FLAG_UP | FLAG_UV
    assert interaction.asked == 1
    assert pinned.pin.get_uv_retries() == 8

    with pytest.raises(Exception) as failed:
        rp.authenticate([auth_data.credential_data], user_verification="required")
    assert getattr(failed.value, "cause", failed.value).code == ERR.UV_INVALID
    assert pinned.pin.get_uv_retries() == 7
