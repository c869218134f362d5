//! Wire values of U2FHID / CTAPHID (FIDO U2F HID protocol v1.1 sections 4.1 and 4.2; CTAP 2.1
//! section 11.2.9). The one place that decides every command byte and error code.
use std::time::Duration;

/// The broadcast channel id, used by INIT to allocate a channel.
pub const BROADCAST_CID: u32 = 0xFFFF_FFFF;
/// The largest payload one message can carry: 57 + 128 × 59.
pub const MAX_PAYLOAD: usize = 57 + 128 * 59;
/// A message whose next packet does not arrive within this time is dropped with `MSG_TIMEOUT`.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_millis(500);
/// The longest LOCK a host may ask for, in seconds.
pub const MAX_LOCK_SECONDS: u8 = 10;
/// CTAPHID protocol version in the INIT reply.
pub const PROTOCOL_VERSION: u8 = 2;

/// Capability flag: the token implements WINK.
pub const CAPABILITY_WINK: u8 = 0x01;
/// Capability flag: the token implements LOCK.
pub const CAPABILITY_LOCK: u8 = 0x02;
/// Capability flag: the token speaks CTAP2 over CTAPHID_CBOR (CTAP 2.1 section 11.2.9.1.3).
pub const CAPABILITY_CBOR: u8 = 0x04;
/// While a CTAP2 request waits (for a touch), a KEEPALIVE goes out this often: hosts give up
/// after about 3 s of silence (CTAP2.md section 1).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(100);

/// The status byte of a KEEPALIVE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum KeepaliveStatus {
    /// The token is working.
    Processing = 0x01,
    /// The token waits for the user's touch.
    UpNeeded = 0x02,
}

/// The commands this token implements (bit 7 set, as on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Command {
    /// Echo the payload.
    Ping = 0x81,
    /// A U2F APDU.
    Msg = 0x83,
    /// Hold other channels off for a few seconds.
    Lock = 0x84,
    /// Allocate (on the broadcast channel) or resynchronise a channel.
    Init = 0x86,
    /// Blink.
    Wink = 0x88,
    /// A CTAP2 request: command byte ‖ CBOR (reply: status byte ‖ CBOR).
    Cbor = 0x90,
    /// Cancel the CTAP2 request waiting on this channel (never answered itself).
    Cancel = 0x91,
    /// A CTAP2 request is still going (device to host only).
    Keepalive = 0xBB,
    /// An error reply (device to host only).
    Error = 0xBF,
}

impl Command {
    /// The command of an init packet's command byte, if the framing knows it. SYNC (0xBC, gone
    /// since U2FHID 1.1) and the rest are `None`: answered with `INVALID_CMD`, as is CBOR on a
    /// token that speaks no CTAP2.
    pub fn from_wire(byte: u8) -> Option<Self> {
        match byte {
            0x81 => Some(Self::Ping),
            0x83 => Some(Self::Msg),
            0x84 => Some(Self::Lock),
            0x86 => Some(Self::Init),
            0x88 => Some(Self::Wink),
            0x90 => Some(Self::Cbor),
            0x91 => Some(Self::Cancel),
            _ => None,
        }
    }
}

/// The error codes carried by an ERROR reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[repr(u8)]
pub enum HidError {
    /// The command is not implemented.
    #[error("invalid command")]
    InvalidCommand = 0x01,
    /// A parameter is invalid.
    #[error("invalid parameter")]
    InvalidParameter = 0x02,
    /// The length is invalid.
    #[error("invalid message length")]
    InvalidLength = 0x03,
    /// A packet arrived out of sequence.
    #[error("invalid message sequencing")]
    InvalidSequence = 0x04,
    /// The message did not complete in time.
    #[error("message timed out")]
    MessageTimeout = 0x05,
    /// Another channel is being served.
    #[error("channel busy")]
    ChannelBusy = 0x06,
    /// The command needs a lock.
    #[error("command requires channel lock")]
    LockRequired = 0x0A,
    /// The channel id is not valid.
    #[error("invalid channel")]
    InvalidChannel = 0x0B,
    /// Anything else.
    #[error("unspecified error")]
    Other = 0x7F,
}

impl HidError {
    /// The error of an ERROR reply's payload byte.
    pub fn from_wire(byte: u8) -> Self {
        [
            Self::InvalidCommand,
            Self::InvalidParameter,
            Self::InvalidLength,
            Self::InvalidSequence,
            Self::MessageTimeout,
            Self::ChannelBusy,
            Self::LockRequired,
            Self::InvalidChannel,
        ]
        .into_iter()
        .find(|e| *e as u8 == byte)
        .unwrap_or(Self::Other)
    }
}
