//! `vu2f probe`'s CTAP2 checks, for a token that speaks CTAP2 (a `fido2` token, a FIDO2 key),
//! each reply verified as a relying party would (WebAuthn Level 2 sections 7.1, 7.2 and 8.2):
//!
//! * authenticatorGetInfo (CTAP 2.1 section 6.4): `versions` include `FIDO_2_0`, ES256 is among
//!   the `algorithms` (when listed); the versions, the AAGUID and the algorithms are shown.
//! * authenticatorMakeCredential (6.1): an ES256, non-discoverable credential for the RP
//!   [`RP_ID`]. Status 0, fmt `packed`; authData with the rpIdHash, the UP and AT flags, getInfo's
//!   AAGUID and an ES256 COSE key; the attestation signature over authData ‖ clientDataHash
//!   verified with the key of the `x5c[0]` certificate (whose AAGUID extension, if any, must be
//!   authData's), or with the credential's own key for self attestation.
//! * authenticatorGetAssertion (6.2), twice, the credential alone in the allowList: UP set, the
//!   counter above the last one, the signature verified with the credential's COSE key.
//!
//! A reply that fails a check ends the probe with one line naming the command and the field.
use std::fmt::Write as _;

use anyhow::{anyhow, bail, ensure, Context as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom as _, SystemRandom};

use super::Step;
use crate::ctap2::cbor::{self, text_map, uint_map, Arena, Item, Parameters, Value};
use crate::transport::TokenTransport;
use crate::webauthn::ctap2_reply::{self, ReplyError};
use crate::webauthn::{self, attestation, sha256, AuthData, PublicKey, ES256, FLAG_UP, PUBLIC_KEY};

/// The RP the probe makes its credential for.
pub const RP_ID: &str = "probe.vu2f.invalid";
const ORIGIN: &str = "https://probe.vu2f.invalid";

/// CTAP2 command bytes (CTAP 2.1 section 6).
const MAKE_CREDENTIAL: u8 = 0x01;
const GET_ASSERTION: u8 = 0x02;
const GET_INFO: u8 = 0x04;

/// Runs the CTAP2 checks; `None` when the token (or the transport) speaks no CTAP2.
pub fn check(token: &mut dyn TokenTransport) -> anyhow::Result<Option<Vec<Step>>> {
    let Some(reply) = token.cbor(&[GET_INFO]).context("CTAP2 getInfo")? else {
        return Ok(None);
    };
    let info = verify_info(&reply).context("CTAP2 getInfo")?;
    let mut steps = vec![Step {
        step: "CTAP2 getInfo".into(),
        result: info.describe(),
    }];

    let client_data_hash = new_client_data_hash("webauthn.create")?;
    let reply = send(
        token,
        &make_credential_request(&client_data_hash),
        "makeCredential",
    )?;
    let made =
        verify_made(&reply, &client_data_hash, &info.aaguid).context("CTAP2 makeCredential")?;
    steps.push(Step {
        step: "CTAP2 makeCredential (ES256)".into(),
        result: format!(
            "{RP_ID}: {}-byte credential id, counter {}, user present, packed attestation verified ({})",
            made.id.len(),
            made.counter,
            made.attestation
        ),
    });

    let mut last_counter = made.counter;
    for round in 1..=2 {
        let command = format!("getAssertion #{round}");
        let client_data_hash = new_client_data_hash("webauthn.get")?;
        let request = get_assertion_request(&client_data_hash, &made.id);
        let reply = send(token, &request, &command)?;
        let counter = verify_assertion(&reply, &client_data_hash, &made, last_counter)
            .with_context(|| format!("CTAP2 {command}"))?;
        last_counter = counter;
        steps.push(Step {
            step: format!("CTAP2 {command}"),
            result: format!("counter {counter}, user present, signature verified"),
        });
    }
    Ok(Some(steps))
}

/// Sends a request to a token that answered getInfo: no answer now is an error.
fn send(token: &mut dyn TokenTransport, request: &[u8], command: &str) -> anyhow::Result<Vec<u8>> {
    token
        .cbor(request)
        .with_context(|| format!("CTAP2 {command}"))?
        .ok_or_else(|| anyhow!("CTAP2 {command}: the token no longer takes CTAP2 requests"))
}

/// SHA-256 of a WebAuthn client data JSON with a fresh challenge.
fn new_client_data_hash(typ: &str) -> anyhow::Result<[u8; 32]> {
    let mut challenge = [0u8; 32];
    SystemRandom::new()
        .fill(&mut challenge)
        .map_err(|_| anyhow!("no randomness for a challenge"))?;
    let json = webauthn::client_data_json(typ, &URL_SAFE_NO_PAD.encode(challenge), ORIGIN);
    Ok(sha256(&json))
}

/// makeCredential: ES256, non-discoverable (no `rk` option), for [`RP_ID`].
fn make_credential_request(client_data_hash: &[u8; 32]) -> Vec<u8> {
    let request = uint_map([
        (1, Value::Bytes(client_data_hash.to_vec())),
        (
            2,
            text_map([
                ("id", Value::Text(RP_ID.into())),
                ("name", Value::Text("vu2f probe".into())),
            ]),
        ),
        (
            3,
            text_map([
                ("id", Value::Bytes(b"vu2f-probe".to_vec())),
                ("name", Value::Text("probe".into())),
                ("displayName", Value::Text("vu2f probe".into())),
            ]),
        ),
        (
            4,
            Value::Array(vec![text_map([
                ("alg", Value::Integer(ES256.into())),
                ("type", Value::Text(PUBLIC_KEY.into())),
            ])]),
        ),
    ]);
    [vec![MAKE_CREDENTIAL], cbor::encode(&request)].concat()
}

/// getAssertion of [`RP_ID`] with `credential_id` alone in the allowList.
fn get_assertion_request(client_data_hash: &[u8; 32], credential_id: &[u8]) -> Vec<u8> {
    let request = uint_map([
        (1, Value::Text(RP_ID.into())),
        (2, Value::Bytes(client_data_hash.to_vec())),
        (
            3,
            Value::Array(vec![text_map([
                ("id", Value::Bytes(credential_id.to_vec())),
                ("type", Value::Text(PUBLIC_KEY.into())),
            ])]),
        ),
    ]);
    [vec![GET_ASSERTION], cbor::encode(&request)].concat()
}

/// A successful reply's map: status 0, then one CBOR map.
fn reply_map<'a>(reply: &'a [u8], arena: &'a Arena) -> anyhow::Result<Parameters<'a>> {
    ctap2_reply::reply_map(reply, arena).map_err(|e| match e {
        ReplyError::Empty => anyhow!("status: an empty reply"),
        ReplyError::Status(status) => anyhow!(
            "status: 0x{status:02X} ({}), expected 0 (OK)",
            ctap2_reply::status_name(status)
        ),
        ReplyError::NotAMap(e) => anyhow!("the reply is not one CBOR map: {e}"),
    })
}

/// The member `key` (`name`) of a reply.
fn member<'p, 'a>(
    params: &'p Parameters<'a>,
    key: u64,
    name: &str,
) -> anyhow::Result<&'p Item<'a>> {
    params
        .get(key)
        .ok_or_else(|| anyhow!("{name} (0x{key:02X}): missing"))
}

fn bytes<'a>(value: &Item<'a>, name: &str) -> anyhow::Result<&'a [u8]> {
    cbor::bytes(value).map_err(|_| anyhow!("{name}: not a byte string"))
}

fn integer(value: &Item, name: &str) -> anyhow::Result<i64> {
    cbor::integer(value).map_err(|_| anyhow!("{name}: not an integer"))
}

fn text<'a>(value: &Item<'a>, name: &str) -> anyhow::Result<&'a str> {
    cbor::text(value).map_err(|_| anyhow!("{name}: not a text string"))
}

/// What getInfo told.
struct Info {
    versions: Vec<String>,
    aaguid: [u8; 16],
    /// The COSE algorithms listed, if the member was there.
    algorithms: Option<Vec<i64>>,
}

impl Info {
    fn describe(&self) -> String {
        let mut text = format!(
            "{}; AAGUID {}; ",
            self.versions.join(" "),
            uuid(&self.aaguid)
        );
        match &self.algorithms {
            Some(algorithms) => {
                let names: Vec<String> = algorithms.iter().map(|&a| algorithm_name(a)).collect();
                text.push_str(&names.join(", "));
            }
            None => text.push_str("algorithms not listed (ES256)"),
        }
        text
    }
}

fn algorithm_name(alg: i64) -> String {
    let name = match alg {
        -7 => "ES256",
        -8 => "EdDSA",
        -35 => "ES384",
        -36 => "ES512",
        -257 => "RS256",
        _ => "alg",
    };
    format!("{name} ({alg})")
}

/// 16 bytes as a UUID: `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
fn uuid(bytes: &[u8; 16]) -> String {
    let mut text = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        let _ = write!(text, "{byte:02x}");
    }
    text
}

fn verify_info(reply: &[u8]) -> anyhow::Result<Info> {
    let arena = Arena::new();
    let params = reply_map(reply, &arena)?;
    let versions = cbor::array(member(&params, 0x01, "versions")?)
        .map_err(|_| anyhow!("versions: not an array"))?
        .iter()
        .map(|v| text(v, "versions").map(str::to_owned))
        .collect::<anyhow::Result<Vec<_>>>()?;
    ensure!(
        versions.iter().any(|v| v == "FIDO_2_0"),
        "versions: {versions:?} lack FIDO_2_0"
    );
    let aaguid = bytes(member(&params, 0x03, "aaguid")?, "aaguid")?;
    let aaguid: [u8; 16] = aaguid
        .try_into()
        .map_err(|_| anyhow!("aaguid: {} bytes, expected 16", aaguid.len()))?;
    let algorithms = params
        .get(0x0A)
        .map(|list| {
            cbor::array(list)
                .map_err(|_| anyhow!("algorithms: not an array"))?
                .iter()
                .map(|entry| {
                    let entry =
                        cbor::map(entry).map_err(|_| anyhow!("algorithms: an entry not a map"))?;
                    let alg = cbor::member(entry, "alg")
                        .ok_or_else(|| anyhow!("algorithms: an entry without alg"))?;
                    integer(alg, "algorithms: alg")
                })
                .collect::<anyhow::Result<Vec<i64>>>()
        })
        .transpose()?;
    if let Some(algorithms) = &algorithms {
        ensure!(
            algorithms.contains(&ES256),
            "algorithms: ES256 (-7) is not listed, and the probe makes ES256 credentials"
        );
    }
    Ok(Info {
        versions,
        aaguid,
        algorithms,
    })
}

/// The rpIdHash and the UP flag, common to both replies.
fn check_rp_and_presence(auth_data: &AuthData) -> anyhow::Result<()> {
    ensure!(
        auth_data.rp_id_hash == sha256(RP_ID.as_bytes()),
        "authData: rpIdHash is not SHA-256 of {RP_ID:?}"
    );
    ensure!(
        auth_data.flags & FLAG_UP != 0,
        "authData: flags 0x{:02X} lack UP (user present)",
        auth_data.flags
    );
    Ok(())
}

/// The credential's COSE key, which must be ES256 (the algorithm the probe asked for), as an
/// uncompressed SEC1 point checked to be on P-256.
fn es256_point(cose_key: &[u8]) -> anyhow::Result<[u8; 65]> {
    match PublicKey::from_cose(cose_key).map_err(|e| anyhow!("authData: {e}"))? {
        PublicKey::Es256(point) => Ok(point),
        other => bail!(
            "authData: credentialPublicKey: {}, expected ES256",
            webauthn::algorithm_name(other.algorithm())
        ),
    }
}

/// The credential makeCredential made, verified.
struct Made {
    id: Vec<u8>,
    /// Its public key, an uncompressed P-256 point.
    public_key: [u8; 65],
    counter: u32,
    /// How the attestation was verified, for the report.
    attestation: String,
}

fn verify_made(
    reply: &[u8],
    client_data_hash: &[u8; 32],
    aaguid: &[u8; 16],
) -> anyhow::Result<Made> {
    let arena = Arena::new();
    let params = reply_map(reply, &arena)?;
    let fmt = text(member(&params, 0x01, "fmt")?, "fmt")?;
    ensure!(fmt == "packed", "fmt: {fmt:?}, expected \"packed\"");
    let raw_auth_data = bytes(member(&params, 0x02, "authData")?, "authData")?;
    let auth_data = AuthData::parse(raw_auth_data).map_err(|e| anyhow!(e))?;
    check_rp_and_presence(&auth_data)?;
    let Some(attested) = &auth_data.attested else {
        bail!(
            "authData: flags 0x{:02X} lack AT (attested credential data)",
            auth_data.flags
        );
    };
    ensure!(
        &attested.aaguid == aaguid,
        "authData: AAGUID {} is not getInfo's {}",
        uuid(&attested.aaguid),
        uuid(aaguid)
    );
    ensure!(!attested.id.is_empty(), "authData: credentialId: empty");
    let public_key = es256_point(attested.public_key)?;

    let statement =
        cbor::map(member(&params, 0x03, "attStmt")?).map_err(|_| anyhow!("attStmt: not a map"))?;
    let field = |name: &str| {
        cbor::member(statement, name).ok_or_else(|| anyhow!("attStmt: {name}: missing"))
    };
    let alg = integer(field("alg")?, "attStmt: alg")?;
    ensure!(alg == ES256, "attStmt: alg {alg}, expected -7 (ES256)");
    let signature = bytes(field("sig")?, "attStmt: sig")?;
    let signed = [raw_auth_data, client_data_hash].concat();
    let attestation = match cbor::member(statement, "x5c") {
        Some(x5c) => {
            let chain = cbor::array(x5c).map_err(|_| anyhow!("attStmt: x5c: not an array"))?;
            let first = chain
                .first()
                .ok_or_else(|| anyhow!("attStmt: x5c: empty"))?;
            let der = bytes(first, "attStmt: x5c[0]")?;
            let (_, certificate) = x509_parser::parse_x509_certificate(der)
                .map_err(|e| anyhow!("attStmt: x5c[0]: not an X.509 certificate: {e}"))?;
            ensure!(
                attestation::x5c_signature_verifies(&certificate, alg, &signed, signature),
                "attStmt: sig does not verify with the x5c[0] certificate's key"
            );
            attestation::aaguid_extension(&certificate, &attested.aaguid)
                .map_err(|e| anyhow!("attStmt: x5c[0]: {e}"))?;
            let subject = certificate
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .unwrap_or("no CN");
            format!("x5c[0] {subject:?}")
        }
        None => {
            ensure!(
                PublicKey::Es256(public_key).verify(&signed, signature),
                "attStmt: sig (self attestation) does not verify with the credential's key"
            );
            "self attestation".into()
        }
    };
    Ok(Made {
        id: attested.id.to_vec(),
        public_key,
        counter: auth_data.counter,
        attestation,
    })
}

/// Verifies a getAssertion reply for `made`; returns its counter.
fn verify_assertion(
    reply: &[u8],
    client_data_hash: &[u8; 32],
    made: &Made,
    last_counter: u32,
) -> anyhow::Result<u32> {
    let arena = Arena::new();
    let params = reply_map(reply, &arena)?;
    // The credential may be left out when the allowList held only it (CTAP 2.1 section 6.2).
    if let Some(credential) = params.get(0x01) {
        let credential = cbor::map(credential).map_err(|_| anyhow!("credential: not a map"))?;
        let id =
            cbor::member(credential, "id").ok_or_else(|| anyhow!("credential: id: missing"))?;
        ensure!(
            bytes(id, "credential: id")? == made.id,
            "credential: id is not the credential made"
        );
    }
    let raw_auth_data = bytes(member(&params, 0x02, "authData")?, "authData")?;
    let auth_data = AuthData::parse(raw_auth_data).map_err(|e| anyhow!(e))?;
    check_rp_and_presence(&auth_data)?;
    ensure!(
        auth_data.attested.is_none(),
        "authData: the AT flag is set in an assertion"
    );
    ensure!(
        auth_data.counter > last_counter,
        "authData: signCount {} is not above the last one, {last_counter}",
        auth_data.counter
    );
    let signature = bytes(member(&params, 0x03, "signature")?, "signature")?;
    ensure!(
        PublicKey::Es256(made.public_key)
            .verify(&[raw_auth_data, client_data_hash].concat(), signature),
        "signature: does not verify with the credential's COSE key"
    );
    Ok(auth_data.counter)
}
