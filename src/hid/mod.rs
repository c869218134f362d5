//! # hid — U2FHID / CTAPHID framing (FIDO U2F HID protocol v1.1; CTAP 2.1 section 11.2)
//!
//! Sans-IO: 64-byte reports in, 64-byte reports out, time as an argument. The layer above the
//! wire (`crate::device`) and below the U2F engine (`crate::u2f`).
//!
//! * [`packet`]: initialization and continuation packets, and fragmentation of replies.
//! * [`wire`]: command bytes, error codes and capability flags, with their wire values.
//! * [`host`]: the host side, reassembling replies.
//! * [`channels`]: the state machine: channel allocation, reassembly, timeouts, busy and lock.
pub mod channels;
pub mod host;
pub mod packet;
pub mod wire;

pub use channels::{CborStep, CtapHid, MessageHandler};
pub use packet::{fragment, Packet, Report, REPORT_LEN};
pub use wire::{Command, HidError, KeepaliveStatus, BROADCAST_CID, MAX_PAYLOAD};
