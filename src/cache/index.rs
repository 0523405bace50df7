//! An index, PURE: the entries stored under one tag or one URL (host and
//! path), kept in one value so that a purge or an invalidation reads that value
//! instead of listing the whole store (`get-keys` is the only listing Spin's
//! key-value store has, and every key crosses the network on a remote store).
//!
//! ```text
//! ix1:<epoch, 16 hex>:<open|full>:<written at>\n
//! <uri>:<query>:<entry>\n        one line per entry: its key without the prefix
//! ```
//!
//! Bounded at [`MAX_LINES`]: an index that would grow past it is marked
//! `full` and takes no more lines. A purge of a full tag lists the store for
//! the tag's markers, which writers then write per entry (as before indexes);
//! a purge of a full URL lists the store for the URL's key prefix.
//!
//! The store has no compare-and-swap, so an index is read, changed and written
//! back, and two writers can lose each other's line. The `epoch` lets each side
//! tell: a purge writes a new random epoch, and a writer that finds, after the
//! response, its line gone or the epoch changed since it read the index,
//! repairs the line or deletes its own entry (`proxy::index`).

/// Lines one index holds at most: its value stays far below hosted Spin's
/// 1 MB and the read-modify-write of a miss stays cheap.
pub const MAX_LINES: usize = 512;

const MAGIC: &str = "ix1";

/// How long after an index was written a sweep leaves it alone.
pub const SETTLE_SECONDS: u64 = 60;

/// One index value, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// Changed by every purge that reads the index, so a writer can tell one ran.
    pub epoch: u64,
    /// Past [`MAX_LINES`]: the index no longer names every entry.
    pub full: bool,
    /// When it was last written (Unix seconds): a sweep leaves a young index
    /// alone, as its newest lines may name entries whose heads are still
    /// being written.
    pub written: u64,
    /// Entry keys without the key prefix (`key::entry_suffix`), in the order added.
    pub lines: Vec<String>,
}

/// The lines an index may hold when a stored value is at most
/// `max_value_bytes`: [`MAX_LINES`], or fewer so the index fits one value.
pub fn max_lines(max_value_bytes: usize) -> usize {
    // The head line, then lines of a scheme-3 entry key's suffix and a newline.
    const HEAD: usize = 64;
    const LINE: usize = 32 + 1 + 16 + 1 + 64 + 1;
    (max_value_bytes.saturating_sub(HEAD) / LINE).min(MAX_LINES)
}

/// What adding a line did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// The line was there: nothing to write.
    Present,
    /// The line was added: write the index back.
    Added,
    /// The index is full (or just became so): write it back if it just did,
    /// and index the entry another way.
    Full { became: bool },
}

impl Index {
    pub fn new(epoch: u64, now: u64) -> Index {
        Index { epoch, full: false, written: now, lines: Vec::new() }
    }

    /// Reads an index value. Bytes that are no index read as a full, empty
    /// index of epoch 0: whatever it named can no longer be known, so a purge
    /// lists the store, and nothing is lost.
    pub fn decode(bytes: &[u8]) -> Index {
        Self::parse(bytes).unwrap_or(Index { epoch: 0, full: true, written: 0, lines: Vec::new() })
    }

    fn parse(bytes: &[u8]) -> Option<Index> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.split('\n');
        let mut head = lines.next()?.split(':');
        if head.next()? != MAGIC {
            return None;
        }
        let epoch = head.next().filter(|e| e.len() == 16).and_then(|e| u64::from_str_radix(e, 16).ok())?;
        let full = match head.next()? {
            "open" => false,
            "full" => true,
            _ => return None,
        };
        let written = head.next()?.parse().ok()?;
        if head.next().is_some() {
            return None;
        }
        let lines: Vec<String> = lines.filter(|l| !l.is_empty()).map(str::to_string).collect();
        if lines.len() > MAX_LINES {
            return None;
        }
        Some(Index { epoch, full, written, lines })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.lines.iter().map(|l| l.len() + 1).sum::<usize>());
        let state = if self.full { "full" } else { "open" };
        out.extend_from_slice(format!("{MAGIC}:{:016x}:{state}:{}\n", self.epoch, self.written).as_bytes());
        for line in &self.lines {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        out
    }

    pub fn contains(&self, line: &str) -> bool {
        self.lines.iter().any(|l| l == line)
    }

    /// Adds an entry's line, unless it is there or the index is full (at
    /// `max_lines`, see [`max_lines`]).
    pub fn add(&mut self, line: &str, max_lines: usize) -> Added {
        if self.contains(line) {
            Added::Present
        } else if self.full {
            Added::Full { became: false }
        } else if self.lines.len() >= max_lines {
            self.full = true;
            Added::Full { became: true }
        } else {
            self.lines.push(line.to_string());
            Added::Added
        }
    }

    /// Whether a sweep may judge its lines at `now`: written long enough ago
    /// that every entry it names has had time to be written.
    pub fn settled(&self, now: u64) -> bool {
        now >= self.written.saturating_add(SETTLE_SECONDS)
    }

    /// Removes the lines `gone` says are gone; whether any was.
    pub fn prune(&mut self, mut gone: impl FnMut(&str) -> bool) -> bool {
        let before = self.lines.len();
        self.lines.retain(|l| !gone(l));
        self.lines.len() != before
    }
}

/// What a writer's check of an index it added to, after the response, calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The index names the entry (or is full and the entry has its marker), in
    /// the epoch the writer read: nothing to do.
    Held,
    /// The line was lost to another writer's read-modify-write, no purge ran:
    /// add it again.
    Lost,
    /// A purge ran since the writer read the index (the epoch changed, or the
    /// index is gone): it may have missed the entry, which is deleted.
    Purged,
}

/// Judges an index as a writer reads it again after storing its entry:
/// `seen` is the epoch it read before writing the entry, `now` the value now.
pub fn check(seen: u64, now: Option<&Index>, line: &str) -> Check {
    match now {
        None => Check::Purged,
        Some(index) if index.epoch != seen => Check::Purged,
        Some(index) if index.full || index.contains(line) => Check::Held,
        Some(_) => Check::Lost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize) -> String {
        format!("{n:032x}:{n:016x}:{n:064x}")
    }

    #[test]
    fn an_index_reads_back_what_it_wrote() {
        let mut index = Index::new(0xfeed, 1_700_000_000);
        assert_eq!(index.add(&line(1), MAX_LINES), Added::Added);
        assert_eq!(index.add(&line(2), MAX_LINES), Added::Added);
        assert_eq!(index.add(&line(1), MAX_LINES), Added::Present);
        assert_eq!(Index::decode(&index.encode()), index);
        assert!(index.encode().starts_with(b"ix1:000000000000feed:open:1700000000\n"));
        assert!(!index.settled(1_700_000_059) && index.settled(1_700_000_060));
        index.full = true;
        assert_eq!(Index::decode(&index.encode()), index);
    }

    #[test]
    fn bytes_that_are_no_index_read_as_full_so_a_purge_lists_the_store() {
        for bad in [&b""[..], b"ix1", b"ix2:0000000000000001:open:0\n", b"ix1:1:open:0\n", b"ix1:000000000000000g:open:0\n", b"ix1:0000000000000001:half:0\n", b"ix1:0000000000000001:open\n", b"ix1:0000000000000001:open:0:x\n", b"\xff"] {
            let index = Index::decode(bad);
            assert!(index.full && index.lines.is_empty(), "{:?}", String::from_utf8_lossy(bad));
        }
        let too_long: String = format!("ix1:0000000000000001:open:0\n{}", (0..=MAX_LINES).map(|n| line(n) + "\n").collect::<String>());
        assert!(Index::decode(too_long.as_bytes()).full);
    }

    #[test]
    fn an_index_past_its_bound_becomes_full_once_and_takes_no_more_lines() {
        let mut index = Index::new(1, 0);
        for n in 0..MAX_LINES {
            assert_eq!(index.add(&line(n), MAX_LINES), Added::Added);
        }
        assert_eq!(index.add(&line(MAX_LINES), MAX_LINES), Added::Full { became: true });
        assert_eq!(index.add(&line(MAX_LINES + 1), MAX_LINES), Added::Full { became: false });
        assert_eq!(index.add(&line(3), MAX_LINES), Added::Present, "a line it holds is still found");
        assert_eq!(index.lines.len(), MAX_LINES);
        assert!(Index::decode(&index.encode()).full);
    }

    #[test]
    fn an_index_at_its_bound_fits_one_stored_value() {
        assert_eq!(max_lines(1_000_000), MAX_LINES);
        for max_value in [4096, 20_000, 1_000_000] {
            let mut index = Index::new(u64::MAX, u64::MAX);
            for n in 0..max_lines(max_value) {
                index.add(&line(n), max_lines(max_value));
            }
            assert!(index.encode().len() <= max_value, "{max_value}");
            assert_eq!(index.add(&line(usize::MAX), max_lines(max_value)), Added::Full { became: true });
        }
        assert_eq!(max_lines(10), 0);
    }

    #[test]
    fn pruning_removes_only_the_lines_named_gone() {
        let mut index = Index::new(1, 0);
        for n in 0..4 {
            index.add(&line(n), MAX_LINES);
        }
        assert!(index.prune(|l| l == line(1) || l == line(3)));
        assert_eq!(index.lines, [line(0), line(2)]);
        assert!(!index.prune(|_| false));
    }

    #[test]
    fn a_writer_tells_a_lost_line_from_a_purge_by_the_epoch() {
        let mut index = Index::new(7, 0);
        index.add(&line(1), MAX_LINES);
        assert_eq!(check(7, Some(&index), &line(1)), Check::Held);
        assert_eq!(check(7, Some(&index), &line(2)), Check::Lost, "another writer's write-back dropped it");
        assert_eq!(check(6, Some(&index), &line(1)), Check::Purged, "a purge ran since (and this is a later writer's)");
        assert_eq!(check(7, None, &line(1)), Check::Purged, "the index is gone");
        index.full = true;
        assert_eq!(check(7, Some(&index), &line(2)), Check::Held, "a full index leaves the entry to its marker");
    }
}
