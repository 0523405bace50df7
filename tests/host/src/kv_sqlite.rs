//! The key-value data in SQLite, as `spin up` keeps it by default (Spin's
//! `key-value-spin`: one connection, one table keyed by store label and key),
//! for measurements where the store's size should cost what it costs there.

use std::path::Path;
use std::sync::Mutex;

pub struct Sqlite(Mutex<rusqlite::Connection>);

impl Sqlite {
    /// Opens (creating) the database file at `path`, with Spin's table.
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let connection = rusqlite::Connection::open(path)?;
        connection.execute(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                store TEXT NOT NULL,
                key   TEXT NOT NULL,
                value BLOB NOT NULL,
                PRIMARY KEY (store, key)
            )",
            [],
        )?;
        Ok(Self(Mutex::new(connection)))
    }

    pub fn get(&self, label: &str, key: &str) -> Option<Vec<u8>> {
        let connection = self.0.lock().unwrap();
        let mut statement = connection.prepare_cached("SELECT value FROM spin_key_value WHERE store=$1 AND key=$2").expect("sqlite");
        let mut rows = statement.query_map([label, key], |row| row.get::<_, Vec<u8>>(0)).expect("sqlite");
        rows.next().transpose().expect("sqlite")
    }

    pub fn keys(&self, label: &str) -> Vec<String> {
        let connection = self.0.lock().unwrap();
        let mut statement = connection.prepare_cached("SELECT key FROM spin_key_value WHERE store=$1").expect("sqlite");
        let rows = statement.query_map([label], |row| row.get::<_, String>(0)).expect("sqlite");
        rows.collect::<rusqlite::Result<_>>().expect("sqlite")
    }

    pub fn insert(&self, label: &str, key: &str, value: &[u8]) {
        let connection = self.0.lock().unwrap();
        connection
            .prepare_cached("INSERT INTO spin_key_value (store, key, value) VALUES ($1, $2, $3) ON CONFLICT(store, key) DO UPDATE SET value=$3")
            .expect("sqlite")
            .execute(rusqlite::params![label, key, value])
            .expect("sqlite");
    }

    /// Many values in one transaction (filling a store for a benchmark).
    pub fn insert_many(&self, label: &str, entries: impl IntoIterator<Item = (String, Vec<u8>)>) {
        let mut connection = self.0.lock().unwrap();
        let tx = connection.transaction().expect("sqlite");
        {
            let mut statement = tx
                .prepare_cached("INSERT INTO spin_key_value (store, key, value) VALUES ($1, $2, $3) ON CONFLICT(store, key) DO UPDATE SET value=$3")
                .expect("sqlite");
            for (key, value) in entries {
                statement.execute(rusqlite::params![label, key, value]).expect("sqlite");
            }
        }
        tx.commit().expect("sqlite");
    }

    pub fn remove(&self, label: &str, key: &str) -> Option<Vec<u8>> {
        let old = self.get(label, key);
        let connection = self.0.lock().unwrap();
        connection
            .prepare_cached("DELETE FROM spin_key_value WHERE store=$1 AND key=$2")
            .expect("sqlite")
            .execute([label, key])
            .expect("sqlite");
        old
    }
}
