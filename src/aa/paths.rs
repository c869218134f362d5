//! The REST paths, relative to the server's base URL (PROTOCOLS.md 1.2). The emulator routes on the
//! patterns, the client formats the same paths with ids.

/// `POST`: register an endpoint.
pub const ENDPOINTS: &str = "/api/v1/endpoints";
/// `DELETE`: an endpoint.
pub const ENDPOINT: &str = "/api/v1/endpoints/{endpoint_id}";
/// `POST`: open an endpoint session.
pub const ENDPOINT_SESSIONS: &str = "/api/v1/endpoints/{endpoint_id}/sessions";
/// `POST`: start a logon process.
pub const LOGON: &str = "/api/v1/logon";
/// `POST`: one round of a method.
pub const DO_LOGON: &str = "/api/v1/logon/{logon_process_id}/do_logon";
/// `GET` (the portal) or `POST` (PWM): the chains of a user for an event (query only, no body).
pub const CHAINS: &str = "/api/v1/logon/chains";
/// `POST`: go on with the next method of the chain.
pub const NEXT: &str = "/api/v1/logon/{logon_process_id}/next";
/// `GET`: look a user up by name.
pub const USERS: &str = "/api/v1/users";
/// `GET`, `POST`: a user's templates.
pub const TEMPLATES: &str = "/api/v1/users/{user_id}/templates";
/// `DELETE`: one template.
pub const TEMPLATE: &str = "/api/v1/users/{user_id}/templates/{template_id}";
/// `POST`: test an enrolled template (as the portal calls it, see [`super::portal`]).
pub const TEMPLATE_TEST: &str = "/api/v1/users/{user_id}/templates/{template_id}/test";
/// `POST`: start an enroll process.
pub const ENROLL: &str = "/api/v1/enroll";
/// `DELETE`: abort an enroll process (as the portal calls it, see [`super::portal`]).
pub const ENROLL_PROCESS: &str = "/api/v1/enroll/{enroll_process_id}";
/// `POST`: one round of an enrollment (as the portal calls it for U2F, see [`super::portal`]).
pub const DO_ENROLL: &str = "/api/v1/enroll/{enroll_process_id}/do_enroll";

/// `pattern` with each `{name}` replaced by the matching value, percent-encoded as a path segment.
pub fn fill(pattern: &str, values: &[(&str, &str)]) -> String {
    let mut path = pattern.to_owned();
    for (name, value) in values {
        path = path.replace(&format!("{{{name}}}"), &encode_segment(value));
    }
    path
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_filled_in_and_cannot_escape_their_segment() {
        assert_eq!(
            super::fill(super::DO_LOGON, &[("logon_process_id", "abc")]),
            "/api/v1/logon/abc/do_logon"
        );
        assert_eq!(
            super::fill(super::TEMPLATES, &[("user_id", "../x y")]),
            "/api/v1/users/..%2Fx%20y/templates"
        );
    }
}
