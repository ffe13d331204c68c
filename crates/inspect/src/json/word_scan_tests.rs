//! The word-at-a-time stop mask against a byte-by-byte definition. `scan_string` tolerates a
//! mask that flags too much (it then looks at the byte itself), so a mask broken that way would
//! only slow it down; these tests hold the mask to its documented contract directly.

use super::{string_stops, HIGHS};
use proptest::prelude::*;

fn is_stop(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// `string_stops(w)` flags every stop byte, flags no byte below the first one, and sets no
/// bit other than bit 7 of a byte.
fn check(bytes: [u8; 8]) -> Result<(), String> {
    let w = u64::from_le_bytes(bytes);
    let got = string_stops(w);
    if got & !HIGHS != 0 {
        return Err(format!("{bytes:02x?}: bits outside bit 7: {got:#018x}"));
    }
    let first = bytes.iter().position(|&b| is_stop(b));
    for (i, &b) in bytes.iter().enumerate() {
        let flagged = got >> (8 * i + 7) & 1 == 1;
        if is_stop(b) && !flagged {
            return Err(format!("{bytes:02x?}: stop byte {i} not flagged ({got:#018x})"));
        }
        if first.is_none_or(|f| i < f) && flagged {
            return Err(format!(
                "{bytes:02x?}: byte {i} flagged before the first stop ({got:#018x})"
            ));
        }
    }
    Ok(())
}

#[test]
fn each_byte_value_at_each_position() {
    for pos in 0..8 {
        for v in 0..=255u8 {
            for fill in [b'a', b' ', b'#', b']', 0x7f, 0x80, 0xff, b'"', 0x00] {
                let mut bytes = [fill; 8];
                bytes[pos] = v;
                if let Err(e) = check(bytes) {
                    panic!("{e}");
                }
            }
        }
    }
}

fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(vec![
            0x00u8, 0x01, 0x1f, 0x20, 0x21, b'"', 0x23, b'[', b'\\', b']', b'a', 0x7f, 0x80, 0xa2,
            0xdc, 0xdf, 0xe0, 0xff,
        ]),
        1 => any::<u8>(),
    ]
}

proptest! {
    #[test]
    fn random_words(bytes in prop::array::uniform8(byte())) {
        if let Err(e) = check(bytes) {
            prop_assert!(false, "{e}");
        }
    }
}
