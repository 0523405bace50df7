//! SHA-256 helpers shared by the key, the Vary check and the credential scope.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Digest32 = [u8; 32];

/// Hashes a sequence of fields, each prefixed by its length, so that no two
/// different sequences hash the same bytes ("ab","c" vs "a","bc").
#[derive(Clone, Default)]
pub struct FieldHasher(Sha256);

impl FieldHasher {
    pub fn new() -> Self {
        Self(Sha256::new())
    }

    /// Adds one length-prefixed field.
    pub fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
        self
    }

    /// Adds a count (of values, of headers) as a fixed-width field.
    pub fn count(&mut self, n: usize) -> &mut Self {
        self.0.update((n as u64).to_be_bytes());
        self
    }

    pub fn finish(self) -> Digest32 {
        self.0.finalize().into()
    }
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

/// HMAC-SHA256 (RFC 2104), used to scope keys by credential without storing it.
pub fn hmac_sha256(secret: &[u8], message: &[u8]) -> Digest32 {
    // RFC 2104 §2: keys longer than the block are hashed first, shorter ones
    // padded; HMAC accepts a key of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hmac_hashes_long_keys_first() {
        // RFC 4231 test case 6: a 131-byte key.
        let key = [0xaau8; 131];
        let mac = hmac_sha256(&key, b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(
            hex(&mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn length_prefix_separates_field_boundaries() {
        let mut a = FieldHasher::new();
        a.field(b"ab").field(b"c");
        let mut b = FieldHasher::new();
        b.field(b"a").field(b"bc");
        assert_ne!(a.finish(), b.finish());
    }
}
