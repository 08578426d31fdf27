//! sha256 digests as the host writes them: 64 lowercase hex digits, for
//! artifacts (`artifacts/<sha256>`), journal lines, plugins and playbooks.

use sha2::{Digest, Sha256};

/// The sha256 of `bytes`, as 64 lowercase hex digits.
pub fn sha256_hex(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(Sha256::digest(bytes.as_ref()))
}

/// Whether `text` is a sha256 as the host writes one (64 lowercase hex
/// digits).
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_lowercase_hex_and_checked_as_such() {
        let d = sha256_hex(b"hello");
        assert_eq!(
            d,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert!(is_sha256(&d));
        assert!(!is_sha256(&d.to_uppercase()));
        assert!(!is_sha256(&d[1..]));
        assert!(!is_sha256(&format!("{}g", &d[1..])));
    }
}
