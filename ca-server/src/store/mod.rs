//! Storage: diesel over SQLite (embedded default, WAL) or PostgreSQL, picked by the URL scheme.
//! Only this module and `authority` touch rows; migrations for both backends live in the
//! top-level `migrations/` folder and run at start.

/// Inserts the rows `$rows` (anything iterable over row references; none is fine) into `$table`
/// with the backend's best statement: on PostgreSQL one multi-row INSERT (one round trip; only
/// PostgreSQL's own connection can build it, not the derived multi-backend one); on SQLite one
/// cached prepared statement run per row (no round trip to save, and a multi-row INSERT's text
/// depends on its row count, so SQLite parsed it anew every time and needed a statement journal;
/// diesel also runs rows without `treat_none_as_default_value = false` one by one inside a
/// savepoint each). Evaluates to `QueryResult<()>`.
macro_rules! insert_all {
    ($conn:expr, $table:expr, $rows:expr) => {{
        use diesel::RunQueryDsl as _;
        match $conn {
            $crate::store::DbConnection::Postgresql(pg) => {
                let rows: Vec<_> = $rows.into_iter().collect();
                if !rows.is_empty() {
                    diesel::insert_into($table).values(rows).execute(pg)?;
                }
            }
            $crate::store::DbConnection::Sqlite(sqlite) => {
                for row in $rows {
                    diesel::insert_into($table).values(row).execute(sqlite)?;
                }
            }
        }
        diesel::QueryResult::Ok(())
    }};
}
pub(crate) use insert_all;

pub mod account_rows;
pub mod acme_rows;
pub mod audit_log;
pub mod break_glass_rows;
pub mod certificate_names;
pub mod chained_insert;
pub mod checkout;
pub mod checkpoint;
pub mod crl_rows;
pub mod directory_rows;
pub mod enrollment_rows;
pub mod gate;
pub mod group_commit;
pub mod ids;
pub mod manager;
pub mod models;
pub mod notify_rows;
pub mod ocsp_rows;
pub mod request_rows;
pub mod reservation_rows;
pub mod schema;
pub mod settings;
pub mod status;
pub mod vendor_rows;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{Builder, CustomizeConnection, Pool, PooledConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

mod multi {
    //! The derived multi-backend connection (its generated items carry no docs).
    #![allow(missing_docs)]

    /// One connection to either backend.
    #[derive(diesel::MultiConnection)]
    pub enum DbConnection {
        /// PostgreSQL.
        Postgresql(diesel::PgConnection),
        /// SQLite.
        Sqlite(diesel::SqliteConnection),
    }
}

pub use multi::DbConnection;

/// Runs `f` in a write transaction. On SQLite it begins with `BEGIN IMMEDIATE`, taking the write
/// lock before the first read: a deferred transaction that read an older snapshot would otherwise
/// fail with "database is locked" when it came to write while another connection had committed.
/// On PostgreSQL it is an ordinary transaction. On SQLite this thread first waits its turn at the
/// process's write gate (see `gate`), so writers of this process queue instead of sleeping.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, Connection, TransactionManager};
    let DbConnection::Sqlite(sqlite) = conn else {
        return conn.transaction(f);
    };
    let _turn = gate::enter();
    AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
    let result = f(conn);
    let DbConnection::Sqlite(sqlite) = conn else {
        return result;
    };
    match result {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(sqlite)?;
            Ok(value)
        }
        Err(error) => {
            let _ = AnsiTransactionManager::rollback_transaction(sqlite);
            Err(error)
        }
    }
}

use manager::Manager;

/// A connection pool.
pub type DbPool = Pool<Manager>;
/// A pooled connection.
pub type Conn = PooledConnection<Manager>;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// Errors opening or migrating the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is neither `sqlite://...` nor `postgres://...`.
    #[error("database URL must start with sqlite:// or postgres:// (got {0:?})")]
    BadUrl(String),
    /// The pool could not be built (server unreachable, file not writable).
    #[error("cannot open the database: {0}")]
    Pool(String),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
}

#[derive(Debug)]
struct Pragmas;

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for Pragmas {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        if let DbConnection::Sqlite(c) = conn {
            c.batch_execute(
                "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;",
            )
            .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// Which backend a URL names.
pub fn backend_path(url: &str) -> Result<String, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(url.to_string())
    } else if let Some(path) = url.strip_prefix("sqlite://") {
        Ok(path.to_string())
    } else {
        Err(StoreError::BadUrl(url.to_string()))
    }
}

/// A pool builder for `url` with the settings every pool shares (check-out timeout, SQLite
/// pragmas), and its connection manager. A PostgreSQL connection is checked (`SELECT 1`) at
/// every check-out, so that one broken by a database restart is replaced before a request
/// uses it; a SQLite connection is a file handle in this process that nothing outside can
/// break, so it is not (the check cost a statement per API call).
fn pool_builder(url: &str, max_size: u32) -> Result<(Builder<Manager>, Manager), StoreError> {
    let manager = Manager::new(url)?;
    let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let builder = Pool::builder()
        .max_size(max_size)
        .connection_timeout(std::time::Duration::from_secs(10))
        .test_on_check_out(postgres)
        .connection_customizer(Box::new(Pragmas));
    Ok((builder, manager))
}

/// Opens a pool for `url` and runs pending migrations.
pub fn open(url: &str, max_size: u32) -> Result<DbPool, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        restrict_sqlite_files(std::path::Path::new(path))?;
    }
    let (builder, manager) = pool_builder(url, max_size)?;
    let pool = builder
        .min_idle(Some(1))
        .build(manager)
        .map_err(|e| StoreError::Pool(e.to_string()))?;
    let mut conn = pool.get().map_err(|e| StoreError::Pool(e.to_string()))?;
    if let DbConnection::Sqlite(c) = &mut *conn {
        // Persistent: set once, not per connection (switching needs an exclusive lock). The
        // page size applies only to a new, empty database (an existing one keeps its own): every
        // issuance's commit rewrites the last page of each table and index it grows, and at
        // 2 KiB instead of 4 KiB those pages cost half the writes (~20 % fewer bytes written
        // per issuance and +2.5-7 % issuance in an A/B run, `bench/RESULTS.md`).
        c.batch_execute("PRAGMA page_size = 2048; PRAGMA journal_mode = WAL;")
            .map_err(|e| StoreError::Pool(e.to_string()))?;
    }
    migrate(&mut conn)?;
    certificate_names::fill_missing(&mut conn)
        .map_err(|e| StoreError::Pool(format!("filling certificate_names: {e}")))?;
    Ok(pool)
}

/// Creates a SQLite database file readable by its owner only (0600) before SQLite opens it,
/// and narrows an existing one and its `-wal` and `-shm` files to 0600: SQLite creates them
/// with the process's umask (0644 by default), and gives the `-wal` and `-shm` files the mode of
/// the database file. They hold every certificate, session and audit entry.
pub fn restrict_sqlite_files(path: &std::path::Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let fail = |p: &std::path::Path, e: std::io::Error| {
            StoreError::Pool(format!("restricting {}: {e}", p.display()))
        };
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|e| fail(path, e))?;
        }
        for suffix in ["", "-wal", "-shm"] {
            let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            if file.exists() {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| fail(&file, e))?;
            }
        }
    }
    Ok(())
}

/// Applies pending migrations for the connection's backend.
pub fn migrate(conn: &mut DbConnection) -> Result<usize, StoreError> {
    let migrations = match conn {
        DbConnection::Postgresql(_) => POSTGRES_MIGRATIONS,
        DbConnection::Sqlite(_) => SQLITE_MIGRATIONS,
    };
    conn.run_pending_migrations(migrations)
        .map(|v| v.len())
        .map_err(|e| StoreError::Migration(e.to_string()))
}

/// Milliseconds since the epoch (change stamps shared between instances).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sql_types::BigInt;
    use diesel::{QueryableByName, RunQueryDsl};

    #[derive(QueryableByName)]
    struct Pragma {
        #[diesel(sql_type = BigInt)]
        value: i64,
    }

    fn pragma(conn: &mut DbConnection, name: &str) -> i64 {
        diesel::sql_query(format!("SELECT {name} AS value FROM pragma_{name}"))
            .get_result::<Pragma>(conn)
            .unwrap()
            .value
    }

    #[test]
    fn a_new_sqlite_database_has_two_kib_pages_and_a_write_ahead_log() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let pool = open(&url, 1).unwrap();
        let mut conn = pool.get().unwrap();
        assert_eq!(pragma(&mut conn, "page_size"), 2048);
        drop(conn);
        drop(pool);
        // Opening it again keeps what it was created with.
        let pool = open(&url, 1).unwrap();
        let mut conn = pool.get().unwrap();
        assert_eq!(pragma(&mut conn, "page_size"), 2048);
        let DbConnection::Sqlite(sqlite) = &mut *conn else {
            panic!("not SQLite")
        };
        #[derive(QueryableByName)]
        struct Mode {
            #[diesel(sql_type = diesel::sql_types::Text)]
            journal_mode: String,
        }
        let mode: Mode = diesel::sql_query("PRAGMA journal_mode")
            .get_result(sqlite)
            .unwrap();
        assert_eq!(mode.journal_mode, "wal");
    }
}
