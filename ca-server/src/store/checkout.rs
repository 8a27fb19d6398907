//! Taking a connection out of the pool for one request's work, with a guard against the
//! deadlock of holding one while waiting for another.
//!
//! A request that keeps a connection while it asks the pool for a second can starve the pool:
//! with eight connections, four concurrent requests each holding two and waiting for a third
//! wait until the check-out times out (a 500 after ten seconds; seen as CI stop 32's failure).
//! Debug builds (every test) count the connections each thread holds and refuse a second one,
//! so such a path fails its test instead of flaking under load; release builds skip the count.

use std::ops::{Deref, DerefMut};

use super::{Conn, DbConnection, DbPool};

/// A connection checked out for a service's work; derefs to the connection.
pub struct Held {
    conn: Conn,
    #[cfg(debug_assertions)]
    _count: count::Guard,
}

/// Why no connection was handed out.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// The pool had none free within its timeout, or could not open one.
    #[error("database pool: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    /// This thread already holds one (a bug, refused in debug builds only).
    #[error("this thread already holds a database connection (nested check-out)")]
    Nested,
}

/// Checks a connection out of `pool`; in debug builds, refuses when this thread already holds
/// one taken here.
pub fn checkout(pool: &DbPool) -> Result<Held, CheckoutError> {
    #[cfg(debug_assertions)]
    let guard = count::Guard::take().ok_or(CheckoutError::Nested)?;
    Ok(Held {
        conn: pool.get()?,
        #[cfg(debug_assertions)]
        _count: guard,
    })
}

impl From<CheckoutError> for crate::error::ServiceError {
    fn from(e: CheckoutError) -> Self {
        match e {
            CheckoutError::Pool(e) => {
                tracing::warn!(error = %e, "no database connection within the pool's timeout");
                crate::error::ServiceError::Unavailable(
                    "the database is busy; try again shortly / データベースが混雑しています。しばらくして再試行してください"
                        .into(),
                )
            }
            nested => crate::error::ServiceError::Internal(nested.to_string()),
        }
    }
}

impl Deref for Held {
    type Target = DbConnection;
    fn deref(&self) -> &DbConnection {
        &self.conn
    }
}

impl DerefMut for Held {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.conn
    }
}

#[cfg(debug_assertions)]
mod count {
    use std::cell::Cell;

    thread_local! {
        static HELD: Cell<bool> = const { Cell::new(false) };
    }

    /// Marks this thread as holding a connection until dropped.
    pub struct Guard;

    impl Guard {
        pub fn take() -> Option<Guard> {
            HELD.with(|held| {
                if held.get() {
                    None
                } else {
                    held.set(true);
                    Some(Guard)
                }
            })
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            HELD.with(|held| held.set(false));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_second_checkout_on_one_thread_is_refused_until_the_first_is_back() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        let pool = crate::store::open(&url, 2).unwrap();
        let first = checkout(&pool).unwrap();
        assert!(matches!(checkout(&pool), Err(CheckoutError::Nested)));
        // Another thread is not affected.
        std::thread::scope(|s| {
            s.spawn(|| checkout(&pool).unwrap());
        });
        drop(first);
        assert!(checkout(&pool).is_ok());
    }
}
