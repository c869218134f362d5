//! CTAP2's CBOR (CTAP 2.1 section 8, "Message Encoding"), with the `ciborium` crate: canonical on
//! output, strict on input, every failure the status the spec gives for it.
//!
//! ```text
//!  request   command byte ‖ map { uint key → value, … }     (getInfo, reset, …: command byte alone)
//!  reply     status byte  ‖ map { uint key → value, … }     (an error: the status byte alone)
//! ```
//!
//! **Input** ([`Parameters::decode`]): one map and nothing after it; not CBOR, invalid UTF-8,
//! trailing bytes, a duplicate key or nesting deeper than [`MAX_DEPTH`] → `INVALID_CBOR`; a member
//! of the wrong type → `CBOR_UNEXPECTED_TYPE`; a required member absent → `MISSING_PARAMETER`.
//! Keys come in any order and unknown ones are ignored, as hosts expect.
//!
//! **Output** ([`encode`]): CTAP2 canonical CBOR: shortest integers and lengths, definite lengths,
//! and the keys of every map sorted by major type, then by the length of their encoding, then
//! bytewise (so `1, 3, -1, -2, -3` for a COSE key). python-fido2, libfido2 and Chrome refuse
//! anything else.
pub use ciborium::value::{Integer, Value};

use super::status::Status;

/// Deepest nesting a request may have (a makeCredential's extensions are three levels down).
pub const MAX_DEPTH: usize = 8;

/// The members of a request map, by key.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameters {
    members: Vec<(Value, Value)>,
}

impl Parameters {
    /// Reads a request's parameters: exactly one CBOR map. An empty input is an empty map, for
    /// commands whose parameters are all optional.
    pub fn decode(bytes: &[u8]) -> Result<Self, Status> {
        if bytes.is_empty() {
            return Ok(Self {
                members: Vec::new(),
            });
        }
        let mut rest = bytes;
        let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_DEPTH)
            .map_err(|_| Status::InvalidCbor)?;
        if !rest.is_empty() {
            return Err(Status::InvalidCbor);
        }
        check_no_duplicate_keys(&value)?;
        match value {
            Value::Map(members) => Ok(Self { members }),
            _ => Err(Status::CborUnexpectedType),
        }
    }

    /// The member under the unsigned key `key`, if present.
    pub fn get(&self, key: u64) -> Option<&Value> {
        self.members
            .iter()
            .find(|(k, _)| k.as_integer() == Some(Integer::from(key)))
            .map(|(_, v)| v)
    }

    /// The member under `key`, or `MISSING_PARAMETER`.
    pub fn required(&self, key: u64) -> Result<&Value, Status> {
        self.get(key).ok_or(Status::MissingParameter)
    }
}

/// `INVALID_CBOR` if a map anywhere in `value` has a key twice. Request maps have a handful of
/// keys, so comparing each pair costs less than sorting their encodings.
fn check_no_duplicate_keys(value: &Value) -> Result<(), Status> {
    match value {
        Value::Map(members) => {
            for (index, (key, _)) in members.iter().enumerate() {
                if members[index + 1..].iter().any(|(other, _)| other == key) {
                    return Err(Status::InvalidCbor);
                }
            }
            members
                .iter()
                .try_for_each(|(_, v)| check_no_duplicate_keys(v))
        }
        Value::Array(items) => items.iter().try_for_each(check_no_duplicate_keys),
        Value::Tag(_, inner) => check_no_duplicate_keys(inner),
        _ => Ok(()),
    }
}

/// A byte string, or `CBOR_UNEXPECTED_TYPE`.
pub fn bytes(value: &Value) -> Result<&[u8], Status> {
    value
        .as_bytes()
        .map(Vec::as_slice)
        .ok_or(Status::CborUnexpectedType)
}

/// A text string, or `CBOR_UNEXPECTED_TYPE`.
pub fn text(value: &Value) -> Result<&str, Status> {
    value.as_text().ok_or(Status::CborUnexpectedType)
}

/// A boolean, or `CBOR_UNEXPECTED_TYPE`.
pub fn boolean(value: &Value) -> Result<bool, Status> {
    value.as_bool().ok_or(Status::CborUnexpectedType)
}

/// An integer that fits an `i64`, or `CBOR_UNEXPECTED_TYPE`.
pub fn integer(value: &Value) -> Result<i64, Status> {
    value
        .as_integer()
        .and_then(|i| i64::try_from(i).ok())
        .ok_or(Status::CborUnexpectedType)
}

/// An array, or `CBOR_UNEXPECTED_TYPE`.
pub fn array(value: &Value) -> Result<&[Value], Status> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or(Status::CborUnexpectedType)
}

/// A map's members, or `CBOR_UNEXPECTED_TYPE`.
pub fn map(value: &Value) -> Result<&[(Value, Value)], Status> {
    value
        .as_map()
        .map(Vec::as_slice)
        .ok_or(Status::CborUnexpectedType)
}

/// The member of `members` under the text key `key`, if present.
pub fn member<'a>(members: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    members
        .iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
}

/// `value` as CTAP2 canonical CBOR: the keys of every map, at every depth, in canonical order.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Appends `value` as CTAP2 canonical CBOR to `out`. The token builds its replies in canonical
/// order already; those are written as they are, anything else is sorted first.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, and every Value is serialisable.
    if is_canonical(value) {
        let _ = ciborium::ser::into_writer(value, out);
    } else {
        let _ = ciborium::ser::into_writer(&canonical(value), out);
    }
}

/// The canonical order of two map keys: major type, then the length of the encoding, then its
/// bytes. For the keys CTAP2 uses (integers, text, bytes) that is the order of (major type,
/// length of the content, content), so no encoding is needed to compare them.
fn key_order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    fn rank(key: &Value) -> Option<(u8, u128, &[u8])> {
        match key {
            Value::Integer(i) => {
                let i = i128::from(*i);
                Some(if i >= 0 {
                    (0, i as u128, &[][..])
                } else {
                    (1, (-1 - i) as u128, &[][..])
                })
            }
            Value::Bytes(b) => Some((2, b.len() as u128, b.as_slice())),
            Value::Text(t) => Some((3, t.len() as u128, t.as_bytes())),
            _ => None,
        }
    }
    Some(rank(a)?.cmp(&rank(b)?))
}

/// Whether every map in `value` has its keys in strictly increasing canonical order.
fn is_canonical(value: &Value) -> bool {
    match value {
        Value::Map(members) => {
            members
                .windows(2)
                .all(|pair| key_order(&pair[0].0, &pair[1].0) == Some(std::cmp::Ordering::Less))
                && members
                    .iter()
                    .all(|(k, v)| is_canonical(k) && is_canonical(v))
        }
        Value::Array(items) => items.iter().all(is_canonical),
        Value::Tag(_, inner) => is_canonical(inner),
        _ => true,
    }
}

/// A copy of `value` with every map's keys in canonical order: major type, then encoded length,
/// then bytewise (CTAP 2.1 section 8, "CTAP2 canonical CBOR encoding form").
fn canonical(value: &Value) -> Value {
    match value {
        Value::Map(members) => {
            let mut sorted: Vec<(Vec<u8>, Value, Value)> = members
                .iter()
                .map(|(k, v)| (encode(k), canonical(k), canonical(v)))
                .collect();
            sorted.sort_by(|(a, _, _), (b, _, _)| {
                let major = |e: &[u8]| e.first().map_or(0, |b| b >> 5);
                (major(a), a.len(), a).cmp(&(major(b), b.len(), b))
            });
            Value::Map(sorted.into_iter().map(|(_, k, v)| (k, v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        Value::Tag(tag, inner) => Value::Tag(*tag, Box::new(canonical(inner))),
        other => other.clone(),
    }
}

/// A map with unsigned keys, in the order given (sorted by [`encode`]).
pub fn uint_map(members: impl IntoIterator<Item = (u64, Value)>) -> Value {
    Value::Map(
        members
            .into_iter()
            .map(|(k, v)| (Value::Integer(k.into()), v))
            .collect(),
    )
}

/// A map with integer keys, in the order given (sorted by [`encode`]): a COSE key.
pub fn int_map(members: impl IntoIterator<Item = (i64, Value)>) -> Value {
    Value::Map(
        members
            .into_iter()
            .map(|(k, v)| (Value::Integer(k.into()), v))
            .collect(),
    )
}

/// A map with text keys, in the order given (sorted by [`encode`]).
pub fn text_map<'a>(members: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    Value::Map(
        members
            .into_iter()
            .map(|(k, v)| (Value::Text(k.into()), v))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ES256 COSE key in canonical form (CTAP2.md section 6): `a5 01 02 03 26 20 01 21 …`.
    #[test]
    fn a_cose_key_comes_out_in_canonical_order_whatever_the_order_in() {
        let x = Value::Bytes(vec![0xAA; 32]);
        let y = Value::Bytes(vec![0xBB; 32]);
        let key = Value::Map(vec![
            (Value::Integer((-3).into()), y),
            (Value::Integer((-1).into()), Value::Integer(1.into())),
            (Value::Integer(3.into()), Value::Integer((-7).into())),
            (Value::Integer((-2).into()), x),
            (Value::Integer(1.into()), Value::Integer(2.into())),
        ]);
        let encoded = encode(&key);
        assert_eq!(
            &encoded[..10],
            &[0xA5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20]
        );
        assert_eq!(encoded.len(), 77);
    }

    /// getInfo's options as python-fido2 orders them: shorter keys first, then bytewise.
    #[test]
    fn text_keys_sort_by_length_then_bytes() {
        let options = text_map([
            ("plat", Value::Bool(false)),
            ("uv", Value::Bool(true)),
            ("rk", Value::Bool(true)),
            ("up", Value::Bool(true)),
            ("ep", Value::Bool(false)),
        ]);
        let Value::Map(sorted) = canonical(&options) else {
            unreachable!()
        };
        let keys: Vec<&str> = sorted.iter().filter_map(|(k, _)| k.as_text()).collect();
        assert_eq!(keys, ["ep", "rk", "up", "uv", "plat"]);
    }

    /// The shortcut that compares keys without encoding them agrees with the encodings' order.
    #[test]
    fn key_order_is_the_order_of_the_encodings() {
        let keys = [
            Value::Integer(0.into()),
            Value::Integer(23.into()),
            Value::Integer(24.into()),
            Value::Integer(300.into()),
            Value::Integer((-1).into()),
            Value::Integer((-25).into()),
            Value::Bytes(vec![1]),
            Value::Bytes(vec![0; 30]),
            Value::Text("up".into()),
            Value::Text("uv".into()),
            Value::Text("plat".into()),
            Value::Text("x".repeat(30)),
        ];
        for a in &keys {
            for b in &keys {
                let (ea, eb) = (encode(a), encode(b));
                let major = |e: &[u8]| e[0] >> 5;
                let by_encoding = (major(&ea), ea.len(), &ea).cmp(&(major(&eb), eb.len(), &eb));
                assert_eq!(key_order(a, b), Some(by_encoding), "{a:?} against {b:?}");
            }
        }
        let unsorted = uint_map([(2, Value::Null), (1, Value::Null)]);
        assert!(!is_canonical(&unsorted));
        assert_eq!(encode(&unsorted), [0xA2, 0x01, 0xF6, 0x02, 0xF6]);
    }

    #[test]
    fn malformed_input_gets_the_specs_status() {
        assert_eq!(Parameters::decode(&[0xA1]), Err(Status::InvalidCbor));
        assert_eq!(
            Parameters::decode(&[0xA0, 0x00]),
            Err(Status::InvalidCbor),
            "trailing bytes"
        );
        assert_eq!(
            Parameters::decode(&[0xA2, 0x01, 0x01, 0x01, 0x02]),
            Err(Status::InvalidCbor),
            "a duplicate key"
        );
        assert_eq!(
            Parameters::decode(&[0x62, 0xC3, 0x28]),
            Err(Status::InvalidCbor),
            "invalid UTF-8"
        );
        assert_eq!(
            Parameters::decode(&[0x80]),
            Err(Status::CborUnexpectedType),
            "an array, not a map"
        );
        let deep = [vec![0x81; MAX_DEPTH + 1], vec![0x01]].concat();
        let nested = [vec![0xA1, 0x01], deep].concat();
        assert_eq!(Parameters::decode(&nested), Err(Status::InvalidCbor));
        let params = Parameters::decode(&[0xA2, 0x01, 0x41, 0x07, 0x02, 0xF5]).unwrap();
        assert_eq!(bytes(params.required(1).unwrap()), Ok(&[7u8][..]));
        assert_eq!(boolean(params.required(2).unwrap()), Ok(true));
        assert_eq!(
            text(params.required(2).unwrap()),
            Err(Status::CborUnexpectedType)
        );
        assert_eq!(params.required(3), Err(Status::MissingParameter));
        assert_eq!(Parameters::decode(&[]).unwrap().get(1), None);
    }
}
