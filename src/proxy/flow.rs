//! One request's context. [`Env`] names the types the flow runs over (the
//! client's body, the store, the origin, the runtime, the client); [`Flow`] is
//! one keyed request, and its methods are the steps of the request path, one
//! file per step: `lookup` (examine what the key held and decide), `collapse`
//! (one miss of many fetches), `miss` (fetch and answer), `store` (write the
//! record), `stale` (refresh after a stale answer), `replay` and `segments`
//! (answer from the store).

use super::respond::Respond;
use crate::body::{BodySource, Client};
use crate::cache::cache_control::CacheControl;
use crate::config::Config;
use crate::http::digest::Digest32;
use crate::http::headers::{self, HeaderList};
use crate::origin::Origin;
use crate::protocol::AnswerCheck;
use crate::runtime::Runtime;
use crate::store::Store;
use std::marker::PhantomData;

/// The client's request: head already parsed, body still streaming.
pub struct ClientRequest<B> {
    pub method: String,
    pub authority: String,
    pub path_with_query: String,
    pub headers: HeaderList,
    pub body: B,
}

/// A request read in full and keyed.
pub struct Keyed {
    pub body: Vec<u8>,
    /// SHA-256 of the body as keyed; stored in the record to catch a key collision.
    pub body_digest: Digest32,
    pub kv_key: String,
    /// What the answer must satisfy to be stored, and how a replay is adapted.
    pub check: AnswerCheck,
}

/// The types one request's flow runs over: the platform's, or tests' fakes.
pub trait Env {
    type Body: BodySource;
    type Store: Store;
    type Origin: Origin;
    type Runtime: Runtime;
    type Client: Client;
}

/// An [`Env`] made of the types [`super::handle`] is called with.
pub struct Parts<B, S, O, R, C>(PhantomData<fn() -> (B, S, O, R, C)>);

impl<B: BodySource, S: Store, O: Origin, R: Runtime, C: Client> Env for Parts<B, S, O, R, C> {
    type Body = B;
    type Store = S;
    type Origin = O;
    type Runtime = R;
    type Client = C;
}

/// Where a keyed request's answer goes: its client, or nowhere (a background
/// refresh).
pub type To<E> = Respond<<E as Env>::Client>;

/// One keyed request: what every step of its path shares.
pub struct Flow<'a, E: Env> {
    pub config: &'a Config,
    /// Unix seconds when the request arrived.
    pub now: u64,
    pub request: &'a ClientRequest<E::Body>,
    /// The request's `Cache-Control`, parsed once.
    pub request_cc: &'a CacheControl,
    pub keyed: &'a Keyed,
    pub store: &'a E::Store,
    pub origin: &'a E::Origin,
    pub runtime: &'a E::Runtime,
    /// What the key held at lookup. If it was a segmented head, its segments
    /// are retired when this request replaces or deletes it (decoded only
    /// then, not on the hit path).
    pub held: Option<&'a [u8]>,
}

impl<E: Env> Flow<'_, E> {
    /// A random generation id for a segmented write.
    pub fn new_generation(&self) -> u64 {
        self.runtime.token()
    }
}

pub fn content_length(headers: &[(String, Vec<u8>)]) -> Option<u64> {
    let values = headers::values(headers, "content-length");
    std::str::from_utf8(values.first()?).ok()?.trim().parse().ok()
}

/// The path and query the origin is asked for: its base path, then the client's.
pub fn origin_path(config: &Config, path_with_query: &str) -> String {
    let pq = if path_with_query.is_empty() { "/" } else { path_with_query };
    format!("{}{}", config.origin.base_path, pq)
}
