//! CTAPHID through a Linux hidraw node (`/dev/hidrawN`), host side: any U2F HID device, the
//! virtual one of `vu2f serve --uhid` or a physical key. A write is the report number 0 then the
//! 64-byte packet (the FIDO descriptor has no report ids); a read returns one 64-byte input
//! report (PROTOCOLS.md 3.1).
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use super::ctaphid::{CtapHidHost, ReportLink};
use super::TransportError;
use crate::hid::{Report, REPORT_LEN};

/// An open hidraw node.
pub struct HidrawLink {
    file: File,
}

impl ReportLink for HidrawLink {
    fn send(&mut self, report: &Report) -> std::io::Result<()> {
        let mut numbered = [0u8; REPORT_LEN + 1];
        numbered[1..].copy_from_slice(report);
        self.file.write_all(&numbered)
    }

    fn receive(&mut self, timeout: Duration) -> std::io::Result<Option<Report>> {
        let timespec = Timespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&self.file, PollFlags::IN)];
        if poll(&mut fds, Some(&timespec))? == 0 {
            return Ok(None);
        }
        let mut buffer = [0u8; REPORT_LEN + 1];
        let read = self.file.read(&mut buffer)?;
        let mut report: Report = [0u8; REPORT_LEN];
        match read {
            REPORT_LEN => report.copy_from_slice(&buffer[..REPORT_LEN]),
            // A device with numbered input reports prefixes the report number.
            n if n == REPORT_LEN + 1 => report.copy_from_slice(&buffer[1..]),
            n => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("a {n}-byte input report, expected {REPORT_LEN}"),
                ))
            }
        }
        Ok(Some(report))
    }
}

/// A channel to a U2F HID device through hidraw.
pub type HidrawTransport = CtapHidHost<HidrawLink>;

impl CtapHidHost<HidrawLink> {
    /// Opens `path` and allocates a channel with INIT.
    pub fn open_path(path: &Path) -> Result<Self, TransportError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| TransportError::Protocol(format!("opening {}: {e}", path.display())))?;
        Self::open(HidrawLink { file })
    }
}
