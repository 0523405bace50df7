//! Indexes against the store (`cache::index`): a stored entry's line added to
//! the index of each of its tags and of its URL before its head is written,
//! checked again after the response; and the entries of an index taken by a
//! purge or an invalidation, which writes a new epoch.
//!
//! Without compare-and-swap, two requests that read one index and write it
//! back can lose each other's change. Each side checks after a settle delay:
//! a writer whose line is gone adds it again, and one that finds a new epoch (a
//! purge ran meanwhile and may have missed its entry) deletes its own entry; a
//! purge that finds its epoch overwritten (a writer that read the index before
//! the purge wrote it back afterwards) takes the entries it finds then too.
//! What is left is a request that takes longer than the settle delay between
//! reading an index and writing it back, and a writer that found its line
//! already there (a refresh of an indexed entry) while a purge took it: such a
//! writer does not check (most misses of a warm cache are refreshes, and each
//! check keeps the instance for the delay), so a refresh whose fetch overlaps
//! a purge can keep its answer, as a fetch in flight during a purge can in any
//! cache.

use super::respond::log_store_error;
use crate::cache::index::{self, Added, Check, Index};
use crate::cache::key::{entry_of_suffix, entry_suffix, tag_index_key, tag_marker_key, uri_index_key_of};
use crate::store::{Store, StoreError};

/// How long each side waits before it checks an index it wrote: longer than a
/// request takes between its read of the index and its write.
pub const SETTLE_MS: u64 = 200;

/// An index line this request stands behind: checked after the response.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub index: String,
    /// The epoch the index had when the line was added (or found).
    pub epoch: u64,
    pub line: String,
    /// The tag, for a marker if the index turns out full; `None` for a URL's.
    pub tag: Option<String>,
    pub max_lines: usize,
    /// This request wrote the index (the line was new): another request may
    /// have overwritten it meanwhile.
    pub wrote: bool,
}

/// Adds the entry under `entry_key` to the indexes of `tags` and of its URL,
/// writing each index only if the line is new; a tag whose index is full gets
/// a marker holding `marker` instead. The first failure stops it: the entry
/// must then not be written.
pub fn add_entry(
    store: &impl Store,
    entry_key: &str,
    tags: &[String],
    marker: &[u8],
    max_lines: usize,
    now: u64,
    new_epoch: u64,
) -> Result<Vec<Line>, StoreError> {
    let Some(line) = entry_suffix(entry_key) else { return Ok(Vec::new()) };
    let mut lines = Vec::with_capacity(tags.len() + 1);
    let indexes = tags.iter().map(|t| (tag_index_key(t), Some(t.clone()))).chain(uri_index_key_of(entry_key).map(|u| (u, None)));
    for (key, tag) in indexes {
        let (epoch, wrote) = add_line(store, &key, line, tag.as_deref(), entry_key, marker, max_lines, now, new_epoch)?;
        lines.push(Line { index: key, epoch, line: line.to_string(), tag, max_lines, wrote });
    }
    Ok(lines)
}

/// Reads, changes and writes back one index; returns the epoch it holds and
/// whether it was written.
#[allow(clippy::too_many_arguments)]
fn add_line(
    store: &impl Store,
    key: &str,
    line: &str,
    tag: Option<&str>,
    entry_key: &str,
    marker: &[u8],
    max_lines: usize,
    now: u64,
    new_epoch: u64,
) -> Result<(u64, bool), StoreError> {
    let mut index = match store.get(key)? {
        Some(bytes) => Index::decode(&bytes),
        None => Index::new(new_epoch, now),
    };
    let added = index.add(line, max_lines);
    if tag.is_none() && added == (Added::Full { became: true }) {
        // A full URL index is purged through the URL's key prefix: its lines
        // are of no more use, and every later miss of the URL reads the index.
        index.lines.clear();
    }
    let wrote = matches!(added, Added::Added | Added::Full { became: true });
    if wrote {
        index.written = now;
        store.set(key, &index.encode())?;
    }
    if let (Added::Full { .. }, Some(tag)) = (added, tag) {
        if let Some(marker_key) = tag_marker_key(tag, entry_key) {
            store.set(&marker_key, marker)?;
        }
    }
    Ok((index.epoch, wrote))
}

/// After the response and the settle delay: whether every index still names
/// the entry in the epoch it was added in. A lost line is added again; a
/// purge that ran since (or an index that cannot be read) means the entry
/// must go.
pub fn still_indexed(store: &impl Store, entry_key: &str, lines: &[Line], marker: &[u8], now: u64) -> bool {
    for line in lines {
        let current = match store.get(&line.index) {
            Ok(bytes) => bytes.map(|b| Index::decode(&b)),
            Err(e) => {
                log_store_error("get", &e);
                return false;
            }
        };
        match index::check(line.epoch, current.as_ref(), &line.line) {
            Check::Held => {}
            Check::Purged => return false,
            Check::Lost => {
                let readded =
                    add_line(store, &line.index, &line.line, line.tag.as_deref(), entry_key, marker, line.max_lines, now, line.epoch);
                let readded = readded.map(|_| ());
                if let Err(e) = readded {
                    log_store_error("set", &e);
                    return false;
                }
            }
        }
    }
    true
}

/// What an index gave a purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// The entry keys it named that were selected; they are out of the index,
    /// whose epoch is now the one given.
    Entries(Vec<String>),
    /// The index is full: it no longer names every entry, so the store must be
    /// listed. Its lines are given too, as some may have no marker.
    Full(Vec<String>),
    /// There is no index: nothing was stored under it since a sweep deleted it
    /// empty — or, in a store that evicts keys, it was evicted.
    Missing,
}

/// Takes the selected lines (at most `limit` of an open one) out of an index for a purge and
/// writes it back with a new epoch, before the entries are deleted: a writer
/// that added one of them then finds the epoch changed and deletes its entry
/// itself. A soft purge (`write: false`) only reads.
pub fn take(
    store: &impl Store,
    key: &str,
    select: impl Fn(&str) -> bool,
    limit: usize,
    write: bool,
    now: u64,
    new_epoch: u64,
) -> Result<Taken, StoreError> {
    let Some(bytes) = store.get(key)? else { return Ok(Taken::Missing) };
    let mut index = Index::decode(&bytes);
    // A full index is not written back (it starts again after the listing's
    // purge): every line it names is taken now.
    let limit = if index.full { usize::MAX } else { limit };
    let mut chosen = Vec::new();
    index.lines.retain(|l| {
        let take = chosen.len() < limit && select(l);
        if take {
            chosen.push(l.clone());
        }
        !take
    });
    let entries: Vec<String> = chosen.iter().filter_map(|l| entry_of_suffix(l)).collect();
    if index.full {
        return Ok(Taken::Full(entries));
    }
    if write {
        index.epoch = new_epoch;
        index.written = now;
        store.set(key, &index.encode())?;
    }
    Ok(Taken::Entries(entries))
}

/// After a purge that listed the store for a full index and deleted all it
/// named: the index starts again, open and empty, in a new epoch.
pub fn restart(store: &impl Store, key: &str, now: u64, new_epoch: u64) -> Result<(), StoreError> {
    store.set(key, &Index::new(new_epoch, now).encode())
}

/// Whether an index's epoch is still `epoch` (a purge's check that no writer
/// wrote back what it read before the purge).
pub fn epoch_is(store: &impl Store, key: &str, epoch: u64) -> Result<bool, StoreError> {
    Ok(store.get(key)?.is_none_or(|b| Index::decode(&b).epoch == epoch))
}
