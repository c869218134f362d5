"""A WebAuthn relying party for the browser tests: python-fido2's `Fido2Server` behind a small
HTTP(S) server on localhost that also serves the page running the ceremony.

The page (`PAGE`) asks the server for options, calls navigator.credentials.create or .get, and
posts the browser's answer back; `window.progress` tells a driver how far it got. The server
verifies each answer as a relying party must: python-fido2 checks type, challenge, origin, RP ID
hash, user presence and the signature, and this server refuses a sign counter that does not rise
above the credential's last one. What it verified is recorded in `verified` (with the flags of
the authenticator data), what it refused in `refused`; the page's own account of the ceremony
(`page_said`) is kept only to explain a failure.

With `app_id`, assertions are asked for with WebAuthn's `appid` extension, and one the browser
made with it (client extension output `appid: true`) is verified against SHA-256(appId) instead
of the RP ID's hash: a credential registered through U2F for that appId.

`resident_key` and `user_verification` are what the relying party asks for in both ceremonies
(python-fido2 then refuses an answer without the UV flag when UV is required). Without
`allow_list`, sign-in asks for no credential at all (a discoverable credential, a passkey, signs)
and the server finds the credential by its id and refuses a user handle other than the one it
registered the credential for, or none.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestedCredentialData,
    AuthenticationResponse,
    AuthenticatorAttachment,
    PublicKeyCredentialRpEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

RP_ID = "localhost"
USER_PRESENT, USER_VERIFIED = 0x01, 0x04

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>vu2f relying party</title>
<pre id="log"></pre>
<script>
"use strict";
function log(line) {
  document.getElementById("log").textContent += line + "\\n";
}

async function post(path, body) {
  const reply = await fetch(path, {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify(body ?? {}),
  });
  const answer = await reply.json();
  if (!reply.ok) throw new Error(path + ": " + answer.error);
  return answer;
}

// How far the ceremony got, for a driver to poll: sign-ins begun, and the outcome at the end.
window.progress = {signIns: 0, outcome: null};

// Registers a credential when `register`, then signs `signs` times with the credentials the
// server knows. Resolves to "done" or to the first error; the server is told either way.
async function ceremony(register, signs) {
  try {
    if (register) {
      const options = await post("/register/begin");
      const credential = await navigator.credentials.create({
        publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey),
      });
      await post("/register/complete", credential.toJSON());
      log("registered");
    }
    for (let i = 0; i < signs; i++) {
      const options = await post("/authenticate/begin");
      progress.signIns++;
      const assertion = await navigator.credentials.get({
        publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey),
      });
      await post("/authenticate/complete", assertion.toJSON());
      log("signed");
    }
    await post("/report", {outcome: "done"});
    return progress.outcome = "done";
  } catch (error) {
    const outcome = error.name + ": " + error.message;
    log(outcome);
    await post("/report", {outcome}).catch(() => {});
    return progress.outcome = outcome;
  }
}

// /?register=1&signs=2 runs the ceremony as soon as the page has loaded.
const query = new URLSearchParams(location.search);
if (query.has("signs")) {
  const register = query.get("register") === "1";
  addEventListener("load", () => ceremony(register, Number(query.get("signs"))));
}
</script>
"""


@dataclass
class Credential:
    data: AttestedCredentialData
    counter: int
    app_id: str | None
    user_id: bytes | None  # the user it was registered for; None for a U2F credential


@dataclass(frozen=True)
class Verified:
    """One registration or assertion the server verified."""

    kind: str
    credential_id: str
    counter: int
    app_id: str | None
    at: float
    flags: int  # of the authenticator data: USER_PRESENT, USER_VERIFIED, ...
    aaguid: str | None = None  # a registration's, as the browser passed it on
    user_handle: bytes | None = None  # an assertion's


class RelyingParty:
    """The relying party `localhost` on its own origin, http://localhost:PORT, or
    https://localhost:PORT when `tls` (an ssl.SSLContext) is given. Serve it with `start()`."""

    def __init__(self, tls: ssl.SSLContext | None = None, use_app_id: bool = False,
                 resident_key: ResidentKeyRequirement = ResidentKeyRequirement.DISCOURAGED,
                 user_verification: UserVerificationRequirement = (
                     UserVerificationRequirement.DISCOURAGED),
                 allow_list: bool = True):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.rp = self
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(
                self.httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.port = self.httpd.server_address[1]
        self.origin = f"{'https' if tls else 'http'}://localhost:{self.port}"
        self.app_id = self.origin if use_app_id else None
        self.resident_key = resident_key
        self.user_verification = user_verification
        self.allow_list = allow_list
        # A user id of its own: a user handle from another relying party's credential shows.
        self.user = {"id": os.urandom(16), "name": "alice", "displayName": "Alice"}
        self.server = self._server(RP_ID)
        self._app_id_server = self._server(self.app_id) if self.app_id else None
        self.credentials: dict[bytes, Credential] = {}
        self.verified: list[Verified] = []
        self.refused: list[str] = []
        self.page_said: list[str] = []
        self.requests: list[str] = []
        self._started = time.monotonic()
        self._pending: dict[str, object] = {}
        # Guards everything above; notified when verified, refused or page_said grow.
        self._changed = threading.Condition(threading.RLock())

    def _server(self, rp_id: str) -> Fido2Server:
        """A Fido2Server for `rp_id` (the appId, for U2F credentials) that accepts exactly this
        relying party's origin."""
        server = Fido2Server(
            PublicKeyCredentialRpEntity(name="vu2f browser test", id=rp_id),
            attestation="none",
            verify_origin=lambda origin: origin == self.origin,
        )
        server.timeout = 120_000
        return server

    def url(self, query: str = "") -> str:
        return f"{self.origin}/{query}"

    def start(self) -> RelyingParty:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def add_u2f_credential(self, key_handle: bytes, public_key: bytes, counter: int) -> None:
        """A credential registered through U2F for this relying party's appId."""
        assert self.app_id, "a U2F credential needs use_app_id"
        data = AttestedCredentialData.from_ctap1(key_handle, public_key)
        self.credentials[data.credential_id] = Credential(data, counter, self.app_id, None)

    def add_credential(self, data: AttestedCredentialData, user_id: bytes, counter: int) -> None:
        """A credential this relying party knows without having seen its registration (one put
        into the authenticator from outside, for the user `user_id`), last seen with `counter`."""
        self.credentials[data.credential_id] = Credential(data, counter, None, user_id)

    def wait(self, done, timeout: float) -> bool:
        """Waits until `done(self)` is true, or anything was refused, or the page gave up."""
        with self._changed:
            return self._changed.wait_for(
                lambda: done(self) or self.refused or self.page_said, timeout)

    def assertions(self) -> list[Verified]:
        return [v for v in self.verified if v.kind == "assertion"]

    def registrations(self) -> list[Verified]:
        return [v for v in self.verified if v.kind == "registration"]

    def _elapsed(self) -> float:
        return time.monotonic() - self._started

    def log_request(self, request: str) -> None:
        self.requests.append(f"{self._elapsed():.1f}s {request}")

    def summary(self) -> str:
        """What the server verified, with counters and when (seconds after its start)."""
        return ", ".join(f"{v.kind} (counter {v.counter}, flags {v.flags:#04x}) at {v.at:.0f} s"
                         for v in self.verified)

    def explain(self) -> str:
        """What happened, for an assertion's message."""
        return (f"verified={self.verified} refused={self.refused} page said={self.page_said} "
                f"requests={self.requests}")

    def handle(self, path: str, body: dict) -> dict:
        """One POST from the page: the JSON answer; an exception is a refusal (LookupError: no
        such path)."""
        with self._changed:
            return self._handle(path, body)

    def _handle(self, path: str, body: dict) -> dict:
        if path == "/register/begin":
            options, self._pending["register"] = self.server.register_begin(
                self.user,
                credentials=[c.data for c in self.credentials.values()],
                resident_key_requirement=self.resident_key,
                user_verification=self.user_verification,
                authenticator_attachment=AuthenticatorAttachment.CROSS_PLATFORM,
            )
            return dict(options)
        if path == "/register/complete":
            auth_data = self.server.register_complete(self._take("register"), body)
            data = auth_data.credential_data
            self.credentials[data.credential_id] = Credential(
                data, auth_data.counter, None, self.user["id"])
            self._record(Verified(
                "registration", data.credential_id.hex(), auth_data.counter, None,
                self._elapsed(), auth_data.flags, aaguid=str(data.aaguid)))
            return {"ok": True}
        if path == "/authenticate/begin":
            options, self._pending["authenticate"] = self.server.authenticate_begin(
                [c.data for c in self.credentials.values()] if self.allow_list else None,
                user_verification=self.user_verification,
                extensions={"appid": self.app_id} if self.app_id else None,
            )
            return dict(options)
        if path == "/authenticate/complete":
            return self._authenticate_complete(body)
        if path == "/report":
            self.page_said.append(str(body.get("outcome")))
            self._changed.notify_all()
            return {"ok": True}
        raise LookupError(path)

    def _authenticate_complete(self, body: dict) -> dict:
        response = AuthenticationResponse.from_dict(body)
        used_app_id = bool((response.client_extension_results or {}).get("appid"))
        if used_app_id and not self._app_id_server:
            raise ValueError("appid extension output without an appid asked for")
        server = self._app_id_server if used_app_id else self.server
        credential = self.credentials.get(response.raw_id)
        if credential is None:
            raise ValueError("unknown credential")
        if (credential.app_id is not None) != used_app_id:
            raise ValueError(
                f"a credential for appId {credential.app_id}, appid used: {used_app_id}")
        server.authenticate_complete(self._take("authenticate"), [credential.data], response)
        user_handle = response.response.user_handle
        if user_handle is None and not self.allow_list:
            raise ValueError("no user handle in a sign-in without an allowList")
        if user_handle is not None and user_handle != credential.user_id:
            raise ValueError(f"user handle {user_handle.hex()} is not the one the credential "
                             f"was registered for, {(credential.user_id or b'').hex()}")
        auth_data = response.response.authenticator_data
        if auth_data.counter <= credential.counter:
            raise ValueError(
                f"sign counter {auth_data.counter} does not rise above {credential.counter}")
        credential.counter = auth_data.counter
        self._record(Verified(
            "assertion", response.raw_id.hex(), auth_data.counter, credential.app_id,
            self._elapsed(), auth_data.flags, user_handle=user_handle))
        return {"ok": True, "counter": auth_data.counter}

    def _take(self, ceremony: str):
        state = self._pending.pop(ceremony, None)
        if state is None:
            raise ValueError(f"no {ceremony} ceremony begun")
        return state

    def _record(self, verified: Verified) -> None:
        self.verified.append(verified)
        self._changed.notify_all()

    def refuse(self, path: str, error: Exception) -> None:
        with self._changed:
            self.refused.append(f"{path}: {type(error).__name__}: {error}")
            self._changed.notify_all()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.rp.log_request(f"GET {self.path}")
        if self.path.split("?", 1)[0] != "/":
            self._reply(404, "text/plain", b"not found")
            return
        self._reply(200, "text/html; charset=utf-8", PAGE.encode())

    def do_POST(self):
        rp = self.server.rp
        rp.log_request(f"POST {self.path}")
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            answer = rp.handle(self.path, body)
        except LookupError:
            self._reply(404, "application/json", b'{"error": "not found"}')
            return
        except Exception as error:  # every refusal is recorded and answered, whatever raised it
            rp.refuse(self.path, error)
            self._reply(400, "application/json", json.dumps({"error": str(error)}).encode())
            return
        self._reply(200, "application/json", json.dumps(answer, default=dict).encode())

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


def localhost_tls(directory: str) -> tuple[str, ssl.SSLContext]:
    """A throwaway CA and a certificate it issued for localhost (and 127.0.0.1), written to
    `directory`. Returns the CA certificate's PEM path, for the browser to trust, and a server
    context with the certificate."""
    now = datetime.datetime.now(datetime.timezone.utc)
    valid = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=1))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vu2f browser test CA")])
    ca = (x509.CertificateBuilder()
          .subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(valid[0]).not_valid_after(valid[1])
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
                   .issuer_name(ca_name)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(valid[0]).not_valid_after(valid[1])
                   .add_extension(x509.SubjectAlternativeName([
                       x509.DNSName("localhost"),
                       x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                  critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       ca_key.public_key()), critical=False)
                   .sign(ca_key, hashes.SHA256()))
    ca_path = os.path.join(directory, "ca.pem")
    cert_path = os.path.join(directory, "localhost.pem")
    key_path = os.path.join(directory, "localhost-key.pem")
    with open(ca_path, "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(cert_path, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return ca_path, context
