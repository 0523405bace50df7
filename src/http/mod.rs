//! HTTP primitives the cache and the body formats build on: pure parsing of
//! field values, below `cache` and `protocol`, with nothing about caching in it.

pub mod date;
