//! A map with a cap on its keys: when full, the least recently touched eighth is dropped. Every
//! per-key piece of detection state lives in one, so memory is bounded whatever the key space
//! (one actor per event, one IP per event).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Keys kept per rule by default.
pub const DEFAULT_MAX_KEYS: usize = 10_000;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BoundedMap<V> {
    entries: HashMap<String, (u64, V)>,
    clock: u64,
    max_keys: usize,
}

impl<V> Default for BoundedMap<V> {
    fn default() -> BoundedMap<V> {
        BoundedMap::new(DEFAULT_MAX_KEYS)
    }
}

impl<V> BoundedMap<V> {
    pub fn new(max_keys: usize) -> BoundedMap<V> {
        BoundedMap { entries: HashMap::new(), clock: 0, max_keys: max_keys.max(8) }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.entries.get(key).map(|(_, v)| v)
    }

    /// The value of `key` (made with `make` when absent), marked as just used.
    pub fn touch(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        self.clock += 1;
        let clock = self.clock;
        if !self.entries.contains_key(key) {
            if self.entries.len() >= self.max_keys {
                self.evict();
            }
            self.entries.insert(key.to_owned(), (clock, make()));
        }
        let slot = self.entries.get_mut(key).expect("present");
        slot.0 = clock;
        &mut slot.1
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.entries.remove(key).map(|(_, v)| v)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut V)> {
        self.entries.iter_mut().map(|(k, (_, v))| (k, v))
    }

    fn evict(&mut self) {
        let mut ages: Vec<u64> = self.entries.values().map(|(t, _)| *t).collect();
        let drop = (self.max_keys / 8).max(1);
        ages.select_nth_unstable(drop - 1);
        let cutoff = ages[drop - 1];
        self.entries.retain(|_, (t, _)| *t > cutoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_keys_stay_under_the_cap() {
        let mut map = BoundedMap::new(1000);
        for n in 0..1_000_000u64 {
            *map.touch(&n.to_string(), || 0u64) += n;
            assert!(map.len() <= 1000);
        }
        assert!(map.get("999999").is_some(), "the newest stays");
        assert!(map.get("0").is_none(), "the oldest went");
    }
}
