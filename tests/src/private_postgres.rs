//! PostgreSQL clusters of a test's own (Debian's PostgreSQL 15 binaries, run as the `postgres`
//! user in a temporary folder, on a port of their own), so that restarting, crashing or failing
//! one over touches no other test: a primary, and a synchronous streaming standby of it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::free_port;

/// Where Debian keeps PostgreSQL 15's server programs.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// One running cluster, stopped (immediately) when dropped.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    /// The port it listens on, at 127.0.0.1.
    pub port: u16,
}

impl PrivatePostgres {
    /// A fresh cluster (trust authentication) with an empty database `mamori`, running; the
    /// error says why where the machine cannot make one (no PostgreSQL 15, no `postgres` user).
    pub fn start() -> Result<PrivatePostgres, String> {
        let pg = PrivatePostgres::empty()?;
        pg.as_postgres(&[
            &format!("{PG_BIN}/initdb"),
            "-D",
            &pg.data(),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ])?;
        pg.ctl("start")?;
        pg.psql("postgres", "CREATE DATABASE mamori")?;
        Ok(pg)
    }

    /// A streaming standby of `primary` (a base backup of it, `application_name` `standby`),
    /// running, that `primary` then waits for at every commit (`synchronous_standby_names`):
    /// a commit reported done is on both. Returns once the primary reports it `sync`.
    pub fn synchronous_standby_of(primary: &PrivatePostgres) -> Result<PrivatePostgres, String> {
        let standby = PrivatePostgres::empty()?;
        standby.as_postgres(&[
            &format!("{PG_BIN}/pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            &primary.port.to_string(),
            "-U",
            "postgres",
            "-D",
            &standby.data(),
            "-X",
            "stream",
            "-R",
            // An immediate checkpoint: the default spreads it over minutes.
            "--checkpoint=fast",
        ])?;
        let auto = Path::new(&standby.data()).join("postgresql.auto.conf");
        let mut conf = std::fs::read_to_string(&auto).map_err(|e| e.to_string())?;
        conf.push_str(&format!(
            "primary_conninfo = 'host=127.0.0.1 port={} user=postgres application_name=standby'\n",
            primary.port
        ));
        std::fs::write(&auto, conf).map_err(|e| e.to_string())?;
        standby.ctl("start")?;
        primary.psql(
            "postgres",
            "ALTER SYSTEM SET synchronous_standby_names = 'standby'",
        )?;
        primary.psql("postgres", "SELECT pg_reload_conf()")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state = primary.query(
                "postgres",
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'",
            )?;
            if state == "sync" {
                return Ok(standby);
            }
            if Instant::now() > deadline {
                return Err(format!("the standby never became synchronous ({state:?})"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A folder handed to the `postgres` user and a free port, nothing running yet.
    fn empty() -> Result<PrivatePostgres, String> {
        if !Path::new(PG_BIN).join("initdb").exists() {
            return Err(format!("{PG_BIN}/initdb is missing"));
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let chown = Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir.path())
            .status()
            .map_err(|e| e.to_string())?;
        if !chown.success() {
            return Err("cannot hand a folder to the postgres user".into());
        }
        Ok(PrivatePostgres {
            dir,
            port: free_port(),
        })
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// A libpq URL of database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn psql(&self, db: &str, statement: &str) -> Result<(), String> {
        self.query(db, statement).map(|_| ())
    }

    /// Runs `statement` on database `db` and returns its unaligned output.
    pub fn query(&self, db: &str, statement: &str) -> Result<String, String> {
        let out = Command::new("psql")
            .arg(self.url(db))
            .args(["-tAc", statement])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!(
                "{statement}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn as_postgres(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// `pg_ctl start|restart|stop|promote`, waiting for it; a restart is a fast shutdown that
    /// ends every connection, as `pg_ctlcluster ... restart` does.
    pub fn ctl(&self, action: &str) -> Result<(), String> {
        self.pg_ctl(action, "fast")
    }

    /// Stops the cluster as a power cut or a killed postmaster would: no shutdown checkpoint,
    /// every connection cut (`pg_ctl stop -m immediate`).
    pub fn crash(&self) -> Result<(), String> {
        self.pg_ctl("stop", "immediate")
    }

    fn pg_ctl(&self, action: &str, mode: &str) -> Result<(), String> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log").display().to_string();
        self.as_postgres(&[
            &format!("{PG_BIN}/pg_ctl"),
            action,
            "-D",
            &self.data(),
            "-m",
            mode,
            "-w",
            "-o",
            &options,
            "-l",
            &log,
        ])
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.crash();
    }
}
