//! A Spin-compatible host for running wasi:http components in tests and
//! benchmarks: a new instance per request on the pooling allocator, wasi:http
//! through wasmtime-wasi-http with `allowed_outbound_hosts` enforced like Spin,
//! the Spin request headers, and `fermyon:spin/key-value` and `variables` with
//! Spin's error semantics, plus switchable faults.

pub mod build;
pub mod client;
pub mod kv;
pub mod kv_sqlite;
pub mod listen;
pub mod manifest;
pub mod origin;
pub mod outbound;
pub mod server;
pub mod variables;

pub use server::{engine, load, start, HostConfig, HostStats, Route, RunningHost};
pub use server::spin_bindings as spin;
