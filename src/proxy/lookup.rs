//! A keyed request's path from what its key held: replay a fresh record; a
//! stale one within stale-while-revalidate replayed, then refreshed; anything
//! else fetched (collapsed with other misses when it may be).

use super::flow::{Env, Flow, To};
use super::found::{examine, Found, Held};
use super::respond::only_if_cached_miss;
use super::segments::Retired;
use crate::cache::freshness::{decide_stored, StoredUse};
use crate::cache::outcome::{Fwd, Outcome};

impl<E: Env> Flow<'_, E> {
    /// Looks the request up in what its key held and serves it: from the
    /// store, or from the origin. Returns the segments it retired, to be
    /// swept once the client has its answer.
    pub async fn serve(&self, only_if_cached: bool, client: To<E>) -> Retired {
        let now = self.now;
        let found = match examine(self.held, self.keyed, &self.request.headers) {
            // A segmented record whose first segment cannot be read is a miss
            // (and a broken one is deleted).
            Found::Record(usable) => match self.ready(usable) {
                Some(usable) => Found::Record(usable),
                None => Found::Nothing { fwd: Fwd::UriMiss, held: Held::Empty },
            },
            nothing => nothing,
        };
        let usable;
        let (fwd, held) = match found {
            Found::Nothing { fwd, held } => (fwd, held),
            Found::Record(found) => {
                usable = found;
                match decide_stored(&usable.record.meta, self.request_cc, now) {
                    StoredUse::Fresh { ttl } => {
                        self.replay(client, &usable, Outcome::Hit { ttl }).await;
                        return Retired::NONE;
                    }
                    StoredUse::StaleWhileRevalidate { stale_for } => {
                        self.replay(client, &usable, Outcome::StaleHit { ttl: -(stale_for as i64) }).await;
                        // The client has its answer; this instance lives until
                        // the handler returns, so the refresh happens now, once
                        // per key.
                        if usable.record.mark.is_some_and(|m| m.live(now)) {
                            return Retired::NONE;
                        }
                        return self.refresh(&usable).await.retired;
                    }
                    StoredUse::Refetch { stale_for, serve_on_error } => {
                        let fwd = if stale_for == 0 && usable.record.ttl(now) > 0 { Fwd::Request } else { Fwd::Stale };
                        (fwd, Held::Record { usable: &usable, serve_on_error })
                    }
                }
            }
        };
        if only_if_cached {
            only_if_cached_miss(client).await;
            return Retired::NONE;
        }
        if fwd == Fwd::Request {
            // Fresh for everyone else: nobody to collapse with.
            return self.fetch(fwd, held, client).await.retired;
        }
        self.fetch_collapsed(fwd, held, client).await.retired
    }
}
