//! The logon object the emulator answers (PROTOCOLS.md 1.3), with the same fields as the
//! documentation's samples (`tests/fixtures/aa`): event fields on every answer, user attributes and
//! the completed chain on `OK`.
use serde_json::{json, Map, Value};

use super::config::ChainConfig;
use super::records::stable_hex_id;
use super::state::{LogonProcess, SimState};
use crate::aa::api::{Chain, LogonResponse};
use crate::aa::outcome::Outcome;

/// The TOP tenant's id (PROTOCOLS.md 1.0).
pub const TOP_TENANT_ID: &str = "def0def0def0def0def0def0def0def0";

/// A configured chain as the API shows it.
pub fn chain_object(position: usize, chain: &ChainConfig) -> Chain {
    let image = chain
        .methods
        .first()
        .map(|m| m.replace(':', "_"))
        .unwrap_or_default();
    Chain {
        id_hex: stable_hex_id(&format!("chain:{}", chain.name)),
        tenant_id: TOP_TENANT_ID.into(),
        is_trusted: None,
        is_enabled: true,
        name: chain.name.clone(),
        short_name: String::new(),
        methods: chain.methods.clone(),
        position: i64::try_from(position + 1).unwrap_or(i64::MAX),
        apply_for_ep_owner: false,
        image_name: format!("{image}.png"),
        required_chain_id_hex: None,
        grace_period: None,
        mfa_tags: Vec::new(),
        risk_level: "NONE".into(),
    }
}

/// The repository-qualified name of a user (`LOCAL\alice`).
pub fn qualified_name(state: &SimState, user: &str) -> String {
    format!("{}\\{user}", state.config.repo)
}

/// The id of a configured user.
pub fn user_id(state: &SimState, user: &str) -> String {
    stable_hex_id(&format!("user:{}", qualified_name(state, user)))
}

/// A logon object for `process` with the status fields of `outcome`.
pub fn logon_object(
    state: &SimState,
    process_id: &str,
    process: &LogonProcess,
    outcome: Outcome,
) -> LogonResponse {
    let event_chains: Vec<Chain> = state
        .config
        .event(&process.event)
        .map(|event| {
            event
                .chains
                .iter()
                .filter_map(|name| state.config.chain(name))
                .map(|(i, chain)| chain_object(i, chain))
                .collect()
        })
        .unwrap_or_default();
    let mut extra = Map::new();
    let data_id = process.event.to_uppercase();
    for (key, value) in [
        ("linked_logon", json!(false)),
        ("plugins", json!([])),
        ("categories", Value::Null),
        ("event_name", json!(process.event)),
        ("event_type", json!("Generic")),
        ("event_all_categories", json!(true)),
        ("event_data_id", json!(data_id)),
        ("data_id", json!(data_id)),
        ("category_id", json!("")),
        ("current_category_id", json!("")),
    ] {
        extra.insert(key.into(), value);
    }
    LogonResponse {
        status: outcome.status,
        msg: outcome.msg.into(),
        reason: outcome.reason.map(Into::into),
        msgid: outcome.msgid.map(Into::into),
        logon_process_id: Some(process_id.into()),
        current_method: process
            .current
            .clone()
            .or_else(|| process.completed.last().cloned()),
        completed_methods: process.completed.clone(),
        sign_requests: Vec::new(),
        webauth_challenge: None,
        login_session_id: None,
        completed_chain: None,
        chains: event_chains,
        extra,
    }
}

/// Adds what an `OK` carries: the session, the chain, the template, the user's attributes.
pub fn complete(
    state: &SimState,
    response: &mut LogonResponse,
    user: &str,
    login_session_id: String,
    chain: Chain,
    template_id: Option<String>,
) {
    let admin = state.user(user).is_some_and(|u| u.admin);
    let qualified = qualified_name(state, user);
    let domain = "vu2f.test";
    response.login_session_id = Some(login_session_id);
    response.completed_chain = Some(chain);
    for (key, value) in [
        (
            "completed_template_id",
            json!(template_id.unwrap_or_default()),
        ),
        ("user_id", json!(user_id(state, user))),
        ("user_name", json!(qualified)),
        (
            "repo_id",
            json!(stable_hex_id(&format!("repo:{}", state.config.repo))),
        ),
        (
            "repo_obj_id",
            json!(stable_hex_id(&format!("obj:{qualified}"))),
        ),
        ("user_mobile_phone", json!("")),
        ("user_email", json!(format!("{user}@{domain}"))),
        ("user_name_netbios", json!(qualified)),
        ("tenant_name", json!(state.config.tenant_name)),
        (
            "user_role_assignments",
            json!(if admin { "FULL ADMINS" } else { "" }),
        ),
        ("user_cn", json!(user)),
        ("user_sid", json!("")),
        ("user_sid_hex", json!("")),
        ("user_upn", json!(format!("{user}@{domain}"))),
        (
            "user_dn",
            json!(format!("CN={user},CN=Users,DC=vu2f,DC=test")),
        ),
        ("user_first_name", json!(user)),
        ("risk_level", json!("NONE")),
        ("risk_score", Value::Null),
    ] {
        response.extra.insert(key.into(), value);
    }
}
