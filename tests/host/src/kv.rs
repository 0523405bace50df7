//! `fermyon:spin/key-value@2.0.0` with Spin's semantics: a component may open only
//! the labels it was granted (`access-denied`), a granted label the runtime does
//! not define is `no-such-store`, and data lives as long as the host. Hosted
//! Spin's limits apply: keys of at most 255 bytes on every operation, and (unless
//! the config says otherwise) values of at most 1 MB.

use crate::server::RequestState;
use crate::spin::fermyon::spin::key_value::{Error, Host, HostStore};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
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
    /// Calls the guest made, per operation.
    pub ops: KvOps,
    /// Each call's key and what it found, while switched on.
    pub journal: KvJournal,
    /// Where the data lives when not in `stores` (which then only lists the
    /// labels): SQLite, as `spin up` keeps it. Eviction and `corrupt_all` work
    /// on the in-memory data only.
    sqlite: Option<crate::kv_sqlite::Sqlite>,
    /// Keys per store at most (0: no cap), like Fermyon Cloud's 1,024: a `set`
    /// of a key not yet there fails once the store holds this many.
    pub max_keys: AtomicUsize,
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
    /// Every call blocks, with no timeout, until this is cleared: Spin's Redis
    /// store with Redis stopped (one shared `ConnectionManager`, no connection
    /// or response timeout), where a call waits rather than fails.
    pub hang: AtomicBool,
    /// `Some(n)`: the next `n` calls succeed, then every call fails with
    /// `other(...)` (a store that goes away part-way through a request).
    pub fail_after: std::sync::Mutex<Option<u64>>,
    /// Random eviction: see [`KvData::drop_keys_at_random`].
    pub evict: Eviction,
}

/// A store that evicts keys on its own, like Redis under `maxmemory` with an
/// eviction policy: before each call on a key, with probability
/// `per_mille`/1000, one key of the store, chosen at random, is gone.
#[derive(Default)]
pub struct Eviction {
    pub per_mille: AtomicU32,
    /// xorshift state; seeded so that a run can be repeated.
    rng: Mutex<u64>,
    /// The keys evicted, in order.
    pub evicted: Mutex<Vec<String>>,
}

/// Calls per operation, counted as the guest makes them (failed ones too).
#[derive(Default)]
pub struct KvOps {
    pub open: AtomicU64,
    pub get: AtomicU64,
    pub set: AtomicU64,
    pub delete: AtomicU64,
    pub exists: AtomicU64,
    pub get_keys: AtomicU64,
}

/// A copy of [`KvOps`] at one moment; subtract two to get what happened between.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvCounts {
    pub open: u64,
    pub get: u64,
    pub set: u64,
    pub delete: u64,
    pub exists: u64,
    pub get_keys: u64,
}

impl KvOps {
    pub fn snapshot(&self) -> KvCounts {
        let l = |a: &AtomicU64| a.load(Ordering::SeqCst);
        KvCounts {
            open: l(&self.open),
            get: l(&self.get),
            set: l(&self.set),
            delete: l(&self.delete),
            exists: l(&self.exists),
            get_keys: l(&self.get_keys),
        }
    }
}

impl std::ops::Sub for KvCounts {
    type Output = KvCounts;
    fn sub(self, o: KvCounts) -> KvCounts {
        KvCounts {
            open: self.open - o.open,
            get: self.get - o.get,
            set: self.set - o.set,
            delete: self.delete - o.delete,
            exists: self.exists - o.exists,
            get_keys: self.get_keys - o.get_keys,
        }
    }
}

/// One call on a key, or an eviction, as the store saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvEvent {
    /// `get`, `set`, `delete`, `exists`, `get-keys` (with an empty key), or
    /// `evicted` (the random-drop fault).
    pub op: &'static str,
    pub key: String,
    /// For `get` and `exists`: whether the key held a value.
    pub found: bool,
}

/// Records [`KvEvent`]s while on.
#[derive(Default)]
pub struct KvJournal(Mutex<Option<Vec<KvEvent>>>);

impl KvJournal {
    /// Starts recording (again, from empty).
    pub fn start(&self) {
        *self.0.lock().unwrap() = Some(Vec::new());
    }

    /// What was recorded since the last take (or start); recording goes on.
    pub fn take(&self) -> Vec<KvEvent> {
        self.0.lock().unwrap().as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn record(&self, op: &'static str, key: &str, found: bool) {
        if let Some(events) = self.0.lock().unwrap().as_mut() {
            events.push(KvEvent { op, key: key.to_string(), found });
        }
    }
}

/// Spin's key limit (hosted): keys are at most 255 bytes.
pub const MAX_KEY_BYTES: usize = 255;

/// Hosted Spin's value limit, the host's default.
pub const HOSTED_MAX_VALUE_BYTES: usize = 1_000_000;

/// Hosted Spin refuses a key over the limit on every operation that names one,
/// not only on `set`: a component that could read or delete a key it can
/// never write would be relying on something hosted Spin does not give.
fn check_key(key: &str) -> Result<(), Error> {
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::Other(format!("key is {} bytes, the limit is {MAX_KEY_BYTES}", key.len())));
    }
    Ok(())
}

impl KvData {
    pub fn new(labels: &[&str], max_value_bytes: Option<usize>) -> Self {
        let stores = labels.iter().map(|l| (l.to_string(), HashMap::new())).collect();
        Self {
            stores: Mutex::new(stores),
            max_value_bytes,
            faults: KvFaults::default(),
            ops: KvOps::default(),
            journal: KvJournal::default(),
            sqlite: None,
            max_keys: AtomicUsize::new(0),
        }
    }

    /// The same, with the data in a SQLite database at `path` (Spin's table).
    pub fn new_sqlite(labels: &[&str], max_value_bytes: Option<usize>, path: &std::path::Path) -> Self {
        let sqlite = crate::kv_sqlite::Sqlite::open(path).expect("a SQLite database");
        Self { sqlite: Some(sqlite), ..Self::new(labels, max_value_bytes) }
    }

    /// Many values at once (one transaction in SQLite): filling a store.
    pub fn insert_many(&self, label: &str, entries: impl IntoIterator<Item = (String, Vec<u8>)>) {
        match &self.sqlite {
            Some(db) => db.insert_many(label, entries),
            None => entries.into_iter().for_each(|(k, v)| self.insert(label, &k, v)),
        }
    }

    /// Switches random eviction on (`per_mille` > 0) or off, seeding its choices.
    pub fn drop_keys_at_random(&self, per_mille: u32, seed: u64) {
        *self.faults.evict.rng.lock().unwrap() = seed | 1;
        self.faults.evict.per_mille.store(per_mille, Ordering::SeqCst);
    }

    /// The random-drop fault, before a call on `label`: maybe one key goes.
    /// Keys are chosen from the sorted listing, so the same seed and the same
    /// calls evict the same keys.
    fn maybe_evict(&self, label: &str) {
        let per_mille = self.faults.evict.per_mille.load(Ordering::SeqCst);
        if per_mille == 0 {
            return;
        }
        let (roll, pick) = {
            let mut x = self.faults.evict.rng.lock().unwrap();
            let mut next = || {
                *x ^= *x << 13;
                *x ^= *x >> 7;
                *x ^= *x << 17;
                *x
            };
            (next() % 1000, next())
        };
        if roll >= u64::from(per_mille) {
            return;
        }
        let mut stores = self.stores.lock().unwrap();
        let Some(store) = stores.get_mut(label) else { return };
        let mut keys: Vec<&String> = store.keys().collect();
        if keys.is_empty() {
            return;
        }
        keys.sort_unstable();
        let victim = keys[(pick % keys.len() as u64) as usize].clone();
        store.remove(&victim);
        drop(stores);
        self.journal.record("evicted", &victim, true);
        self.faults.evict.evicted.lock().unwrap().push(victim);
    }

    pub fn get(&self, label: &str, key: &str) -> Option<Vec<u8>> {
        if let Some(db) = &self.sqlite {
            return db.get(label, key);
        }
        self.stores.lock().unwrap().get(label)?.get(key).cloned()
    }

    pub fn keys(&self, label: &str) -> Vec<String> {
        if let Some(db) = &self.sqlite {
            return db.keys(label);
        }
        let stores = self.stores.lock().unwrap();
        stores.get(label).map(|s| s.keys().cloned().collect()).unwrap_or_default()
    }

    /// The keys of a store but post-cache's indexes (one per tag and per
    /// URL): what tests that count entries, segments and markers look at.
    pub fn keys_but_indexes(&self, label: &str) -> Vec<String> {
        self.keys(label).into_iter().filter(|k| !k.starts_with("post-cache:v3:ix:")).collect()
    }

    pub fn insert(&self, label: &str, key: &str, value: Vec<u8>) {
        if let Some(db) = &self.sqlite {
            return db.insert(label, key, &value);
        }
        let mut stores = self.stores.lock().unwrap();
        stores.get_mut(label).expect("label defined").insert(key.to_string(), value);
    }

    /// Inserts unless the key is new and the store is at its key cap. Spin
    /// passes a store's own errors on as `other` with the backend's message,
    /// the only way a guest learns the store is full.
    fn insert_capped(&self, label: &str, key: &str, value: Vec<u8>) -> Result<(), Error> {
        let cap = self.max_keys.load(Ordering::SeqCst);
        if cap > 0 {
            let keys = self.keys(label);
            if keys.len() >= cap && !keys.iter().any(|k| k == key) {
                return Err(Error::Other(format!("QuotaExceeded(\"the store holds {} keys, the limit is {cap}\")", keys.len())));
            }
        }
        self.insert(label, key, value);
        Ok(())
    }

    pub fn remove(&self, label: &str, key: &str) -> Option<Vec<u8>> {
        if let Some(db) = &self.sqlite {
            return db.remove(label, key);
        }
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
        while self.faults.hang.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if self.faults.fail.load(Ordering::Relaxed) {
            return Err(Error::Other("injected key-value failure".into()));
        }
        if let Some(left) = self.faults.fail_after.lock().unwrap().as_mut() {
            if *left == 0 {
                return Err(Error::Other("injected key-value failure (store gone)".into()));
            }
            *left -= 1;
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
        self.kv.data.ops.open.fetch_add(1, Ordering::SeqCst);
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
        self.kv.data.ops.get.fetch_add(1, Ordering::SeqCst);
        self.kv.data.enter().await?;
        let label = self.label(&store)?;
        check_key(&key)?;
        self.kv.data.maybe_evict(&label);
        let value = self.kv.data.get(&label, &key);
        self.kv.data.journal.record("get", &key, value.is_some());
        Ok(value)
    }

    async fn set(&mut self, store: Resource<StoreHandle>, key: String, value: Vec<u8>) -> Result<(), Error> {
        self.kv.data.ops.set.fetch_add(1, Ordering::SeqCst);
        self.kv.data.enter().await?;
        let set_delay = self.kv.data.faults.set_delay_ms.load(Ordering::SeqCst);
        if set_delay > 0 {
            tokio::time::sleep(Duration::from_millis(set_delay)).await;
        }
        let label = self.label(&store)?;
        check_key(&key)?;
        if let Some(max) = self.kv.data.max_value_bytes {
            if value.len() > max {
                return Err(Error::Other(format!("value is {} bytes, the limit is {max}", value.len())));
            }
        }
        self.kv.data.maybe_evict(&label);
        let inserted = self.kv.data.insert_capped(&label, &key, value);
        self.kv.data.journal.record("set", &key, inserted.is_ok());
        inserted
    }

    async fn delete(&mut self, store: Resource<StoreHandle>, key: String) -> Result<(), Error> {
        self.kv.data.ops.delete.fetch_add(1, Ordering::SeqCst);
        self.kv.data.enter().await?;
        let label = self.label(&store)?;
        check_key(&key)?;
        self.kv.data.maybe_evict(&label);
        self.kv.data.remove(&label, &key);
        self.kv.data.journal.record("delete", &key, true);
        Ok(())
    }

    async fn exists(&mut self, store: Resource<StoreHandle>, key: String) -> Result<bool, Error> {
        self.kv.data.ops.exists.fetch_add(1, Ordering::SeqCst);
        self.kv.data.enter().await?;
        let label = self.label(&store)?;
        check_key(&key)?;
        self.kv.data.maybe_evict(&label);
        let found = self.kv.data.get(&label, &key).is_some();
        self.kv.data.journal.record("exists", &key, found);
        Ok(found)
    }

    async fn get_keys(&mut self, store: Resource<StoreHandle>) -> Result<Vec<String>, Error> {
        self.kv.data.ops.get_keys.fetch_add(1, Ordering::SeqCst);
        self.kv.data.enter().await?;
        if self.kv.data.faults.fail_listing.load(Ordering::SeqCst) {
            return Err(Error::Other("injected get-keys failure".into()));
        }
        let label = self.label(&store)?;
        self.kv.data.maybe_evict(&label);
        self.kv.data.journal.record("get-keys", "", true);
        Ok(self.kv.data.keys(&label))
    }

    async fn drop(&mut self, store: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}
