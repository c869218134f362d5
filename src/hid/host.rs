//! The host side of CTAPHID: reassembling the token's replies (FIDO U2F HID protocol v1.1,
//! section 2.4). Used by the UDP and hidraw client transports and by tests.
use super::packet::{Packet, Report};
use super::wire::{Command, HidError};

/// A complete reply from the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A reply to `command` with its payload.
    Message {
        /// The command byte of the reply.
        command: u8,
        /// The payload.
        payload: Vec<u8>,
    },
    /// An ERROR reply.
    Error(HidError),
}

/// Reassembles the replies on one channel, ignoring reports for other channels.
pub struct ReplyAssembler {
    cid: u32,
    partial: Option<(u8, usize, Vec<u8>, u8)>,
}

impl ReplyAssembler {
    /// An assembler for replies on `cid`.
    pub fn new(cid: u32) -> Self {
        Self { cid, partial: None }
    }

    /// Feeds one input report; returns the reply once it is complete.
    pub fn push(&mut self, report: &Report) -> Option<Reply> {
        match Packet::try_from(&report[..]).ok()? {
            Packet::Init {
                cid,
                cmd,
                bcnt,
                data,
            } if cid == self.cid => {
                let len = usize::from(bcnt);
                self.partial = Some((cmd, len, data[..len.min(data.len())].to_vec(), 0));
            }
            Packet::Cont { cid, seq, data } if cid == self.cid => {
                let (_, len, payload, next_seq) = self.partial.as_mut()?;
                if seq != *next_seq {
                    self.partial = None;
                    return None;
                }
                let missing = *len - payload.len();
                payload.extend_from_slice(&data[..missing.min(data.len())]);
                *next_seq += 1;
            }
            _ => return None,
        }
        match self.partial.take() {
            Some((cmd, len, payload, _)) if payload.len() == len => {
                Some(if cmd == Command::Error as u8 {
                    Reply::Error(HidError::from_wire(
                        payload.first().copied().unwrap_or(0x7f),
                    ))
                } else {
                    Reply::Message {
                        command: cmd,
                        payload,
                    }
                })
            }
            partial => {
                self.partial = partial;
                None
            }
        }
    }
}
