//! CTAPHID packets (FIDO U2F HID protocol v1.1 section 2.4; CTAP 2.1 section 11.2.4).
//!
//! ```text
//!  initialization  | CID (4) | CMD (1, bit 7 set) | BCNTH | BCNTL | DATA (57) |
//!  continuation    | CID (4) | SEQ (1, 0..=0x7F)  | DATA (59)                  |
//! ```
//! All reports are 64 bytes, zero padded. Host output reports may arrive as 65 bytes with a leading
//! report number 0 (hidraw), which is stripped.
use super::wire::{Command, HidError, MAX_PAYLOAD};

/// Size of every HID report of the FIDO descriptor.
pub const REPORT_LEN: usize = 64;
/// Payload bytes in an initialization packet.
pub const INIT_DATA_LEN: usize = REPORT_LEN - 7;
/// Payload bytes in a continuation packet.
pub const CONT_DATA_LEN: usize = REPORT_LEN - 5;

/// One 64-byte report.
pub type Report = [u8; REPORT_LEN];

/// A parsed packet, borrowing the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    /// The first packet of a message.
    Init {
        /// Channel id.
        cid: u32,
        /// Command byte (bit 7 set).
        cmd: u8,
        /// Total payload length of the message.
        bcnt: u16,
        /// The 57 data bytes of this packet.
        data: &'a [u8],
    },
    /// A following packet.
    Cont {
        /// Channel id.
        cid: u32,
        /// Sequence number.
        seq: u8,
        /// The 59 data bytes of this packet.
        data: &'a [u8],
    },
}

/// A report that is not a packet: the error to answer and, when it can be read, the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedReport {
    /// The channel id, if the report has four bytes.
    pub cid: Option<u32>,
    /// The error to answer with.
    pub error: HidError,
}

impl<'a> TryFrom<&'a [u8]> for Packet<'a> {
    type Error = MalformedReport;

    fn try_from(report: &'a [u8]) -> Result<Self, MalformedReport> {
        let report = match report.len() {
            REPORT_LEN => report,
            65 if report[0] == 0 => &report[1..],
            _ => {
                let cid = report
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                return Err(MalformedReport {
                    cid,
                    error: HidError::InvalidLength,
                });
            }
        };
        let cid = u32::from_be_bytes([report[0], report[1], report[2], report[3]]);
        let kind = report[4];
        Ok(if kind & 0x80 != 0 {
            Packet::Init {
                cid,
                cmd: kind,
                bcnt: u16::from_be_bytes([report[5], report[6]]),
                data: &report[7..],
            }
        } else {
            Packet::Cont {
                cid,
                seq: kind,
                data: &report[5..],
            }
        })
    }
}

impl Packet<'_> {
    /// The channel id.
    pub fn cid(&self) -> u32 {
        match self {
            Packet::Init { cid, .. } | Packet::Cont { cid, .. } => *cid,
        }
    }
}

/// Splits a message into reports. `payload` must be at most [`MAX_PAYLOAD`] bytes; longer input
/// is cut there (a reply this token builds never is).
pub fn fragment(cid: u32, cmd: u8, payload: &[u8]) -> Vec<Report> {
    let payload = &payload[..payload.len().min(MAX_PAYLOAD)];
    let mut reports = Vec::with_capacity(
        1 + payload
            .len()
            .saturating_sub(INIT_DATA_LEN)
            .div_ceil(CONT_DATA_LEN),
    );
    let mut first = [0u8; REPORT_LEN];
    first[..4].copy_from_slice(&cid.to_be_bytes());
    first[4] = cmd;
    first[5..7].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    let head = payload.len().min(INIT_DATA_LEN);
    first[7..7 + head].copy_from_slice(&payload[..head]);
    reports.push(first);
    for (seq, chunk) in payload[head..].chunks(CONT_DATA_LEN).enumerate() {
        let mut next = [0u8; REPORT_LEN];
        next[..4].copy_from_slice(&cid.to_be_bytes());
        next[4] = seq as u8;
        next[5..5 + chunk.len()].copy_from_slice(chunk);
        reports.push(next);
    }
    reports
}

/// An ERROR reply on `cid`.
pub fn error_report(cid: u32, error: HidError) -> Report {
    fragment(cid, Command::Error as u8, &[error as u8])[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_sizes() {
        assert_eq!(fragment(1, 0x81, &[]).len(), 1);
        assert_eq!(fragment(1, 0x81, &[0; 57]).len(), 1);
        assert_eq!(fragment(1, 0x81, &[0; 58]).len(), 2);
        assert_eq!(fragment(1, 0x81, &[0; MAX_PAYLOAD]).len(), 129);
        let reports = fragment(0x01020304, 0x83, &[7; 60]);
        assert_eq!(&reports[0][..7], &[1, 2, 3, 4, 0x83, 0, 60]);
        assert_eq!(&reports[1][..6], &[1, 2, 3, 4, 0, 7]);
        assert_eq!(reports[1][7], 7, "bytes 58..60 of the payload");
        assert_eq!(reports[1][8], 0, "zero padded");
    }

    #[test]
    fn parse_init_cont_and_65_byte_reports() {
        let init = fragment(9, 0x86, &[1; 8])[0];
        assert_eq!(
            Packet::try_from(&init[..]).unwrap(),
            Packet::Init {
                cid: 9,
                cmd: 0x86,
                bcnt: 8,
                data: &init[7..]
            }
        );
        let mut with_report_id = vec![0u8];
        with_report_id.extend_from_slice(&init);
        assert_eq!(Packet::try_from(&with_report_id[..]).unwrap().cid(), 9);
        let cont = fragment(9, 0x81, &[2; 100])[1];
        assert!(matches!(
            Packet::try_from(&cont[..]).unwrap(),
            Packet::Cont { cid: 9, seq: 0, .. }
        ));
        let short = Packet::try_from(&init[..10]).unwrap_err();
        assert_eq!(
            short,
            MalformedReport {
                cid: Some(9),
                error: HidError::InvalidLength
            }
        );
        assert_eq!(Packet::try_from(&init[..2]).unwrap_err().cid, None);
    }
}
