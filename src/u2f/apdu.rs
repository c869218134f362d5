//! Command APDUs (ISO 7816-4 section 5.1; FIDO U2F raw message formats v1.2, section 3.1).
//!
//! ```text
//!  header            body
//!  CLA INS P1 P2     (none)                              case 1
//!                    Le                                  case 2 short
//!                    00 Le_hi Le_lo                      case 2 extended
//!                    Lc data                  [Le]       case 3/4 short (Lc 1..=255)
//!                    00 Lc_hi Lc_lo data      [Le_hi Le_lo]  case 3/4 extended
//!                    00 00 00 Le_hi Le_lo                case 2 as python-fido2 sends it
//! ```
//! U2F over HID uses the extended form; the short form is accepted too (NFC hosts and some
//! libraries send it). Anything else is `0x6700`.
use super::status::StatusWord;

/// The instructions of U2F (spec section 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Instruction {
    /// U2F_REGISTER.
    Register = 0x01,
    /// U2F_AUTHENTICATE.
    Authenticate = 0x02,
    /// U2F_VERSION.
    Version = 0x03,
}

impl TryFrom<u8> for Instruction {
    type Error = StatusWord;
    fn try_from(ins: u8) -> Result<Self, StatusWord> {
        match ins {
            0x01 => Ok(Self::Register),
            0x02 => Ok(Self::Authenticate),
            0x03 => Ok(Self::Version),
            _ => Err(StatusWord::InsNotSupported),
        }
    }
}

/// A parsed command APDU, borrowing its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Apdu<'a> {
    /// Instruction byte.
    pub ins: u8,
    /// Parameter 1 (the control byte of AUTHENTICATE).
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// Command data (empty when there is none).
    pub data: &'a [u8],
}

impl<'a> TryFrom<&'a [u8]> for Apdu<'a> {
    type Error = StatusWord;

    fn try_from(bytes: &'a [u8]) -> Result<Self, StatusWord> {
        let [cla, ins, p1, p2, body @ ..] = bytes else {
            return Err(StatusWord::WrongLength);
        };
        if *cla != 0 {
            return Err(StatusWord::ClaNotSupported);
        }
        let data = match body {
            // Case 1, case 2 short (Le only), case 2 extended (00 Le_hi Le_lo).
            [] | [_] | [0, _, _] => &[][..],
            [0, lc_hi, lc_lo, rest @ ..] => {
                let lc = usize::from(u16::from_be_bytes([*lc_hi, *lc_lo]));
                match rest.len().checked_sub(lc) {
                    Some(0 | 2) if lc > 0 => &rest[..lc],
                    // Lc = 0 then Le: not ISO, but python-fido2 sends its empty commands so.
                    Some(2) => &[][..],
                    _ => return Err(StatusWord::WrongLength),
                }
            }
            [lc, rest @ ..] => {
                let lc = usize::from(*lc);
                match rest.len().checked_sub(lc) {
                    Some(0 | 1) if lc > 0 => &rest[..lc],
                    _ => return Err(StatusWord::WrongLength),
                }
            }
        };
        Ok(Self {
            ins: *ins,
            p1: *p1,
            p2: *p2,
            data,
        })
    }
}

/// Encodes a command APDU in the extended form U2F uses over HID (`Le` = 65536).
pub fn encode_extended(ins: u8, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
    let mut apdu = Vec::with_capacity(data.len() + 9);
    apdu.extend_from_slice(&[0, ins, p1, p2]);
    if data.is_empty() {
        apdu.extend_from_slice(&[0, 0, 0]);
    } else {
        let lc = u16::try_from(data.len()).expect("U2F requests are far below 64 KiB");
        apdu.push(0);
        apdu.extend_from_slice(&lc.to_be_bytes());
        apdu.extend_from_slice(data);
        apdu.extend_from_slice(&[0, 0]);
    }
    apdu
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Apdu<'_>, StatusWord> {
        Apdu::try_from(bytes)
    }

    #[test]
    fn version_in_every_encoding() {
        for bytes in [
            &[0, 3, 0, 0][..],
            &[0, 3, 0, 0, 0][..],
            &[0, 3, 0, 0, 0, 0, 0][..],
        ] {
            let apdu = parse(bytes).unwrap();
            assert_eq!((apdu.ins, apdu.data), (3, &[][..]), "{bytes:02x?}");
        }
    }

    #[test]
    fn extended_and_short_with_data() {
        let ext = encode_extended(2, 3, 0, &[9; 70]);
        let apdu = parse(&ext).unwrap();
        assert_eq!((apdu.ins, apdu.p1, apdu.data.len()), (2, 3, 70));
        let mut no_le = ext.clone();
        no_le.truncate(ext.len() - 2);
        assert_eq!(parse(&no_le).unwrap().data.len(), 70);

        let mut short = vec![0, 1, 0, 0, 64];
        short.extend_from_slice(&[5; 64]);
        assert_eq!(parse(&short).unwrap().data, &[5; 64][..]);
        short.push(0);
        assert_eq!(parse(&short).unwrap().data.len(), 64, "short Le accepted");
    }

    #[test]
    fn bad_lengths_and_class() {
        assert_eq!(parse(&[0, 3, 0]), Err(StatusWord::WrongLength));
        assert_eq!(parse(&[0x80, 3, 0, 0]), Err(StatusWord::ClaNotSupported));
        // Extended Lc says 10, only 9 bytes follow.
        let mut bad = vec![0, 2, 3, 0, 0, 0, 10];
        bad.extend_from_slice(&[1; 9]);
        assert_eq!(parse(&bad), Err(StatusWord::WrongLength));
        // Short Lc says 4, 7 bytes follow.
        assert_eq!(
            parse(&[0, 1, 0, 0, 4, 1, 2, 3, 4, 5, 6, 7]),
            Err(StatusWord::WrongLength)
        );
        // Extended Lc of zero without Le is not an encoding; with Le it is python-fido2's VERSION.
        assert_eq!(
            parse(&[0, 3, 0, 0, 0, 0, 0, 0]),
            Err(StatusWord::WrongLength)
        );
        assert_eq!(
            parse(&[0, 3, 0, 0, 0, 0, 0, 0, 0]).unwrap().data,
            &[0u8; 0][..]
        );
    }

    #[test]
    fn unknown_instruction() {
        assert_eq!(
            Instruction::try_from(0x40),
            Err(StatusWord::InsNotSupported)
        );
        assert_eq!(Instruction::try_from(0x02), Ok(Instruction::Authenticate));
    }
}
