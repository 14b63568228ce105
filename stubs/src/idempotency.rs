//! Idempotency keys: the same key within 24 h answers with what the first request created.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::gate::error;

/// How long a key is remembered (both OpenAPI files say 24 h).
pub(crate) const KEY_TTL: Duration = Duration::from_secs(24 * 3600);

/// Longest key the APIs accept.
const MAX_KEY_LEN: usize = 200;

/// Reads the optional `Idempotency-Key` header; a bad one is a 400.
pub(crate) fn key_from(headers: &HeaderMap) -> Result<Option<String>, Response> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v.to_str().map_err(|_| error(StatusCode::BAD_REQUEST, "Idempotency-Key must be visible ASCII"))?;
    if key.chars().count() > MAX_KEY_LEN {
        return Err(error(StatusCode::BAD_REQUEST, "Idempotency-Key is longer than 200 characters"));
    }
    Ok(Some(key.to_owned()))
}

/// Remembered keys and what each one created.
pub(crate) struct Keys<K, V> {
    map: HashMap<K, (V, Instant)>,
}

impl<K: Hash + Eq, V: Clone> Keys<K, V> {
    pub fn new() -> Self {
        Keys { map: HashMap::new() }
    }

    /// What `key` created, if it was used within the last 24 h.
    pub fn get(&self, key: &K, now: Instant) -> Option<V> {
        self.map.get(key).filter(|(_, at)| now.saturating_duration_since(*at) < KEY_TTL).map(|(v, _)| v.clone())
    }

    /// Remembers that `key` created `value` at `now`.
    pub fn insert(&mut self, key: K, value: V, now: Instant) {
        // Forget keys past their day now and then, so a long demo stays small.
        if self.map.len() % 1024 == 1023 {
            self.map.retain(|_, (_, at)| now.saturating_duration_since(*at) < KEY_TTL);
        }
        self.map.insert(key, (value, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_remembered_for_a_day_and_then_forgotten() {
        let t0 = Instant::now();
        let mut keys = Keys::new();
        keys.insert("k", 7, t0);
        assert_eq!(keys.get(&"k", t0 + Duration::from_secs(3600)), Some(7));
        assert_eq!(keys.get(&"k", t0 + KEY_TTL), None);
        assert_eq!(keys.get(&"other", t0), None);
    }

    #[test]
    fn keys_longer_than_200_characters_are_refused() {
        let mut h = HeaderMap::new();
        h.insert("idempotency-key", "a".repeat(201).parse().expect("ASCII header value"));
        assert!(key_from(&h).is_err());
        h.insert("idempotency-key", "a".repeat(200).parse().expect("ASCII header value"));
        assert_eq!(key_from(&h).ok().flatten().map(|k| k.len()), Some(200));
    }
}
