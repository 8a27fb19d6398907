//! The pool's connection manager. It opens the one backend the URL names: diesel's derived
//! multi-backend `establish` tries PostgreSQL and then SQLite with the same string, so a
//! PostgreSQL server that was down was logged as "Invalid connection url for multiconnection"
//! (its "connection refused" lost), and a PostgreSQL URL was handed to SQLite as a file path.

use diesel::r2d2::{Error, ManageConnection, R2D2Connection};
use diesel::Connection;

use super::{DbConnection, StoreError};

/// Opens connections to one database: PostgreSQL for a `postgres://` or `postgresql://` URL
/// (libpq's whole URL syntax, several hosts included), a SQLite file for `sqlite://<path>`.
#[derive(Debug)]
pub struct Manager {
    target: Target,
}

#[derive(Debug)]
enum Target {
    Postgres(String),
    Sqlite(String),
}

impl Manager {
    /// The manager for `url`; an error for a URL naming neither backend.
    pub fn new(url: &str) -> Result<Manager, StoreError> {
        let target = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Target::Postgres(url.to_string())
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            Target::Sqlite(path.to_string())
        } else {
            return Err(StoreError::BadUrl(url.to_string()));
        };
        Ok(Manager { target })
    }
}

impl ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = Error;

    fn connect(&self) -> Result<DbConnection, Error> {
        match &self.target {
            Target::Postgres(url) => {
                diesel::PgConnection::establish(url).map(DbConnection::Postgresql)
            }
            Target::Sqlite(path) => {
                diesel::SqliteConnection::establish(path).map(DbConnection::Sqlite)
            }
        }
        .map_err(Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Error> {
        conn.ping().map_err(Error::QueryError)
    }

    /// A connection whose transaction could not be rolled back (its server went away) is
    /// dropped instead of going back to the pool.
    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_server_that_is_down_is_reported_as_such() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let manager = Manager::new(&format!("postgres://postgres@127.0.0.1:{port}/none")).unwrap();
        let error = manager.connect().err().unwrap().to_string();
        assert!(error.contains("Connection refused"), "{error}");
        assert!(crate::error::database_unreachable(&error), "{error}");
    }

    #[test]
    fn a_url_naming_no_backend_is_refused() {
        assert!(matches!(
            Manager::new("mysql://db/mamori"),
            Err(StoreError::BadUrl(_))
        ));
    }
}
