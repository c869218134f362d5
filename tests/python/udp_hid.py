"""python-fido2 over UDP: a CtapHidConnection that sends each 64-byte HID report as one datagram
to `vu2f serve --udp`, so python-fido2's own CTAPHID and U2F code drives the token (DESIGN.md,
"Contracts")."""
import socket

from fido2.hid import CtapHidDevice
from fido2.hid.base import CtapHidConnection, HidDescriptor

REPORT_SIZE = 64


class UdpCtapHidConnection(CtapHidConnection):
    def __init__(self, host: str, port: int, timeout: float = 5.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect((host, port))
        self.sock.settimeout(timeout)

    def read_packet(self) -> bytes:
        return self.sock.recv(REPORT_SIZE)

    def write_packet(self, data: bytes) -> None:
        self.sock.send(data)

    def close(self) -> None:
        self.sock.close()


def open_device(host: str, port: int) -> CtapHidDevice:
    descriptor = HidDescriptor(
        f"udp:{host}:{port}", 0x1209, 0x0001, REPORT_SIZE, REPORT_SIZE, "vu2f (UDP)", None
    )
    return CtapHidDevice(descriptor, UdpCtapHidConnection(host, port))
