//! Collapsed misses: of many requests that miss the same key at once, best-effort
//! only one goes to the origin. It leaves a short-lived mark under the key (inside
//! the expired record, or alone under a cold key when `collapse_cold_misses`
//! asks for it); the others poll the key with backoff for up to
//! `collapse_wait_ms` and answer from the entry when it lands, or go to the
//! origin themselves. The store has no locks or atomics: a mark is a claim read
//! back, two near-simultaneous leaders can both win, and a leader that dies only
//! costs its followers the wait cap.

use super::flow::{Env, Flow, To};
use super::found::{examine, Found, Held};
use super::respond::log_store_error;
use super::segments::Retired;
use super::store::Stored;
use crate::cache::freshness::{decide_stored, StoredUse};
use crate::cache::mark::{decide_collapse, Collapse, Mark};
use crate::cache::outcome::{Fwd, Outcome};
use crate::cache::record;
use crate::runtime::Runtime;
use crate::store::Store;

/// The first poll's delay; each next one doubles it.
const FIRST_POLL_MS: u64 = 10;

impl<'a, E: Env> Flow<'a, E> {
    /// Fetches from the origin as leader, follower or alone, and answers the
    /// client.
    pub async fn fetch_collapsed(&self, fwd: Fwd, held: Held<'_>, client: To<E>) -> Stored {
        let (found, markable) = match held {
            // A cold key is marked only when the operator asks: the mark's write
            // and read-back come before the origin is asked, on every cold miss,
            // and most cold keys are asked for once. Popular keys get their bursts
            // when they expire (their record carries the mark) or after a soft
            // purge.
            Held::Empty => (None, self.config.collapse_cold_misses),
            Held::Mark(mark) => (Some(mark), true),
            Held::Unusable => (None, false),
            // Records from before version 3 have no room for a mark.
            Held::Record { usable, .. } => (usable.record.mark, record::can_carry_mark(self.held.unwrap_or_default())),
        };
        let wait = match decide_collapse(self.config.collapse_wait_ms > 0, markable, found, self.now) {
            Collapse::Alone => false,
            Collapse::Wait => true,
            Collapse::Lead => match self.claim(held) {
                Claim::Ours(lead) => {
                    let fetched = self.fetch(fwd, held, client).await;
                    let released = lead.settle(fetched.stored);
                    return Stored { stored: fetched.stored, retired: fetched.retired.and(released) };
                }
                Claim::Theirs => true,
                Claim::Failed => false,
            },
        };
        if wait {
            if let Some(bytes) = self.wait_for_leader().await {
                if let Found::Record(usable) = examine(Some(&bytes), self.keyed, &self.request.headers) {
                    if let Some(usable) = self.ready(usable) {
                        let ttl = usable.record.ttl(self.now);
                        self.replay(client, &usable, Outcome::CollapsedHit { ttl }).await;
                        return Stored::NOTHING;
                    }
                }
            }
        }
        self.fetch(fwd, held, client).await
    }

    /// Writes our mark and reads the key back at once (a miss is on the
    /// client's clock, so unlike a refresh it does not wait for others' marks
    /// to settle).
    fn claim<'f>(&'f self, held: Held<'_>) -> Claim<'f, 'a, E> {
        let key = &self.keyed.kv_key;
        let seconds = self.config.collapse_wait_ms.div_ceil(1000) + 1;
        let mark = Mark { until: self.now + seconds, token: self.runtime.token() };
        let (value, original) = match held {
            // The mark goes only into the entry the key still holds: a segmented
            // entry's first segment was read since the lookup, and a purge or a
            // newer entry may have landed meanwhile.
            Held::Record { .. } if !self.still_held() => return Claim::Failed,
            Held::Record { .. } => match self.held.and_then(|bytes| Some((record::with_mark(bytes, Some(mark))?, bytes))) {
                Some((marked, bytes)) => (marked, Some(bytes)),
                None => return Claim::Failed,
            },
            _ => (mark.encode(), None),
        };
        if let Err(e) = self.store.set(key, &value) {
            log_store_error("set", &e);
            return Claim::Failed;
        }
        match self.store.get(key) {
            Ok(Some(bytes)) if mark_in(&bytes) == Some(mark) => Claim::Ours(Lead { flow: self, mark, original, settled: false }),
            Ok(_) => Claim::Theirs,
            Err(e) => {
                log_store_error("get", &e);
                Claim::Failed
            }
        }
    }

    /// Polls the key (10, 20, 40 … ms, up to `collapse_wait_ms` in all) until
    /// a fresh record for this request lands (its bytes are returned), or no
    /// live mark says someone is still fetching, or the cap passes.
    async fn wait_for_leader(&self) -> Option<Vec<u8>> {
        let cap = self.config.collapse_wait_ms;
        let (mut waited, mut step) = (0, FIRST_POLL_MS);
        while waited < cap {
            let nap = step.min(cap - waited);
            self.runtime.sleep_ms(nap).await;
            waited += nap;
            step *= 2;
            let bytes = match self.store.get(&self.keyed.kv_key) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => return None,
                Err(e) => {
                    log_store_error("get", &e);
                    return None;
                }
            };
            let still_fetching = match examine(Some(&bytes), self.keyed, &self.request.headers) {
                Found::Record(usable) => {
                    if matches!(decide_stored(&usable.record.meta, self.request_cc, self.now), StoredUse::Fresh { .. }) {
                        drop(usable);
                        return Some(bytes);
                    }
                    usable.record.mark.is_some_and(|m| m.live(self.now))
                }
                Found::Nothing { held: Held::Mark(mark), .. } => mark.live(self.now),
                Found::Nothing { .. } => false,
            };
            if !still_fetching {
                return None;
            }
        }
        None
    }
}

enum Claim<'f, 'a, E: Env> {
    /// Our mark is what the key holds now: fetch, as the lead.
    Ours(Lead<'f, 'a, E>),
    /// Another request's mark replaced ours: wait for it.
    Theirs,
    /// The store failed, or the entry changed since the lookup: fetch without
    /// collapsing.
    Failed,
}

/// The lead of a collapsed miss: our mark is under the key. A lead that stored
/// nothing takes its mark back if the key still holds it — deleting a mark
/// alone, or putting back the record it marked (which may still serve a
/// client's stale-if-error) — so followers stop waiting and go to the origin
/// themselves instead of waiting out the cap. It does so when settled with
/// nothing stored, and when dropped unsettled (a fetch that did not finish).
struct Lead<'f, 'a, E: Env> {
    flow: &'f Flow<'a, E>,
    mark: Mark,
    /// The record our mark went into, as it was read at lookup.
    original: Option<&'a [u8]>,
    settled: bool,
}

impl<E: Env> Lead<'_, '_, E> {
    /// The fetch is over: a stored entry replaced the mark; otherwise the mark
    /// is taken back, and what that deleted is returned.
    fn settle(mut self, stored: bool) -> Retired {
        self.settled = true;
        if stored {
            Retired::NONE
        } else {
            self.release()
        }
    }

    fn release(&self) -> Retired {
        let (flow, key) = (self.flow, &self.flow.keyed.kv_key);
        match flow.store.get(key) {
            Ok(Some(bytes)) if mark_in(&bytes) == Some(self.mark) => match self.original {
                Some(record) => {
                    if let Err(e) = flow.store.set(key, record) {
                        log_store_error("set", &e);
                    }
                    Retired::NONE
                }
                None => flow.delete_entry(),
            },
            Ok(_) => Retired::NONE,
            Err(e) => {
                log_store_error("get", &e);
                Retired::NONE
            }
        }
    }
}

impl<E: Env> Drop for Lead<'_, '_, E> {
    fn drop(&mut self) {
        if !self.settled {
            // Nobody is left to sweep what this deletes: the purge by URL or of
            // everything deletes segments a failure leaves.
            let _ = self.release();
        }
    }
}

/// The mark a stored value carries, alone or in a record.
fn mark_in(bytes: &[u8]) -> Option<Mark> {
    Mark::decode(bytes).or_else(|| record::decode(bytes).ok()?.mark)
}
