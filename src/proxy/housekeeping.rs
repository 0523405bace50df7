//! Keeping the store bounded, the I/O: the admin sweep, `/stats`' dead counts,
//! the automatic step after a miss's write, and making room when the store
//! refuses a write. What is dead, and why, is `cache::sweep`.
//!
//! Spin's key-value store lists only all of its keys (`get-keys`), so every
//! pass starts from the whole listing. The admin sweep and `/stats` sort it
//! (the sweep's cursor is a key; an entry's segments then follow it, and a key
//! whose entry is not listed is judged without a read); the automatic step does
//! not, as sorting a large listing costs more than the step's reads (see
//! docs/PERFORMANCE.md): it reads an entry's head to learn whether it is there.

use crate::cache::index::Index;
use crate::cache::key::{entry_of_suffix, segment_key, tag_marker_key, ANY_SCHEME_PREFIX};
use crate::cache::sweep::{self, Counts, Dead, Head, Kind};
use crate::config::Config;
use crate::store::{Store, StoreError};
use std::collections::{HashMap, HashSet};

/// Store operations (gets and deletes) one automatic step does at most,
/// besides its listing.
pub const STEP_OPERATIONS: usize = 128;

/// Entries read to pick one to evict: the one that stops being usable first
/// goes (approximated like Redis's `volatile-ttl`, which samples too).
pub const EVICTION_SAMPLE: usize = 5;

/// One pass over listed keys, judging each and deleting (or, dry, counting)
/// what is dead, within a budget of store operations.
pub struct Pass<'a, S> {
    store: &'a S,
    now: u64,
    persisted_max_age: u64,
    /// The store's keys (post-cache's), sorted; `None`: not known, a key is
    /// taken as there until a read finds it is not.
    listed: Option<&'a [String]>,
    /// Heads read so far (`None`: nothing under the key, or deleted by this pass).
    heads: HashMap<String, Option<Head>>,
    gone: HashSet<String>,
    dry: bool,
    pub operations: usize,
    pub dead: Counts,
    pub evicted: u64,
    /// Bytes of the entry values read.
    pub bytes_read: usize,
}

impl<'a, S: Store> Pass<'a, S> {
    pub fn new(store: &'a S, config: &Config, now: u64, listed: Option<&'a [String]>, dry: bool) -> Self {
        Pass {
            store,
            now,
            persisted_max_age: config.persisted_query_max_age,
            listed,
            heads: HashMap::new(),
            gone: HashSet::new(),
            dry,
            operations: 0,
            dead: Counts::default(),
            evicted: 0,
            bytes_read: 0,
        }
    }

    fn is_listed(&self, key: &str) -> bool {
        !self.gone.contains(key) && self.listed.is_none_or(|l| l.binary_search_by(|k| k.as_str().cmp(key)).is_ok())
    }

    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.operations += 1;
        self.store.get(key)
    }

    /// The head under an entry's key, read once per pass.
    fn head(&mut self, entry: &str) -> Result<Option<Head>, StoreError> {
        if let Some(head) = self.heads.get(entry) {
            return Ok(head.clone());
        }
        let head = if self.is_listed(entry) {
            let bytes = self.get(entry)?;
            self.bytes_read += bytes.as_ref().map_or(0, Vec::len);
            bytes.map(|b| Head::read(&b))
        } else {
            None
        };
        self.heads.insert(entry.to_string(), head.clone());
        Ok(head)
    }

    /// Judges one listed key, and deletes it (with what hangs on it) if dead.
    pub fn visit(&mut self, key: &str) -> Result<(), StoreError> {
        if self.gone.contains(key) {
            return Ok(());
        }
        let now = self.now;
        let dead = match sweep::kind(key) {
            Kind::Entry => self.head(key)?.and_then(|h| h.dead(now)),
            Kind::Segment { entry, generation } => sweep::segment_verdict(generation, self.head(entry)?.as_ref(), now),
            Kind::TagMarker { entry } if !self.is_listed(&entry) => Some(Dead::TagMarker),
            Kind::TagMarker { entry } => match self.get(key)? {
                None => None,
                Some(value) if sweep::tag_marker_live(&value, now) == Some(true) => None,
                Some(_) => sweep::tag_marker_verdict(key, self.head(&entry)?.as_ref(), now),
            },
            Kind::PersistedMarker => match self.get(key)? {
                None => None,
                Some(value) => sweep::persisted_marker_dead(&value, now, self.persisted_max_age),
            },
            Kind::Index => self.prune_index(key)?,
            Kind::Earlier => Some(Dead::Earlier),
            Kind::Other => None,
        };
        match dead {
            Some(Dead::Entry) => self.remove_entry(key, false),
            Some(dead) => self.delete(key, dead),
            None => Ok(()),
        }
    }

    /// Removes the lines of an index whose entries are gone: judged from the
    /// listing when there is one, else by reading each entry's head. An open
    /// index left empty is dead; a full one stays (markers stand for the
    /// entries it could not name). An index written lately is left alone.
    fn prune_index(&mut self, key: &str) -> Result<Option<Dead>, StoreError> {
        let Some(bytes) = self.get(key)? else { return Ok(None) };
        let mut index = Index::decode(&bytes);
        if !index.settled(self.now) {
            return Ok(None);
        }
        let mut gone = Vec::new();
        for line in &index.lines {
            let there = match entry_of_suffix(line) {
                None => false,
                Some(entry) if self.listed.is_some() => self.is_listed(&entry),
                Some(entry) => self.head(&entry)?.is_some_and(|h| h.dead(self.now).is_none()),
            };
            if !there {
                gone.push(line.clone());
            }
        }
        if gone.is_empty() {
            return Ok(None);
        }
        index.prune(|l| gone.iter().any(|g| g == l));
        if index.lines.is_empty() && !index.full {
            return Ok(Some(Dead::Index));
        }
        if !self.dry {
            self.operations += 1;
            self.store.set(key, &index.encode())?;
        }
        Ok(None)
    }

    fn delete(&mut self, key: &str, dead: Dead) -> Result<(), StoreError> {
        if !self.is_listed(key) {
            return Ok(());
        }
        if !self.dry {
            self.operations += 1;
            self.store.delete(key)?;
        }
        self.gone.insert(key.to_string());
        self.dead.add(dead);
        Ok(())
    }

    /// Deletes an entry's head, then the segments and tag markers it names
    /// (the head first: a reader never finds it without them).
    fn remove_entry(&mut self, key: &str, evicted: bool) -> Result<(), StoreError> {
        let head = self.head(key)?;
        if evicted {
            if !self.dry {
                self.operations += 1;
                self.store.delete(key)?;
            }
            self.gone.insert(key.to_string());
            self.evicted += 1;
        } else {
            self.delete(key, Dead::Entry)?;
        }
        self.heads.insert(key.to_string(), None);
        if let Some(Head::Record { segments, tags, .. }) = head {
            if let Some((generation, count)) = segments {
                for i in 0..count {
                    self.delete(&segment_key(key, generation, i), Dead::Segment)?;
                }
            }
            for tag in &tags {
                if let Some(marker) = tag_marker_key(tag, key) {
                    self.delete(&marker, Dead::TagMarker)?;
                }
            }
        }
        Ok(())
    }

    /// Evicts live entries until `excess` are gone or `budget` operations are
    /// spent: of a few sampled entries, the one whose last usable moment comes
    /// first. `draw` seeds the sampling.
    pub fn evict(&mut self, keys: &[String], mut excess: usize, budget: usize, draw: u64) -> Result<(), StoreError> {
        let entries: Vec<&String> = keys.iter().filter(|k| matches!(sweep::kind(k), Kind::Entry)).collect();
        if entries.is_empty() {
            return Ok(());
        }
        let mut rng = draw | 1;
        let mut next = move || {
            // xorshift64: sampling needs spread, not secrecy.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut tries = 0;
        while excess > 0 && self.operations < budget && tries < 4 * budget {
            tries += 1;
            let mut victim: Option<(u64, &String)> = None;
            for _ in 0..EVICTION_SAMPLE.min(entries.len()) {
                let key = entries[(next() % entries.len() as u64) as usize];
                if self.gone.contains(key) {
                    continue;
                }
                let until = match self.head(key)? {
                    Some(Head::Record { last_usable, .. }) => last_usable,
                    Some(Head::Corrupt) => 0,
                    // Marks are being fetched; a newer build's records are its own.
                    _ => continue,
                };
                if victim.is_none_or(|(best, _)| until < best) {
                    victim = Some((until, key));
                }
            }
            if let Some((_, key)) = victim {
                let key = key.clone();
                self.remove_entry(&key, true)?;
                excess -= 1;
            }
        }
        Ok(())
    }

    /// Judges a segment or a tag marker from the listing and the heads read
    /// so far, reading nothing more: an entry not listed, or read and dead.
    pub fn judge_from_listing(&mut self, key: &str) {
        if self.gone.contains(key) {
            return;
        }
        let now = self.now;
        let dead = match sweep::kind(key) {
            Kind::Segment { entry, generation } => match self.heads.get(entry) {
                _ if !self.is_listed(entry) => Some(Dead::Segment),
                Some(head) => sweep::segment_verdict(generation, head.as_ref(), now),
                None => None,
            },
            Kind::TagMarker { entry } => match self.heads.get(&entry) {
                _ if !self.is_listed(&entry) => Some(Dead::TagMarker),
                Some(head) => sweep::tag_marker_verdict(key, head.as_ref(), now),
                None => None,
            },
            _ => None,
        };
        if let Some(dead) = dead {
            self.gone.insert(key.to_string());
            self.dead.add(dead);
        }
    }

    /// Entries among `keys` not removed by this pass.
    pub fn entries_left(&self, keys: &[String]) -> usize {
        keys.iter().filter(|k| matches!(sweep::kind(k), Kind::Entry) && !self.gone.contains(k.as_str())).count()
    }

    /// Keys removed by this pass, dead or evicted.
    pub fn removed(&self) -> usize {
        self.gone.len()
    }
}

/// The keys post-cache wrote, in the store's order.
fn ours<S: Store>(store: &S) -> Result<Vec<String>, StoreError> {
    let mut keys = store.keys()?;
    keys.retain(|k| k.starts_with(ANY_SCHEME_PREFIX));
    Ok(keys)
}

/// The keys post-cache wrote, sorted.
pub fn listing<S: Store>(store: &S) -> Result<Vec<String>, StoreError> {
    let mut keys = ours(store)?;
    keys.sort_unstable();
    Ok(keys)
}

/// Whether the automatic step runs after this miss: on average once every
/// `every` misses (never when 0), from a random draw.
pub fn due(every: u64, draw: u64) -> bool {
    // The draw also names a generation: mix it so its low bits decide nothing alone.
    let mixed = draw.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    every > 0 && mixed % every == 0
}

/// What a step did.
#[derive(Debug, Default)]
pub struct StepReport {
    pub keys: usize,
    pub dead: Counts,
    pub evicted: u64,
    pub operations: usize,
}

/// One bounded step of the sweep from a random place in the listing,
/// then eviction down to `max_entries` (when set) and until at least `room`
/// keys are free (after the store refused a write).
pub fn step<S: Store>(store: &S, config: &Config, now: u64, draw: u64, room: usize) -> Result<StepReport, StoreError> {
    let keys = ours(store)?;
    let mut pass = Pass::new(store, config, now, None, false);
    if !keys.is_empty() {
        let start = (draw % keys.len() as u64) as usize;
        for key in keys[start..].iter().chain(&keys[..start]) {
            if pass.operations >= STEP_OPERATIONS {
                break;
            }
            pass.visit(key)?;
        }
    }
    let over = match config.max_entries {
        0 => 0,
        max => pass.entries_left(&keys).saturating_sub(max as usize),
    };
    let short = room.saturating_sub(pass.removed());
    if over > 0 || short > 0 {
        // Evicting one entry frees at least its head.
        pass.evict(&keys, over.max(short), pass.operations + STEP_OPERATIONS, draw.rotate_left(17))?;
    }
    Ok(StepReport { keys: keys.len(), dead: pass.dead, evicted: pass.evicted, operations: pass.operations })
}

/// After a miss's entry was written: now and then, a bounded step of the
/// sweep. The client has its answer; a failure costs nothing but the step.
pub fn after_store<S: Store>(store: &S, config: &Config, now: u64, draw: u64) {
    if !due(config.sweep_every, draw) {
        return;
    }
    if let Err(e) = step(store, config, now, draw, 0) {
        eprintln!("post-cache: housekeeping step failed: key-value store: {e}");
    }
}

/// The store refused a write (`error`) that needed `keys` keys. Spin reports
/// a store's quota as any other failure (`other(...)`), so every refused write
/// is taken as a possibly full store: one step sweeps, then evicts until at
/// least that many keys are free. When the store is down, its listing fails
/// too and nothing more is tried.
pub fn make_room<S: Store>(store: &S, config: &Config, now: u64, draw: u64, keys: usize, error: &StoreError) {
    match step(store, config, now, draw, keys) {
        Ok(report) => eprintln!(
            "post-cache: the store refused a write ({error}); made room: {} dead keys deleted, {} entries evicted, of {} keys ({} store operations)",
            report.dead.total(),
            report.evicted,
            report.keys,
            report.operations
        ),
        Err(e) => eprintln!("post-cache: the store refused a write ({error}); making room failed too: {e}"),
    }
}
