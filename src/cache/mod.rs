//! The pure cache core: key derivation, storage policy, the stored record and the
//! `Cache-Status` outcome. Nothing here touches Spin, the network or the clock:
//! time comes in as `now` (Unix seconds).

pub mod cache_control;
pub mod checksum;
pub mod conditional;
pub mod freshness;
pub mod index;
pub mod invalidation;
pub mod key;
pub mod mark;
pub mod outcome;
pub mod policy;
pub mod record;
pub mod segment;
pub mod sweep;
pub mod tags;
pub mod targeted;
