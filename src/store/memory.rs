//! An in-memory store for tests, with a switch that makes every call fail.

use super::{Store, StoreError};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

#[derive(Default)]
pub struct MemoryStore {
    pub entries: RefCell<HashMap<String, Vec<u8>>>,
    pub failing: Cell<bool>,
    pub gets: Cell<usize>,
    pub sets: Cell<usize>,
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
}

impl Store for &MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.gets.set(self.gets.get() + 1);
        self.check()?;
        if let Some(action) = self.before_get.borrow_mut().as_mut() {
            action(key, &mut self.entries.borrow_mut());
        }
        Ok(self.entries.borrow().get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
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
        self.check()?;
        Ok(self.entries.borrow().keys().cloned().collect())
    }
}
