"""Real browsers take the uhid token for a security key, and a relying party's server says so.

Each test serves a token with `vu2f serve --uhid --presence auto` before the browser starts: with
no udev daemon in the test VM, a browser learns of no hidraw node made after its start. The page
comes from a relying party on localhost (browser_rp.py): python-fido2's `Fido2Server` verifies
every registration and assertion the browser sends, and the server refuses a sign counter that
does not rise. The tests assert on what that server verified, never on what the page reports.

* Chromium (selenium and Debian's chromedriver; not headless, under Xvfb), on
  http://localhost:PORT: navigator.credentials.create registers a credential, then two
  navigator.credentials.get sign with it. The token speaks only U2F, so this is WebAuthn over
  CTAP1, as Chromium does it.
* Firefox ESR (no driver: started on a page that runs the same ceremony on load), the same
  ceremony through its own CTAP stack (authenticator-rs).
* Chromium signs, through WebAuthn's `appid` extension, with a credential that python-fido2's
  `Ctap1` registered over hidraw for the U2F appId https://localhost:PORT, on an HTTPS page whose
  certificate comes from a throwaway CA trusted in Chromium's NSS database: the path by which a
  site moves its U2F users to WebAuthn.

Runs where /dev/uhid is writable (in the VM of scripts/vm-test.sh, from scripts/uhid-tests.sh),
as root there. A browser, driver or tool that is missing fails the test. In the VM (qemu without
KVM) a browser takes 15 to 60 s to start, and the three tests about 6 minutes.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time

import pytest
from fido2.ctap1 import Ctap1
from fido2.hid import CtapHidDevice
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service

from browser_rp import RelyingParty, localhost_tls

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


@pytest.fixture
def token(served_uhid):
    """The hidraw node of a uhid token, created before any browser starts."""
    return served_uhid("browser", presence="auto")["browser"]


@pytest.fixture(scope="session")
def font_cache(tmp_path_factory):
    """One fontconfig cache for every browser: the VM hides the system's, and each browser
    would otherwise build its own."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def env(tmp_path, font_cache):
    """The browsers' environment: their own HOME (profiles, NSS database) and an Xvfb display."""
    xvfb = need("Xvfb")
    home = tmp_path / "home"
    home.mkdir()
    read_end, write_end = os.pipe()
    with open(tmp_path / "xvfb.log", "w") as log:
        server = subprocess.Popen(
            [xvfb, "-displayfd", str(write_end), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
            pass_fds=[write_end], stdout=log, stderr=subprocess.STDOUT)
    os.close(write_end)
    with os.fdopen(read_end) as displayfd:
        display = displayfd.readline().strip()
    if not display:
        server.kill()
        server.wait()
        pytest.fail(f"Xvfb did not start: {tail(tmp_path / 'xvfb.log')}")
    yield dict(os.environ, HOME=str(home), XDG_CACHE_HOME=str(font_cache), DISPLAY=f":{display}")
    server.terminate()
    server.wait()


@pytest.fixture
def launch(env, tmp_path):
    """Yields a function that starts a browser in its own process group, with `env` and its
    output in tmp_path/NAME.log; every group started is killed at the end of the test."""
    children = []

    def start(name: str, argv: list[str], **extra_env: str):
        log_path = tmp_path / f"{name}.log"
        with open(log_path, "w") as log:
            child = subprocess.Popen(argv, env=dict(env, **extra_env), start_new_session=True,
                                     stdout=log, stderr=subprocess.STDOUT)
        children.append(child)
        return child, log_path

    yield start
    for child in children:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.wait()


@pytest.fixture
def chromium(launch, tmp_path):
    """Yields a function that starts Chromium and returns a selenium driver attached to it, and
    the path of Chromium's log.

    Chromium is started here, not by chromedriver, which allows a browser 60 s to start: a cold
    start in the VM can take longer. chromedriver starts at the same time."""
    services = []
    drivers = []

    def start():
        started = time.monotonic()
        driver_log = tmp_path / "chromedriver.log"
        service = Service(executable_path=need("chromedriver"), log_output=str(driver_log))
        service.start()
        services.append(service)
        profile = tmp_path / "chromium-profile"
        browser, log = launch("chromium", [need("chromium"), *CHROMIUM_ARGS,
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
        driver.set_script_timeout(CEREMONY_TIMEOUT)
        drivers.append(driver)
        return driver, log

    yield start
    for driver in drivers:
        driver.quit()
    for service in services:
        service.stop()


def run_ceremony(driver, log, rp: RelyingParty, register: bool, signs: int) -> str:
    """Loads the relying party's page in Chromium and runs its ceremony; returns what the page
    said, which only explains a failure."""
    driver.get(rp.url())
    try:
        return driver.execute_async_script(
            "ceremony(arguments[0], arguments[1]).then(arguments[arguments.length - 1]);",
            register, signs)
    except WebDriverException as error:
        pytest.fail(f"the ceremony did not finish: {error.msg}; {rp.explain()}\n{tail(log)}")


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


def test_chromium_registers_and_signs_twice_as_the_server_verifies(token, chromium, relying_party):
    rp = relying_party()
    driver, log = chromium()
    page = run_ceremony(driver, log, rp, register=True, signs=2)
    assert_registered_and_signed_twice(rp, f"the page said {page!r}")
    print(f"Chromium: {rp.summary()}")


def test_firefox_registers_and_signs_twice_as_the_server_verifies(
        token, launch, relying_party, tmp_path):
    profile = tmp_path / "firefox-profile"
    profile.mkdir()
    with open(profile / "user.js", "w") as f:
        for name, value in FIREFOX_PREFS.items():
            f.write(f"user_pref({json.dumps(name)}, {json.dumps(value)});\n")
    rp = relying_party()
    started = time.monotonic()
    browser, log = launch("firefox", [need("firefox-esr"), "-no-remote", "-profile", str(profile),
                                      "-width", "1280", "-height", "800",
                                      rp.url("?register=1&signs=2")],
                          MOZ_CRASHREPORTER_DISABLE="1")
    while not rp.wait(lambda rp: len(rp.assertions()) >= 2, 5):
        assert browser.poll() is None, f"Firefox exited: {rp.explain()}\n{tail(log)}"
        assert time.monotonic() - started < BROWSER_START_TIMEOUT + CEREMONY_TIMEOUT, \
            f"nothing verified in time: {rp.explain()}\n{tail(log)}"
    assert_registered_and_signed_twice(rp, tail(log))
    print(f"Firefox: {rp.summary()}, {time.monotonic() - started:.0f} s after its start")


def test_chromium_signs_with_a_u2f_credential_through_the_appid_extension(
        token, env, chromium, relying_party, tmp_path):
    ca, tls = localhost_tls(str(tmp_path))
    rp = relying_party(tls=tls, use_app_id=True)

    app_param = sha256(rp.app_id.encode())
    devices = list(CtapHidDevice.list_devices())
    device = next((d for d in devices if d.descriptor.path == token), None)
    assert device is not None, f"{token} is not among {[d.descriptor for d in devices]}"
    ctap1 = Ctap1(device)
    client_param = sha256(os.urandom(32))
    registration = ctap1.register(client_param, app_param)
    registration.verify(app_param, client_param)
    challenge = sha256(os.urandom(32))
    before = ctap1.authenticate(challenge, app_param, registration.key_handle)
    before.verify(app_param, challenge, registration.public_key)
    device.close()
    rp.add_u2f_credential(registration.key_handle, registration.public_key, before.counter)

    certutil = need("certutil")
    nssdb = os.path.join(env["HOME"], ".pki", "nssdb")
    os.makedirs(nssdb)
    subprocess.run([certutil, "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True)
    subprocess.run([certutil, "-A", "-d", f"sql:{nssdb}", "-n", "vu2f browser test CA",
                    "-t", "C,,", "-i", ca], check=True)

    driver, log = chromium()
    page = run_ceremony(driver, log, rp, register=False, signs=2)
    context = f"the page said {page!r}"
    assert not rp.refused, f"{context}; {rp.explain()}"
    assertions = rp.assertions()
    assert len(assertions) == 2, f"{context}; {rp.explain()}"
    assert all(a.app_id == rp.app_id for a in assertions), rp.explain()
    assert all(a.credential_id == registration.key_handle.hex() for a in assertions)
    assert_counters_rise([before.counter] + [a.counter for a in assertions])
    print(f"Chromium with appid {rp.app_id}: {rp.summary()}")
