//! The users' key-value store: revisions, compare-and-swap and prefix listing.
//!
//! Revisions are Raft log indexes, like Consul's ModifyIndex: every write records the index
//! of the log entry that made it, so revisions only grow and a CAS names one exact write.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Largest value accepted, in bytes (Consul's limit).
pub const MAX_VALUE_BYTES: usize = 512 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvEntry {
    #[serde(with = "super::base64_bytes")]
    pub value: Vec<u8>,
    /// Revision of the write that created the key.
    pub create_revision: u64,
    /// Revision of the latest write to the key.
    pub mod_revision: u64,
    /// Number of writes since the key was created (1 after creation).
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    #[error("key must not be empty")]
    EmptyKey,
    #[error("key is {0} bytes long; keys are at most {MAX_KEY_BYTES} bytes")]
    KeyTooLong(usize),
    #[error("key {0:?} contains a control character; use printable characters")]
    KeyControlChar(String),
    #[error("value is {0} bytes; values are at most {MAX_VALUE_BYTES} bytes (512 KiB)")]
    ValueTooLarge(usize),
}

/// Checks a key as the API and the state machine both require.
pub fn validate_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() {
        return Err(KvError::EmptyKey);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KvError::KeyTooLong(key.len()));
    }
    if key.chars().any(char::is_control) {
        return Err(KvError::KeyControlChar(key.to_string()));
    }
    Ok(())
}

/// Checks a value's size.
pub fn validate_value(value: &[u8]) -> Result<(), KvError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(KvError::ValueTooLarge(value.len()));
    }
    Ok(())
}

/// The outcome of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Ok,
    CasFailed { current: u64 },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvStore {
    entries: BTreeMap<String, KvEntry>,
}

impl KvStore {
    pub fn get(&self, key: &str) -> Option<&KvEntry> {
        self.entries.get(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry whose key starts with `prefix`, in key order.
    pub fn list(&self, prefix: &str) -> impl Iterator<Item = (&String, &KvEntry)> {
        self.entries.range(prefix.to_string()..).take_while(move |(k, _)| k.starts_with(prefix))
    }

    fn check_cas(&self, key: &str, cas: Option<u64>) -> Written {
        let current = self.entries.get(key).map_or(0, |e| e.mod_revision);
        match cas {
            Some(expected) if expected != current => Written::CasFailed { current },
            _ => Written::Ok,
        }
    }

    pub fn put(&mut self, key: &str, value: Vec<u8>, cas: Option<u64>, revision: u64) -> Written {
        let check = self.check_cas(key, cas);
        if check != Written::Ok {
            return check;
        }
        match self.entries.get_mut(key) {
            Some(entry) => {
                entry.value = value;
                entry.mod_revision = revision;
                entry.version += 1;
            }
            None => {
                self.entries.insert(
                    key.to_string(),
                    KvEntry { value, create_revision: revision, mod_revision: revision, version: 1 },
                );
            }
        }
        Written::Ok
    }

    /// Deletes one key (CAS allowed) or, with `recurse`, every key under the prefix.
    /// Returns how many keys were removed.
    pub fn delete(&mut self, key: &str, cas: Option<u64>, recurse: bool) -> Result<u64, u64> {
        if recurse {
            let doomed: Vec<String> = self.list(key).map(|(k, _)| k.clone()).collect();
            for k in &doomed {
                self.entries.remove(k);
            }
            return Ok(doomed.len() as u64);
        }
        if let Written::CasFailed { current } = self.check_cas(key, cas) {
            return Err(current);
        }
        Ok(u64::from(self.entries.remove(key).is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(keys: &[(&str, u64)]) -> KvStore {
        let mut s = KvStore::default();
        for (k, rev) in keys {
            assert_eq!(s.put(k, b"v".to_vec(), None, *rev), Written::Ok);
        }
        s
    }

    #[test]
    fn put_tracks_create_and_mod_revisions_and_version() {
        let mut s = store(&[("a", 3)]);
        s.put("a", b"w".to_vec(), None, 7);
        let e = s.get("a").unwrap();
        assert_eq!((e.create_revision, e.mod_revision, e.version), (3, 7, 2));
        assert_eq!(e.value, b"w");
    }

    #[test]
    fn cas_table() {
        // (existing key revision or None, cas, expected outcome)
        let cases: &[(Option<u64>, Option<u64>, Written)] = &[
            (None, Some(0), Written::Ok),
            (Some(5), Some(0), Written::CasFailed { current: 5 }),
            (Some(5), Some(5), Written::Ok),
            (Some(5), Some(4), Written::CasFailed { current: 5 }),
            (None, Some(9), Written::CasFailed { current: 0 }),
            (Some(5), None, Written::Ok),
        ];
        for (existing, cas, expected) in cases {
            let mut s = match existing {
                Some(rev) => store(&[("k", *rev)]),
                None => KvStore::default(),
            };
            assert_eq!(s.put("k", b"x".to_vec(), *cas, 10), *expected, "{existing:?} {cas:?}");
        }
    }

    #[test]
    fn list_returns_only_keys_under_the_prefix_in_order() {
        let s = store(&[("app/b", 1), ("app/a", 2), ("apple", 3), ("b", 4)]);
        let keys: Vec<_> = s.list("app/").map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["app/a", "app/b"]);
        assert_eq!(s.list("").count(), 4);
    }

    #[test]
    fn delete_recurse_removes_the_prefix_only() {
        let mut s = store(&[("x/1", 1), ("x/2", 2), ("y", 3)]);
        assert_eq!(s.delete("x/", None, true), Ok(2));
        assert_eq!(s.len(), 1);
        assert_eq!(s.delete("y", Some(2), false), Err(3));
        assert_eq!(s.delete("y", Some(3), false), Ok(1));
        assert_eq!(s.delete("y", None, false), Ok(0));
    }

    #[test]
    fn key_validation_names_the_problem() {
        assert_eq!(validate_key(""), Err(KvError::EmptyKey));
        assert_eq!(validate_key(&"k".repeat(513)), Err(KvError::KeyTooLong(513)));
        assert!(matches!(validate_key("a\nb"), Err(KvError::KeyControlChar(_))));
        assert_eq!(validate_key("ok/key"), Ok(()));
        assert_eq!(validate_value(&vec![0; MAX_VALUE_BYTES + 1]), Err(KvError::ValueTooLarge(MAX_VALUE_BYTES + 1)));
    }
}
