//! HTTP primitives below the cache core: request paths.

pub mod path;
