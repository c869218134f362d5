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
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};

use super::Step;
use crate::ctap2::cbor::{self, text_map, uint_map, Arena, Item, Parameters, Value};
use crate::transport::TokenTransport;

/// The RP the probe makes its credential for.
pub const RP_ID: &str = "probe.vu2f.invalid";
const ORIGIN: &str = "https://probe.vu2f.invalid";

/// CTAP2 command bytes (CTAP 2.1 section 6).
const MAKE_CREDENTIAL: u8 = 0x01;
const GET_ASSERTION: u8 = 0x02;
const GET_INFO: u8 = 0x04;

/// COSE algorithm ES256, the one the probe asks for.
const ES256: i64 = -7;
/// authData flags (WebAuthn Level 2 section 6.1).
const FLAG_UP: u8 = 0x01;
const FLAG_AT: u8 = 0x40;
const FLAG_ED: u8 = 0x80;
/// The certificate extension id-fido-gen-ce-aaguid (WebAuthn Level 2 section 8.2.1).
const AAGUID_EXTENSION: &str = "1.3.6.1.4.1.45724.1.1.4";

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
    let json = format!(
        r#"{{"type":"{typ}","challenge":"{}","origin":"{ORIGIN}","crossOrigin":false}}"#,
        URL_SAFE_NO_PAD.encode(challenge)
    );
    Ok(sha256(json.as_bytes()))
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest(&SHA256, data).as_ref());
    hash
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
                ("type", Value::Text("public-key".into())),
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
                ("type", Value::Text("public-key".into())),
            ])]),
        ),
    ]);
    [vec![GET_ASSERTION], cbor::encode(&request)].concat()
}

/// The name of a CTAP2 status byte a probe may meet (CTAP 2.1 section 8.2).
fn status_name(status: u8) -> &'static str {
    match status {
        0x01 => "INVALID_COMMAND",
        0x02 => "INVALID_PARAMETER",
        0x11 => "CBOR_UNEXPECTED_TYPE",
        0x12 => "INVALID_CBOR",
        0x14 => "MISSING_PARAMETER",
        0x26 => "UNSUPPORTED_ALGORITHM",
        0x27 => "OPERATION_DENIED",
        0x2B => "UNSUPPORTED_OPTION",
        0x2C => "INVALID_OPTION",
        0x2D => "KEEPALIVE_CANCEL",
        0x2E => "NO_CREDENTIALS",
        0x2F => "USER_ACTION_TIMEOUT",
        0x36 => "PUAT_REQUIRED",
        0x7F => "OTHER",
        _ => "unknown",
    }
}

/// A successful reply's map: status 0, then one CBOR map.
fn reply_map<'a>(reply: &'a [u8], arena: &'a Arena) -> anyhow::Result<Parameters<'a>> {
    let (&status, body) = reply
        .split_first()
        .ok_or_else(|| anyhow!("status: an empty reply"))?;
    ensure!(
        status == 0,
        "status: 0x{status:02X} ({}), expected 0 (OK)",
        status_name(status)
    );
    Parameters::decode(body, arena)
        .map_err(|status| anyhow!("the reply is not one CBOR map: {status}"))
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

/// Authenticator data, split (WebAuthn Level 2 section 6.1).
struct AuthData<'a> {
    rp_id_hash: [u8; 32],
    flags: u8,
    counter: u32,
    attested: Option<Attested<'a>>,
}

/// Attested credential data: AAGUID ‖ id length ‖ id ‖ COSE key.
struct Attested<'a> {
    aaguid: [u8; 16],
    id: &'a [u8],
    public_key: Item<'a>,
}

fn parse_auth_data<'a>(data: &'a [u8], arena: &'a Arena) -> anyhow::Result<AuthData<'a>> {
    ensure!(
        data.len() >= 37,
        "authData: {} bytes, shorter than rpIdHash ‖ flags ‖ signCount",
        data.len()
    );
    let mut rp_id_hash = [0u8; 32];
    rp_id_hash.copy_from_slice(&data[..32]);
    let flags = data[32];
    let counter = u32::from_be_bytes([data[33], data[34], data[35], data[36]]);
    let mut rest = &data[37..];
    let attested = if flags & FLAG_AT != 0 {
        ensure!(
            rest.len() >= 18,
            "authData: the AT flag is set but the attested credential data is cut short"
        );
        let mut aaguid = [0u8; 16];
        aaguid.copy_from_slice(&rest[..16]);
        let id_len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
        rest = &rest[18..];
        ensure!(
            rest.len() >= id_len,
            "authData: credentialId: {id_len} bytes announced, {} there",
            rest.len()
        );
        let id = &rest[..id_len];
        rest = &rest[id_len..];
        let (public_key, length) = Item::decode_prefix(rest, arena)
            .map_err(|e| anyhow!("authData: credentialPublicKey: not CBOR: {e}"))?;
        rest = &rest[length..];
        Some(Attested {
            aaguid,
            id,
            public_key,
        })
    } else {
        None
    };
    ensure!(
        rest.is_empty() || flags & FLAG_ED != 0,
        "authData: {} bytes left over without the ED flag",
        rest.len()
    );
    Ok(AuthData {
        rp_id_hash,
        flags,
        counter,
        attested,
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

/// The member `key` of a COSE key's map.
fn cose_member<'i, 'a>(key: &'i [(Item<'a>, Item<'a>)], label: i64) -> Option<&'i Item<'a>> {
    key.iter()
        .find(|(k, _)| k.as_i64() == Some(label))
        .map(|(_, v)| v)
}

/// An ES256 COSE key `{1: 2, 3: -7, -1: 1, -2: x, -3: y}` as an uncompressed SEC1 point.
fn es256_point(key: &Item) -> anyhow::Result<[u8; 65]> {
    let name = "authData: credentialPublicKey";
    let members = cbor::map(key).map_err(|_| anyhow!("{name}: not a map"))?;
    let int = |label: i64, field: &str, expected: i64| -> anyhow::Result<()> {
        let value = cose_member(members, label)
            .ok_or_else(|| anyhow!("{name}: {field} ({label}) missing"))?;
        let value = integer(value, &format!("{name}: {field}"))?;
        ensure!(
            value == expected,
            "{name}: {field} ({label}) is {value}, expected {expected}"
        );
        Ok(())
    };
    int(1, "kty", 2)?;
    int(3, "alg", ES256)?;
    int(-1, "crv", 1)?;
    let coordinate = |label: i64, field: &str| -> anyhow::Result<&[u8]> {
        let value = cose_member(members, label)
            .ok_or_else(|| anyhow!("{name}: {field} ({label}) missing"))?;
        let value = bytes(value, &format!("{name}: {field}"))?;
        ensure!(
            value.len() == 32,
            "{name}: {field} ({label}) is {} bytes, expected 32",
            value.len()
        );
        Ok(value)
    };
    let mut point = [0x04u8; 65];
    point[1..33].copy_from_slice(coordinate(-2, "x")?);
    point[33..].copy_from_slice(coordinate(-3, "y")?);
    Ok(point)
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
    let auth_data = parse_auth_data(raw_auth_data, &arena)?;
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
    let public_key = es256_point(&attested.public_key)?;

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
            let key = certificate.public_key().subject_public_key.data.as_ref();
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key)
                .verify(&signed, signature)
                .map_err(|_| {
                    anyhow!("attStmt: sig does not verify with the x5c[0] certificate's key")
                })?;
            let extension = certificate
                .extensions()
                .iter()
                .find(|e| e.oid.to_id_string() == AAGUID_EXTENSION);
            if let Some(extension) = extension {
                // The extension's value is an OCTET STRING of the 16 bytes: 04 10 ‖ AAGUID.
                ensure!(
                    extension.value.get(2..) == Some(&attested.aaguid[..])
                        && extension.value.get(..2) == Some(&[0x04, 0x10][..]),
                    "attStmt: x5c[0]: its AAGUID extension is not authData's AAGUID"
                );
            }
            let subject = certificate
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .unwrap_or("no CN");
            format!("x5c[0] {subject:?}")
        }
        None => {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &public_key[..])
                .verify(&signed, signature)
                .map_err(|_| {
                    anyhow!(
                        "attStmt: sig (self attestation) does not verify with the credential's key"
                    )
                })?;
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
    let auth_data = parse_auth_data(raw_auth_data, &arena)?;
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
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &made.public_key[..])
        .verify(&[raw_auth_data, client_data_hash].concat(), signature)
        .map_err(|_| anyhow!("signature: does not verify with the credential's COSE key"))?;
    Ok(auth_data.counter)
}
