//! What the flow needs from the platform besides store and origin: waiting
//! (collapsed misses poll the store, a refresh lets concurrent marks settle)
//! and unguessable tokens naming a mark's writer.
#![allow(async_fn_in_trait)]

pub trait Runtime {
    /// Waits `ms` milliseconds without blocking the instance's other work.
    async fn sleep_ms(&self, ms: u64);
    /// A random number, distinct per request with overwhelming probability.
    fn token(&self) -> u64;
}
