//! The RP id a page may use, checked as a browser checks it (WebAuthn Level 2 §5.1.3 step 8,
//! §5.1.4 step 8): the origin a secure context, the RP id its host or a registrable suffix.
use std::net::IpAddr;

use crate::client::ClientError;

/// Whether `rp_id` is one a page of `origin` may use (WebAuthn Level 2 §5.1.3 step 8, §5.1.4
/// step 8): the origin must be a secure context (https, or http on a loopback host), and the RP
/// id its host or a registrable suffix of it. Without the Public Suffix List a suffix must still
/// hold a dot; an IP address only as itself (browsers refuse IP addresses altogether: this is the
/// one leniency, for an emulator on loopback).
pub fn check_rp_id(rp_id: &str, origin: &str) -> Result<(), ClientError> {
    let refuse = |why: &str| ClientError::RpIdNotAllowed {
        rp_id: rp_id.to_owned(),
        origin: origin.to_owned(),
        why: why.to_owned(),
    };
    let url = reqwest::Url::parse(origin).map_err(|_| refuse("the origin is not a URL"))?;
    let host = url
        .host_str()
        .ok_or_else(|| refuse("the origin has no host"))?
        .to_ascii_lowercase();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ip = bare.parse::<IpAddr>().ok();
    let loopback = host == "localhost" || ip.is_some_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(refuse(
                "the origin is not a secure context (https, or http on loopback)",
            ))
        }
    }
    let rp_id = rp_id.to_ascii_lowercase();
    if rp_id == host || (ip.is_some() && rp_id == bare) {
        return Ok(());
    }
    if ip.is_some() {
        return Err(refuse("an IP address origin allows only itself as RP id"));
    }
    if !rp_id.contains('.') || !host.ends_with(&format!(".{rp_id}")) {
        return Err(refuse(
            "it is neither the origin's host nor a registrable suffix of it",
        ));
    }
    Ok(())
}

/// The origin's host: the RP id when the options name none.
pub(super) fn default_rp_id(origin: &str) -> String {
    reqwest::Url::parse(origin)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rp_id_is_checked_against_the_origin_as_a_browser_does() {
        for (rp_id, origin) in [
            ("aa.example.com", "https://aa.example.com"),
            ("example.com", "https://aa.example.com:8443"),
            ("localhost", "http://localhost:8440"),
            ("127.0.0.1", "http://127.0.0.1:8440"),
        ] {
            assert!(check_rp_id(rp_id, origin).is_ok(), "{rp_id} {origin}");
        }
        for (rp_id, origin) in [
            ("evil.example", "https://aa.example.com"),
            ("ample.com", "https://aa.example.com"),
            ("com", "https://aa.example.com"),
            ("aa.example.com", "http://aa.example.com"),
            ("0.0.1", "http://127.0.0.1:8440"),
            ("localhost", "http://127.0.0.1:8440"),
            ("x", "not a url"),
        ] {
            let error = check_rp_id(rp_id, origin).unwrap_err().to_string();
            assert!(error.starts_with("refusing RP id"), "{error}");
        }
    }
}
