//! HMAC-SHA256 (RFC 2104) and the signature header of webhook deliveries:
//!
//! `Evident-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>`
//!
//! A receiver recomputes the HMAC over the timestamp and the exact body bytes, compares in
//! constant time, and refuses timestamps more than [`TOLERANCE_SECS`] away from its clock, so a
//! captured delivery cannot be replayed later. `Evident-Delivery` names the delivery (the same on
//! retries) so receivers can drop duplicates.

use sha2::{Digest, Sha256};

/// How far a delivery's timestamp may be from the receiver's clock.
pub const TOLERANCE_SECS: i64 = 300;

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The `Evident-Signature` header value for `body` sent at `unix_secs`.
pub fn signature_header(key: &[u8], unix_secs: i64, body: &[u8]) -> String {
    let mut message = format!("{unix_secs}.").into_bytes();
    message.extend_from_slice(body);
    format!("t={unix_secs},v1={}", hex::encode(hmac_sha256(key, &message)))
}

/// Why a delivery was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the timestamp is {0} s away from now (more than the tolerance)")]
    Stale(i64),
    #[error("the signature does not match")]
    Mismatch,
}

/// Checks a delivery: header as received, body bytes as received, the receiver's clock.
pub fn verify(
    key: &[u8],
    header: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // A hostile `t` (i64::MIN, say) must not overflow: such a skew is simply too large.
    let skew = now_unix.checked_sub(timestamp).and_then(i64::checked_abs).unwrap_or(i64::MAX);
    if skew > tolerance_secs {
        return Err(SignatureError::Stale(skew));
    }
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    let expected = hmac_sha256(key, &message);
    let matches = signatures
        .iter()
        .any(|s| s.len() == 32 && s.iter().zip(expected.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0);
    if matches { Ok(()) } else { Err(SignatureError::Mismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4231_known_answers() {
        // Test case 2 and test case 6 (a key longer than the block).
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn signatures_verify_and_refuse() {
        let header = signature_header(b"k", 1_000, b"{\"a\":1}");
        assert_eq!(verify(b"k", &header, b"{\"a\":1}", 1_010, TOLERANCE_SECS), Ok(()));
        assert_eq!(verify(b"k", &header, b"{\"a\":2}", 1_010, TOLERANCE_SECS), Err(SignatureError::Mismatch));
        assert_eq!(verify(b"x", &header, b"{\"a\":1}", 1_010, TOLERANCE_SECS), Err(SignatureError::Mismatch));
        assert_eq!(
            verify(b"k", &header, b"{\"a\":1}", 1_400, TOLERANCE_SECS),
            Err(SignatureError::Stale(400))
        );
        assert_eq!(verify(b"k", "v1=00", b"", 0, TOLERANCE_SECS), Err(SignatureError::Malformed));
    }

    #[test]
    fn hostile_timestamps_are_stale_not_a_panic() {
        let v1 = format!("v1={}", "00".repeat(32));
        for (t, now) in [(i64::MIN, 1_000), (i64::MAX, -1_000), (i64::MIN + 1, i64::MAX), (1, i64::MIN)] {
            let header = format!("t={t},{v1}");
            assert_eq!(verify(b"k", &header, b"", now, TOLERANCE_SECS), Err(SignatureError::Stale(i64::MAX)));
        }
    }
}
