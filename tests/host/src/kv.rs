//! `fermyon:spin/key-value@2.0.0` with Spin's semantics: a component may open only
//! the labels it was granted (`access-denied`), a granted label the runtime does
//! not define is `no-such-store`, and data lives as long as the host.

use crate::server::RequestState;
use crate::spin::fermyon::spin::key_value::{Error, Host, HostStore};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::Resource;

/// An open store handle inside one instance.
pub struct StoreHandle {
    label: String,
}

/// The host's key-value data: label -> key -> value.
#[derive(Default)]
pub struct KvData {
    stores: Mutex<HashMap<String, HashMap<String, Vec<u8>>>>,
    /// Values larger than this are refused like hosted Spin's 1 MB cap (None: no cap, like local SQLite).
    pub max_value_bytes: Option<usize>,
    pub faults: KvFaults,
    /// Keys per store at most (0: no cap), like Fermyon Cloud's 1,024: a `set`
    /// of a key not yet there fails once the store holds this many.
    pub max_keys: AtomicUsize,
    /// Calls made, for benchmarks.
    pub calls: KvCalls,
}

/// How many calls of each kind guests made.
#[derive(Default)]
pub struct KvCalls {
    pub get: AtomicU64,
    pub set: AtomicU64,
    pub delete: AtomicU64,
    pub get_keys: AtomicU64,
}

impl KvCalls {
    /// get, set, delete, get-keys so far.
    pub fn snapshot(&self) -> [u64; 4] {
        [&self.get, &self.set, &self.delete, &self.get_keys].map(|c| c.load(Ordering::SeqCst))
    }
}

/// Faults switchable while the host runs.
#[derive(Default)]
pub struct KvFaults {
    /// Every call fails with `other(...)`.
    pub fail: AtomicBool,
    /// Every call takes this long first.
    pub delay_ms: AtomicU64,
    /// `get-keys` alone fails (a listing is the call a remote store times out on).
    pub fail_listing: AtomicBool,
    /// `set` alone takes this long first (a remote store's write).
    pub set_delay_ms: AtomicU64,
}

/// Spin's key limit (hosted): keys are at most 255 bytes.
pub const MAX_KEY_BYTES: usize = 255;

impl KvData {
    pub fn new(labels: &[&str], max_value_bytes: Option<usize>) -> Self {
        let stores = labels.iter().map(|l| (l.to_string(), HashMap::new())).collect();
        Self { stores: Mutex::new(stores), max_value_bytes, faults: KvFaults::default(), max_keys: AtomicUsize::new(0), calls: KvCalls::default() }
    }

    pub fn get(&self, label: &str, key: &str) -> Option<Vec<u8>> {
        self.stores.lock().unwrap().get(label)?.get(key).cloned()
    }

    pub fn keys(&self, label: &str) -> Vec<String> {
        let stores = self.stores.lock().unwrap();
        stores.get(label).map(|s| s.keys().cloned().collect()).unwrap_or_default()
    }

    pub fn insert(&self, label: &str, key: &str, value: Vec<u8>) {
        let mut stores = self.stores.lock().unwrap();
        stores.get_mut(label).expect("label defined").insert(key.to_string(), value);
    }

    /// Inserts unless the key is new and the store is at its key cap. Spin
    /// passes a store's own errors on as `other` with the backend's message,
    /// the only way a guest learns the store is full.
    fn insert_capped(&self, label: &str, key: &str, value: Vec<u8>) -> Result<(), Error> {
        let cap = self.max_keys.load(Ordering::SeqCst);
        let mut stores = self.stores.lock().unwrap();
        let store = stores.get_mut(label).expect("label defined");
        if cap > 0 && store.len() >= cap && !store.contains_key(key) {
            return Err(Error::Other(format!("QuotaExceeded(\"the store holds {} keys, the limit is {cap}\")", store.len())));
        }
        store.insert(key.to_string(), value);
        Ok(())
    }

    pub fn remove(&self, label: &str, key: &str) -> Option<Vec<u8>> {
        self.stores.lock().unwrap().get_mut(label)?.remove(key)
    }

    /// Flips one bit in the middle of every value in `label`; returns how many.
    pub fn corrupt_all(&self, label: &str) -> usize {
        let mut stores = self.stores.lock().unwrap();
        let store = stores.get_mut(label).expect("label defined");
        for value in store.values_mut() {
            let mid = value.len() / 2;
            if let Some(b) = value.get_mut(mid) {
                *b ^= 0x20;
            }
        }
        store.len()
    }

    async fn enter(&self) -> Result<(), Error> {
        let delay = self.faults.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if self.faults.fail.load(Ordering::Relaxed) {
            return Err(Error::Other("injected key-value failure".into()));
        }
        Ok(())
    }
}

/// What one component instance may reach.
pub struct KvAccess {
    pub data: Arc<KvData>,
    /// Labels in the component's `key_value_stores`.
    pub granted: Arc<Vec<String>>,
}

impl RequestState {
    fn label(&self, store: &Resource<StoreHandle>) -> Result<String, Error> {
        self.table
            .get(store)
            .map(|h| h.label.clone())
            .map_err(|e| Error::Other(e.to_string()))
    }
}

impl Host for RequestState {}

impl HostStore for RequestState {
    async fn open(&mut self, label: String) -> Result<Resource<StoreHandle>, Error> {
        self.kv.data.enter().await?;
        if !self.kv.granted.contains(&label) {
            return Err(Error::AccessDenied);
        }
        if !self.kv.data.stores.lock().unwrap().contains_key(&label) {
            return Err(Error::NoSuchStore);
        }
        self.table
            .push(StoreHandle { label })
            .map_err(|_| Error::StoreTableFull)
    }

    async fn get(&mut self, store: Resource<StoreHandle>, key: String) -> Result<Option<Vec<u8>>, Error> {
        self.kv.data.calls.get.fetch_add(1, Ordering::SeqCst);
        self.kv.data.enter().await?;
        let label = self.label(&store)?;
        Ok(self.kv.data.get(&label, &key))
    }

    async fn set(&mut self, store: Resource<StoreHandle>, key: String, value: Vec<u8>) -> Result<(), Error> {
        self.kv.data.calls.set.fetch_add(1, Ordering::SeqCst);
        self.kv.data.enter().await?;
        let set_delay = self.kv.data.faults.set_delay_ms.load(Ordering::SeqCst);
        if set_delay > 0 {
            tokio::time::sleep(Duration::from_millis(set_delay)).await;
        }
        let label = self.label(&store)?;
        if key.len() > MAX_KEY_BYTES {
            return Err(Error::Other(format!("key is {} bytes, the limit is {MAX_KEY_BYTES}", key.len())));
        }
        if let Some(max) = self.kv.data.max_value_bytes {
            if value.len() > max {
                return Err(Error::Other(format!("value is {} bytes, the limit is {max}", value.len())));
            }
        }
        self.kv.data.insert_capped(&label, &key, value)
    }

    async fn delete(&mut self, store: Resource<StoreHandle>, key: String) -> Result<(), Error> {
        self.kv.data.calls.delete.fetch_add(1, Ordering::SeqCst);
        self.kv.data.enter().await?;
        let label = self.label(&store)?;
        if let Some(s) = self.kv.data.stores.lock().unwrap().get_mut(&label) {
            s.remove(&key);
        }
        Ok(())
    }

    async fn exists(&mut self, store: Resource<StoreHandle>, key: String) -> Result<bool, Error> {
        self.kv.data.enter().await?;
        let label = self.label(&store)?;
        Ok(self.kv.data.get(&label, &key).is_some())
    }

    async fn get_keys(&mut self, store: Resource<StoreHandle>) -> Result<Vec<String>, Error> {
        self.kv.data.calls.get_keys.fetch_add(1, Ordering::SeqCst);
        self.kv.data.enter().await?;
        if self.kv.data.faults.fail_listing.load(Ordering::SeqCst) {
            return Err(Error::Other("injected get-keys failure".into()));
        }
        let label = self.label(&store)?;
        Ok(self.kv.data.keys(&label))
    }

    async fn drop(&mut self, store: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}
