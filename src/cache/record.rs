//! The stored record: a compact, versioned binary encoding of one response.
//!
//! Spin KV has no TTL, so freshness lives in the record. A record that fails to
//! decode for any reason is a miss, never an error and never a replay.
//!
//! Layout of version 4 (integers little-endian):
//! ```text
//! "PCR" version:u8 checksum:u64         XXH3-64 of every byte after it
//! stored_at:u64 fresh_until:u64         Unix seconds
//! stale_while_revalidate:u32            seconds past fresh_until it may be served
//! stale_if_error:u32                      stale, and when the origin errs
//! flags:u8                              bit 0: never serve stale (must-revalidate, …)
//! mark_until:u64 mark_token:u64         "being fetched" mark (cache::mark); 0: none
//! initial_age:u32 status:u16
//! request_digest:[32]                   SHA-256 of the request body as keyed
//! vary_digest:[32]                      see policy::vary_digest
//! vary_count:u16 { len:u16 name }*
//! header_count:u16 { len:u16 name len:u32 value }*
//! body_len:u32 body
//! extension_count:u16 { tag:u16 len:u32 bytes }*
//! ```
//! Extensions carry what only some records need, so later features add a tag
//! instead of a version. A body too large for one stored value is segmented
//! (`cache::segment`): `body` holds its first part and the critical
//! `EXT_SEGMENTS` extension its manifest:
//! `generation:u64 total_len:u64 segment_len:u32 count:u32 { xxh3_128:[16] }*`. A tag with [`CRITICAL`] set changes how the record is
//! replayed: a reader that does not know it treats the record as unusable (a
//! miss); other unknown tags are skipped.
//!
//! Version 3 is version 4 with the earlier lane checksum (`cache::checksum`)
//! in place of XXH3-64. Version 2 is version 3 without the stale windows, flags
//! and mark; version 1 is
//! version 2 without `body_len` (the body is the rest) and without extensions.
//! Both still decode, with no stale windows: they are served fresh or not at all.
//! The mark sits at a fixed offset so that setting it rewrites no other byte.

use super::checksum::checksum;
use crate::http::digest::Digest32;
use super::mark::Mark;
use super::segment::{self, Segments};
use crate::protocol::jsonrpc::IdSlot;

const MAGIC: &[u8; 3] = b"PCR";
/// The version this build writes.
pub const RECORD_VERSION: u8 = 4;
/// Set on extension tags a reader must understand to replay the record.
pub const CRITICAL: u16 = 0x8000;
/// JSON-RPC id slots: count:u32 { offset:u32 len:u32 call:u32 }*.
pub const EXT_ID_SLOTS: u16 = CRITICAL | 1;
/// A segmented body's manifest (see the module doc).
pub const EXT_SEGMENTS: u16 = CRITICAL | 2;
const CHECKSUM_AT: usize = 4;
const CHECKSUM_COVERS_FROM: usize = 12;
/// `fresh_until` sits here in every version.
const FRESH_UNTIL_AT: usize = 20;
/// Where versions 3 and 4 keep the mark: after magic, version, checksum, the two times,
/// the two windows and the flags.
const MARK_AT: usize = 4 + 8 + 8 + 8 + 4 + 4 + 1;
const FLAG_STALE_FORBIDDEN: u8 = 1;

/// How long past its freshness a record may still be served (RFC 5861), decided
/// when it is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StaleWindows {
    /// Seconds it may be served stale while one request refreshes it.
    pub while_revalidate: u32,
    /// Seconds it may be served stale when the origin fails.
    pub if_error: u32,
    /// `must-revalidate`, `proxy-revalidate`, `s-maxage` or `no-cache`: never
    /// stale, whatever a client's `max-stale` or `stale-if-error` says.
    pub forbidden: bool,
}

/// Everything stored about a response besides its headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMeta {
    pub stored_at: u64,
    pub fresh_until: u64,
    pub stale: StaleWindows,
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
    /// Where the JSON-RPC ids sit in `body`; empty for other records.
    pub id_slots: Vec<IdSlot>,
    /// Someone is fetching a fresh answer for this key (version 3 and later).
    pub mark: Option<Mark>,
    /// For a segmented body: `body` is its first part, the rest is here.
    pub segments: Option<Segments>,
}

impl Record<'_> {
    /// RFC 9111 §4.2.3 `current_age`: the age it arrived with plus time resident here.
    pub fn age(&self, now: u64) -> u64 {
        u64::from(self.meta.initial_age).saturating_add(now.saturating_sub(self.meta.stored_at))
    }

    /// Seconds of freshness left at `now` (0 once stale).
    pub fn ttl(&self, now: u64) -> u64 {
        self.meta.fresh_until.saturating_sub(now)
    }

    /// The whole body's length, segments included.
    pub fn body_len(&self) -> u64 {
        self.segments.as_ref().map_or(self.body.len() as u64, |s| s.total_len)
    }
}

/// A record sealed for a store whose values hold at most `max_value` bytes.
pub enum Sealed {
    /// One value, as [`RecordBuilder::finish`] makes it.
    Whole(Vec<u8>),
    /// A head and its segments: `segments[i]` is the byte range of segment `i`
    /// in `body` (the builder's buffer, the whole body still in it).
    Split { head: Vec<u8>, body: Vec<u8>, segments: Vec<std::ops::Range<usize>>, manifest: Segments },
}

/// Why stored bytes are not a usable record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    NotARecord,
    UnsupportedVersion(u8),
    Truncated,
    ChecksumMismatch,
    InvalidHeaderName,
    /// A critical extension this build does not know.
    UnknownExtension(u16),
    /// Bytes after the last extension.
    TrailingBytes,
    /// A segment manifest that does not cover the body.
    BadManifest,
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
        // The fixed fields, body_len and the (empty) extension count.
        let head_len: usize = MARK_AT + 16 + 4 + 2 + 32 + 32 + 2 + 2 + 4 + 2
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
        buf.extend_from_slice(&meta.stale.while_revalidate.to_le_bytes());
        buf.extend_from_slice(&meta.stale.if_error.to_le_bytes());
        buf.push(if meta.stale.forbidden { FLAG_STALE_FORBIDDEN } else { 0 });
        buf.extend_from_slice(&[0; 16]); // no mark
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
        buf.extend_from_slice(&[0; 4]); // body_len, filled in by finish()
        let body_start = buf.len();
        Some(Self {
            buf,
            body_start,
            max_len,
        })
    }

    /// Sets the head's freshness (`fresh_until` and the stale windows) to
    /// `meta`'s: a bound read from the body, known once it is captured.
    pub fn set_freshness(&mut self, meta: &RecordMeta) {
        let windows = FRESH_UNTIL_AT + 8;
        self.buf[FRESH_UNTIL_AT..windows].copy_from_slice(&meta.fresh_until.to_le_bytes());
        self.buf[windows..windows + 4].copy_from_slice(&meta.stale.while_revalidate.to_le_bytes());
        self.buf[windows + 4..windows + 8].copy_from_slice(&meta.stale.if_error.to_le_bytes());
        self.buf[windows + 8] = if meta.stale.forbidden { FLAG_STALE_FORBIDDEN } else { 0 };
    }

    /// Appends body bytes; `false` (and nothing appended) once the record would
    /// exceed its maximum size.
    pub fn push_body(&mut self, chunk: &[u8]) -> bool {
        if self.buf.len() + chunk.len() + 2 > self.max_len {
            return false;
        }
        self.buf.extend_from_slice(chunk);
        true
    }

    /// The body captured so far.
    pub fn body(&self) -> &[u8] {
        &self.buf[self.body_start..]
    }

    /// Seals the record as one value: appends the extensions (JSON-RPC id slots
    /// when there are any), fills in the body length and checksum. Returns the
    /// record and the body's byte range in it. The extensions may take the
    /// record a little past `max_len` (12 bytes per id).
    pub fn finish(self, id_slots: &[IdSlot]) -> (Vec<u8>, std::ops::Range<usize>) {
        self.finish_with(id_slots, None)
    }

    /// [`finish`](Self::finish) for a head whose body continues in `segments`
    /// (a 304 rewriting a segmented head keeps its manifest).
    pub fn finish_with(mut self, id_slots: &[IdSlot], segments: Option<&Segments>) -> (Vec<u8>, std::ops::Range<usize>) {
        let body = self.body_start..self.buf.len();
        let body_len = u32::try_from(body.len()).expect("max_len keeps bodies under 4 GiB");
        self.buf[body.start - 4..body.start].copy_from_slice(&body_len.to_le_bytes());
        put_extensions(&mut self.buf, id_slots, segments);
        seal(&mut self.buf);
        (self.buf, body)
    }

    /// The head for a body that is exactly a stored segmented entry's —
    /// `held_inline` (its head's part of the body) then the segments `held`
    /// names: a head naming those same segments, so that an answer fetched
    /// again and found unchanged costs one write, not one per segment. `None`,
    /// to be sealed as usual, when the body differs or such a head would not
    /// fit `max_value`.
    pub fn head_reusing(&self, id_slots: &[IdSlot], max_value: usize, held_inline: &[u8], held: &Segments) -> Option<Vec<u8>> {
        let body = self.body();
        let inline_len = held_inline.len();
        let segment = |i: usize| {
            let range = held.range(inline_len, i);
            body.get(range.start as usize..range.end as usize)
        };
        let same = body.len() as u64 == held.total_len
            && held.consistent_with(inline_len)
            && body.get(..inline_len) == Some(held_inline)
            && (0..held.digests.len()).all(|i| segment(i).is_some_and(|bytes| segment::digest(bytes) == held.digests[i]));
        let fits = self.body_start + inline_len + extension_len(id_slots, held.digests.len()) <= max_value;
        if !same || !fits {
            return None;
        }
        let mut head = self.buf[..self.body_start + inline_len].to_vec();
        head[self.body_start - 4..self.body_start].copy_from_slice(&(inline_len as u32).to_le_bytes());
        put_extensions(&mut head, id_slots, Some(held));
        seal(&mut head);
        Some(head)
    }

    /// Seals the record for values of at most `max_value` bytes: whole when it
    /// fits, else split into a head holding as much of the body as fits and
    /// segments of `max_value` bytes named by `generation`. `None` when even
    /// the head cannot fit.
    pub fn seal_within(self, id_slots: &[IdSlot], max_value: usize, generation: u64) -> Option<Sealed> {
        let body_len = self.buf.len() - self.body_start;
        if self.buf.len() + extension_len(id_slots, 0) <= max_value {
            return Some(Sealed::Whole(self.finish(id_slots).0));
        }
        let plan = segment::layout(body_len, max_value, |count| self.body_start + extension_len(id_slots, count))?;
        let rest = self.body_start + plan.inline_len;
        let segments: Vec<std::ops::Range<usize>> = (0..plan.count)
            .map(|i| rest + i * plan.segment_len..(rest + (i + 1) * plan.segment_len).min(self.buf.len()))
            .collect();
        let manifest = Segments {
            generation,
            total_len: body_len as u64,
            segment_len: u32::try_from(plan.segment_len).ok()?,
            digests: segments.iter().map(|r| segment::digest(&self.buf[r.clone()])).collect(),
        };
        let mut head = self.buf[..rest].to_vec();
        head[self.body_start - 4..self.body_start].copy_from_slice(&(plan.inline_len as u32).to_le_bytes());
        put_extensions(&mut head, id_slots, Some(&manifest));
        seal(&mut head);
        Some(Sealed::Split { head, body: self.buf, segments, manifest })
    }
}

/// The extension list's encoded length for `id_slots` and a manifest of
/// `segments` segments (none when 0).
fn extension_len(id_slots: &[IdSlot], segments: usize) -> usize {
    let ids = if id_slots.is_empty() { 0 } else { 6 + 4 + 12 * id_slots.len() };
    let manifest = if segments == 0 { 0 } else { 6 + 24 + 16 * segments };
    2 + ids + manifest
}

fn put_extensions(buf: &mut Vec<u8>, id_slots: &[IdSlot], segments: Option<&Segments>) {
    let count = u16::from(!id_slots.is_empty()) + u16::from(segments.is_some());
    buf.extend_from_slice(&count.to_le_bytes());
    if !id_slots.is_empty() {
        buf.extend_from_slice(&EXT_ID_SLOTS.to_le_bytes());
        buf.extend_from_slice(&(4 + 12 * id_slots.len() as u32).to_le_bytes());
        buf.extend_from_slice(&(id_slots.len() as u32).to_le_bytes());
        for slot in id_slots {
            for n in [slot.offset, slot.len, slot.call] {
                buf.extend_from_slice(&n.to_le_bytes());
            }
        }
    }
    if let Some(m) = segments {
        buf.extend_from_slice(&EXT_SEGMENTS.to_le_bytes());
        buf.extend_from_slice(&(24 + 16 * m.digests.len() as u32).to_le_bytes());
        buf.extend_from_slice(&m.generation.to_le_bytes());
        buf.extend_from_slice(&m.total_len.to_le_bytes());
        buf.extend_from_slice(&m.segment_len.to_le_bytes());
        buf.extend_from_slice(&(m.digests.len() as u32).to_le_bytes());
        for d in &m.digests {
            buf.extend_from_slice(d);
        }
    }
}

/// Fills in the checksum of an encoded record (of at least the fixed head's
/// size). The builder seals what it writes; the fuzz target seals what it
/// generates, to reach the structure checks behind the checksum.
pub fn seal(bytes: &mut [u8]) {
    if bytes.len() >= CHECKSUM_COVERS_FROM {
        let sum = record_checksum(bytes[3], &bytes[CHECKSUM_COVERS_FROM..]);
        bytes[CHECKSUM_AT..CHECKSUM_COVERS_FROM].copy_from_slice(&sum.to_le_bytes());
    }
}

/// The checksum a record of `version` carries over `covered`: XXH3-64 from
/// version 4, the lane checksum of `cache::checksum` before.
fn record_checksum(version: u8, covered: &[u8]) -> u64 {
    if version >= 4 {
        xxhash_rust::xxh3::xxh3_64(covered)
    } else {
        checksum(covered)
    }
}

/// Whether an encoded record has room for a mark (version 3 and later).
pub fn can_carry_mark(bytes: &[u8]) -> bool {
    bytes.len() >= MARK_AT + 16 && &bytes[..3] == MAGIC && (3..=RECORD_VERSION).contains(&bytes[3])
}

/// A copy of an encoded record carrying `mark` (or none), every other byte the
/// same; `None` for versions before 3, which have no room for it.
pub fn with_mark(bytes: &[u8], mark: Option<Mark>) -> Option<Vec<u8>> {
    if !can_carry_mark(bytes) {
        return None;
    }
    let mut copy = bytes.to_vec();
    let (until, token) = mark.map_or((0, 0), |m| (m.until, m.token));
    copy[MARK_AT..MARK_AT + 8].copy_from_slice(&until.to_le_bytes());
    copy[MARK_AT + 8..MARK_AT + 16].copy_from_slice(&token.to_le_bytes());
    seal(&mut copy);
    Some(copy)
}

/// Whether two encoded records are the same entry whatever mark each carries:
/// every byte equal but the mark's and the checksum's (which covers the mark).
/// An entry replaced, or purged (deleted, or made stale by a soft purge), is
/// not the same entry. Lets a request that read an entry earlier act on it
/// (mark it, rewrite it, delete it) only while the key still holds it.
pub fn same_entry(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    if a.len() != b.len() || !can_carry_mark(a) || !can_carry_mark(b) {
        return false;
    }
    let mark = MARK_AT + 16;
    a[..CHECKSUM_AT] == b[..CHECKSUM_AT]
        && a[CHECKSUM_COVERS_FROM..MARK_AT] == b[CHECKSUM_COVERS_FROM..MARK_AT]
        && a[mark..] == b[mark..]
}

/// The segments a stored head names, for deleting them with it; `None` for a
/// whole record or bytes that are not a record.
pub fn segment_set(bytes: &[u8]) -> Option<segment::SegmentSet> {
    decode(bytes).ok()?.segments.map(|s| s.set())
}

/// A copy of a record (any version) whose freshness ends at `fresh_until` if it
/// would end later — a soft purge: the entry is stale from then on, and its stale
/// windows still apply. `None` for bytes that are not a record.
pub fn expired_by(bytes: &[u8], fresh_until: u64) -> Option<Vec<u8>> {
    let rec = decode(bytes).ok()?;
    let mut copy = bytes.to_vec();
    let until = rec.meta.fresh_until.min(fresh_until);
    copy[FRESH_UNTIL_AT..FRESH_UNTIL_AT + 8].copy_from_slice(&until.to_le_bytes());
    seal(&mut copy);
    Some(copy)
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
        version @ 1..=RECORD_VERSION => decode_versioned(bytes, version),
        other => Err(DecodeError::UnsupportedVersion(other)),
    }
}

fn decode_versioned(bytes: &[u8], version: u8) -> Result<Record<'_>, DecodeError> {
    let mut r = Reader { bytes, at: CHECKSUM_AT };
    let sum = u64::from_le_bytes(r.array()?);
    if record_checksum(version, &bytes[CHECKSUM_COVERS_FROM..]) != sum {
        return Err(DecodeError::ChecksumMismatch);
    }
    let stored_at = u64::from_le_bytes(r.array()?);
    let fresh_until = u64::from_le_bytes(r.array()?);
    let (stale, mark) = if version >= 3 {
        let while_revalidate = u32::from_le_bytes(r.array()?);
        let if_error = u32::from_le_bytes(r.array()?);
        let [flags] = r.array()?;
        let until = u64::from_le_bytes(r.array()?);
        let token = u64::from_le_bytes(r.array()?);
        let forbidden = flags & FLAG_STALE_FORBIDDEN != 0;
        (StaleWindows { while_revalidate, if_error, forbidden }, (until != 0).then_some(Mark { until, token }))
    } else {
        (StaleWindows::default(), None)
    };
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
    let (body, (id_slots, segments)) = if version == 1 {
        (&bytes[r.at..], (Vec::new(), None))
    } else {
        let body_len = u32::from_le_bytes(r.array()?);
        let body = r.take(body_len as usize)?;
        (body, r.extensions()?)
    };
    if segments.as_ref().is_some_and(|s| !s.consistent_with(body.len())) {
        return Err(DecodeError::BadManifest);
    }
    Ok(Record {
        meta: RecordMeta {
            stored_at,
            fresh_until,
            stale,
            initial_age,
            status,
            request_digest,
            vary_digest,
            vary,
        },
        headers,
        body,
        id_slots,
        mark,
        segments,
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

    /// The extension list, which must end the record.
    fn extensions(&mut self) -> Result<(Vec<IdSlot>, Option<Segments>), DecodeError> {
        let mut id_slots = Vec::new();
        let mut segments = None;
        let count = u16::from_le_bytes(self.array()?);
        for _ in 0..count {
            let tag = u16::from_le_bytes(self.array()?);
            let len = u32::from_le_bytes(self.array()?);
            let mut ext = Reader { bytes: self.take(len as usize)?, at: 0 };
            match tag {
                EXT_ID_SLOTS => {
                    let n = u32::from_le_bytes(ext.array()?);
                    for _ in 0..n {
                        let [offset, len, call] = [(); 3].map(|()| ext.array().map(u32::from_le_bytes));
                        id_slots.push(IdSlot { offset: offset?, len: len?, call: call? });
                    }
                    if ext.at != ext.bytes.len() {
                        return Err(DecodeError::TrailingBytes);
                    }
                }
                EXT_SEGMENTS => {
                    let generation = u64::from_le_bytes(ext.array()?);
                    let total_len = u64::from_le_bytes(ext.array()?);
                    let segment_len = u32::from_le_bytes(ext.array()?);
                    let count = u32::from_le_bytes(ext.array()?);
                    let mut digests = Vec::with_capacity((count as usize).min(ext.bytes.len() / 16));
                    for _ in 0..count {
                        digests.push(ext.array()?);
                    }
                    if ext.at != ext.bytes.len() {
                        return Err(DecodeError::TrailingBytes);
                    }
                    segments = Some(Segments { generation, total_len, segment_len, digests });
                }
                t if t & CRITICAL != 0 => return Err(DecodeError::UnknownExtension(t)),
                _ => {}
            }
        }
        if self.at != self.bytes.len() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok((id_slots, segments))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> RecordMeta {
        RecordMeta {
            stored_at: 1_700_000_000,
            fresh_until: 1_700_000_060,
            stale: StaleWindows { while_revalidate: 30, if_error: 600, forbidden: false },
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

    fn encode_with(body: &[u8], slots: &[IdSlot]) -> Vec<u8> {
        let mut b = RecordBuilder::new(&meta(), &headers(), body.len(), 1 << 20).unwrap();
        assert!(b.push_body(&body[..body.len() / 2]));
        assert!(b.push_body(&body[body.len() / 2..]));
        let (bytes, range) = b.finish(slots);
        assert_eq!(&bytes[range], body);
        bytes
    }

    fn encode(body: &[u8]) -> Vec<u8> {
        encode_with(body, &[])
    }

    /// A version 1 or 2 record as earlier releases wrote it.
    fn old_record(version: u8, body: &[u8]) -> Vec<u8> {
        let m = meta();
        let mut buf = vec![b'P', b'C', b'R', version];
        buf.extend_from_slice(&[0; 8]);
        buf.extend_from_slice(&m.stored_at.to_le_bytes());
        buf.extend_from_slice(&m.fresh_until.to_le_bytes());
        buf.extend_from_slice(&m.initial_age.to_le_bytes());
        buf.extend_from_slice(&m.status.to_le_bytes());
        buf.extend_from_slice(&m.request_digest);
        buf.extend_from_slice(&m.vary_digest);
        buf.extend_from_slice(&1u16.to_le_bytes());
        buf.extend_from_slice(&15u16.to_le_bytes());
        buf.extend_from_slice(b"accept-language");
        buf.extend_from_slice(&(headers().len() as u16).to_le_bytes());
        for (name, value) in headers() {
            buf.extend_from_slice(&(name.len() as u16).to_le_bytes());
            buf.extend_from_slice(name.as_bytes());
            buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
            buf.extend_from_slice(&value);
        }
        if version == 2 {
            buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
        }
        buf.extend_from_slice(body);
        if version == 2 {
            buf.extend_from_slice(&0u16.to_le_bytes());
        }
        seal(&mut buf);
        buf
    }

    #[test]
    fn version_1_and_2_records_still_decode_with_no_stale_windows_and_no_mark() {
        for version in [1, 2] {
            let bytes = old_record(version, b"old body");
            let record = decode(&bytes).unwrap();
            assert_eq!(record.meta, RecordMeta { stale: StaleWindows::default(), ..meta() });
            assert_eq!(record.body, b"old body");
            assert_eq!(record.headers.len(), headers().len());
            assert!(record.id_slots.is_empty());
            assert_eq!(record.mark, None);
            assert_eq!(with_mark(&bytes, Some(Mark { until: 1, token: 2 })), None, "no room for a mark");
        }
    }

    #[test]
    fn a_builders_freshness_can_be_lowered_once_its_body_is_read_and_nothing_else_changes() {
        let mut b = RecordBuilder::new(&meta(), &headers(), 4, 1 << 20).unwrap();
        assert!(b.push_body(b"body"));
        let lowered = RecordMeta {
            fresh_until: meta().fresh_until - 50,
            stale: StaleWindows { while_revalidate: 0, if_error: 7, forbidden: true },
            ..meta()
        };
        b.set_freshness(&lowered);
        let bytes = b.finish(&[]).0;
        let record = decode(&bytes).unwrap();
        assert_eq!(record.meta, lowered);
        assert_eq!((record.body, record.headers.len()), (&b"body"[..], headers().len()));
    }

    #[test]
    fn stale_windows_round_trip_and_a_mark_changes_nothing_else() {
        let forbidden = RecordMeta { stale: StaleWindows { forbidden: true, ..meta().stale }, ..meta() };
        let mut b = RecordBuilder::new(&forbidden, &headers(), 4, 1 << 20).unwrap();
        assert!(b.push_body(b"body"));
        let bytes = b.finish(&[]).0;
        let plain = decode(&bytes).unwrap();
        assert_eq!(plain.meta, forbidden);
        assert_eq!(plain.mark, None);
        let mark = Mark { until: 1_700_000_100, token: 0xfeed };
        let marked_bytes = with_mark(&bytes, Some(mark)).unwrap();
        let marked = decode(&marked_bytes).unwrap();
        assert_eq!(marked.mark, Some(mark));
        assert_eq!((marked.meta, marked.headers, marked.body), (plain.meta.clone(), plain.headers.clone(), plain.body));
        let cleared = with_mark(&marked_bytes, None).unwrap();
        assert_eq!(cleared, bytes, "clearing the mark restores the record byte for byte");
    }

    #[test]
    fn a_record_is_the_same_entry_whatever_its_mark_but_not_once_replaced_or_soft_purged() {
        let bytes = encode(b"body");
        let marked = with_mark(&bytes, Some(Mark { until: 1_700_000_100, token: 7 })).unwrap();
        assert!(same_entry(&bytes, &bytes) && same_entry(&marked, &bytes) && same_entry(&bytes, &marked));
        assert!(!same_entry(&encode(b"bodz"), &bytes), "another body");
        assert!(!same_entry(&expired_by(&bytes, 1_700_000_001).unwrap(), &bytes), "soft-purged");
        let other_time = RecordMeta { stored_at: 1_700_000_001, ..meta() };
        let mut b = RecordBuilder::new(&other_time, &headers(), 4, 1 << 20).unwrap();
        assert!(b.push_body(b"body"));
        assert!(!same_entry(&b.finish(&[]).0, &bytes), "stored again later");
        assert!(!same_entry(&Mark { until: 1, token: 2 }.encode(), &bytes));
    }

    #[test]
    fn an_unchanged_body_is_sealed_as_a_head_naming_the_segments_already_stored() {
        let body: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let build = |meta: &RecordMeta, headers: &[(String, Vec<u8>)], body: &[u8]| {
            let mut b = RecordBuilder::new(meta, headers, body.len(), 1 << 20).unwrap();
            assert!(b.push_body(body));
            b
        };
        let Some(Sealed::Split { head, manifest, .. }) = build(&meta(), &headers(), &body).seal_within(&[], 2048, 7) else {
            panic!("split")
        };
        let held = decode(&head).unwrap();
        // Fetched again later, with one more header: the same segments.
        let later = RecordMeta { stored_at: meta().stored_at + 100, fresh_until: meta().fresh_until + 100, ..meta() };
        let mut more = headers();
        more.push(("x-later".into(), b"1".to_vec()));
        let reused = build(&later, &more, &body).head_reusing(&[], 2048, held.body, &manifest).expect("the same body");
        let rec = decode(&reused).unwrap();
        assert_eq!((rec.meta, rec.body, rec.segments.as_ref()), (later.clone(), held.body, Some(&manifest)));
        assert_eq!(rec.headers.len(), 5);
        // One byte changed anywhere, or a head that no longer fits: sealed as usual.
        for at in [0, held.body.len(), body.len() - 1] {
            let mut other = body.clone();
            other[at] ^= 1;
            assert!(build(&later, &more, &other).head_reusing(&[], 2048, held.body, &manifest).is_none(), "{at}");
        }
        assert!(build(&later, &more, &body[..9_999]).head_reusing(&[], 2048, held.body, &manifest).is_none());
        assert!(build(&later, &more, &body).head_reusing(&[], held.body.len(), held.body, &manifest).is_none());
    }

    #[test]
    fn id_slots_round_trip() {
        let slots = [IdSlot { offset: 1, len: 2, call: 0 }, IdSlot { offset: 9, len: 4, call: 3 }];
        let bytes = encode_with(b"{\"id\":17,\"x\":\"abcd\"}", &slots);
        assert_eq!(decode(&bytes).unwrap().id_slots, slots);
    }

    /// Re-seals a record after editing it, as a writer of another version would.
    fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
        seal(&mut bytes);
        bytes
    }

    #[test]
    fn unknown_critical_extensions_are_misses_and_others_are_skipped() {
        let with_ext = |tag: u16| {
            let mut bytes = encode(b"body");
            let at = bytes.len() - 2;
            bytes.truncate(at);
            bytes.extend_from_slice(&1u16.to_le_bytes());
            bytes.extend_from_slice(&tag.to_le_bytes());
            bytes.extend_from_slice(&3u32.to_le_bytes());
            bytes.extend_from_slice(b"xyz");
            reseal(bytes)
        };
        assert_eq!(decode(&with_ext(0x0042)).unwrap().body, b"body");
        assert_eq!(decode(&with_ext(CRITICAL | 0x42)), Err(DecodeError::UnknownExtension(0x8042)));
        let mut trailing = encode(b"body");
        trailing.push(0);
        assert_eq!(decode(&reseal(trailing)), Err(DecodeError::TrailingBytes));
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
        future[3] = RECORD_VERSION + 1;
        assert_eq!(decode(&future), Err(DecodeError::UnsupportedVersion(RECORD_VERSION + 1)));
        assert_eq!(decode(b"{\"json\":1}"), Err(DecodeError::NotARecord));
        assert_eq!(decode(b""), Err(DecodeError::NotARecord));
    }

    #[test]
    fn a_soft_purge_ends_freshness_and_keeps_everything_else_in_every_version() {
        for bytes in [encode(b"body"), old_record(1, b"body"), old_record(2, b"body")] {
            let rec = decode(&bytes).unwrap();
            let purged = expired_by(&bytes, rec.meta.fresh_until - 5).unwrap();
            let again = decode(&purged).unwrap();
            assert_eq!(again.meta.fresh_until, rec.meta.fresh_until - 5);
            assert_eq!((again.body, again.headers.clone(), again.meta.stale), (rec.body, rec.headers.clone(), rec.meta.stale));
            // Never extends freshness.
            let later = expired_by(&bytes, rec.meta.fresh_until + 100).unwrap();
            assert_eq!(decode(&later).unwrap().meta.fresh_until, rec.meta.fresh_until);
        }
        assert_eq!(expired_by(b"not a record", 0), None);
    }

    #[test]
    fn builder_refuses_body_past_the_limit() {
        let mut b = RecordBuilder::new(&meta(), &headers(), 0, 260).unwrap();
        // The record ends with a two-byte extension count.
        let head = 260 - b.buf.len() - 2;
        assert!(b.push_body(&vec![0; head]));
        assert!(!b.push_body(&[0]));
        assert_eq!(b.body().len(), head);
        assert!(RecordBuilder::new(&meta(), &headers(), 0, 50).is_none());
    }

    fn split(body: &[u8], slots: &[IdSlot], max_value: usize) -> Sealed {
        let mut b = RecordBuilder::new(&meta(), &headers(), body.len(), 1 << 24).unwrap();
        assert!(b.push_body(body));
        b.seal_within(slots, max_value, 0xfeed).unwrap()
    }

    #[test]
    fn a_record_that_fits_one_value_is_sealed_whole() {
        let body = vec![7u8; 500];
        let Sealed::Whole(bytes) = split(&body, &[], 2_000) else { panic!("split a record that fits") };
        assert_eq!(bytes, encode(&body));
    }

    #[test]
    fn a_large_body_is_split_into_a_head_and_full_segments_that_rebuild_it() {
        let body: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let slots = [IdSlot { offset: 3, len: 2, call: 0 }];
        let Sealed::Split { head, body: buf, segments, manifest } = split(&body, &slots, 3_000) else { panic!("not split") };
        assert!(head.len() <= 3_000 && segments.iter().all(|r| r.len() <= 3_000));
        let rec = decode(&head).unwrap();
        assert_eq!(rec.segments.as_ref(), Some(&manifest));
        assert_eq!((manifest.generation, manifest.total_len, rec.body_len()), (0xfeed, 10_000, 10_000));
        assert_eq!(rec.id_slots, slots);
        let mut rebuilt = rec.body.to_vec();
        let body_start = (buf.len() - body.len()) as u64;
        for (i, range) in segments.iter().enumerate() {
            assert!(manifest.verify(rec.body.len(), i, &buf[range.clone()]), "segment {i}");
            let in_body = manifest.range(rec.body.len(), i);
            assert_eq!(in_body.start..in_body.end, range.start as u64 - body_start..range.end as u64 - body_start);
            rebuilt.extend_from_slice(&buf[range.clone()]);
        }
        assert_eq!(rebuilt, body);
        assert_eq!(segment_set(&head), Some(manifest.set()));
        assert_eq!(segment_set(&encode(&body)), None);
    }

    #[test]
    fn a_rewritten_head_keeps_its_manifest_and_a_manifest_that_does_not_cover_the_body_is_refused() {
        let body = vec![3u8; 9_000];
        let Sealed::Split { head, manifest, .. } = split(&body, &[], 2_000) else { panic!("not split") };
        let rec = decode(&head).unwrap();
        let mut b = RecordBuilder::new(&meta(), &headers(), rec.body.len(), 2_000).unwrap();
        assert!(b.push_body(rec.body));
        let (rewritten, _) = b.finish_with(&[], Some(&manifest));
        assert_eq!(decode(&rewritten).unwrap().segments, Some(manifest.clone()));
        let mut short = RecordBuilder::new(&meta(), &headers(), 10, 2_000).unwrap();
        assert!(short.push_body(&rec.body[..10]));
        assert_eq!(decode(&short.finish_with(&[], Some(&manifest)).0), Err(DecodeError::BadManifest));
    }

    #[test]
    fn version_3_records_with_the_earlier_checksum_still_decode_and_take_a_mark() {
        let body = b"written by the previous release";
        let mut v3 = encode(body);
        v3[3] = 3;
        let v4_sum = v3[CHECKSUM_AT..CHECKSUM_COVERS_FROM].to_vec();
        assert_eq!(decode(&v3), Err(DecodeError::ChecksumMismatch), "version 3 does not take XXH3-64");
        seal(&mut v3);
        assert_ne!(v3[CHECKSUM_AT..CHECKSUM_COVERS_FROM], v4_sum[..]);
        let rec = decode(&v3).unwrap();
        assert_eq!((rec.body, rec.meta), (&body[..], meta()));
        let mark = Mark { until: 9, token: 10 };
        let marked = with_mark(&v3, Some(mark)).unwrap();
        assert_eq!((marked[3], decode(&marked).unwrap().mark), (3, Some(mark)));
        assert_eq!(decode(&expired_by(&v3, 1).unwrap()).unwrap().meta.fresh_until, 1);
    }

    #[test]
    fn version_4_is_sealed_with_xxh3_64() {
        let bytes = encode(b"x");
        assert_eq!(bytes[3], 4);
        let sum = u64::from_le_bytes(bytes[CHECKSUM_AT..CHECKSUM_COVERS_FROM].try_into().unwrap());
        assert_eq!(sum, xxhash_rust::xxh3::xxh3_64(&bytes[CHECKSUM_COVERS_FROM..]));
    }
}
