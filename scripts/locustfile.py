"""The U2F logon of NetIQ / OpenText Advanced Authentication under Locust, with signatures from
vu2f's Device Service API (`vu2f serve --device-service`), as AA's own web pages get them from
the vendor's Device Service. Locust drives the flow and scales it out (master and workers on many
machines); each worker machine runs `vu2f serve --device-service --all` beside it.

Every Locust user is one vu2f token and one AA user of the same name, PREFIX00001, PREFIX00002…
On start it opens an endpoint session and enrolls its token as AA's own portal does (a logon to
the enrollment event, do_enroll with {appId, userId}, the Device Service's registration, do_enroll
with the registerResponse, the template saved; skipped when already enrolled). Then it logs on
again and again, as the portal does: the user's chains for the event, the first chain it can
complete (U2F:1 with the token, PASSWORD:1 with VU2F_PASSWORD), POST /logon with its first method,
do_logon for each method (for U2F: the sign request, the Device Service's signature, the sign
response), /next between methods, until OK.

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
from urllib.parse import urlsplit

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

    def call(self, method, path, name, **request):
        """One call to AA; anything but HTTP 200 without FAILED is a failure naming the reason."""
        with self.client.request(method, path, name=name, verify=SERVER_TRUST,
                                 catch_response=True, **request) as response:
            try:
                answer = response.json()
            except ValueError:
                response.failure(f"not JSON: HTTP {response.status_code}")
                raise Failed(name)
            if response.status_code != 200 or answer.get("status") in ("FAILED", "error"):
                # AA's error bodies carry the msgid in their first error, FAILED at the top.
                errors = answer.get("errors") or [{}]
                msgid = answer.get("msgid") or errors[0].get("msgid") or ""
                reason = answer.get("reason") or response.status_code
                response.failure(f"{answer.get('status')} {reason} {msgid}".rstrip())
                raise Failed(name)
            return answer

    def post(self, path, body, name):
        return self.call("POST", path, name, json=body)

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
        self.password = ENV.get("VU2F_PASSWORD")
        if self.password:
            self.enroll()

    def chain(self, event, step, methods):
        """The first of the user's chains for `event` whose every method is in `methods`."""
        listed = self.call("GET", "/api/v1/logon/chains", f"{step}: chains", params={
            "user_name": self.name, "is_trusted": "true", "event": event,
            "endpoint_session_id": self.session})["chains"]
        for chain in listed:
            if chain.get("is_enabled", True) and chain["methods"] \
                    and set(chain["methods"]) <= methods:
                return chain["methods"]
        raise Failed(f"no chain of {event!r} completes with {sorted(methods)}: {listed}")

    def log_on(self, event, step, methods):
        """A logon through the first chain of `event` that `methods` complete; the OK answer."""
        chain = self.chain(event, step, methods)
        answer = self.post("/api/v1/logon", {
            "method_id": chain[0], "user_name": self.name, "event": event,
            "endpoint_session_id": self.session}, f"{step}: start")
        process = answer["logon_process_id"]
        path = f"/api/v1/logon/{process}/do_logon"
        for index, method in enumerate(chain):
            if index > 0:
                self.post(f"/api/v1/logon/{process}/next", {
                    "method_id": method, "endpoint_session_id": self.session}, f"{step}: next")
            if method == "PASSWORD:1":
                answer = self.post(path, {"response": {"password": self.password},
                                          "endpoint_session_id": self.session},
                                   f"{step}: password")
            else:
                gathered = self.post(path, {"endpoint_session_id": self.session},
                                     f"{step}: gather")
                signed = self.device("sign", {"signRequests": gathered["signRequests"]})
                answer = self.post(path, {"response": {"signResponse": signed},
                                          "endpoint_session_id": self.session},
                                   f"{step}: answer")
        if answer.get("status") != "OK" or not answer.get("login_session_id"):
            raise Failed(f"{step} ended with {answer.get('status')}")
        return answer

    def enroll(self):
        done = self.log_on(ENROLL_EVENT, "enroll", {"PASSWORD:1"})
        login = done["login_session_id"]
        enrolling = self.post("/api/v1/enroll", {"method_id": "U2F:1", "login_session_id": login},
                              "enroll: start")["enroll_process_id"]
        path = f"/api/v1/enroll/{enrolling}/do_enroll"
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.host))
        asked = self.post(path, {"login_session_id": login,
                                 "response": {"appId": origin, "userId": done["user_id"]}},
                          "enroll: register request")
        registered = self.device("register", {"registerRequests": asked["registerRequests"],
                                              "signRequests": asked.get("signRequests", [])})
        if registered is None:
            self.client.delete(f"/api/v1/enroll/{enrolling}", params={"login_session_id": login},
                               name="enroll: abort", verify=SERVER_TRUST)
            return
        request = asked["registerRequests"][0]
        register_response = dict(registered, appId=request["appId"],
                                  challenge=request["challenge"], version=request["version"])
        self.post(path, {"login_session_id": login,
                         "response": {"registerResponse": register_response}},
                  "enroll: register response")
        self.post(f"/api/v1/users/{done['user_id']}/templates", {
            "login_session_id": login, "enroll_process_id": enrolling, "category_id": "",
            "comment": "vu2f locust"}, "enroll: save template")

    @task
    def logon(self):
        began = time.perf_counter()
        error = None
        methods = {"U2F:1", "PASSWORD:1"} if self.password else {"U2F:1"}
        try:
            self.log_on(EVENT, "logon", methods)
        except Failed as failed:
            error = failed
        events.request.fire(request_type="U2F", name="whole logon",
                            response_time=(time.perf_counter() - began) * 1000,
                            response_length=0, exception=error, context={})
