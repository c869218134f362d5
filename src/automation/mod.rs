//! # automation — drive served tokens over HTTP, as WebDriver drives a browser's virtual
//! authenticators (W3C WebAuthn Level 3 §11, "WebAuthn WebDriver Extension")
//!
//! `vu2f serve --control [ADDR]` serves this API beside the tokens: a test adds authenticators
//! that are real uhid devices every host sees (and UDP ones), flips their presence and user
//! verification, puts credentials in and reads them back, arms faults, presses their buttons,
//! replugs and removes them. Any test framework that can send HTTP drives it; its routes and
//! fields are WebDriver's, so a test writer who knows those knows these (a WebDriver client
//! sends its own commands to its browser's driver, not here). `vu2f ctl` does the same from a
//! shell.
//!
//! ```text
//!  POST   /webauthn/authenticator                        add one → {"value": ID}
//!  GET    /webauthn/authenticators                       the list (vu2f's)
//!  GET    /webauthn/authenticator/{id}                   one of it (vu2f's)
//!  DELETE /webauthn/authenticator/{id}                   remove it (its hidraw node goes)
//!  POST   /webauthn/authenticator/{id}/uv                {"isUserVerified": bool}
//!  POST   /webauthn/authenticator/{id}/consenting        {"isUserConsenting": bool}   (vu2f's)
//!  POST   /webauthn/authenticator/{id}/presence          {"policy": POLICY}           (vu2f's)
//!  POST   /webauthn/authenticator/{id}/press             the button                   (vu2f's)
//!  POST   /webauthn/authenticator/{id}/replug            unplug, plug in              (vu2f's)
//!  POST   /webauthn/authenticator/{id}/credential        add one ([`credentials`])
//!  GET    /webauthn/authenticator/{id}/credentials       read them back
//!  DELETE /webauthn/authenticator/{id}/credentials/{cid} remove one
//!  DELETE /webauthn/authenticator/{id}/credentials       remove all
//!  POST   /webauthn/authenticator/{id}/faults            arm one-shot faults ([`faults`]) (vu2f's)
//!  GET    /webauthn/authenticator/{id}/faults            what is still armed             (vu2f's)
//!         /session/{sessionId}/webauthn/…                the same, any session id
//! ```
//! Every request carries `Authorization: Bearer TOKEN` (the token file serve prints). A success
//! is `{"value": …}`; an error an HTTP status with `{"value": {"error": CODE, "message": TEXT}}`,
//! the message naming the field or id that was wrong ([`error`]).
//!
//! * [`server`]: the routes, the bearer check, where it listens.
//! * [`fleet`]: the served authenticators while serve runs, each a [`VirtualAuthenticator`].
//! * [`authenticators`]: add (WebDriver's Authenticator Configuration), list, show, remove.
//! * [`switches`]: user verification, consent, the presence policy, the button, replug.
//! * [`credentials`]: WebDriver's credential operations (Add, Get, Remove, Remove All).
//! * [`large_blob`]: a credential's large blob in the token's array, as a platform writes it.
//! * [`faults`]: one-shot faults for testing relying parties and hosts.
//! * [`error`]: the error codes and shapes.
//! * [`client`]: the HTTP client of `vu2f ctl`.
//!
//! A route that acts on one authenticator takes [`AuthenticatorPath`], gets its handle with
//! [`Fleet::get`] (`no such authenticator` otherwise), and reaches its engine through
//! [`VirtualAuthenticator::engine`] and its keystore through [`VirtualAuthenticator::store`].
use serde::Deserialize;

pub mod authenticators;
pub mod client;
pub mod credentials;
pub mod error;
pub mod faults;
pub mod fleet;
pub mod large_blob;
pub mod server;
pub mod switches;

pub use error::{Answer, ApiError, ApiResult, ErrorCode};
pub use fleet::{Fleet, FleetSettings, Protocol, VirtualAuthenticator};

/// The path of a route on one authenticator (`sessionId` of the session routes is ignored).
#[derive(Debug, Deserialize)]
pub struct AuthenticatorPath {
    /// The authenticator's id.
    #[serde(rename = "authenticatorId")]
    pub id: String,
}
