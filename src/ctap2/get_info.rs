//! authenticatorGetInfo (CTAP 2.1 section 6.4; CTAP2.md section 3): what the token claims, and
//! nothing it cannot do (hosts act on every member).
//!
//! ```text
//!  0x01 versions          ["U2F_V2" (not with alwaysUv), "FIDO_2_0", "FIDO_2_1"]
//!  0x02 extensions        credBlob, credProtect, hmac-secret, hmac-secret-mc, largeBlobKey,
//!                         minPinLength
//!  0x03 aaguid            the store's AAGUID (16 bytes)
//!  0x04 options           {rk: true (false when turned off), up: true, uv: true (only with
//!                          built-in UV), plat: false, alwaysUv, credMgmt: true, authnrCfg: true,
//!                          clientPin: whether a PIN is set, pinUvAuthToken: true, largeBlobs:
//!                          true (only with rk), setMinPINLength: true,
//!                          makeCredUvNotRqd: not alwaysUv, credentialMgmtPreview: true}
//!  0x05 maxMsgSize        1200
//!  0x06 pinUvAuthProtocols [2, 1]
//!  0x07 maxCredentialCountInList, 0x08 maxCredentialIdLength (162: a version-3 id)
//!  0x09 transports        ["usb"]
//!  0x0A algorithms        [{alg: -7, type: "public-key"}, {alg: -8, type: "public-key"}]
//!  0x0B maxSerializedLargeBlobArray 4096
//!  0x0C forcePINChange    whether the PIN must be changed before it gives a token again
//!  0x0D minPINLength      4, or what setMinPINLength raised it to
//!  0x0E firmwareVersion   the crate's version, as MMmmpp
//!  0x0F maxCredBlobLength 32
//!  0x10 maxRPIDsForSetMinPINLength  8
//!  0x11 preferredPlatformUVAttempts 3   } only with built-in UV
//!  0x12 uvModality        2 (fingerprint)  } (`super::built_in_uv`)
//!  0x14 remainingDiscoverableCredentials
//! ```
//! `clientPin` is `false` on a token without a PIN (it can have one: CTAP 2.1 §6.4), which
//! python-fido2's Fido2Client takes for "user verification supported but not configured" and
//! refuses `userVerification: "preferred"` on, as on any such key; `uv` only when the token has
//! built-in user verification (python-fido2 takes `uv: false` for "not configured").
//! `makeCredUvNotRqd`: a token with a PIN makes non-discoverable credentials without one, as
//! CTAP 2.1 says it SHOULD, so that browsers need not fall back to U2F for them; with alwaysUv
//! it does not (§6.11.2), and U2F is off (`shared/spec/CTAP2.md` §12). No `ep`: the token offers
//! no enterprise attestation, and authenticatorConfig's enableEnterpriseAttestation is refused.
//! `credentialMgmtPreview` tells hosts that know only the preview command (0x41) that it works
//! too; "FIDO_2_1_PRE" is not listed, as FIDO_2_1 covers everything the preview had.
use super::built_in_uv::{PREFERRED_PLATFORM_UV_ATTEMPTS, UV_MODALITY};
use super::cbor::{text_map, uint_map, Value};
use super::cose::Algorithm;
use super::extensions::SUPPORTED as SUPPORTED_EXTENSIONS;
use super::pin_protocol::PinUvAuthProtocol;

/// The largest request the token takes, as getInfo announces it.
pub const MAX_MSG_SIZE: u64 = 1200;
/// How many credentials an allow or exclude list may carry in one request.
pub const MAX_CREDENTIAL_COUNT_IN_LIST: u64 = 16;

/// What getInfo depends on.
pub struct Facts {
    /// The token's AAGUID.
    pub aaguid: [u8; 16],
    /// Whether the token has built-in user verification.
    pub built_in_uv: bool,
    /// Whether the token makes discoverable credentials (`rk`; without them, no `largeBlobs`:
    /// Chrome drops a getInfo that has largeBlobs without rk).
    pub resident_keys: bool,
    /// Whether the token has a PIN.
    pub pin_set: bool,
    /// How many more discoverable credentials fit.
    pub remaining_discoverable: usize,
    /// What authenticatorConfig set.
    pub settings: keystore::TokenConfig,
}

/// The version numbers of this build as one integer: 1.2.3 is 10203.
pub fn firmware_version() -> u64 {
    let part = |s: &str| s.parse::<u64>().unwrap_or(0);
    part(env!("CARGO_PKG_VERSION_MAJOR")) * 10_000
        + part(env!("CARGO_PKG_VERSION_MINOR")) * 100
        + part(env!("CARGO_PKG_VERSION_PATCH"))
}

/// The options getInfo claims, in the order written (`token show` lists them too).
pub fn options(facts: &Facts) -> Vec<(&'static str, bool)> {
    let always_uv = facts.settings.always_uv;
    let rk = facts.resident_keys;
    let mut options = vec![("rk", rk), ("up", true), ("plat", false)];
    if facts.built_in_uv {
        options.push(("uv", true));
    }
    options.extend([
        ("alwaysUv", always_uv),
        ("credMgmt", true),
        ("authnrCfg", true),
        ("clientPin", facts.pin_set),
        ("pinUvAuthToken", true),
    ]);
    if rk {
        options.push(("largeBlobs", true));
    }
    options.extend([
        ("setMinPINLength", true),
        ("makeCredUvNotRqd", !always_uv),
        ("credentialMgmtPreview", true),
    ]);
    options
}

/// The getInfo reply's CBOR map.
pub fn info(facts: &Facts) -> Value {
    let settings = &facts.settings;
    let u2f = (!settings.always_uv).then_some("U2F_V2");
    let versions = u2f
        .into_iter()
        .chain(["FIDO_2_0", "FIDO_2_1"])
        .map(|v| Value::Text(v.into()))
        .collect();
    let options = options(facts)
        .into_iter()
        .map(|(name, value)| (name, Value::Bool(value)))
        .collect::<Vec<_>>();
    let protocols = PinUvAuthProtocol::SUPPORTED
        .map(|p| Value::Integer((p as u8).into()))
        .to_vec();
    let built_in_uv = facts.built_in_uv.then(|| {
        [
            (0x11, Value::Integer(PREFERRED_PLATFORM_UV_ATTEMPTS.into())),
            (0x12, Value::Integer(UV_MODALITY.into())),
        ]
    });
    uint_map(
        [
            (0x01, Value::Array(versions)),
            (
                0x02,
                Value::Array(SUPPORTED_EXTENSIONS.map(|e| Value::Text(e.into())).to_vec()),
            ),
            (0x03, Value::Bytes(facts.aaguid.to_vec())),
            (0x04, text_map(options)),
            (0x05, Value::Integer(MAX_MSG_SIZE.into())),
            (0x06, Value::Array(protocols)),
            (0x07, Value::Integer(MAX_CREDENTIAL_COUNT_IN_LIST.into())),
            (
                0x08,
                Value::Integer((keystore::MAX_ISSUED_ID_LEN as u64).into()),
            ),
            (0x09, Value::Array(vec![Value::Text("usb".into())])),
            (
                0x0A,
                Value::Array(Algorithm::SUPPORTED.map(Algorithm::parameters).to_vec()),
            ),
            (
                0x0B,
                Value::Integer((keystore::MAX_SERIALIZED_LARGE_BLOB_ARRAY as u64).into()),
            ),
            (0x0C, Value::Bool(settings.force_pin_change)),
            (0x0D, Value::Integer(settings.min_pin_length.into())),
            (0x0E, Value::Integer(firmware_version().into())),
            (
                0x0F,
                Value::Integer((keystore::MAX_CRED_BLOB_LEN as u64).into()),
            ),
            (
                0x10,
                Value::Integer((keystore::MAX_MIN_PIN_LENGTH_RP_IDS as u64).into()),
            ),
            (
                0x14,
                Value::Integer((facts.remaining_discoverable as u64).into()),
            ),
        ]
        .into_iter()
        .chain(built_in_uv.into_iter().flatten()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctap2::cbor::{self, Item, Parameters};

    #[test]
    fn info_lists_uv_only_with_built_in_uv_and_decodes_strictly() {
        let facts = Facts {
            aaguid: [7; 16],
            built_in_uv: false,
            resident_keys: true,
            pin_set: false,
            remaining_discoverable: 100,
            settings: keystore::TokenConfig::default(),
        };
        let arena = cbor::Arena::new();
        let encoded = cbor::encode(&info(&facts));
        let params = Parameters::decode(&encoded, &arena).unwrap();
        assert_eq!(cbor::bytes(params.get(3).unwrap()), Ok(&[7u8; 16][..]));
        let options = cbor::map(params.get(4).unwrap()).unwrap();
        assert!(cbor::member(options, "uv").is_none());
        assert_eq!(cbor::member(options, "rk"), Some(&Item::Bool(true)));
        assert_eq!((params.get(0x11), params.get(0x12)), (None, None));
        let encoded = cbor::encode(&info(&Facts {
            built_in_uv: true,
            ..facts
        }));
        let with_uv = Parameters::decode(&encoded, &arena).unwrap();
        let options = cbor::map(with_uv.get(4).unwrap()).unwrap();
        assert_eq!(cbor::member(options, "uv"), Some(&Item::Bool(true)));
        assert_eq!(with_uv.get(0x11), Some(&Item::Unsigned(3)));
        assert_eq!(with_uv.get(0x12), Some(&Item::Unsigned(2)));
    }

    /// A token without discoverable credentials says `rk: false` and drops `largeBlobs`, which
    /// Chrome refuses without rk.
    #[test]
    fn info_without_resident_keys_says_rk_false_and_no_large_blobs() {
        let facts = |resident_keys| Facts {
            aaguid: [7; 16],
            built_in_uv: false,
            resident_keys,
            pin_set: false,
            remaining_discoverable: 1,
            settings: keystore::TokenConfig::default(),
        };
        let arena = cbor::Arena::new();
        for rk in [true, false] {
            let encoded = cbor::encode(&info(&facts(rk)));
            let params = Parameters::decode(&encoded, &arena).unwrap();
            let options = cbor::map(params.get(4).unwrap()).unwrap();
            assert_eq!(cbor::member(options, "rk"), Some(&Item::Bool(rk)));
            assert_eq!(
                cbor::member(options, "largeBlobs").is_some(),
                rk,
                "largeBlobs only with rk"
            );
        }
    }

    #[test]
    fn info_tells_the_pin_state_and_the_protocols() {
        let facts = |pin_set| Facts {
            aaguid: [7; 16],
            built_in_uv: false,
            resident_keys: true,
            pin_set,
            remaining_discoverable: 1,
            settings: keystore::TokenConfig::default(),
        };
        let arena = cbor::Arena::new();
        for pin_set in [false, true] {
            let encoded = cbor::encode(&info(&facts(pin_set)));
            let params = Parameters::decode(&encoded, &arena).unwrap();
            let options = cbor::map(params.get(4).unwrap()).unwrap();
            assert_eq!(
                cbor::member(options, "clientPin"),
                Some(&Item::Bool(pin_set))
            );
            assert_eq!(
                cbor::member(options, "pinUvAuthToken"),
                Some(&Item::Bool(true))
            );
            assert_eq!(
                params.get(6),
                Some(&Item::Array(&[Item::Unsigned(2), Item::Unsigned(1)]))
            );
            assert_eq!(params.get(0x0D), Some(&Item::Unsigned(4)));
        }
    }
}
