//! The Spin key-value store: the only file that uses `spin_sdk::key_value`.

use crate::store::{Store, StoreError};
use spin_sdk::key_value;

pub struct SpinKv(key_value::Store);

impl SpinKv {
    pub fn open(label: &str) -> Result<Self, StoreError> {
        key_value::Store::open(label)
            .map(SpinKv)
            .map_err(|e| StoreError(format!("open {label:?}: {}", describe(&e))))
    }
}

fn describe(e: &key_value::Error) -> String {
    match e {
        key_value::Error::StoreTableFull => "store table full".into(),
        key_value::Error::NoSuchStore => "no such store (is it in key_value_stores and the runtime config?)".into(),
        key_value::Error::AccessDenied => "access denied (add the label to key_value_stores)".into(),
        key_value::Error::Other(msg) => msg.clone(),
    }
}

impl Store for SpinKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key).map_err(|e| StoreError(format!("get: {}", describe(&e))))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0.set(key, value).map_err(|e| StoreError(format!("set: {}", describe(&e))))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key).map_err(|e| StoreError(format!("delete: {}", describe(&e))))
    }

    fn keys(&self) -> Result<Vec<String>, StoreError> {
        self.0.get_keys().map_err(|e| StoreError(format!("get-keys: {}", describe(&e))))
    }
}
