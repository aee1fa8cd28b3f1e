//! Lower-case hex, for digests and signatures in manifests, state files and verdicts.

use alloc::string::String;
use core::fmt::Write;

/// Lower-case hex of `bytes`.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_lower_case_pairs() {
        assert_eq!(super::encode(&[0x00, 0xab, 0x7f]), "00ab7f");
    }
}
