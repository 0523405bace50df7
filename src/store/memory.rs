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
        Ok(self.entries.borrow().get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.sets.set(self.sets.get() + 1);
        self.check()?;
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
