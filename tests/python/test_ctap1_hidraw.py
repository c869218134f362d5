"""python-fido2 (not written here) finds the uhid token through the kernel by its report
descriptor, and its Ctap1 class registers and authenticates, verified by its own code. Runs where
/dev/uhid is writable: in the VM of scripts/vm-test.sh."""
import hashlib
import os

from fido2.ctap1 import Ctap1
from fido2.hid import CtapHidDevice


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


APP = sha256(b"https://python-fido2-hidraw.vu2f.test")


def test_list_devices_finds_the_token_and_ctap1_works(served_uhid):
    nodes = served_uhid("pyhid")
    found = [d for d in CtapHidDevice.list_devices() if d.descriptor.path == nodes["pyhid"]]
    assert len(found) == 1, [d.descriptor for d in CtapHidDevice.list_devices()]
    device = found[0]
    assert device.descriptor.vid == 0x1209 and device.descriptor.pid == 0x0001
    assert "vu2f pyhid" in (device.descriptor.product_name or "")

    ctap1 = Ctap1(device)
    assert ctap1.get_version() == "U2F_V2"
    client_param = sha256(os.urandom(32))
    registration = ctap1.register(client_param, APP)
    registration.verify(APP, client_param)
    last = -1
    for _ in range(5):
        challenge = sha256(os.urandom(32))
        signature = ctap1.authenticate(challenge, APP, registration.key_handle)
        signature.verify(APP, challenge, registration.public_key)
        assert signature.counter > last
        last = signature.counter
