//! Sessions this instance confirmed in the database within the last second, so that a burst of
//! API calls with one token (a device enroller re-issuing terminals) reads its session once per
//! second, not once per call: the read was the only database access of an issuance's request
//! thread.
//!
//! Everything that ends or narrows sessions on this instance (logout, a user disabled, roles
//! changed, a second factor reset) clears the cache before it answers, so on one instance a
//! change takes effect at once. Another instance sharing the database sees such a change within
//! [`SESSION_RECHECK_MS`]. The expiry times are checked against the clock on every call, hit or
//! not.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::accounts::Caller;

/// How long a confirmed session is trusted without reading it again (milliseconds).
pub const SESSION_RECHECK_MS: u64 = 1_000;

/// At most this many sessions are held; the cache is emptied when it is full.
const MAX_SESSIONS: usize = 10_000;

/// A session as last read from the database.
#[derive(Debug, Clone)]
pub struct CachedSession {
    /// Who it belongs to.
    pub caller: Caller,
    /// Its absolute expiry (Unix seconds).
    pub expires_at: i64,
    /// Its last recorded activity (Unix seconds).
    pub last_seen: i64,
    /// When it was read from the database (Unix milliseconds).
    pub checked_ms: u64,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<String, CachedSession>,
    /// Raised by every invalidation: a session read before it is not cached after it.
    generation: u64,
}

/// Recently confirmed sessions by token hash.
#[derive(Debug, Default)]
pub struct SessionCache {
    inner: RwLock<Inner>,
}

impl SessionCache {
    /// The session of `token_hash` if it was confirmed less than [`SESSION_RECHECK_MS`] before
    /// `now_ms`.
    pub fn get(&self, token_hash: &str, now_ms: u64) -> Option<CachedSession> {
        let inner = self.inner.read().ok()?;
        let cached = inner.sessions.get(token_hash)?;
        (now_ms >= cached.checked_ms && now_ms - cached.checked_ms < SESSION_RECHECK_MS)
            .then(|| cached.clone())
    }

    /// The generation to pass to [`SessionCache::insert`]: read it before reading the session.
    pub fn generation(&self) -> u64 {
        self.inner.read().map(|i| i.generation).unwrap_or(u64::MAX)
    }

    /// Remembers a session read from the database, unless the cache was invalidated since
    /// `generation` was taken (the read may predate a logout or a user being disabled).
    pub fn insert(&self, token_hash: String, session: CachedSession, generation: u64) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        if inner.generation != generation {
            return;
        }
        if inner.sessions.len() >= MAX_SESSIONS && !inner.sessions.contains_key(&token_hash) {
            inner.sessions.clear();
        }
        inner.sessions.insert(token_hash, session);
    }

    /// Forgets every session: called by whatever ends or narrows sessions, before it answers.
    pub fn invalidate(&self) {
        let mut inner = match self.inner.write() {
            Ok(inner) => inner,
            Err(poisoned) => poisoned.into_inner(),
        };
        inner.generation = inner.generation.wrapping_add(1);
        inner.sessions.clear();
    }

    /// How many sessions are held.
    pub fn len(&self) -> usize {
        self.inner.read().map(|i| i.sessions.len()).unwrap_or(0)
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(checked_ms: u64) -> CachedSession {
        CachedSession {
            caller: Caller {
                user_id: "u1".into(),
                username: "alice".into(),
                roles: vec![],
                session: "h".into(),
                must_change_password: false,
            },
            expires_at: 10_000,
            last_seen: 5,
            checked_ms,
        }
    }

    #[test]
    fn a_session_is_trusted_for_less_than_the_recheck_interval() {
        let cache = SessionCache::default();
        cache.insert("h".into(), session(1_000), cache.generation());
        assert!(cache.get("h", 1_000).is_some());
        assert!(cache.get("h", 1_999).is_some());
        assert!(cache.get("h", 2_000).is_none());
        assert!(cache.get("h", 999).is_none(), "a clock that went back");
        assert!(cache.get("other", 1_000).is_none());
    }

    #[test]
    fn invalidation_empties_the_cache_and_refuses_reads_from_before_it() {
        let cache = SessionCache::default();
        let before = cache.generation();
        cache.insert("h".into(), session(1_000), before);
        cache.invalidate();
        assert!(cache.get("h", 1_000).is_none());
        // A read that began before the invalidation (a logout raced it) is not remembered.
        cache.insert("h".into(), session(1_000), before);
        assert!(cache.is_empty());
        cache.insert("h".into(), session(1_000), cache.generation());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = SessionCache::default();
        let generation = cache.generation();
        for i in 0..MAX_SESSIONS + 5 {
            cache.insert(format!("h{i}"), session(1_000), generation);
        }
        assert!(cache.len() <= MAX_SESSIONS);
        assert!(cache
            .get(&format!("h{}", MAX_SESSIONS + 4), 1_000)
            .is_some());
    }
}
