//! stale-while-revalidate: after a stale answer has gone out, the same
//! invocation refreshes the record from the origin — once per key, however many
//! stale hits race, by a mark written into the record.

use super::flow::{Env, Flow};
use super::found::{Held, Usable};
use super::respond::{log_store_error, Respond};
use super::store::Stored;
use crate::cache::mark::Mark;
use crate::cache::outcome::Fwd;
use crate::cache::record;
use crate::runtime::Runtime;
use crate::store::Store;

/// How long concurrent stale hits get to write their marks before each reads the
/// record back: the last mark written wins, and only its writer refreshes.
pub const SETTLE_MS: u64 = 100;

/// A refresh mark outlives the origin's timeout by this much (seconds), so a
/// slow but live refresh is not doubled; one that dies is retried after it.
const REFRESH_SLACK_SECONDS: u64 = 2;

impl<E: Env> Flow<'_, E> {
    /// Refreshes the record read at lookup (whose decoded form is `usable`)
    /// unless another request's mark wins. The mark costs one write; the
    /// refresh then costs what a miss does (or a 304 and a rewrite of the head
    /// and stored body).
    pub async fn refresh(&self, usable: &Usable<'_>) -> Stored {
        let key = &self.keyed.kv_key;
        let mark = Mark { until: self.now + self.config.origin_timeout + REFRESH_SLACK_SECONDS, token: self.runtime.token() };
        // The client's replay may have taken long: the mark goes only into the
        // entry the key still holds, never back over a purge or a newer entry.
        let Some(stored) = self.held.filter(|_| self.still_held()) else { return Stored::NOTHING };
        // Records from before version 3 have no room for a mark: they are
        // refreshed unmarked, once each, and come back as version 3.
        if let Some(marked) = record::with_mark(stored, Some(mark)) {
            if let Err(e) = self.store.set(key, &marked) {
                log_store_error("set", &e);
                return Stored::NOTHING;
            }
            self.runtime.sleep_ms(SETTLE_MS).await;
            let ours = match self.store.get(key) {
                Ok(Some(bytes)) => record::decode(&bytes).ok().and_then(|r| r.mark) == Some(mark),
                Ok(None) => false,
                Err(e) => {
                    log_store_error("get", &e);
                    false
                }
            };
            if !ours {
                return Stored::NOTHING;
            }
        }
        // A refresh that fails leaves the marked record: the mark expires and a
        // later stale hit tries again.
        self.fetch(Fwd::Stale, Held::Record { usable, serve_on_error: false }, Respond::Nowhere).await
    }
}
