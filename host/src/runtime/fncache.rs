//! Cranelift's per-function compile cache, kept in memory for the life of the host.
//!
//! A live edit changes a few functions of a component; the rest (the SDK, serde, the
//! allocator) compile to the same machine code as before. With this cache Cranelift
//! skips optimising and emitting every function whose body it has seen, so recompiling
//! an edited component costs about what the edit touched. Entries are bounded by a byte
//! budget; once it is spent, new functions are compiled but not remembered.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use wasmtime::CacheStore;

/// The in-memory function cache.
#[derive(Debug)]
pub(crate) struct FunctionCache {
    entries: Mutex<Entries>,
    budget: usize,
}

/// Compiled functions by key, and the bytes they take.
#[derive(Debug, Default)]
struct Entries {
    map: HashMap<Vec<u8>, Vec<u8>>,
    bytes: usize,
}

impl FunctionCache {
    /// A cache holding at most `budget` bytes of keys and compiled code.
    pub(crate) fn new(budget: usize) -> Self {
        FunctionCache {
            entries: Mutex::new(Entries::default()),
            budget,
        }
    }
}

impl CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.map.get(key).map(|v| Cow::Owned(v.clone()))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let size = key.len() + value.len();
        if entries.bytes + size > self.budget {
            return false;
        }
        entries.bytes += size;
        entries.map.insert(key.to_vec(), value);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_entries_within_its_budget() {
        let cache = FunctionCache::new(10);
        assert!(cache.insert(b"ab", vec![1, 2, 3]));
        assert_eq!(cache.get(b"ab").as_deref(), Some(&[1, 2, 3][..]));
        assert!(!cache.insert(b"cd", vec![0; 8]), "over budget");
        assert!(cache.get(b"cd").is_none());
    }
}
