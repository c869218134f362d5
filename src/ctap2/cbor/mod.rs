//! CTAP2's CBOR (CTAP 2.1 section 8, "Message Encoding"): strict on input, canonical on output,
//! every failure the status the spec gives for it.
//!
//! ```text
//!  request   command byte ‖ map { uint key → value, … }     (getInfo, reset, …: command byte alone)
//!  reply     status byte  ‖ map { uint key → value, … }     (an error: the status byte alone)
//! ```
//!
//! * [`read`]: a request's parameters ([`Parameters::decode`]) as [`Item`]s borrowing from the
//!   request (`minicbor`'s decoder). Not CBOR, invalid UTF-8, an indefinite length, trailing
//!   bytes, a duplicate key or nesting deeper than [`MAX_DEPTH`] → `INVALID_CBOR`; a member of
//!   the wrong type → `CBOR_UNEXPECTED_TYPE`; a required member absent → `MISSING_PARAMETER`.
//!   Keys come in any order and unknown ones are ignored, as hosts expect.
//! * [`write`]: replies built as `ciborium` [`Value`]s and written in CTAP2 canonical form
//!   ([`encode`]). The two hot replies, getAssertion's and makeCredential's, are written
//!   straight into their buffer with `minicbor`'s encoder instead, in canonical order by
//!   construction, and tests hold them to [`encode`]'s bytes.
pub mod read;
pub mod write;

pub use read::{
    array, boolean, bytes, int_member, integer, map, member, raw_member, text, unsigned, Arena,
    Item, Parameters, MAX_DEPTH,
};
pub use write::{
    encode, encode_into, int_map, text_map, uint_map, ReplyEncoder, ReplyWriter, Value, WriteResult,
};
