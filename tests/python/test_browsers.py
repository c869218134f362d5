"""Real browsers take the uhid token for a security key, and a relying party's server says so.

Tokens are served with `vu2f serve --uhid --presence auto`. The page comes from a relying party
on localhost (browser_rp.py): python-fido2's `Fido2Server` verifies every registration and
assertion the browser sends, and the server refuses a sign counter that does not rise. The tests
assert on what that server verified, never on what the page reports. Against a `fido2` token they
also check that the browser spoke CTAP2 to it, not U2F (`assert_spoke_ctap2`).

A browser start costs 15 to 60 s in the VM, so one browser runs all the ceremonies it can (a
class of tests each). Chromium, with no udev daemon in the VM, learns of no hidraw node made
after its start: its token is served first and stays for the class. Firefox looks for tokens at
each ceremony, so one Firefox serves a u2f token's test and then a fido2 token's.

* Chromium (selenium and Debian's chromedriver; not headless, under Xvfb), on
  http://localhost:PORT: navigator.credentials.create registers a credential, then two
  navigator.credentials.get sign with it; against a `u2f` token (WebAuthn over CTAP1, as
  Chromium does it) and a `fido2` token (CTAP2).
* Chromium creates a passkey on the `fido2` token, served with built-in user verification
  (`--uv auto`): residentKey and userVerification "required"; then signs in with it with no
  allowList (the discoverable flow), where Chromium shows the account the token returned and
  the test presses Enter in its dialog (xdotool) to continue, as a user would.
* Chromium signs, through WebAuthn's `appid` extension, with a credential that python-fido2's
  `Ctap1` registered over hidraw for the U2F appId https://localhost:PORT, on an HTTPS page whose
  certificate comes from a throwaway CA trusted in Chromium's NSS database: the path by which a
  site moves its U2F users to WebAuthn.
* Chromium signs in, twice and with no registration ceremony, with a discoverable credential a
  test put into an authenticator of the automation API (`vu2f serve --uhid --control`, the
  authenticator added before Chromium starts): the relying party knows only its id and the
  public half of the P-256 key the test made, and the sign count the API reads back afterwards
  is the last one the server verified.
* Firefox ESR, driven over Marionette (its own remote protocol; no geckodriver), the
  register-and-sign-twice ceremony through its own CTAP stack (authenticator-rs), against a `u2f`
  and then a `fido2` token.

Runs where /dev/uhid is writable (in the VM of scripts/vm-test.sh, from scripts/uhid-tests.sh),
as root there. A browser, driver or tool that is missing fails the test. In the VM (qemu without
KVM) a browser takes 15 to 60 s to start.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from fido2.ctap1 import Ctap1
from fido2.hid import CtapHidDevice
from fido2.webauthn import ResidentKeyRequirement, UserVerificationRequirement
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service

from automation_api import Api, b64url, credential_data, injected_key
from browser_rp import USER_VERIFIED, RelyingParty, localhost_tls
from conftest import Servers, uhid_available

CEREMONY_TIMEOUT = 240
BROWSER_START_TIMEOUT = 240

CHROMIUM_ARGS = [
    "--no-sandbox",  # root in the VM
    "--ozone-platform=x11",
    "--disable-gpu",
    "--disable-gpu-process-crash-limit",  # qemu without KVM: a slow GPU process is not a crash
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--password-store=basic",
    "--window-position=0,0",
    "--window-size=1280,800",
]

FIREFOX_PREFS = {
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "startup.homepage_welcome_url": "",
    "startup.homepage_welcome_url.additional": "",
    "browser.aboutwelcome.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.policy.firstRunURL": "",
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.enabled": False,
    "app.normandy.enabled": False,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "browser.search.update": False,
    "browser.region.update.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.newtabpage.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "network.trr.mode": 5,
    "media.gmp-manager.updateEnabled": False,
    "browser.sessionstore.resume_from_crash": False,
    "toolkit.startup.max_resumed_crashes": -1,
    "security.webauth.webauthn_enable_softtoken": False,
    "security.webauth.webauthn_enable_usbtoken": True,
    "marionette.port": 0,  # any free port, written to the profile's MarionetteActivePort
}


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.fail(f"{program} is not installed here; scripts/vm-test.sh installs it")
    return path


def tail(path, lines: int = 40) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except FileNotFoundError:
        return f"({path} missing)"


@pytest.fixture(scope="session")
def font_cache(tmp_path_factory):
    """One fontconfig cache for every browser: the VM hides the system's, and each browser
    would otherwise build its own."""
    return tmp_path_factory.mktemp("cache")


@contextlib.contextmanager
def xvfb(directory: Path, font_cache: Path):
    """An Xvfb display; yields the browsers' environment: their own HOME (profiles, NSS
    database) under `directory`, and the display."""
    xvfb_program = need("Xvfb")
    home = directory / "home"
    home.mkdir()
    read_end, write_end = os.pipe()
    with open(directory / "xvfb.log", "w") as log:
        server = subprocess.Popen(
            [xvfb_program, "-displayfd", str(write_end), "-screen", "0", "1280x800x24",
             "-nolisten", "tcp"],
            pass_fds=[write_end], stdout=log, stderr=subprocess.STDOUT)
    os.close(write_end)
    with os.fdopen(read_end) as displayfd:
        display = displayfd.readline().strip()
    try:
        if not display:
            pytest.fail(f"Xvfb did not start: {tail(directory / 'xvfb.log')}")
        yield dict(os.environ, HOME=str(home), XDG_CACHE_HOME=str(font_cache),
                   DISPLAY=f":{display}")
    finally:
        server.terminate()
        server.wait()


class Launcher:
    """Starts browsers in process groups of their own, with `env` and their output in
    DIRECTORY/NAME.log; `stop` kills every group it started."""

    def __init__(self, env: dict, directory: Path):
        self.env = env
        self.directory = directory
        self.children = []

    def start(self, name: str, argv: list[str], **extra_env: str):
        log_path = self.directory / f"{name}.log"
        with open(log_path, "w") as log:
            child = subprocess.Popen(argv, env=dict(self.env, **extra_env), start_new_session=True,
                                     stdout=log, stderr=subprocess.STDOUT)
        self.children.append(child)
        return child, log_path

    def stop(self) -> None:
        for child in self.children:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.wait()


@contextlib.contextmanager
def chromium_driver(launcher: Launcher, directory: Path):
    """Starts Chromium and yields a selenium driver attached to it, and the path of Chromium's log.

    Chromium is started here, not by chromedriver, which allows a browser 60 s to start: a cold
    start in the VM can take longer. chromedriver starts at the same time."""
    started = time.monotonic()
    driver_log = directory / "chromedriver.log"
    service = Service(executable_path=need("chromedriver"), log_output=str(driver_log))
    service.start()
    try:
        profile = directory / "chromium-profile"
        browser, log = launcher.start("chromium", [need("chromium"), *CHROMIUM_ARGS,
                                                   f"--user-data-dir={profile}",
                                                   "--remote-debugging-port=0", "about:blank"])
        port_file = profile / "DevToolsActivePort"
        while not (port_file.exists() and port_file.read_text().strip()):
            if browser.poll() is not None or time.monotonic() - started > BROWSER_START_TIMEOUT:
                pytest.fail(f"Chromium did not start (exit {browser.poll()}):\n{tail(log)}")
            time.sleep(0.5)
        print(f"Chromium started in {time.monotonic() - started:.0f} s")
        options = webdriver.ChromeOptions()
        options.debugger_address = f"127.0.0.1:{port_file.read_text().split()[0]}"
        try:
            driver = webdriver.Remote(service.service_url, options=options)
        except WebDriverException as error:
            pytest.fail(f"chromedriver: {error.msg}\n{tail(driver_log)}\n{tail(log)}")
        try:
            yield driver, log
        finally:
            driver.quit()
    finally:
        service.stop()


@contextlib.contextmanager
def firefox_marionette(launcher: Launcher, directory: Path):
    """Starts Firefox ESR with Marionette on and yields a Marionette client connected to it, and
    the path of Firefox's log (with authenticator-rs's, its CTAP stack's, messages)."""
    started = time.monotonic()
    profile = directory / "firefox-profile"
    profile.mkdir()
    with open(profile / "user.js", "w") as f:
        for name, value in FIREFOX_PREFS.items():
            f.write(f"user_pref({json.dumps(name)}, {json.dumps(value)});\n")
    browser, log = launcher.start("firefox", [need("firefox-esr"), "-marionette", "-no-remote",
                                              "-profile", str(profile),
                                              "-width", "1280", "-height", "800", "about:blank"],
                                  MOZ_CRASHREPORTER_DISABLE="1", RUST_LOG="authenticator=info")
    port_file = profile / "MarionetteActivePort"
    while not (port_file.exists() and port_file.read_text().strip()):
        if browser.poll() is not None or time.monotonic() - started > BROWSER_START_TIMEOUT:
            pytest.fail(f"Firefox did not start (exit {browser.poll()}):\n{tail(log)}")
        time.sleep(0.5)
    try:
        marionette = Marionette(int(port_file.read_text()))
    except (OSError, RuntimeError, ValueError) as error:
        pytest.fail(f"Marionette: {error}\n{tail(log)}")
    print(f"Firefox started in {time.monotonic() - started:.0f} s")
    try:
        yield marionette, log
    finally:
        marionette.close()


def trust_in_nss(env: dict, ca: str) -> None:
    """Makes the browsers' NSS database (under env's HOME) trust the CA certificate `ca` for
    TLS servers; Chromium reads it at its start."""
    certutil = need("certutil")
    nssdb = os.path.join(env["HOME"], ".pki", "nssdb")
    os.makedirs(nssdb)
    subprocess.run([certutil, "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True)
    subprocess.run([certutil, "-A", "-d", f"sql:{nssdb}", "-n", "vu2f browser test CA",
                    "-t", "C,,", "-i", ca], check=True)


class Browser:
    """A running browser that loads pages and runs scripts in them (subclasses say how), and so
    runs a relying party's ceremony."""

    name: str
    log: Path  # the browser's output
    env: dict  # its environment (the display)

    def load(self, url: str) -> None:
        raise NotImplementedError

    def execute(self, script: str, *args):
        """Runs `script` in the page (a function body; `arguments` are `args`); its result."""
        raise NotImplementedError

    def script(self, script: str, rp: RelyingParty, *args):
        try:
            return self.execute(script, *args)
        except Exception as error:  # the driver's, whichever it is
            pytest.fail(f"{self.name}, the page: {error}; {rp.explain()}\n{tail(self.log)}")

    def run(self, rp: RelyingParty, register: bool, signs: int,
            confirm_account: bool = False) -> str:
        """Loads the relying party's page and runs its ceremony; returns what the page said,
        which only explains a failure.

        With `confirm_account`, the one sign-in (signs=1) is one without an allowList, after
        which Chromium shows the account the token returned ("Use a saved passkey for
        localhost", Cancel and Continue, Continue focused) and waits for the user. The page is
        clicked first, so that it has the focus (not the address bar); when it loses the focus
        during the sign-in, that dialog took it, and Enter goes to the browser (xdotool)."""
        assert not confirm_account or signs == 1, "one account to confirm per page load"
        self.load(rp.url())
        if confirm_account:
            self.xdotool("mousemove", "640", "600", "click", "1")
            deadline = time.monotonic() + 30
            while not self.script("return document.hasFocus();", rp):
                if time.monotonic() > deadline:
                    pytest.fail(f"{self.name}: a click did not give the page the focus")
                time.sleep(0.2)
        self.script("ceremony(arguments[0], arguments[1]);", rp, register, signs)
        deadline = time.monotonic() + CEREMONY_TIMEOUT
        pressed = False
        while True:
            outcome, sign_ins, focused = self.script(
                "return [progress.outcome, progress.signIns, document.hasFocus()];", rp)
            if outcome is not None:
                return outcome
            if confirm_account and sign_ins and not focused and not pressed:
                self.xdotool("key", "Return")
                pressed = True
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name}: the ceremony did not finish in {CEREMONY_TIMEOUT} s "
                            f"(Enter pressed: {pressed}); {rp.explain()}\n{tail(self.log)}")
            time.sleep(0.5)

    def xdotool(self, *args: str) -> None:
        """X input, as a user gives it: to the window that has the focus."""
        subprocess.run([need("xdotool"), *args], env=self.env, check=True)


@dataclass
class ChromiumSession(Browser):
    """One Chromium, started once its token was there, for the ceremonies of a class of tests."""

    token: str  # the hidraw node of the token
    driver: webdriver.Remote
    log: Path
    env: dict
    tls: ssl.SSLContext  # for an HTTPS relying party, with a certificate Chromium trusts
    name: str = "Chromium"

    def load(self, url: str) -> None:
        self.driver.get(url)

    def execute(self, script: str, *args):
        return self.driver.execute_script(script, *args)


class Marionette:
    """A client of Firefox's own remote protocol (the one geckodriver speaks), enough to load a
    page and run a script in it: messages are LENGTH:JSON, [0, id, command, parameters] out and
    [1, id, error, result] back, after a hello from Firefox."""

    def __init__(self, port: int):
        # Firefox says hello, and opens the session, only once its window is up: in the VM that
        # may take minutes after it listens.
        self.connection = socket.create_connection(
            ("127.0.0.1", port), timeout=BROWSER_START_TIMEOUT)
        self.received = b""
        self.last_id = 0
        hello = self.read()
        if hello.get("marionetteProtocol") != 3:
            raise RuntimeError(f"Marionette said {hello}")
        self.command("WebDriver:NewSession", {})

    def read(self):
        while True:
            length, colon, rest = self.received.partition(b":")
            if colon and len(rest) >= int(length):
                self.received = rest[int(length):]
                return json.loads(rest[:int(length)])
            self.receive()

    def receive(self) -> None:
        data = self.connection.recv(65536)
        if not data:
            raise ConnectionError("Firefox closed the Marionette connection")
        self.received += data

    def command(self, name: str, parameters: dict):
        self.last_id += 1
        message = json.dumps([0, self.last_id, name, parameters]).encode()
        self.connection.sendall(str(len(message)).encode() + b":" + message)
        while True:
            _, message_id, error, result = self.read()
            if message_id == self.last_id:
                break
        if error:
            raise RuntimeError(f"{name}: {error}")
        return result

    def close(self) -> None:
        self.connection.close()


@dataclass
class FirefoxSession(Browser):
    """One Firefox ESR, driven over Marionette, for the ceremonies of a class of tests. It looks
    for tokens at each ceremony (authenticator-rs enumerates the hidraw nodes then), so tokens
    may come and go while it runs."""

    marionette: Marionette
    log: Path
    env: dict
    name: str = "Firefox"

    def load(self, url: str) -> None:
        self.marionette.command("WebDriver:Navigate", {"url": url})

    def execute(self, script: str, *args):
        return self.marionette.command(
            "WebDriver:ExecuteScript", {"script": script, "args": list(args)})["value"]


@contextlib.contextmanager
def chromium_on(token: str, directory: Path, font_cache: Path):
    """A ChromiumSession on the token whose hidraw node is `token` (there before Chromium
    starts), on an Xvfb display of its own, with an NSS database that trusts a throwaway CA for
    localhost."""
    with xvfb(directory, font_cache) as environment:
        ca, tls = localhost_tls(str(directory))
        trust_in_nss(environment, ca)
        launcher = Launcher(environment, directory)
        try:
            with chromium_driver(launcher, directory) as (driver, log):
                yield ChromiumSession(token, driver, log, environment, tls)
        finally:
            launcher.stop()


@pytest.fixture(scope="class")
def chromium(request, tmp_path_factory, font_cache):
    """A ChromiumSession for the test class: a token of the class's PROFILE, served as a uhid
    device with built-in user verification UV (none: without), then Chromium. Both stop after
    the class's last test."""
    if not uhid_available():
        pytest.skip("/dev/uhid is not writable here; scripts/vm-test.sh runs this in a VM")
    profile, uv = request.cls.PROFILE, request.cls.UV
    directory = tmp_path_factory.mktemp(f"chromium-{profile}")
    servers = Servers(str(directory / "store"))
    try:
        token = servers.serve_uhid(["browser"], profile=profile, uv=uv)["browser"]
        with chromium_on(token, directory, font_cache) as session:
            yield session
    finally:
        servers.stop()


@pytest.fixture(scope="class")
def automated_chromium(tmp_path_factory, font_cache):
    """(ChromiumSession, Api, authenticator id) for the test class: a `vu2f serve --uhid
    --control` with no token, an authenticator added through its API as a test writer adds one
    (ctap2, resident keys, built-in user verification that verifies), then Chromium, which finds
    the authenticator's hidraw node at its start."""
    if not uhid_available():
        pytest.skip("/dev/uhid is not writable here; scripts/vm-test.sh runs this in a VM")
    directory = tmp_path_factory.mktemp("chromium-api")
    api = Api(str(directory), transport="uhid")
    try:
        authenticator = api.add(hasResidentKey=True, hasUserVerification=True,
                                isUserVerified=True)
        with chromium_on(api.hidraw(authenticator), directory, font_cache) as session:
            yield session, api, authenticator
    finally:
        api.stop()


@pytest.fixture(scope="class")
def firefox(tmp_path_factory, font_cache):
    """A FirefoxSession for the test class, on an Xvfb display of its own; it starts before the
    class's tokens are served (it finds each at its ceremony) and stops after its last test."""
    if not uhid_available():
        pytest.skip("/dev/uhid is not writable here; scripts/vm-test.sh runs this in a VM")
    directory = tmp_path_factory.mktemp("firefox")
    with xvfb(directory, font_cache) as environment:
        launcher = Launcher(environment, directory)
        try:
            with firefox_marionette(launcher, directory) as (marionette, log):
                yield FirefoxSession(marionette, log, environment)
        finally:
            launcher.stop()


@pytest.fixture
def relying_party():
    """Yields a function that starts a RelyingParty (browser_rp.py) with the given arguments;
    each is stopped at the end of the test."""
    started = []

    def start(**kwargs) -> RelyingParty:
        started.append(RelyingParty(**kwargs).start())
        return started[-1]

    yield start
    for rp in started:
        rp.stop()


def assert_counters_rise(counters: list[int]) -> None:
    assert all(a < b for a, b in zip(counters, counters[1:])), f"counters {counters}"


def assert_registered_and_signed_twice(rp: RelyingParty, context: str) -> None:
    """The server verified one registration, then two assertions by that credential whose
    counters rise from the registration's."""
    assert not rp.refused, f"{context}; {rp.explain()}"
    registrations, assertions = rp.registrations(), rp.assertions()
    assert len(registrations) == 1 and len(assertions) == 2, f"{context}; {rp.explain()}"
    assert {a.credential_id for a in assertions} == {registrations[0].credential_id}
    assert_counters_rise([registrations[0].counter] + [a.counter for a in assertions])


def assert_spoke_ctap2(registration, context: str) -> None:
    """The registration's authenticator data came from the token, which says the browser
    registered over CTAP2: a U2F registration carries no counter and no authenticator data, so a
    browser that registers over U2F makes them itself, with counter 0 (and the browsers erase
    the AAGUID for attestation "none" either way). A fido2 token counts from 1."""
    assert registration.counter > 0, \
        f"counter 0: the browser registered over U2F, not CTAP2; {context}"


class ChromiumOnAToken:
    """The ceremonies Chromium runs against a token of any profile (the classes below)."""

    PROFILE = "u2f"
    UV = "none"

    def test_registers_and_signs_twice_as_the_server_verifies(self, chromium, relying_party):
        rp = relying_party()
        page = chromium.run(rp, register=True, signs=2)
        assert_registered_and_signed_twice(rp, f"the page said {page!r}")
        if self.PROFILE == "fido2":
            assert_spoke_ctap2(rp.registrations()[0], rp.explain())
        print(f"Chromium, {self.PROFILE} token: {rp.summary()}; "
              f"AAGUID {rp.registrations()[0].aaguid}")


class TestChromiumWithAU2fToken(ChromiumOnAToken):
    PROFILE = "u2f"

    def test_signs_with_a_u2f_credential_through_the_appid_extension(
            self, chromium, relying_party):
        rp = relying_party(tls=chromium.tls, use_app_id=True)
        app_param = sha256(rp.app_id.encode())
        devices = list(CtapHidDevice.list_devices())
        device = next((d for d in devices if d.descriptor.path == chromium.token), None)
        assert device is not None, \
            f"{chromium.token} is not among {[d.descriptor for d in devices]}"
        ctap1 = Ctap1(device)
        client_param = sha256(os.urandom(32))
        registration = ctap1.register(client_param, app_param)
        registration.verify(app_param, client_param)
        challenge = sha256(os.urandom(32))
        before = ctap1.authenticate(challenge, app_param, registration.key_handle)
        before.verify(app_param, challenge, registration.public_key)
        device.close()
        rp.add_u2f_credential(registration.key_handle, registration.public_key, before.counter)

        page = chromium.run(rp, register=False, signs=2)
        context = f"the page said {page!r}"
        assert not rp.refused, f"{context}; {rp.explain()}"
        assertions = rp.assertions()
        assert len(assertions) == 2, f"{context}; {rp.explain()}"
        assert all(a.app_id == rp.app_id for a in assertions), rp.explain()
        assert all(a.credential_id == registration.key_handle.hex() for a in assertions)
        assert_counters_rise([before.counter] + [a.counter for a in assertions])
        print(f"Chromium with appid {rp.app_id}: {rp.summary()}")


class TestChromiumWithAFido2Token(ChromiumOnAToken):
    PROFILE = "fido2"
    UV = "auto"  # built-in user verification, as a fingerprint key has it

    def test_creates_a_passkey_and_signs_in_with_it_without_an_allow_list(
            self, chromium, relying_party):
        rp = relying_party(resident_key=ResidentKeyRequirement.REQUIRED,
                           user_verification=UserVerificationRequirement.REQUIRED,
                           allow_list=False)
        page = chromium.run(rp, register=True, signs=0)
        assert not rp.refused and len(rp.registrations()) == 1, \
            f"the page said {page!r}; {rp.explain()}"
        for sign_in in range(2):
            page = chromium.run(rp, register=False, signs=1, confirm_account=True)
            assert not rp.refused and len(rp.assertions()) == sign_in + 1, \
                f"sign-in {sign_in + 1}: the page said {page!r}; {rp.explain()}"
        registration, assertions = rp.registrations()[0], rp.assertions()
        assert all(a.credential_id == registration.credential_id for a in assertions)
        assert all(a.user_handle == rp.user["id"] for a in assertions), rp.explain()
        assert all(v.flags & USER_VERIFIED for v in rp.verified), rp.explain()
        assert_counters_rise([registration.counter] + [a.counter for a in assertions])
        print(f"Chromium, passkey: {rp.summary()}")


class TestFirefox:
    """One Firefox for a u2f and then a fido2 token, each served for its test only."""

    @pytest.mark.parametrize("profile", ["u2f", "fido2"])
    def test_registers_and_signs_twice_as_the_server_verifies(
            self, profile, firefox, served_uhid, relying_party):
        served_uhid("browser", presence="auto", profile=profile)
        rp = relying_party()
        page = firefox.run(rp, register=True, signs=2)
        context = f"the page said {page!r}\n{tail(firefox.log)}"
        assert_registered_and_signed_twice(rp, context)
        if profile == "fido2":
            assert_spoke_ctap2(rp.registrations()[0], f"{rp.explain()}\n{context}")
        print(f"Firefox, {profile} token: {rp.summary()}; "
              f"AAGUID {rp.registrations()[0].aaguid}")


class TestChromiumWithAnAuthenticatorOfTheApi:
    """What a test writer does with the automation API instead of Chrome's virtual authenticator,
    on a device every host sees."""

    def test_signs_in_with_a_credential_put_in_through_the_api_without_registering(
            self, automated_chromium, relying_party):
        chromium, api, authenticator = automated_chromium
        rp = relying_party(resident_key=ResidentKeyRequirement.REQUIRED,
                           user_verification=UserVerificationRequirement.REQUIRED,
                           allow_list=False)
        key, pkcs8 = injected_key()
        credential_id, first_count = os.urandom(32), 41
        api.call("POST", f"/webauthn/authenticator/{authenticator}/credential", {
            "credentialId": b64url(credential_id), "isResidentCredential": True,
            "rpId": "localhost", "privateKey": b64url(pkcs8),
            "userHandle": b64url(rp.user["id"]), "signCount": first_count})
        # All the relying party knows: the id and the public half of the key the test made.
        rp.add_credential(credential_data(credential_id, key.public_key()), rp.user["id"],
                          first_count)
        for sign_in in range(2):
            page = chromium.run(rp, register=False, signs=1, confirm_account=True)
            assert not rp.refused and len(rp.assertions()) == sign_in + 1, \
                f"sign-in {sign_in + 1}: the page said {page!r}; {rp.explain()}"
        assertions = rp.assertions()
        assert not rp.registrations(), rp.explain()
        assert all(a.credential_id == credential_id.hex() for a in assertions), rp.explain()
        assert all(a.user_handle == rp.user["id"] for a in assertions), rp.explain()
        assert all(a.flags & USER_VERIFIED for a in assertions), rp.explain()
        assert_counters_rise([first_count] + [a.counter for a in assertions])
        listed = api.call("GET", f"/webauthn/authenticator/{authenticator}/credentials")
        assert [c["credentialId"] for c in listed] == [b64url(credential_id)], listed
        assert listed[0]["signCount"] == assertions[-1].counter, \
            f"the API reads {listed[0]['signCount']}, the server saw {rp.summary()}"
        print(f"Chromium, a credential of the API: {rp.summary()}")
