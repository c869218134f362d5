//! The HID report descriptor of a FIDO U2F token (FIDO U2F HID protocol v1.1 section 4;
//! PROTOCOLS.md 3.1): usage page 0xF1D0 (FIDO alliance), usage 0x01 (U2F authenticator device),
//! one 64-byte input report and one 64-byte output report, no report ids. Hosts (libfido2,
//! python-fido2, browsers, systemd's `fido_id`) recognise a security key by this descriptor alone.

/// The descriptor, item by item.
pub const FIDO_U2F: [u8; 34] = [
    0x06, 0xD0, 0xF1, // Usage Page (FIDO Alliance, 0xF1D0)
    0x09, 0x01, //       Usage (U2F Authenticator Device)
    0xA1, 0x01, //       Collection (Application)
    0x09, 0x20, //         Usage (Input Report Data)
    0x15, 0x00, //         Logical Minimum (0)
    0x26, 0xFF, 0x00, //   Logical Maximum (255)
    0x75, 0x08, //         Report Size (8 bits)
    0x95, 0x40, //         Report Count (64)
    0x81, 0x02, //         Input (Data, Variable, Absolute)
    0x09, 0x21, //         Usage (Output Report Data)
    0x15, 0x00, //         Logical Minimum (0)
    0x26, 0xFF, 0x00, //   Logical Maximum (255)
    0x75, 0x08, //         Report Size (8 bits)
    0x95, 0x40, //         Report Count (64)
    0x91, 0x02, //         Output (Data, Variable, Absolute)
    0xC0, //             End Collection
];

/// pid.codes, the open-source hardware vendor id: not borrowed from a real vendor.
pub const VENDOR_ID: u32 = 0x1209;
/// A product id of the range pid.codes sets aside for testing (0x0001 to 0x0010).
pub const PRODUCT_ID: u32 = 0x0001;

#[cfg(test)]
mod tests {
    /// The bytes PROTOCOLS.md 3.1 gives.
    #[test]
    fn matches_the_documented_descriptor() {
        let documented = "06 D0 F1 09 01 A1 01 09 20 15 00 26 FF 00 75 08 95 40 81 02 \
                          09 21 15 00 26 FF 00 75 08 95 40 91 02 C0";
        let bytes: Vec<u8> = documented
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect();
        assert_eq!(bytes, super::FIDO_U2F);
    }
}
