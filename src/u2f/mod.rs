//! # u2f — the U2F engine (FIDO U2F raw message formats v1.2)
//!
//! Sans-IO and synchronous: an APDU in, response bytes out ([`Authenticator::process`]); time comes
//! in as an argument. Below it sits the `keystore` crate; above it the CTAPHID framing (`crate::hid`).
//!
//! * [`apdu`]: ISO 7816-4 command parsing, short and extended encodings (spec section 3).
//! * [`status`]: the status words, one enum with the wire values.
//! * [`presence`]: the user-presence policy of a token (`auto`, `deny`, `delay:MS`, `prompt`, `touch`).
//! * [`authenticator`]: REGISTER, AUTHENTICATE, VERSION (spec sections 4, 5, 6).
//! * [`messages`]: the host side: building requests, parsing and verifying responses.
//! * [`faults`]: the one-shot faults a test arms through the automation API.
pub mod apdu;
pub mod authenticator;
pub mod faults;
pub mod messages;
pub mod presence;
pub mod status;

pub use apdu::{Apdu, Instruction};
pub use authenticator::Authenticator;
pub use faults::{Faults, TransportFault};
pub use presence::{Button, Presence, PresencePolicy};
pub use status::StatusWord;
