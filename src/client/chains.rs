//! Which chain to log on with (PROTOCOLS.md 1.2 "Read chains", 1.9 "Chains"): the client reads the
//! user's chains for the event, as AA's portal does, and takes the first one whose every method it
//! can complete, or the one named with `--chain`; rather than guessing a first method and being
//! told "method not in chain".
//!
//! ```text
//!  GET  /api/v1/logon/chains?user_name=alice&is_trusted=true&event=Search%20Card&endpoint_session_id=…
//!       (a server that has no GET form: the same query with POST)
//!  -> {"chains":[{"name":"U2F only","methods":["U2F:1"],…},{"name":"Password & U2F",…}]}
//! ```
use super::{one_line, AaHttp, ClientError, Endpoint};
use crate::aa::api::{Chain, ChainList};
use crate::aa::{paths, FIDO2, PASSWORD, U2F};

/// What the client can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abilities {
    /// A token is at hand for `U2F:1`.
    pub u2f: bool,
    /// A token that speaks CTAP2 is at hand for `FIDO2:1`.
    pub fido2: bool,
    /// A password is at hand for `PASSWORD:1`.
    pub password: bool,
}

impl Abilities {
    /// Why `method` cannot be completed, if it cannot.
    fn missing(&self, method: &str) -> Option<String> {
        match method {
            U2F if self.u2f => None,
            U2F => Some(format!("{U2F} needs a token")),
            FIDO2 if self.fido2 => None,
            FIDO2 => Some(format!(
                "{FIDO2} needs a token that speaks CTAP2 (a fido2 token)"
            )),
            PASSWORD if self.password => None,
            PASSWORD => Some(format!(
                "{PASSWORD} needs the password (--password-file or VU2F_PASSWORD)"
            )),
            other => Some(format!("{} is not a method vu2f answers", one_line(other))),
        }
    }

    /// Why `chain` cannot be completed, if it cannot.
    fn blocker(&self, chain: &Chain) -> Option<String> {
        if !chain.is_enabled {
            return Some("it is disabled".into());
        }
        if chain.methods.is_empty() {
            return Some("it has no methods".into());
        }
        chain.methods.iter().find_map(|m| self.missing(m))
    }
}

/// `"name" (A → B)`, for people.
pub fn describe(chain: &Chain) -> String {
    let methods: Vec<String> = chain.methods.iter().map(|m| one_line(m)).collect();
    format!("\"{}\" ({})", one_line(&chain.name), methods.join(" → "))
}

/// Reads the chains of `user` for `event`: the portal's `GET`, else (404 or 405) `POST`.
pub async fn read(
    http: &AaHttp,
    endpoint: &Endpoint,
    user: &str,
    event: &str,
) -> Result<Vec<Chain>, ClientError> {
    let query = [
        ("user_name", user),
        ("is_trusted", "true"),
        ("event", event),
        ("endpoint_session_id", endpoint.session_id()),
    ];
    let list: ChainList = match http.get(paths::CHAINS, &query).await {
        Err(ClientError::Http {
            status: 404 | 405, ..
        }) => http.post_query(paths::CHAINS, &query).await?,
        other => other?,
    };
    Ok(list.chains)
}

/// The chain to log on with: the one called `wanted` (its name, short name or id), else the first
/// of `chains` that `abilities` can complete; an error naming every chain and what stops it.
pub fn choose(
    chains: &[Chain],
    abilities: Abilities,
    wanted: Option<&str>,
    user: &str,
    event: &str,
) -> Result<Chain, ClientError> {
    let whose = format!("{} at event \"{}\"", one_line(user), one_line(event));
    if let Some(wanted) = wanted {
        let chain = chains
            .iter()
            .find(|c| {
                c.name.eq_ignore_ascii_case(wanted)
                    || (!c.short_name.is_empty() && c.short_name.eq_ignore_ascii_case(wanted))
                    || (!c.id_hex.is_empty() && c.id_hex == wanted)
            })
            .ok_or_else(|| {
                let names: Vec<String> = chains.iter().map(describe).collect();
                ClientError::NoChain(format!(
                    "no chain \"{}\" for {whose}; the server lists: {}",
                    one_line(wanted),
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                ))
            })?;
        return match abilities.blocker(chain) {
            None => Ok(chain.clone()),
            Some(why) => Err(ClientError::NoChain(format!(
                "chain {} for {whose} cannot be completed: {why}",
                describe(chain)
            ))),
        };
    }
    if let Some(chain) = chains.iter().find(|c| abilities.blocker(c).is_none()) {
        return Ok(chain.clone());
    }
    if chains.is_empty() {
        return Err(ClientError::NoChain(format!(
            "the server lists no chain for {whose}"
        )));
    }
    let reasons: Vec<String> = chains
        .iter()
        .map(|c| {
            format!(
                "{}: {}",
                describe(c),
                abilities.blocker(c).unwrap_or_default()
            )
        })
        .collect();
    Err(ClientError::NoChain(format!(
        "no chain for {whose} is one vu2f can complete: {}",
        reasons.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(name: &str, methods: &[&str]) -> Chain {
        serde_json::from_value(serde_json::json!({"name": name, "methods": methods})).unwrap()
    }

    fn chains() -> Vec<Chain> {
        vec![
            chain("TOTP only", &["TOTP:1"]),
            chain("Password & U2F", &["PASSWORD:1", "U2F:1"]),
            chain("U2F only", &["U2F:1"]),
        ]
    }

    const TOKEN_ONLY: Abilities = Abilities {
        u2f: true,
        fido2: false,
        password: false,
    };
    const BOTH: Abilities = Abilities {
        u2f: true,
        fido2: false,
        password: true,
    };

    #[test]
    fn the_first_chain_the_client_can_complete_is_taken() {
        let chosen = choose(&chains(), TOKEN_ONLY, None, "alice", "E").unwrap();
        assert_eq!(chosen.name, "U2F only");
        let chosen = choose(&chains(), BOTH, None, "alice", "E").unwrap();
        assert_eq!(chosen.name, "Password & U2F");
    }

    #[test]
    fn a_chain_asked_for_by_name_is_taken_or_refused_with_why() {
        let chosen = choose(&chains(), BOTH, Some("u2f ONLY"), "alice", "E").unwrap();
        assert_eq!(chosen.name, "U2F only");
        let error = choose(&chains(), TOKEN_ONLY, Some("Password & U2F"), "alice", "E")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "chain \"Password & U2F\" (PASSWORD:1 → U2F:1) for alice at event \"E\" cannot be \
             completed: PASSWORD:1 needs the password (--password-file or VU2F_PASSWORD)"
        );
        let error = choose(&chains(), BOTH, Some("Nope"), "alice", "E")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("no chain \"Nope\" for alice"), "{error}");
        assert!(error.contains("\"TOTP only\" (TOTP:1)"), "{error}");
    }

    #[test]
    fn no_fitting_chain_names_every_chain_and_what_stops_it() {
        let mut disabled = chain("U2F only", &["U2F:1"]);
        disabled.is_enabled = false;
        let listed = vec![chain("TOTP only", &["TOTP:1"]), disabled];
        let error = choose(&listed, BOTH, None, "alice", "E")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "no chain for alice at event \"E\" is one vu2f can complete: \"TOTP only\" (TOTP:1): \
             TOTP:1 is not a method vu2f answers; \"U2F only\" (U2F:1): it is disabled"
        );
        let error = choose(&[], BOTH, None, "alice", "E")
            .unwrap_err()
            .to_string();
        assert_eq!(error, "the server lists no chain for alice at event \"E\"");
    }
}
