//! post-cache: a Spin component that caches responses to POST and QUERY requests.
//!
//! 1. `config` reads the Spin variables; a bad one answers 500 naming it.
//! 2. `cache::policy` decides: bypass (other method, credentials, no-store) or look up.
//! 3. The request body is read up to `max_body_bytes` while SHA-256 hashes its raw bytes.
//! 4. `cache::key` derives a versioned key from method, host, path, query, key
//!    headers, credential scope and the body digest.
//! 5. One KV get; `cache::freshness` decides for an intact, Vary-matching record:
//!    replay it fresh, or stale and then refresh it (one refresh per key, by a mark).
//!    A record over one value streams its body from checked segments.
//! 6. Otherwise `origin` forwards the request (with the record's validators; one miss
//!    of many, the others waiting for its record); `cache::policy` decides if the
//!    answer may be stored; the client is answered (a large answer as it arrives),
//!    then the record is written (segments first, head last).
//! 7. `cache::outcome` reports what happened in `Cache-Status`. Store failures only
//!    cost the cache; origin failures answer the stale record when allowed, else 502/504.
//!
//! `proxy` sequences this over traits; everything that touches Spin or WASI
//! lives under `spin`.

pub mod admin;
pub mod body;
pub mod cache;
pub mod config;
pub mod http;
pub mod origin;
pub mod protocol;
pub mod proxy;
pub mod runtime;
pub mod store;
#[cfg(test)]
mod layering;
#[cfg(target_arch = "wasm32")]
mod spin;
