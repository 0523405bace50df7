//! Collapsed misses: of many requests that miss the same key at once, best-effort
//! only one goes to the origin. It leaves a short-lived mark under the key (inside
//! the expired record, or alone under a cold key when `collapse_cold_misses`
//! asks for it); the others poll the key with backoff for up to
//! `collapse_wait_ms` and answer from the entry when it lands, or go to the
//! origin themselves. The store has no locks or atomics: a mark is a claim read
//! back, two near-simultaneous leaders can both win, and a leader that dies only
//! costs its followers the wait cap.

use super::lookup::{self, Found};
use super::miss::{self, Prior};
use super::{delete_entry, log_store_error, Flow};
use crate::body::{BodySource, Client};
use crate::cache::freshness::{decide_stored, StoredUse};
use crate::cache::mark::{decide_collapse, Collapse, Mark};
use crate::cache::outcome::{Fwd, Outcome};
use crate::cache::record;
use crate::origin::Origin;
use crate::runtime::Runtime;
use crate::store::Store;

/// What the key held when the request looked it up.
#[derive(Clone, Copy)]
pub enum Held<'a> {
    Empty,
    /// Another request's mark, alone under the key.
    Mark(Mark),
    /// A record for another body or variant, or bytes that do not decode.
    Unusable,
    /// This request's record (encoded) and the mark it carries.
    Record(&'a [u8], Option<Mark>),
}

/// The first poll's delay; each next one doubles it.
const FIRST_POLL_MS: u64 = 10;

/// Fetches from the origin as leader, follower or alone, and answers the client.
pub async fn fetch_collapsed<B: BodySource, S: Store, O: Origin, R: Runtime>(
    flow: &Flow<'_, B, S, O>,
    fwd: Fwd,
    prior: Prior<'_>,
    held: Held<'_>,
    runtime: &R,
    client: impl Client,
) {
    let (found, markable) = match held {
        // A cold key is marked only when the operator asks: the mark's write
        // and read-back come before the origin is asked, on every cold miss,
        // and most cold keys are asked for once. Popular keys get their bursts
        // when they expire (their record carries the mark) or after a soft
        // purge.
        Held::Empty => (None, flow.config.collapse_cold_misses),
        Held::Mark(mark) => (Some(mark), true),
        Held::Unusable => (None, false),
        // Records from before version 3 have no room for a mark.
        Held::Record(bytes, mark) => (mark, record::can_carry_mark(bytes)),
    };
    let decision = decide_collapse(flow.config.collapse_wait_ms > 0, markable, found, flow.now);
    let wait = match decision {
        Collapse::Alone => false,
        Collapse::Wait => true,
        Collapse::Lead => match claim(flow, held, runtime) {
            Claim::Ours(mark) => {
                if !miss::fetch_and_store(flow, fwd, prior, client).await {
                    let original = match held {
                        Held::Record(bytes, _) => Some(bytes),
                        _ => None,
                    };
                    release(flow, mark, original);
                }
                return;
            }
            Claim::Theirs => true,
            Claim::Failed => false,
        },
    };
    if wait {
        if let Some(bytes) = wait_for_leader(flow, runtime).await {
            let found = lookup::examine(Some(&bytes), flow.keyed, &flow.request.headers);
            if let Found::Record(usable) = found.filter_ready(flow) {
                let ttl = usable.record.ttl(flow.now);
                return lookup::replay(flow, client, &usable, Outcome::CollapsedHit { ttl }).await;
            }
        }
    }
    miss::fetch_and_store(flow, fwd, prior, client).await;
}

enum Claim {
    /// Our mark is what the key holds now: fetch.
    Ours(Mark),
    /// Another request's mark replaced ours: wait for it.
    Theirs,
    /// The store failed, or the entry changed since the lookup: fetch without
    /// collapsing.
    Failed,
}

/// Writes our mark and reads the key back at once (a miss is on the client's
/// clock, so unlike a refresh it does not wait for others' marks to settle).
fn claim<B, S: Store, O, R: Runtime>(flow: &Flow<'_, B, S, O>, held: Held<'_>, runtime: &R) -> Claim {
    let key = &flow.keyed.kv_key;
    let seconds = flow.config.collapse_wait_ms.div_ceil(1000) + 1;
    let mark = Mark { until: flow.now + seconds, token: runtime.token() };
    let value = match held {
        // The mark goes only into the entry the key still holds: a segmented
        // entry's first segment was read since the lookup, and a purge or a
        // newer entry may have landed meanwhile.
        Held::Record(_, _) if !miss::still_held(flow) => return Claim::Failed,
        Held::Record(bytes, _) => match record::with_mark(bytes, Some(mark)) {
            Some(marked) => marked,
            None => return Claim::Failed,
        },
        _ => mark.encode(),
    };
    if let Err(e) = flow.store.set(key, &value) {
        log_store_error("set", &e);
        return Claim::Failed;
    }
    match flow.store.get(key) {
        Ok(Some(bytes)) if mark_in(&bytes) == Some(mark) => Claim::Ours(mark),
        Ok(_) => Claim::Theirs,
        Err(e) => {
            log_store_error("get", &e);
            Claim::Failed
        }
    }
}

/// The mark a stored value carries, alone or in a record.
fn mark_in(bytes: &[u8]) -> Option<Mark> {
    Mark::decode(bytes).or_else(|| record::decode(bytes).ok()?.mark)
}

/// A leader that stored nothing takes its mark back if the key still holds it
/// — deleting a mark alone, or putting back the record it marked (which may
/// still serve a client's stale-if-error) — so followers stop waiting and go to
/// the origin themselves instead of waiting out the cap.
fn release<B, S: Store, O>(flow: &Flow<'_, B, S, O>, mark: Mark, original: Option<&[u8]>) {
    let key = &flow.keyed.kv_key;
    match flow.store.get(key) {
        Ok(Some(bytes)) if mark_in(&bytes) == Some(mark) => match original {
            Some(record) => {
                if let Err(e) = flow.store.set(key, record) {
                    log_store_error("set", &e);
                }
            }
            None => delete_entry(flow),
        },
        Ok(_) => {}
        Err(e) => log_store_error("get", &e),
    }
}

/// Polls the key (10, 20, 40 … ms, up to `collapse_wait_ms` in all) until a
/// fresh record for this request lands (its bytes are returned), or no live
/// mark says someone is still fetching, or the cap passes.
async fn wait_for_leader<B, S: Store, O, R: Runtime>(flow: &Flow<'_, B, S, O>, runtime: &R) -> Option<Vec<u8>> {
    let cap = flow.config.collapse_wait_ms;
    let (mut waited, mut step) = (0, FIRST_POLL_MS);
    while waited < cap {
        let nap = step.min(cap - waited);
        runtime.sleep_ms(nap).await;
        waited += nap;
        step *= 2;
        let bytes = match flow.store.get(&flow.keyed.kv_key) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return None,
            Err(e) => {
                log_store_error("get", &e);
                return None;
            }
        };
        let still_fetching = match lookup::examine(Some(&bytes), flow.keyed, &flow.request.headers) {
            Found::Record(usable) => {
                if matches!(decide_stored(&usable.record.meta, flow.request_cc, flow.now), StoredUse::Fresh { .. }) {
                    drop(usable);
                    return Some(bytes);
                }
                usable.record.mark.is_some_and(|m| m.live(flow.now))
            }
            Found::Nothing { held: Held::Mark(mark), .. } => mark.live(flow.now),
            Found::Nothing { .. } => false,
        };
        if !still_fetching {
            return None;
        }
    }
    None
}
