//! SQLite WAL checkpoints off the writer's path.
//!
//! In WAL mode SQLite copies committed pages back into the database file (a checkpoint) from
//! whichever connection commits when the log passes `wal_autocheckpoint` pages (1,000 by
//! default). Under issuance load that connection is the group-commit writer, which then stops
//! committing while it writes and flushes the database file — about a tenth of its time, measured
//! with strace. Here a thread of its own runs a passive checkpoint (which never blocks writers or
//! readers) every [`INTERVAL`], and the writer's own threshold is raised to
//! [`WRITER_THRESHOLD`] pages as a backstop should this thread fall behind.

use std::sync::mpsc;
use std::time::Duration;

use diesel::connection::SimpleConnection;

use crate::store::{Conn, DbConnection, StoreError};

/// How often the checkpoint thread runs.
pub const INTERVAL: Duration = Duration::from_millis(200);

/// The writer's own checkpoint threshold, in pages (4 KiB each).
pub const WRITER_THRESHOLD: u32 = 10_000;

/// The running checkpoint thread; it stops when this is dropped.
pub struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

/// Starts the checkpoint thread for a SQLite `url`; `None` for PostgreSQL.
pub fn start(url: &str) -> Result<Option<Checkpointer>, StoreError> {
    if !url.starts_with("sqlite://") {
        return Ok(None);
    }
    let (builder, manager) = super::pool_builder(url, 1)?;
    let pool = builder.min_idle(Some(0)).build_unchecked(manager);
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("mamori-checkpoint".into())
        .spawn(move || {
            let mut held: Option<Conn> = None;
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                let Some(mut conn) = held.take().or_else(|| pool.get().ok()) else {
                    continue;
                };
                let DbConnection::Sqlite(sqlite) = &mut *conn else {
                    return;
                };
                match sqlite.batch_execute("PRAGMA wal_checkpoint(PASSIVE);") {
                    Ok(()) => held = Some(conn),
                    Err(e) => tracing::warn!(error = %e, "a WAL checkpoint failed; retrying"),
                }
            }
        })
        .map_err(|e| StoreError::Pool(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(Some(Checkpointer { _stop: stop }))
}

/// Raises the writer connection's own checkpoint threshold (see the module documentation).
pub fn prepare_writer(conn: &mut DbConnection) -> Result<(), diesel::result::Error> {
    if let DbConnection::Sqlite(sqlite) = conn {
        sqlite.batch_execute(&format!("PRAGMA wal_autocheckpoint = {WRITER_THRESHOLD};"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::group_commit::GroupCommit;
    use diesel::prelude::*;
    use std::time::Instant;

    #[test]
    fn committed_pages_reach_the_database_file_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.db");
        let url = format!("sqlite://{}", path.display());
        // Kept open: closing the last connection would checkpoint too.
        let _pool = crate::store::open(&url, 1).unwrap();
        let writer = GroupCommit::start(&url).unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        let value = "x".repeat(200_000);
        writer
            .run(move |w| {
                diesel::sql_query("INSERT INTO settings (name, value) VALUES ('big', ?)")
                    .bind::<diesel::sql_types::Text, _>(&value)
                    .execute(w.conn)?;
                Ok(())
            })
            .unwrap();
        // About 50 pages: far below the writer's own threshold, so only the checkpoint thread
        // can have copied them into the database file.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() < before + 200_000 {
            assert!(
                Instant::now() < deadline,
                "the log was never checkpointed into the database file"
            );
            std::thread::yield_now();
        }
    }
}
