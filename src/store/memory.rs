//! An in-memory store for tests, with a switch that makes every call fail.

use super::{Store, StoreError};
use crate::cache::key::is_index_key;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

#[derive(Default)]
pub struct MemoryStore {
    pub entries: RefCell<HashMap<String, Vec<u8>>>,
    pub failing: Cell<bool>,
    /// Gets and sets of every key but indexes (`cache::index`), counted
    /// apart: what an entry costs, and what its indexes cost.
    pub gets: Cell<usize>,
    pub sets: Cell<usize>,
    pub index_gets: Cell<usize>,
    pub index_sets: Cell<usize>,
    /// Listings of the whole store (`get-keys`).
    pub listings: Cell<usize>,
    /// When set, every set of an index fails.
    pub index_sets_fail: Cell<bool>,
    /// When set, sets fail once this many have been made (other calls work).
    pub sets_before_failing: Cell<Option<usize>>,
    /// Runs before each get with the key and the entries: what another request
    /// does to the store while this one is under way.
    #[allow(clippy::type_complexity)]
    pub before_get: RefCell<Option<Box<dyn FnMut(&str, &mut HashMap<String, Vec<u8>>)>>>,
}

impl MemoryStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.failing.get() {
            Err(StoreError("memory store set to fail".into()))
        } else {
            Ok(())
        }
    }

    /// The keys held, indexes left out.
    pub fn cache_keys(&self) -> Vec<String> {
        self.entries.borrow().keys().filter(|k| !is_index_key(k)).cloned().collect()
    }

    /// The keys of the indexes held.
    pub fn index_keys(&self) -> Vec<String> {
        self.entries.borrow().keys().filter(|k| is_index_key(k)).cloned().collect()
    }
}

impl Store for &MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let counter = if is_index_key(key) { &self.index_gets } else { &self.gets };
        counter.set(counter.get() + 1);
        self.check()?;
        if let Some(action) = self.before_get.borrow_mut().as_mut() {
            action(key, &mut self.entries.borrow_mut());
        }
        Ok(self.entries.borrow().get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if is_index_key(key) {
            self.index_sets.set(self.index_sets.get() + 1);
            self.check()?;
            if self.index_sets_fail.get() {
                return Err(StoreError("memory store set to fail index sets".into()));
            }
            self.entries.borrow_mut().insert(key.to_string(), value.to_vec());
            return Ok(());
        }
        let earlier = self.sets.get();
        self.sets.set(earlier + 1);
        self.check()?;
        if self.sets_before_failing.get().is_some_and(|n| earlier >= n) {
            return Err(StoreError("memory store set to fail its sets".into()));
        }
        self.entries.borrow_mut().insert(key.to_string(), value.to_vec());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check()?;
        self.entries.borrow_mut().remove(key);
        Ok(())
    }

    fn keys(&self) -> Result<Vec<String>, StoreError> {
        self.listings.set(self.listings.get() + 1);
        self.check()?;
        Ok(self.entries.borrow().keys().cloned().collect())
    }
}
