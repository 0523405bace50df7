//! Where records live. The request path needs three operations and treats every
//! error as "no cache", never as a failed request; purging and invalidation also
//! list the keys (Spin's `get-keys`: the whole store, in no order).

#[cfg(test)]
pub mod memory;

use std::fmt;

/// A store operation failed; the message is for logs only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key-value store of records.
pub trait Store {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Every key in the store.
    fn keys(&self) -> Result<Vec<String>, StoreError>;
}
