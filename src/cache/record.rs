//! The stored record: a compact, versioned binary encoding of one response.
//!
//! Spin KV has no TTL, so freshness lives in the record. A record that fails to
//! decode for any reason is a miss, never an error and never a replay.
//!
//! Layout of version 1 (integers little-endian):
//! ```text
//! "PCR" version:u8 checksum:u64         covers every byte after it (cache::checksum)
//! stored_at:u64 fresh_until:u64         Unix seconds
//! initial_age:u32 status:u16
//! request_digest:[32]                   SHA-256 of the request body the key was derived from
//! vary_digest:[32]                      see policy::vary_digest
//! vary_count:u16 { len:u16 name }*
//! header_count:u16 { len:u16 name len:u32 value }*
//! body                                  the rest
//! ```

use super::checksum::checksum;
use super::digest::Digest32;

const MAGIC: &[u8; 3] = b"PCR";
/// The version this build writes.
pub const RECORD_VERSION: u8 = 1;
const CHECKSUM_AT: usize = 4;
const CHECKSUM_COVERS_FROM: usize = 12;

/// Everything stored about a response besides its headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMeta {
    pub stored_at: u64,
    pub fresh_until: u64,
    pub initial_age: u32,
    pub status: u16,
    pub request_digest: Digest32,
    pub vary_digest: Digest32,
    pub vary: Vec<String>,
}

/// A decoded record, borrowing from the stored bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub meta: RecordMeta,
    pub headers: Vec<(&'a str, &'a [u8])>,
    pub body: &'a [u8],
}

impl Record<'_> {
    /// RFC 9111 §4.2.3 `current_age`: the age it arrived with plus time resident here.
    pub fn age(&self, now: u64) -> u64 {
        u64::from(self.meta.initial_age) + now.saturating_sub(self.meta.stored_at)
    }

    /// Seconds of freshness left at `now` (0 once stale).
    pub fn ttl(&self, now: u64) -> u64 {
        self.meta.fresh_until.saturating_sub(now)
    }
}

/// Why stored bytes are not a usable record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    NotARecord,
    UnsupportedVersion(u8),
    Truncated,
    ChecksumMismatch,
    InvalidHeaderName,
}

/// Builds a record in one buffer: the head is written up front and the body is
/// appended as it streams in, so the body is held once, not copied again to store it.
pub struct RecordBuilder {
    buf: Vec<u8>,
    body_start: usize,
    max_len: usize,
}

impl RecordBuilder {
    /// Starts a record; `None` if the head alone exceeds `max_len`.
    pub fn new(
        meta: &RecordMeta,
        headers: &[(String, Vec<u8>)],
        body_hint: usize,
        max_len: usize,
    ) -> Option<Self> {
        let head_len: usize = 4 + 8 + 8 + 8 + 4 + 2 + 32 + 32 + 2 + 2
            + meta.vary.iter().map(|v| 2 + v.len()).sum::<usize>()
            + headers.iter().map(|(n, v)| 6 + n.len() + v.len()).sum::<usize>();
        if head_len > max_len
            || meta.vary.len() > usize::from(u16::MAX)
            || headers.len() > usize::from(u16::MAX)
        {
            return None;
        }
        let mut buf = Vec::with_capacity((head_len + body_hint).min(max_len));
        buf.extend_from_slice(MAGIC);
        buf.push(RECORD_VERSION);
        buf.extend_from_slice(&[0; 8]);
        buf.extend_from_slice(&meta.stored_at.to_le_bytes());
        buf.extend_from_slice(&meta.fresh_until.to_le_bytes());
        buf.extend_from_slice(&meta.initial_age.to_le_bytes());
        buf.extend_from_slice(&meta.status.to_le_bytes());
        buf.extend_from_slice(&meta.request_digest);
        buf.extend_from_slice(&meta.vary_digest);
        buf.extend_from_slice(&(meta.vary.len() as u16).to_le_bytes());
        for name in &meta.vary {
            put_u16_field(&mut buf, name.as_bytes())?;
        }
        buf.extend_from_slice(&(headers.len() as u16).to_le_bytes());
        for (name, value) in headers {
            put_u16_field(&mut buf, name.as_bytes())?;
            buf.extend_from_slice(&u32::try_from(value.len()).ok()?.to_le_bytes());
            buf.extend_from_slice(value);
        }
        let body_start = buf.len();
        Some(Self {
            buf,
            body_start,
            max_len,
        })
    }

    /// Appends body bytes; `false` (and nothing appended) once the record would
    /// exceed its maximum size.
    pub fn push_body(&mut self, chunk: &[u8]) -> bool {
        if self.buf.len() + chunk.len() > self.max_len {
            return false;
        }
        self.buf.extend_from_slice(chunk);
        true
    }

    /// The body captured so far.
    pub fn body(&self) -> &[u8] {
        &self.buf[self.body_start..]
    }

    /// Seals the record (fills in the checksum) and returns it with the body's offset.
    pub fn finish(mut self) -> (Vec<u8>, usize) {
        let sum = checksum(&self.buf[CHECKSUM_COVERS_FROM..]);
        self.buf[CHECKSUM_AT..CHECKSUM_COVERS_FROM].copy_from_slice(&sum.to_le_bytes());
        (self.buf, self.body_start)
    }
}

fn put_u16_field(buf: &mut Vec<u8>, bytes: &[u8]) -> Option<()> {
    buf.extend_from_slice(&u16::try_from(bytes.len()).ok()?.to_le_bytes());
    buf.extend_from_slice(bytes);
    Some(())
}

/// Decodes stored bytes without copying headers or body.
pub fn decode(bytes: &[u8]) -> Result<Record<'_>, DecodeError> {
    if bytes.len() < 4 || &bytes[..3] != MAGIC {
        return Err(DecodeError::NotARecord);
    }
    match bytes[3] {
        1 => decode_v1(bytes),
        other => Err(DecodeError::UnsupportedVersion(other)),
    }
}

fn decode_v1(bytes: &[u8]) -> Result<Record<'_>, DecodeError> {
    let mut r = Reader { bytes, at: CHECKSUM_AT };
    let sum = u64::from_le_bytes(r.array()?);
    if checksum(&bytes[CHECKSUM_COVERS_FROM..]) != sum {
        return Err(DecodeError::ChecksumMismatch);
    }
    let stored_at = u64::from_le_bytes(r.array()?);
    let fresh_until = u64::from_le_bytes(r.array()?);
    let initial_age = u32::from_le_bytes(r.array()?);
    let status = u16::from_le_bytes(r.array()?);
    let request_digest = r.array()?;
    let vary_digest = r.array()?;
    let vary_count = u16::from_le_bytes(r.array()?);
    let mut vary = Vec::with_capacity(usize::from(vary_count));
    for _ in 0..vary_count {
        let len = u16::from_le_bytes(r.array()?);
        vary.push(text(r.take(usize::from(len))?)?.to_owned());
    }
    let header_count = u16::from_le_bytes(r.array()?);
    let mut headers = Vec::with_capacity(usize::from(header_count));
    for _ in 0..header_count {
        let name_len = u16::from_le_bytes(r.array()?);
        let name = text(r.take(usize::from(name_len))?)?;
        let value_len = u32::from_le_bytes(r.array()?);
        let value = r.take(value_len as usize)?;
        headers.push((name, value));
    }
    Ok(Record {
        meta: RecordMeta {
            stored_at,
            fresh_until,
            initial_age,
            status,
            request_digest,
            vary_digest,
            vary,
        },
        headers,
        body: &bytes[r.at..],
    })
}

fn text(bytes: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidHeaderName)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).ok_or(DecodeError::Truncated)?;
        let out = self.bytes.get(self.at..end).ok_or(DecodeError::Truncated)?;
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> RecordMeta {
        RecordMeta {
            stored_at: 1_700_000_000,
            fresh_until: 1_700_000_060,
            initial_age: 5,
            status: 200,
            request_digest: [1; 32],
            vary_digest: [2; 32],
            vary: vec!["accept-language".into()],
        }
    }

    fn headers() -> Vec<(String, Vec<u8>)> {
        vec![
            ("content-type".into(), b"application/json".to_vec()),
            ("x-multi".into(), b"a".to_vec()),
            ("x-multi".into(), b"b".to_vec()),
            ("x-binary".into(), vec![0x80, 0xff, b' ']),
        ]
    }

    fn encode(body: &[u8]) -> Vec<u8> {
        let mut b = RecordBuilder::new(&meta(), &headers(), body.len(), 1 << 20).unwrap();
        assert!(b.push_body(&body[..body.len() / 2]));
        assert!(b.push_body(&body[body.len() / 2..]));
        b.finish().0
    }

    #[test]
    fn round_trip_keeps_repeated_headers_in_order_and_binary_body() {
        let body: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let bytes = encode(&body);
        let record = decode(&bytes).unwrap();
        assert_eq!(record.meta, meta());
        assert_eq!(record.headers.len(), headers().len());
        for (got, want) in record.headers.iter().zip(headers().iter()) {
            assert_eq!(got.0, want.0);
            assert_eq!(got.1, want.1.as_slice());
        }
        assert_eq!(record.body, body.as_slice());
        assert_eq!(record.age(1_700_000_010), 15);
        assert_eq!(record.ttl(1_700_000_010), 50);
        assert_eq!(record.ttl(1_700_000_100), 0);
    }

    #[test]
    fn empty_body_round_trips() {
        let bytes = encode(b"");
        assert_eq!(decode(&bytes).unwrap().body, b"");
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let bytes = encode(b"hello world");
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(decode(&bad).is_err(), "flip at {i} decoded");
        }
    }

    #[test]
    fn every_truncation_is_detected() {
        let bytes = encode(b"hello world");
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "truncated to {len} decoded");
        }
    }

    #[test]
    fn other_versions_and_foreign_values_are_not_records() {
        let mut old = encode(b"x");
        old[3] = 0;
        assert_eq!(decode(&old), Err(DecodeError::UnsupportedVersion(0)));
        let mut future = encode(b"x");
        future[3] = 2;
        assert_eq!(decode(&future), Err(DecodeError::UnsupportedVersion(2)));
        assert_eq!(decode(b"{\"json\":1}"), Err(DecodeError::NotARecord));
        assert_eq!(decode(b""), Err(DecodeError::NotARecord));
    }

    #[test]
    fn builder_refuses_body_past_the_limit() {
        let mut b = RecordBuilder::new(&meta(), &headers(), 0, 200).unwrap();
        let head = 200 - b.buf.len();
        assert!(b.push_body(&vec![0; head]));
        assert!(!b.push_body(&[0]));
        assert_eq!(b.body().len(), head);
        assert!(RecordBuilder::new(&meta(), &headers(), 0, 50).is_none());
    }
}
