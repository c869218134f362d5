"""The U2F logon of NetIQ / OpenText Advanced Authentication under Locust, with signatures from
vu2f's Device Service API (`vu2f serve --device-service`), as AA's own web pages get them from
the vendor's Device Service. Locust drives the flow and scales it out (master and workers on many
machines); each worker machine runs `vu2f serve --device-service --all` beside it.

Every Locust user is one vu2f token and one AA user of the same name, PREFIX00001, PREFIX00002…
On start it opens an endpoint session and enrolls its token (skipped when already enrolled); then
it logs on again and again: POST /logon (U2F:1), do_logon for the sign request, the Device
Service's signature, do_logon with the sign response, until OK.

Settings (environment):
  --host                          the AA server (Locust's own option)
  VU2F_DEVICE_SERVICE             the Device Service [https://127.0.0.1:8441]
  VU2F_DEVICE_SERVICE_CA          its certificate (printed by vu2f serve), or "insecure"
  VU2F_CA                         the AA server's certificate, or "insecure" [system trust]
  VU2F_ENDPOINT_ID, VU2F_ENDPOINT_SECRET   an endpoint; or, to register one per worker:
  VU2F_ADMIN_USER, VU2F_ADMIN_PASSWORD
  VU2F_USER_PREFIX [load-]   VU2F_USER_OFFSET [0]: this worker's first user is OFFSET+1
  VU2F_PASSWORD                   the users' password, to enroll them
  VU2F_EVENT [Search Card]        VU2F_ENROLL_EVENT [Authenticators Management]
"""
import hashlib
import itertools
import os
import secrets
import threading
import time

from locust import HttpUser, between, events, task

ENV = os.environ
DEVICE_SERVICE = ENV.get("VU2F_DEVICE_SERVICE", "https://127.0.0.1:8441").rstrip("/")
PREFIX = ENV.get("VU2F_USER_PREFIX", "load-")
EVENT = ENV.get("VU2F_EVENT", "Search Card")
ENROLL_EVENT = ENV.get("VU2F_ENROLL_EVENT", "Authenticators Management")


def trust(name):
    value = ENV.get(name)
    if value == "insecure":
        return False
    return value or True


DEVICE_TRUST = trust("VU2F_DEVICE_SERVICE_CA")
SERVER_TRUST = trust("VU2F_CA")

_numbers = itertools.count(int(ENV.get("VU2F_USER_OFFSET", "0")) + 1)
_endpoint_lock = threading.Lock()
_endpoint = {}


def secret_hash(endpoint_id, secret, salt):
    """PROTOCOLS.md 1.2: hex(SHA256(secret + hex(SHA256(endpoint_id + salt))))."""
    inner = hashlib.sha256((endpoint_id + salt).encode()).hexdigest()
    return hashlib.sha256((secret + inner).encode()).hexdigest()


class Failed(Exception):
    """A step answered something other than what the flow needs."""


class U2fLogonUser(HttpUser):
    wait_time = between(0, 0)

    def post(self, path, body, name):
        with self.client.post(path, json=body, name=name, verify=SERVER_TRUST,
                              catch_response=True) as response:
            try:
                answer = response.json()
            except ValueError:
                response.failure(f"not JSON: HTTP {response.status_code}")
                raise Failed(name)
            if response.status_code != 200 or answer.get("status") in ("FAILED", "error"):
                reason = answer.get("reason") or answer.get("errors") or response.status_code
                response.failure(f"{answer.get('status')} {reason}")
                raise Failed(name)
            return answer

    def device(self, call, body):
        url = f"{DEVICE_SERVICE}/api/v1/fidou2f/{call}?token={self.name}"
        with self.client.post(url, json=body, name=f"device service {call}", verify=DEVICE_TRUST,
                              catch_response=True) as response:
            answer = response.json()
            if "errorCode" in answer:
                if call == "register" and answer["errorCode"] == 4:
                    return None  # this token is enrolled already
                response.failure(f"errorCode {answer['errorCode']}: {answer.get('errorMessage')}")
                raise Failed(call)
            return answer

    def endpoint(self):
        with _endpoint_lock:
            if not _endpoint:
                if ENV.get("VU2F_ENDPOINT_ID"):
                    _endpoint.update(id=ENV["VU2F_ENDPOINT_ID"], secret=ENV["VU2F_ENDPOINT_SECRET"])
                else:
                    auth = {"method_id": "PASSWORD:1", "user_name": ENV["VU2F_ADMIN_USER"],
                            "password": ENV["VU2F_ADMIN_PASSWORD"]}
                    _endpoint.update(self.post("/api/v1/endpoints", {
                        "name": "vu2f-locust", "typ": 3, "desc": "Locust", "is_trusted": True,
                        "tenant_name": "TOP", "auth_data": auth}, "register endpoint"))
            return _endpoint["id"], _endpoint["secret"]

    def on_start(self):
        self.name = f"{PREFIX}{next(_numbers):05d}"
        endpoint_id, secret = self.endpoint()
        salt = secrets.token_hex(8)
        self.session = self.post(f"/api/v1/endpoints/{endpoint_id}/sessions", {
            "salt": salt, "endpoint_secret_hash": secret_hash(endpoint_id, secret, salt)},
            "endpoint session")["endpoint_session_id"]
        if ENV.get("VU2F_PASSWORD"):
            self.enroll()

    def enroll(self):
        started = self.post("/api/v1/logon", {
            "method_id": "PASSWORD:1", "user_name": self.name, "event": ENROLL_EVENT,
            "endpoint_session_id": self.session}, "enroll: logon")
        process = started["logon_process_id"]
        done = self.post(f"/api/v1/logon/{process}/do_logon", {
            "response": {"password": ENV["VU2F_PASSWORD"]}, "endpoint_session_id": self.session},
            "enroll: password")
        login = done["login_session_id"]
        enrolling = self.post("/api/v1/enroll", {"method_id": "U2F:1", "login_session_id": login},
                              "enroll: start")["enroll_process_id"]
        asked = self.post(f"/api/v1/enroll/{enrolling}/do_enroll",
                          {"response": {}, "login_session_id": login}, "enroll: register request")
        registered = self.device("register", {"registerRequests": asked["registerRequests"],
                                              "signRequests": asked.get("signRequests", [])})
        if registered is None:
            return
        self.post(f"/api/v1/enroll/{enrolling}/do_enroll", {
            "response": {"registerResponse": registered}, "login_session_id": login},
            "enroll: register response")
        self.post(f"/api/v1/users/{done['user_id']}/templates", {
            "login_session_id": login, "enroll_process_id": enrolling, "category_id": "",
            "comment": "vu2f locust"}, "enroll: save template")

    @task
    def logon(self):
        began = time.perf_counter()
        error = None
        try:
            started = self.post("/api/v1/logon", {
                "method_id": "U2F:1", "user_name": self.name, "event": EVENT,
                "endpoint_session_id": self.session}, "logon: start")
            process = started["logon_process_id"]
            path = f"/api/v1/logon/{process}/do_logon"
            gathered = self.post(path, {"endpoint_session_id": self.session}, "logon: gather")
            signed = self.device("sign", {"signRequests": gathered["signRequests"]})
            answer = self.post(path, {"response": {"signResponse": signed},
                                      "endpoint_session_id": self.session}, "logon: answer")
            if answer.get("status") != "OK" or not answer.get("login_session_id"):
                raise Failed(f"ended with {answer.get('status')}")
        except Failed as failed:
            error = failed
        events.request.fire(request_type="U2F", name="whole logon",
                            response_time=(time.perf_counter() - began) * 1000,
                            response_length=0, exception=error, context={})
