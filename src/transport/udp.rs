//! CTAPHID over UDP, host side: one 64-byte report per datagram (`DESIGN.md`, "Contracts").
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use super::ctaphid::{CtapHidHost, ReportLink};
use super::TransportError;
use crate::hid::{Report, REPORT_LEN};

/// A UDP socket connected to a token served by `vu2f serve --udp`.
pub struct UdpLink {
    socket: UdpSocket,
}

impl ReportLink for UdpLink {
    fn send(&mut self, report: &Report) -> std::io::Result<()> {
        self.socket.send(report).map(drop)
    }

    fn receive(&mut self, timeout: Duration) -> std::io::Result<Option<Report>> {
        self.socket.set_read_timeout(Some(timeout))?;
        let mut report: Report = [0u8; REPORT_LEN];
        loop {
            match self.socket.recv(&mut report) {
                Ok(REPORT_LEN) => return Ok(Some(report)),
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A channel to a token served over UDP.
pub type UdpTransport = CtapHidHost<UdpLink>;

impl CtapHidHost<UdpLink> {
    /// Connects to the token at `addr` and allocates a channel with INIT.
    pub fn connect(addr: SocketAddr) -> Result<Self, TransportError> {
        let local: SocketAddr = if addr.is_ipv4() {
            "127.0.0.1:0"
        } else {
            "[::1]:0"
        }
        .parse()
        .map_err(|e| TransportError::Protocol(format!("{e}")))?;
        let socket = UdpSocket::bind(local)?;
        socket.connect(addr)?;
        Self::open(UdpLink { socket })
    }
}
