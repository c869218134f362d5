//! authenticatorLargeBlobs (0x0C; CTAP 2.1 §6.10; CTAP2.md §10): the token's serialized
//! large-blob array, read and written in fragments.
//!
//! ```text
//!  request  {1: get (uint, bytes to read), 2: set (bytes, a fragment), 3: offset (uint),
//!            4: length (uint, the whole array; first fragment only),
//!            5: pinUvAuthParam, 6: pinUvAuthProtocol}
//!  reply    get → {1: config (bytes)}      set → status alone
//!
//!  set's pinUvAuthParam = authenticate(pinUvAuthToken with lbw,
//!                          32×FF ‖ 0C 00 ‖ uint32LE(offset) ‖ SHA-256(set))
//! ```
//! get: exactly one of get and set (`INVALID_PARAMETER`), no length nor pinUvAuth
//! (`INVALID_PARAMETER`), at most [`MAX_FRAGMENT_LENGTH`] (`INVALID_LENGTH`), an offset within
//! the array (`INVALID_PARAMETER`). set: a fragment of at most [`MAX_FRAGMENT_LENGTH`]
//! (`INVALID_LENGTH`); at offset 0 a length (`INVALID_PARAMETER`) of at most
//! [`MAX_SERIALIZED_LARGE_BLOB_ARRAY`] (`LARGE_BLOB_STORAGE_FULL`) and at least 17
//! (`INVALID_PARAMETER`), elsewhere none (`INVALID_PARAMETER`) and the offset where the last
//! fragment ended (`INVALID_SEQ`); on a token with a PIN or built-in UV the pinUvAuthParam
//! (`PUAT_REQUIRED`), its protocol (`MISSING_PARAMETER`, `INVALID_PARAMETER`) and a token with
//! the lbw permission (`PIN_AUTH_INVALID`); no fragment past the length (`INVALID_PARAMETER`).
//! The fragments gather in memory; when the last one comes, the trailer must match
//! (`INTEGRITY_FAILURE`) and the array is stored durably (flushed) before the reply.
use std::time::Instant;

use keystore::large_blob::has_valid_trailer;
use keystore::MAX_SERIALIZED_LARGE_BLOB_ARRAY;
use ring::digest::{digest, SHA256};

use super::authenticator::{body, reply, Authenticator, Step};
use super::cbor::{self, uint_map, Parameters, Value};
use super::client_pin::permission;
use super::get_info::MAX_MSG_SIZE;
use super::request::PinUvAuth;
use super::status::Status;

/// The longest fragment a get returns or a set takes: maxMsgSize − 64 (§6.10.2).
pub const MAX_FRAGMENT_LENGTH: usize = MAX_MSG_SIZE as usize - 64;
/// The shortest serialized array: one byte of CBOR and the 16-byte trailer.
const MIN_SERIALIZED_LEN: u64 = 17;

/// A set in progress: the fragments so far and the length announced.
#[derive(Debug, Default)]
pub(super) struct PendingWrite {
    expected_length: usize,
    written: Vec<u8>,
}

/// An authenticatorLargeBlobs request: types checked.
struct Request<'a> {
    get: Option<u64>,
    set: Option<&'a [u8]>,
    offset: u64,
    length: Option<u64>,
    pin_uv_auth: PinUvAuth<'a>,
}

impl<'a> TryFrom<&'a Parameters<'a>> for Request<'a> {
    type Error = Status;
    fn try_from(params: &'a Parameters<'a>) -> Result<Self, Status> {
        let unsigned = cbor::unsigned;
        let param = params.get(0x05).map(cbor::bytes).transpose()?;
        let protocol = params.get(0x06).map(cbor::integer).transpose()?;
        Ok(Self {
            get: params.get(0x01).map(unsigned).transpose()?,
            set: params.get(0x02).map(cbor::bytes).transpose()?,
            offset: unsigned(params.required(0x03)?)?,
            length: params.get(0x04).map(unsigned).transpose()?,
            pin_uv_auth: match param {
                None if protocol.is_none() => PinUvAuth::Absent,
                None => PinUvAuth::Given {
                    protocol,
                    param: &[],
                },
                Some(param) => PinUvAuth::Given { protocol, param },
            },
        })
    }
}

/// The message a set's pinUvAuthParam authenticates (§6.10.2 step 3.2).
fn set_message(offset: u32, fragment: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(32 + 2 + 4 + 32);
    message.extend_from_slice(&[0xFF; 32]);
    message.extend_from_slice(&[0x0C, 0x00]);
    message.extend_from_slice(&offset.to_le_bytes());
    message.extend_from_slice(digest(&SHA256, fragment).as_ref());
    message
}

impl Authenticator {
    /// authenticatorLargeBlobs (module docs).
    pub(super) fn large_blobs(
        &mut self,
        params: &Parameters,
        now: Instant,
    ) -> Result<Step, Status> {
        let request = Request::try_from(params)?;
        let answer = match (request.get, request.set) {
            (Some(count), None) => self.read_large_blobs(&request, count),
            (None, Some(fragment)) => self.write_large_blobs(&request, fragment, now),
            _ => Err(Status::InvalidParameter),
        };
        Ok(Step::Done(reply(answer)))
    }

    fn read_large_blobs(&self, request: &Request, count: u64) -> Result<Vec<u8>, Status> {
        if request.length.is_some() || request.pin_uv_auth != PinUvAuth::Absent {
            return Err(Status::InvalidParameter);
        }
        if count > MAX_FRAGMENT_LENGTH as u64 {
            return Err(Status::InvalidLength);
        }
        let array = self.u2f.keys().large_blobs.serialized();
        let start = usize::try_from(request.offset)
            .ok()
            .filter(|&offset| offset <= array.len())
            .ok_or(Status::InvalidParameter)?;
        // count is at most MAX_FRAGMENT_LENGTH.
        let end = array.len().min(start + count as usize);
        Ok(body(uint_map([(
            0x01,
            Value::Bytes(array[start..end].to_vec()),
        )])))
    }

    fn write_large_blobs(
        &mut self,
        request: &Request,
        fragment: &[u8],
        now: Instant,
    ) -> Result<Vec<u8>, Status> {
        if fragment.len() > MAX_FRAGMENT_LENGTH {
            return Err(Status::InvalidLength);
        }
        let offset = request.offset;
        let expected_length = if offset == 0 {
            let length = request.length.ok_or(Status::InvalidParameter)?;
            if length > MAX_SERIALIZED_LARGE_BLOB_ARRAY as u64 {
                return Err(Status::LargeBlobStorageFull);
            }
            if length < MIN_SERIALIZED_LEN {
                return Err(Status::InvalidParameter);
            }
            // At most MAX_SERIALIZED_LARGE_BLOB_ARRAY.
            length as usize
        } else {
            if request.length.is_some() {
                return Err(Status::InvalidParameter);
            }
            let pending = self.large_blob_write.as_ref();
            if pending.is_none_or(|p| p.written.len() as u64 != offset) {
                return Err(Status::InvalidSeq);
            }
            pending.map_or(0, |p| p.expected_length)
        };
        if self.protected_by_uv() {
            let auth = match request.pin_uv_auth {
                PinUvAuth::Absent => return Err(Status::PuatRequired),
                other => Self::pin_uv_auth_protocol(other)?.ok_or(Status::PuatRequired)?,
            };
            // offset is at most MAX_SERIALIZED_LARGE_BLOB_ARRAY here (checked against the
            // pending write's length, or 0).
            let message = set_message(offset as u32, fragment);
            self.authorize(auth, &message, permission::LARGE_BLOB_WRITE, now)?;
        }
        if offset as usize + fragment.len() > expected_length {
            return Err(Status::InvalidParameter);
        }
        let pending = self
            .large_blob_write
            .get_or_insert_with(PendingWrite::default);
        if offset == 0 {
            *pending = PendingWrite {
                expected_length,
                written: Vec::with_capacity(expected_length),
            };
        }
        pending.written.extend_from_slice(fragment);
        if pending.written.len() < expected_length {
            return Ok(Vec::new());
        }
        let Some(complete) = self.large_blob_write.take() else {
            return Err(Status::Other);
        };
        if !has_valid_trailer(&complete.written) {
            return Err(Status::IntegrityFailure);
        }
        self.u2f
            .keys_mut()
            .large_blobs
            .replace(complete.written)
            .map_err(|_| Status::Other)?;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_message_is_laid_out_as_the_spec_draws_it() {
        let message = set_message(0x0102_0304, b"fragment");
        assert_eq!(message.len(), 70);
        assert_eq!(message[..32], [0xFF; 32]);
        assert_eq!(message[32..34], [0x0C, 0x00]);
        assert_eq!(message[34..38], [4, 3, 2, 1]);
        assert_eq!(message[38..], *digest(&SHA256, b"fragment").as_ref());
    }
}
