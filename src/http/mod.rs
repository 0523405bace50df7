//! HTTP primitives the cache and the body formats build on: pure parsing of
//! field values and request paths, below `cache` and `protocol`, with nothing
//! about caching in it.

pub mod date;
pub mod digest;
pub mod headers;
pub mod path;
