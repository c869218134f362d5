//! Writing CTAP2 canonical CBOR (CTAP 2.1 section 8, "CTAP2 canonical CBOR encoding form"),
//! with the `ciborium` crate's [`Value`]: replies are built as values and written sorted.
//!
//! Shortest integers and lengths, definite lengths, and the keys of every map sorted by major
//! type, then by the length of their encoding, then bytewise (so `1, 3, -1, -2, -3` for a COSE
//! key). python-fido2, libfido2 and Chrome refuse anything else.
use std::convert::Infallible;

pub use ciborium::value::{Integer, Value};

/// A reply's buffer as `minicbor`'s encoder writes into it. (minicbor's own writer for a `Vec`
/// needs its `alloc` feature, which also gives every decoding error a `String`: the reader's
/// hot path then pays for moving and dropping them. This one needs nothing.)
pub struct ReplyWriter<'v>(pub &'v mut Vec<u8>);

impl minicbor::encode::Write for ReplyWriter<'_> {
    type Error = Infallible;
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Infallible> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// `minicbor`'s encoder over a reply's buffer.
pub type ReplyEncoder<'v> = minicbor::Encoder<ReplyWriter<'v>>;

/// What writing a reply returns: it cannot fail.
pub type WriteResult = Result<(), minicbor::encode::Error<Infallible>>;

/// `value` as CTAP2 canonical CBOR: the keys of every map, at every depth, in canonical order.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Appends `value` as CTAP2 canonical CBOR to `out`. The token builds its replies in canonical
/// order already; those are written as they are, anything else is sorted first.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    let mut encoder = minicbor::Encoder::new(ReplyWriter(out));
    // Writing into a Vec cannot fail.
    let _ = if is_canonical(value) {
        write(value, &mut encoder)
    } else {
        write(&canonical(value), &mut encoder)
    };
}

/// Writes `value` as it is, with `minicbor`'s encoder (shortest heads, definite lengths): a
/// reply is written straight into its buffer, without serde between. What CTAP2 never sends
/// (floats) goes through `ciborium`'s own serialiser, whose failure writing into a Vec cannot be.
fn write(value: &Value, encoder: &mut ReplyEncoder) -> WriteResult {
    match value {
        Value::Integer(i) => drop(encoder.i128(i128::from(*i))?),
        Value::Bytes(bytes) => drop(encoder.bytes(bytes)?),
        Value::Text(text) => drop(encoder.str(text)?),
        Value::Bool(b) => drop(encoder.bool(*b)?),
        Value::Null => drop(encoder.null()?),
        Value::Tag(tag, inner) => {
            encoder.tag(minicbor::data::Tag::new(*tag))?;
            write(inner, encoder)?;
        }
        Value::Array(items) => {
            encoder.array(items.len() as u64)?;
            for item in items {
                write(item, encoder)?;
            }
        }
        Value::Map(members) => {
            encoder.map(members.len() as u64)?;
            for (key, member) in members {
                write(key, encoder)?;
                write(member, encoder)?;
            }
        }
        other => {
            let _ = ciborium::ser::into_writer(other, &mut *encoder.writer_mut().0);
        }
    }
    Ok(())
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
}
