"""python-fido2's CTAP 2.1 tests through the kernel: every test of test_client_pin_udp.py
(clientPIN with both PIN/UV auth protocols, permissions, retries, replug, blocking),
test_cred_mgmt_udp.py (credential management, authenticatorConfig, reset only just after a
replug) and test_extensions_udp.py (hmac-secret and PRF, credProtect, credBlob, large blobs),
collected here once more with `served` serving each token as a uhid device (conftest's
`served_hidraw`, python-fido2 finding it by its hidraw node) instead of over UDP. The same bodies
judge both transports, and a test added there runs here too.
Runs where /dev/uhid is writable: in the VM of scripts/vm-test.sh."""
import pytest

import test_client_pin_udp
import test_cred_mgmt_udp
import test_extensions_udp



def bodies_of(*modules):
    """{name: test function} of the tests each module defines (not those it imports)."""
    found = {}
    for module in modules:
        for name, function in vars(module).items():
            defined_here = getattr(function, "__module__", None) == module.__name__
            if name.startswith("test_") and defined_here:
                assert name not in found, f"{name} twice"
                found[name] = function
    return found


globals().update(bodies_of(test_client_pin_udp, test_cred_mgmt_udp, test_extensions_udp))


@pytest.fixture
def served(served_hidraw):
    """Every token of these tests served through the kernel."""
    return served_hidraw
