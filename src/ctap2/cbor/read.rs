//! Reading CTAP2 CBOR (CTAP 2.1 section 8): a request's parameters, strictly, with the `minicbor`
//! crate's decoder, into [`Item`]s that borrow every byte and text string from the input.
//!
//! Borrowing is what makes it cheap: strings are not copied, and the items of arrays and maps
//! go into an [`Arena`] (`bumpalo`) that the caller keeps and empties between requests, so that
//! a token reads its requests without allocating and drops them without walking them. Items are
//! `Copy`. Only what a command keeps past its reply (a pending makeCredential's user, a
//! credential id for getNextAssertion) is copied, by the command.
//!
//! ```text
//!  well-formed, one map, nothing after it          else INVALID_CBOR (CBOR_UNEXPECTED_TYPE
//!  definite lengths only, UTF-8 text                    for one item that is not a map)
//!  no map with a key twice, at any depth
//!  at most MAX_DEPTH levels of maps, arrays and tags
//! ```
use bumpalo::collections::Vec as ArenaVec;
use minicbor::data::Type;
use minicbor::Decoder;

/// Where the items of a request's arrays and maps are kept while it is read and handled.
pub use bumpalo::Bump as Arena;

use super::super::status::Status;

/// Deepest nesting a request may have (a makeCredential's extensions are three levels down).
pub const MAX_DEPTH: usize = 8;

/// One CBOR data item of a request. Byte and text strings borrow from the request, the items of
/// arrays and maps from the [`Arena`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Item<'a> {
    /// An unsigned integer (major type 0).
    Unsigned(u64),
    /// A negative integer, -1 - n (major type 1), kept as n: the whole range of CBOR's
    /// negative integers, down to -2^64.
    Negative(u64),
    /// A byte string.
    Bytes(&'a [u8]),
    /// A text string.
    Text(&'a str),
    /// An array.
    Array(&'a [Item<'a>]),
    /// A map's members, in the order they came.
    Map(&'a [(Item<'a>, Item<'a>)]),
    /// `true` or `false`.
    Bool(bool),
    /// Anything no CTAP2 member ever is (null, undefined, a float, another simple value, a tagged
    /// item), kept as its encoding so that two such map keys still compare by value.
    Other(&'a [u8]),
}

impl<'a> Item<'a> {
    /// The bytes of a byte string.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Item::Bytes(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// The text of a text string.
    pub fn as_text(&self) -> Option<&'a str> {
        match self {
            Item::Text(text) => Some(text),
            _ => None,
        }
    }

    /// An integer that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Item::Unsigned(n) => i64::try_from(n).ok(),
            Item::Negative(n) => i64::try_from(n).ok().map(|n| -1 - n),
            _ => None,
        }
    }

    /// A boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Item::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// An array's items.
    pub fn as_array(&self) -> Option<&'a [Item<'a>]> {
        match *self {
            Item::Array(items) => Some(items),
            _ => None,
        }
    }

    /// A map's members.
    pub fn as_map(&self) -> Option<&'a [(Item<'a>, Item<'a>)]> {
        match *self {
            Item::Map(members) => Some(members),
            _ => None,
        }
    }

    /// Reads one item at the start of `bytes`; returns it and how many bytes it took. For CBOR
    /// that is followed by other data, such as the COSE key inside authenticator data.
    pub fn decode_prefix(bytes: &'a [u8], arena: &'a Arena) -> Result<(Self, usize), Status> {
        let mut decoder = Decoder::new(bytes);
        let mut item = Item::Bool(false);
        read_into(&mut decoder, arena, 1, &mut item)?;
        Ok((item, decoder.position()))
    }
}

/// The members of a request map, by key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Parameters<'a> {
    members: &'a [(Item<'a>, Item<'a>)],
}

impl<'a> Parameters<'a> {
    /// Reads a request's parameters: exactly one CBOR map, its containers' items in `arena`. An
    /// empty input is an empty map, for commands whose parameters are all optional.
    pub fn decode(bytes: &'a [u8], arena: &'a Arena) -> Result<Self, Status> {
        if bytes.is_empty() {
            return Ok(Self { members: &[] });
        }
        let (item, length) = Item::decode_prefix(bytes, arena)?;
        if length != bytes.len() {
            return Err(Status::InvalidCbor);
        }
        match item {
            Item::Map(members) => Ok(Self { members }),
            _ => Err(Status::CborUnexpectedType),
        }
    }

    /// The member under the unsigned key `key`, if present.
    pub fn get(&self, key: u64) -> Option<&'a Item<'a>> {
        self.members
            .iter()
            .find(|(k, _)| matches!(k, Item::Unsigned(n) if *n == key))
            .map(|(_, v)| v)
    }

    /// The member under `key`, or `MISSING_PARAMETER`.
    pub fn required(&self, key: u64) -> Result<&'a Item<'a>, Status> {
        self.get(key).ok_or(Status::MissingParameter)
    }
}

/// The bytes, exactly as sent, of the member under the unsigned key `key` of the map `bytes`
/// holds (one that [`Parameters::decode`] read): what a pinUvAuthParam over a subcommand's
/// parameters is computed on (CTAP 2.1 §6.8, §6.11). `None` when absent or not a map.
pub fn raw_member(bytes: &[u8], key: u64) -> Option<&[u8]> {
    let mut decoder = Decoder::new(bytes);
    let length = decoder.map().ok()??;
    for _ in 0..length {
        let this = match decoder.datatype().ok()? {
            Type::U8 | Type::U16 | Type::U32 | Type::U64 => decoder.u64().ok(),
            _ => {
                decoder.skip().ok()?;
                None
            }
        };
        let start = decoder.position();
        decoder.skip().ok()?;
        if this == Some(key) {
            return Some(&bytes[start..decoder.position()]);
        }
    }
    None
}

/// An unsigned integer, or `CBOR_UNEXPECTED_TYPE`.
pub fn unsigned(item: &Item) -> Result<u64, Status> {
    match *item {
        Item::Unsigned(n) => Ok(n),
        _ => Err(Status::CborUnexpectedType),
    }
}

/// Reads the item at the decoder's position into `slot`, `depth` levels down (the outermost is
/// 1; an array, map or tag deeper than [`MAX_DEPTH`] is refused), the items of an array or map
/// into `arena`. Each item is written where it stays rather than returned: copying an item just
/// returned stalls the processor (the copy reads in 16-byte words what was written in 8-byte
/// ones), and that was a third of the reading time.
fn read_into<'a>(
    decoder: &mut Decoder<'a>,
    arena: &'a Arena,
    depth: usize,
    slot: &mut Item<'a>,
) -> Result<(), Status> {
    let malformed = |_| Status::InvalidCbor;
    let start = decoder.position();
    let kind = decoder.datatype().map_err(malformed)?;
    if matches!(kind, Type::Array | Type::Map | Type::Tag) && depth > MAX_DEPTH {
        return Err(Status::InvalidCbor);
    }
    match kind {
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => {
            *slot = Item::Unsigned(decoder.u64().map_err(malformed)?);
        }
        Type::I8 | Type::I16 | Type::I32 | Type::I64 | Type::Int => {
            let value = i128::from(decoder.int().map_err(malformed)?);
            *slot = Item::Negative(u64::try_from(-1 - value).map_err(|_| Status::InvalidCbor)?);
        }
        Type::Bytes => *slot = Item::Bytes(decoder.bytes().map_err(malformed)?),
        Type::String => *slot = Item::Text(decoder.str().map_err(malformed)?),
        Type::Bool => *slot = Item::Bool(decoder.bool().map_err(malformed)?),
        Type::Array => {
            let (length, room) = definite(decoder.array().map_err(malformed)?, decoder)?;
            let mut items = ArenaVec::with_capacity_in(room, arena);
            for index in 0..length {
                items.push(Item::Bool(false));
                read_into(decoder, arena, depth + 1, &mut items[index])?;
            }
            *slot = Item::Array(items.into_bump_slice());
        }
        Type::Map => {
            let (length, room) = definite(decoder.map().map_err(malformed)?, decoder)?;
            let mut members = ArenaVec::with_capacity_in(room, arena);
            for index in 0..length {
                members.push((Item::Bool(false), Item::Bool(false)));
                let (earlier, last) = members.split_at_mut(index);
                let (key, value) = &mut last[0];
                read_into(decoder, arena, depth + 1, key)?;
                if earlier.iter().any(|(other, _)| same_key(other, key)) {
                    return Err(Status::InvalidCbor);
                }
                read_into(decoder, arena, depth + 1, value)?;
            }
            *slot = Item::Map(members.into_bump_slice());
        }
        Type::Tag => {
            decoder.tag().map_err(malformed)?;
            read_into(decoder, arena, depth + 1, slot)?;
            *slot = Item::Other(&decoder.input()[start..decoder.position()]);
        }
        Type::Null | Type::Undefined | Type::Simple | Type::F16 | Type::F32 | Type::F64 => {
            decoder.skip().map_err(malformed)?;
            *slot = Item::Other(&decoder.input()[start..decoder.position()]);
        }
        Type::BytesIndef
        | Type::StringIndef
        | Type::ArrayIndef
        | Type::MapIndef
        | Type::Break
        | Type::Unknown(_) => return Err(Status::InvalidCbor),
    }
    Ok(())
}

/// Whether two map keys are the same: integers and text strings (every key CTAP2 uses) compared
/// at once, anything else as [`Item`]s.
fn same_key(a: &Item, b: &Item) -> bool {
    match (a, b) {
        (Item::Unsigned(a), Item::Unsigned(b)) | (Item::Negative(a), Item::Negative(b)) => a == b,
        (Item::Text(a), Item::Text(b)) => a == b,
        _ => a == b,
    }
}

/// Most members a request's array or map starts with room for; a longer one grows.
const CAPACITY_LIMIT: usize = 16;

/// The length of an array or map, and the room to make for it: indefinite lengths are not CTAP2
/// CBOR, and a length longer than the bytes left (each item takes one at least) cannot be
/// well-formed. The room is capped, so that nested containers announcing long lengths cannot make
/// the reader reserve more than the request could fill.
fn definite(length: Option<u64>, decoder: &Decoder) -> Result<(usize, usize), Status> {
    let left = decoder.input().len() - decoder.position();
    match length {
        Some(length) if length <= left as u64 => {
            let length = length as usize;
            Ok((length, length.min(CAPACITY_LIMIT)))
        }
        _ => Err(Status::InvalidCbor),
    }
}

/// A byte string, or `CBOR_UNEXPECTED_TYPE`.
pub fn bytes<'a>(item: &Item<'a>) -> Result<&'a [u8], Status> {
    item.as_bytes().ok_or(Status::CborUnexpectedType)
}

/// A text string, or `CBOR_UNEXPECTED_TYPE`.
pub fn text<'a>(item: &Item<'a>) -> Result<&'a str, Status> {
    item.as_text().ok_or(Status::CborUnexpectedType)
}

/// A boolean, or `CBOR_UNEXPECTED_TYPE`.
pub fn boolean(item: &Item) -> Result<bool, Status> {
    item.as_bool().ok_or(Status::CborUnexpectedType)
}

/// An integer that fits an `i64`, or `CBOR_UNEXPECTED_TYPE`.
pub fn integer(item: &Item) -> Result<i64, Status> {
    item.as_i64().ok_or(Status::CborUnexpectedType)
}

/// An array, or `CBOR_UNEXPECTED_TYPE`.
pub fn array<'a>(item: &Item<'a>) -> Result<&'a [Item<'a>], Status> {
    item.as_array().ok_or(Status::CborUnexpectedType)
}

/// A map's members, or `CBOR_UNEXPECTED_TYPE`.
pub fn map<'a>(item: &Item<'a>) -> Result<&'a [(Item<'a>, Item<'a>)], Status> {
    item.as_map().ok_or(Status::CborUnexpectedType)
}

/// The member of `members` under the integer key `label` (a COSE_Key's, an extension input's),
/// if present.
pub fn int_member<'i, 'a>(members: &'i [(Item<'a>, Item<'a>)], label: i64) -> Option<&'i Item<'a>> {
    members
        .iter()
        .find(|(k, _)| k.as_i64() == Some(label))
        .map(|(_, v)| v)
}

/// The member of `members` under the text key `key`, if present.
pub fn member<'i, 'a>(members: &'i [(Item<'a>, Item<'a>)], key: &str) -> Option<&'i Item<'a>> {
    members
        .iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_input_gets_the_specs_status() {
        let arena = Arena::new();
        assert_eq!(
            Parameters::decode(&[0xA1], &arena),
            Err(Status::InvalidCbor)
        );
        assert_eq!(
            Parameters::decode(&[0xA0, 0x00], &arena),
            Err(Status::InvalidCbor),
            "trailing bytes"
        );
        assert_eq!(
            Parameters::decode(&[0xA2, 0x01, 0x01, 0x01, 0x02], &arena),
            Err(Status::InvalidCbor),
            "a duplicate key"
        );
        assert_eq!(
            Parameters::decode(&[0xA2, 0x01, 0x01, 0x18, 0x01, 0x02], &arena),
            Err(Status::InvalidCbor),
            "a duplicate key, once in a longer encoding"
        );
        assert_eq!(
            Parameters::decode(&[0xA1, 0x01, 0xA2, 0xF6, 0x01, 0xF6, 0x02], &arena),
            Err(Status::InvalidCbor),
            "a duplicate null key, one level down"
        );
        assert_eq!(
            Parameters::decode(&[0x62, 0xC3, 0x28], &arena),
            Err(Status::InvalidCbor),
            "invalid UTF-8"
        );
        assert_eq!(
            Parameters::decode(&[0xBF, 0xFF], &arena),
            Err(Status::InvalidCbor),
            "an indefinite length"
        );
        assert_eq!(
            Parameters::decode(
                &[0xA1, 0x01, 0x9B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
                &arena
            ),
            Err(Status::InvalidCbor),
            "a length beyond the input"
        );
        assert_eq!(
            Parameters::decode(&[0x80], &arena),
            Err(Status::CborUnexpectedType),
            "an array, not a map"
        );
        let nested = |levels: usize| [vec![0xA1, 0x01], vec![0x81; levels], vec![0x01]].concat();
        assert!(Parameters::decode(&nested(MAX_DEPTH - 1), &arena).is_ok());
        assert_eq!(
            Parameters::decode(&nested(MAX_DEPTH), &arena),
            Err(Status::InvalidCbor)
        );
    }

    #[test]
    fn members_are_read_by_key_and_type() {
        let arena = Arena::new();
        let input = [0xA3, 0x01, 0x41, 0x07, 0x02, 0xF5, 0x03, 0x38, 0x18];
        let params = Parameters::decode(&input, &arena).unwrap();
        assert_eq!(bytes(params.required(1).unwrap()), Ok(&[7u8][..]));
        assert_eq!(boolean(params.required(2).unwrap()), Ok(true));
        assert_eq!(integer(params.required(3).unwrap()), Ok(-25));
        let extremes = [
            0xA2, 0x01, 0x3B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02, 0x1B, 0xFF,
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        let params = Parameters::decode(&extremes, &arena).unwrap();
        assert_eq!(params.get(1), Some(&Item::Negative(u64::MAX)));
        assert_eq!(params.get(2), Some(&Item::Unsigned(u64::MAX)));
        assert_eq!(
            integer(params.required(1).unwrap()),
            Err(Status::CborUnexpectedType)
        );
        assert_eq!(
            text(params.required(2).unwrap()),
            Err(Status::CborUnexpectedType)
        );
        assert_eq!(params.required(4), Err(Status::MissingParameter));
        assert_eq!(Parameters::decode(&[], &arena).unwrap().get(1), None);
    }

    #[test]
    fn other_items_are_kept_as_their_encoding() {
        let arena = Arena::new();
        let input = [0xA3, 0x01, 0xF6, 0x02, 0xC1, 0x01, 0x03, 0xF9, 0x3C, 0x00];
        let params = Parameters::decode(&input, &arena).unwrap();
        assert_eq!(params.get(1), Some(&Item::Other(&[0xF6])));
        assert_eq!(params.get(2), Some(&Item::Other(&[0xC1, 0x01])));
        assert_eq!(params.get(3), Some(&Item::Other(&[0xF9, 0x3C, 0x00])));
    }

    #[test]
    fn a_prefix_is_read_and_its_length_told() {
        let arena = Arena::new();
        let (item, length) = Item::decode_prefix(&[0x82, 0x01, 0x20, 0xFF, 0xFF], &arena).unwrap();
        assert_eq!(item, Item::Array(&[Item::Unsigned(1), Item::Negative(0)]));
        assert_eq!(length, 3);
    }
}
