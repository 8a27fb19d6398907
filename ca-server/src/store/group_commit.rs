//! Group commit: write transactions from many request threads share one database transaction —
//! and so one WAL flush — per batch.
//!
//! Every issuance makes one or two durable commits (without approvals the request and the signed
//! certificate; after approvals the reservation, then the signed certificate), and each of them
//! appends to the audit chain, whose single head makes writers take turns on either
//! backend. One commit at a time, each waiting for its own flush (and on SQLite for the busy
//! handler's sleeps), capped issuance at a few hundred per second. Here one writer thread takes
//! whatever jobs are queued (up to [`MAX_BATCH`]), runs them inside one transaction, inserts the
//! rows they added ([`Rows`]; on PostgreSQL as one statement), appends the audit entries they
//! recorded to the chain together at the end (one read of the chain's head, one insert; on
//! PostgreSQL the chain's lock is taken in the same round trip as the read and held only from
//! there to the commit, so that instances sharing the database overlap the rest of their
//! batches), commits once, and only then answers each caller. On PostgreSQL an issuance batch
//! is five round trips: BEGIN, the rows, the chain's head, the audit rows, COMMIT.
//!
//! Jobs run without savepoints first. If one fails (or the insert of their rows does), that
//! attempt is rolled back and the batch is
//! run again with each job in its own savepoint, so that a failing job is rolled back alone and
//! gets its own error while the others commit (jobs are therefore `FnMut`: they may run twice).
//! If the commit fails every job in the batch gets an error, and none of them took effect — a
//! caller is told "done" only for what is durable.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use diesel::{Connection, QueryResult};

use crate::error::ServiceError;
use crate::store::audit_log::{self, Entry};
use crate::store::chained_insert::ChainedInsert;
use crate::store::models::{CertificateNamesRow, CertificateRow, OcspResponseRow, RequestRow};
use crate::store::schema::{certificate_names, certificates, ocsp_responses, requests};
use crate::store::{write_transaction, Conn, DbConnection, DbPool, StoreError};

/// The most jobs one transaction takes, so that one batch's commit never waits on an unbounded
/// amount of work.
pub const MAX_BATCH: usize = 64;

/// What a queued write works with: the batch's connection, inside the batch's transaction, the
/// audit entries it records and the rows it adds.
pub struct Write<'a> {
    /// The batch's connection.
    pub conn: &'a mut DbConnection,
    audit: &'a mut Vec<Entry>,
    rows: &'a mut Rows,
}

impl Write<'_> {
    /// Records an audit entry for this write. The batch appends the entries of every write that
    /// succeeded, in order, just before its commit; a write that fails leaves none.
    pub fn audit(&mut self, entry: Entry) {
        self.audit.push(entry);
    }

    /// Adds a request row, inserted with the batch's other new requests (see [`Rows`]).
    pub fn add_request(&mut self, row: RequestRow) {
        self.rows.requests.push(row);
    }

    /// Adds a certificate row and its searchable names, inserted with the batch's other new
    /// certificates.
    pub fn add_certificate(&mut self, row: CertificateRow, names: CertificateNamesRow) {
        self.rows.certificates.push(row);
        self.rows.names.push(names);
    }

    /// Adds the first OCSP response of a new certificate, inserted with the batch's others.
    pub fn add_response(&mut self, row: Arc<OcspResponseRow>) {
        self.rows.responses.push(row);
    }
}

/// New rows of the tables every issuance adds to. A write queues them with
/// [`Write::add_request`] and the like; the batch inserts them after its writes have run,
/// together with the audit rows (on PostgreSQL one statement per batch instead of one per row).
/// A write cannot read back the rows it added. If that
/// insert fails (a duplicate key, say), the batch is run again with a savepoint per write, each
/// write inserting its own rows inside its savepoint, so that only the write whose row failed
/// is refused.
#[derive(Default)]
pub struct Rows {
    requests: Vec<RequestRow>,
    certificates: Vec<CertificateRow>,
    names: Vec<CertificateNamesRow>,
    responses: Vec<Arc<OcspResponseRow>>,
}

impl Rows {
    fn append(&mut self, other: &mut Rows) {
        self.requests.append(&mut other.requests);
        self.certificates.append(&mut other.certificates);
        self.names.append(&mut other.names);
        self.responses.append(&mut other.responses);
    }

    /// Inserts every queued row, then forgets them. On PostgreSQL all of them go as one
    /// statement ([`ChainedInsert`]): one round trip instead of one per table, before the batch
    /// takes the audit chain's lock. On SQLite each row goes through its table's cached statement
    /// (`store::insert_all!`).
    fn insert(&mut self, conn: &mut DbConnection) -> QueryResult<()> {
        let DbConnection::Postgresql(pg) = conn else {
            return self.insert_alone(conn);
        };
        let mut chained = ChainedInsert::default();
        if !self.requests.is_empty() {
            chained.push(diesel::insert_into(requests::table).values(&self.requests));
        }
        if !self.certificates.is_empty() {
            chained.push(diesel::insert_into(certificates::table).values(&self.certificates));
        }
        if !self.names.is_empty() {
            chained.push(diesel::insert_into(certificate_names::table).values(&self.names));
        }
        if !self.responses.is_empty() {
            let responses: Vec<&OcspResponseRow> = self.responses.iter().map(|r| &**r).collect();
            chained.push(diesel::insert_into(ocsp_responses::table).values(responses));
        }
        chained.execute(pg)?;
        *self = Rows::default();
        Ok(())
    }

    /// Inserts the queued rows with one statement per table and backend (`store::insert_all!`),
    /// then forgets them: a write's own rows, inside its savepoint.
    fn insert_alone(&mut self, conn: &mut DbConnection) -> QueryResult<()> {
        insert_all!(&mut *conn, requests::table, &self.requests)?;
        insert_all!(&mut *conn, certificates::table, &self.certificates)?;
        insert_all!(&mut *conn, certificate_names::table, &self.names)?;
        insert_all!(
            &mut *conn,
            ocsp_responses::table,
            self.responses.iter().map(|r| &**r)
        )?;
        *self = Rows::default();
        Ok(())
    }
}

/// A queued unit of work: runs inside the batch's transaction, then hears how the batch ended.
trait Job: Send {
    /// Runs the work (in its own savepoint if `alone`, inserting the rows it added there too),
    /// adds its audit entries to `audit` and (unless `alone`) its rows to `rows` if it
    /// succeeded, and says whether it did.
    fn run(
        &mut self,
        conn: &mut DbConnection,
        audit: &mut Vec<Entry>,
        rows: &mut Rows,
        alone: bool,
    ) -> bool;
    /// Answers the caller: the work's own result if the batch committed, else the batch's error.
    fn finish(self: Box<Self>, committed: Result<(), &str>);
}

/// Where a job's result goes: a thread blocked in [`GroupCommit::run`], or a future awaiting a
/// [`Committing`].
enum Reply<T> {
    Blocked(mpsc::SyncSender<Result<T, ServiceError>>),
    Awaited(tokio::sync::oneshot::Sender<Result<T, ServiceError>>),
}

struct Pending<T, F> {
    work: F,
    outcome: Option<Result<T, ServiceError>>,
    reply: Reply<T>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnMut(&mut Write<'_>) -> Result<T, ServiceError> + Send,
{
    fn run(
        &mut self,
        conn: &mut DbConnection,
        audit: &mut Vec<Entry>,
        rows: &mut Rows,
        alone: bool,
    ) -> bool {
        let mut entries = Vec::new();
        let mut added = Rows::default();
        let work = &mut self.work;
        let mut write = |conn: &mut DbConnection, audit: &mut Vec<Entry>, rows: &mut Rows| {
            work(&mut Write { conn, audit, rows })
        };
        let outcome = if alone {
            conn.transaction(|conn| {
                let value = write(conn, &mut entries, &mut added)?;
                added.insert_alone(conn)?;
                Ok(value)
            })
        } else {
            write(conn, &mut entries, &mut added)
        };
        let succeeded = outcome.is_ok();
        if succeeded {
            audit.append(&mut entries);
            rows.append(&mut added);
        }
        self.outcome = Some(outcome);
        succeeded
    }

    fn finish(self: Box<Self>, committed: Result<(), &str>) {
        let outcome = match (committed, self.outcome) {
            (Ok(()), Some(outcome)) => outcome,
            (_, Some(Err(own))) => Err(own),
            (Err(batch), _) => Err(crate::error::database_error(batch)),
            (Ok(()), None) => Err(ServiceError::Internal("a queued write never ran".into())),
        };
        match self.reply {
            Reply::Blocked(reply) => {
                let _ = reply.send(outcome);
            }
            Reply::Awaited(reply) => {
                let _ = reply.send(outcome);
            }
        }
    }
}

/// A write queued with [`GroupCommit::queue`]: await [`Committing::durable`] for its result once
/// its batch has committed.
#[derive(Debug)]
pub struct Committing<T> {
    outcome: tokio::sync::oneshot::Receiver<Result<T, ServiceError>>,
}

impl<T> Committing<T> {
    /// The write's result once its batch is durable (or the batch's error).
    pub async fn durable(self) -> Result<T, ServiceError> {
        self.outcome
            .await
            .map_err(|_| ServiceError::Internal("the database writer has stopped".into()))?
    }
}

/// The handle request threads submit write transactions through; cheap to share.
pub struct GroupCommit {
    jobs: mpsc::Sender<Box<dyn Job>>,
    stats: Arc<Stats>,
    _checkpoints: Option<super::checkpoint::Checkpointer>,
}

/// Counters of the writer, for `/metrics` (jobs per commit shows how well batching works).
#[derive(Debug, Default)]
pub struct Stats {
    /// Jobs handed to the writer (counted once queued).
    pub submitted: AtomicU64,
    /// Transactions the writer ran (committed or not).
    pub batches: AtomicU64,
    /// Jobs those transactions carried.
    pub jobs: AtomicU64,
    /// Batches run a second time, a savepoint per job, because a job failed.
    pub retried: AtomicU64,
}

impl GroupCommit {
    /// Starts the writer thread with its own connection to `url` (outside the request pool, so
    /// callers holding pooled connections can never starve it). The connection is opened on first
    /// use and re-opened after a failure. On SQLite a second thread runs the WAL checkpoints
    /// the writer would otherwise run (see `checkpoint`).
    pub fn start(url: &str) -> Result<GroupCommit, StoreError> {
        let (builder, manager) = super::pool_builder(url, 1)?;
        let pool = builder.min_idle(Some(0)).build_unchecked(manager);
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        let stats = Arc::new(Stats::default());
        let counters = stats.clone();
        std::thread::Builder::new()
            .name("mamori-writer".into())
            .spawn(move || serve(&pool, &queue, &counters))
            .map_err(|e| StoreError::Pool(format!("cannot start the writer thread: {e}")))?;
        Ok(GroupCommit {
            jobs,
            stats,
            _checkpoints: super::checkpoint::start(url)?,
        })
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Runs `work` as part of the next batch and returns its result once the batch is durable.
    /// `work` may run twice (see the module's documentation): it must leave no effect outside
    /// the database.
    /// `work` must not take the write gate itself; calling this while holding it (inside
    /// `write_transaction`) would wait on a batch that waits on this thread, so it is refused.
    pub fn run<T, F>(&self, work: F) -> Result<T, ServiceError>
    where
        T: Send + 'static,
        F: FnMut(&mut Write<'_>) -> Result<T, ServiceError> + Send + 'static,
    {
        let (reply, outcome) = mpsc::sync_channel(1);
        self.send(work, Reply::Blocked(reply))?;
        outcome
            .recv()
            .map_err(|_| ServiceError::Internal("the database writer has stopped".into()))?
    }

    /// Queues `work` like [`GroupCommit::run`] without waiting for it: the caller's thread is
    /// free at once, and the result arrives through the returned [`Committing`]. An HTTP
    /// handler does the CPU work of a request on a blocking thread, queues its write, and
    /// awaits the commit on its event loop, so that no thread sits parked on the writer (with
    /// one parked thread per request in flight, the threads outnumbered the cores several
    /// times over and issuance spent its time switching between them).
    pub fn queue<T, F>(&self, work: F) -> Result<Committing<T>, ServiceError>
    where
        T: Send + 'static,
        F: FnMut(&mut Write<'_>) -> Result<T, ServiceError> + Send + 'static,
    {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        self.send(work, Reply::Awaited(reply))?;
        Ok(Committing { outcome })
    }

    fn send<T, F>(&self, work: F, reply: Reply<T>) -> Result<(), ServiceError>
    where
        T: Send + 'static,
        F: FnMut(&mut Write<'_>) -> Result<T, ServiceError> + Send + 'static,
    {
        if crate::store::gate::held_here() {
            return Err(ServiceError::Internal(
                "group commit called inside a write transaction".into(),
            ));
        }
        self.jobs
            .send(Box::new(Pending {
                work,
                outcome: None,
                reply,
            }))
            .map_err(|_| ServiceError::Internal("the database writer has stopped".into()))?;
        self.stats.submitted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn serve(pool: &DbPool, queue: &mpsc::Receiver<Box<dyn Job>>, stats: &Stats) {
    // Kept between batches (no pool check-out query per batch); dropped after a failure so that
    // the next batch starts on a fresh connection.
    let mut held: Option<Conn> = None;
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.jobs.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let connection: Result<Conn, String> = held.take().map_or_else(
            || {
                let mut conn = pool.get().map_err(|e| e.to_string())?;
                super::checkpoint::prepare_writer(&mut conn).map_err(|e| e.to_string())?;
                Ok(conn)
            },
            Ok,
        );
        let committed = match connection {
            Ok(mut conn) => {
                let committed = commit(&mut conn, &mut batch, stats);
                // A lone job that failed because the connection died leaves the batch "done"
                // (its error is its own) but the connection broken: its rollback failed too.
                // Keeping it would fail the next batch with "the transaction manager is broken".
                if committed.is_ok() && !diesel::r2d2::R2D2Connection::is_broken(&mut *conn) {
                    held = Some(conn);
                }
                committed
            }
            Err(e) => Err(format!("cannot connect: {e}")),
        };
        if let Err(e) = &committed {
            tracing::error!(error = %e, jobs = batch.len(), "a group commit failed; its writes were rolled back");
        }
        for job in batch {
            job.finish(committed.as_ref().map(|_| ()).map_err(String::as_str));
        }
    }
}

/// How one attempt at a batch ended, short of committing.
enum Failure {
    /// A job failed; the attempt was rolled back.
    Job,
    /// Inserting the rows the jobs added failed; the attempt was rolled back.
    Rows,
    /// The database failed (appending the audit entries, or the commit itself).
    Database(String),
}

impl From<diesel::result::Error> for Failure {
    fn from(e: diesel::result::Error) -> Failure {
        Failure::Database(e.to_string())
    }
}

/// One transaction for the whole batch: first without savepoints; if a job fails, again with a
/// savepoint per job. A panic inside a job rolls the batch back: the connection is still inside
/// its transaction, so it is dropped and the pool discards it. `Ok` when the batch committed or
/// its only job failed on its own (nothing else was waiting to commit).
fn commit(
    conn: &mut DbConnection,
    batch: &mut [Box<dyn Job>],
    stats: &Stats,
) -> Result<(), String> {
    let ran = catch_unwind(AssertUnwindSafe(|| match attempt(conn, batch, false) {
        Err(Failure::Job) if batch.len() > 1 => {
            stats.retried.fetch_add(1, Ordering::Relaxed);
            attempt(conn, batch, true)
        }
        // Even a lone job runs again when its rows failed: it succeeded before they were
        // inserted, and the savepoint run gives it the insert's error as its own.
        Err(Failure::Rows) => {
            stats.retried.fetch_add(1, Ordering::Relaxed);
            attempt(conn, batch, true)
        }
        other => other,
    }));
    match ran {
        Ok(Ok(())) | Ok(Err(Failure::Job)) => Ok(()),
        Ok(Err(Failure::Rows)) => Err("the rows of a batch could not be stored".into()),
        Ok(Err(Failure::Database(e))) => Err(e),
        Err(_) => Err("a write panicked; the batch was rolled back".into()),
    }
}

/// Runs every job of `batch` (each in its own savepoint if `alone`), inserts the rows they added,
/// appends their audit entries and commits. Without savepoints the first failing job stops the attempt and rolls it back.
fn attempt(
    conn: &mut DbConnection,
    batch: &mut [Box<dyn Job>],
    alone: bool,
) -> Result<(), Failure> {
    write_transaction::<_, Failure, _>(conn, |conn| {
        let mut audit = Vec::new();
        let mut rows = Rows::default();
        for job in batch.iter_mut() {
            if !job.run(conn, &mut audit, &mut rows, alone) && !alone {
                return Err(Failure::Job);
            }
        }
        if rows.insert(conn).is_err() {
            return Err(Failure::Rows);
        }
        audit_log::append_all(conn, audit)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::prelude::*;
    use std::time::{Duration, Instant};

    fn setting(write: &mut Write<'_>, name: &str) -> QueryResult<usize> {
        use crate::store::schema::settings;
        diesel::insert_into(settings::table)
            .values((settings::name.eq(name), settings::value.eq("x")))
            .execute(write.conn)
    }

    fn names(pool: &DbPool) -> Vec<String> {
        #[derive(QueryableByName)]
        struct Name {
            #[diesel(sql_type = diesel::sql_types::Text)]
            name: String,
        }
        let mut conn = pool.get().unwrap();
        let mut names: Vec<String> =
            diesel::sql_query("SELECT name FROM settings WHERE name LIKE 'gc-%'")
                .load::<Name>(&mut conn)
                .unwrap()
                .into_iter()
                .map(|n| n.name)
                .collect();
        names.sort();
        names
    }

    /// A writer whose first job holds the writer until released, so that the jobs submitted
    /// meanwhile queue up and are taken as one batch. Returns once the writer is running that
    /// job alone (it has taken it from the queue).
    struct Held {
        writer: Arc<GroupCommit>,
        pool: DbPool,
        release: mpsc::Sender<()>,
        first: std::thread::JoinHandle<Result<(), ServiceError>>,
        _dir: Option<tempfile::TempDir>,
    }

    fn held_writer() -> Held {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("gc.db").display());
        held_writer_at(&url, Some(dir))
    }

    /// A fresh database on the PostgreSQL server named by MAMORI_TEST_POSTGRES_URL, dropped
    /// (with whoever is still connected) when this goes out of scope.
    struct PostgresDatabase {
        admin: diesel::PgConnection,
        name: String,
        url: String,
    }

    impl PostgresDatabase {
        fn new() -> PostgresDatabase {
            let base = std::env::var("MAMORI_TEST_POSTGRES_URL").expect("MAMORI_TEST_POSTGRES_URL");
            let mut admin = diesel::PgConnection::establish(&base).unwrap();
            let mut tag = [0u8; 6];
            openssl::rand::rand_bytes(&mut tag).unwrap();
            let name = format!("mamori_gc_{}", hex::encode(tag));
            diesel::sql_query(format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .unwrap();
            let (server, _) = base.rsplit_once('/').unwrap();
            let url = format!("{server}/{name}");
            PostgresDatabase { admin, name, url }
        }
    }

    impl Drop for PostgresDatabase {
        fn drop(&mut self) {
            let _ = diesel::sql_query(format!("DROP DATABASE {} WITH (FORCE)", self.name))
                .execute(&mut self.admin);
        }
    }

    fn held_writer_at(url: &str, dir: Option<tempfile::TempDir>) -> Held {
        let pool = crate::store::open(url, 2).unwrap();
        let writer = Arc::new(GroupCommit::start(url).unwrap());
        let (release, wait) = mpsc::channel::<()>();
        let (started, running) = mpsc::channel::<()>();
        let first = {
            let writer = writer.clone();
            std::thread::spawn(move || {
                writer.run(move |w| {
                    started.send(()).ok();
                    wait.recv().ok();
                    setting(w, "gc-first")?;
                    Ok(())
                })
            })
        };
        running
            .recv_timeout(Duration::from_secs(10))
            .expect("the writer never started the first job");
        Held {
            writer,
            pool,
            release,
            first,
            _dir: dir,
        }
    }

    fn wait_until_submitted(writer: &GroupCommit, count: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while writer.stats().submitted.load(Ordering::Relaxed) < count {
            assert!(Instant::now() < deadline, "jobs were never submitted");
            std::thread::yield_now();
        }
    }

    fn response(serial: &str) -> Arc<OcspResponseRow> {
        Arc::new(OcspResponseRow {
            ca_id: "gc".into(),
            serial: serial.into(),
            der: vec![0x30, 0x00],
            this_update: 1,
            next_update: 2,
            updated_ms: 3,
            origin: 4,
        })
    }

    /// Queues a write that adds the response `serial` (and, if `audited`, an audit entry whose
    /// action is the serial).
    fn adding(serial: &'static str, writer: Arc<GroupCommit>, audited: bool) -> Queued {
        std::thread::spawn(move || {
            writer.run(move |w| {
                w.add_response(response(serial));
                if audited {
                    w.audit(Entry::new(1, "tester", serial, "x", serde_json::json!({})));
                }
                Ok(())
            })
        })
    }

    type Queued = std::thread::JoinHandle<Result<(), ServiceError>>;

    /// Queues "01", "01" again and "02" behind the held job, to be taken as one batch.
    fn queue_with_a_duplicate(held: &Held, audited: bool) -> [Queued; 3] {
        let first = adding("01", held.writer.clone(), audited);
        wait_until_submitted(&held.writer, 2);
        let duplicate = adding("01", held.writer.clone(), audited);
        wait_until_submitted(&held.writer, 3);
        let second = adding("02", held.writer.clone(), audited);
        wait_until_submitted(&held.writer, 4);
        [first, duplicate, second]
    }

    fn stored_responses(pool: &DbPool) -> Vec<String> {
        let mut conn = pool.get().unwrap();
        let mut serials: Vec<String> = ocsp_responses::table
            .filter(ocsp_responses::ca_id.eq("gc"))
            .select(ocsp_responses::serial)
            .load(&mut conn)
            .unwrap();
        serials.sort();
        serials
    }

    #[test]
    fn added_rows_are_inserted_together_and_a_duplicate_is_refused_alone() {
        let held = held_writer();
        let [first, duplicate, second] = queue_with_a_duplicate(&held, false);
        held.release.send(()).unwrap();
        held.first.join().unwrap().unwrap();
        first.join().unwrap().unwrap();
        second.join().unwrap().unwrap();
        assert!(
            duplicate.join().unwrap().is_err(),
            "a duplicate row was accepted"
        );
        assert_eq!(stored_responses(&held.pool), ["01", "02"]);
        let stats = held.writer.stats();
        assert_eq!(stats.batches.load(Ordering::Relaxed), 2);
        assert_eq!(stats.retried.load(Ordering::Relaxed), 1);
    }

    /// On PostgreSQL a batch's rows go as one statement (`ChainedInsert`) and its audit entries
    /// after `mamori_audit_tail()`; a duplicate among them sends the batch round again with a
    /// savepoint per write, so that only the duplicate is refused and leaves no audit entry.
    #[test]
    #[cfg_attr(not(mamori_postgres), ignore = "MAMORI_TEST_POSTGRES_URL is not set")]
    fn on_postgresql_a_batch_is_stored_together_and_a_duplicate_is_refused_alone() {
        let database = PostgresDatabase::new();
        let held = held_writer_at(&database.url, None);
        let [first, duplicate, second] = queue_with_a_duplicate(&held, true);
        held.release.send(()).unwrap();
        held.first.join().unwrap().unwrap();
        first.join().unwrap().unwrap();
        second.join().unwrap().unwrap();
        assert!(
            matches!(duplicate.join().unwrap(), Err(ServiceError::Internal(m)) if m.contains("duplicate key")),
            "a duplicate row was accepted"
        );
        assert_eq!(stored_responses(&held.pool), ["01", "02"]);
        assert_eq!(audit_actions(&held.pool), ["01", "02"]);
        let stats = held.writer.stats();
        assert_eq!(stats.batches.load(Ordering::Relaxed), 2);
        assert_eq!(stats.retried.load(Ordering::Relaxed), 1);
        let third = adding("03", held.writer.clone(), true);
        third.join().unwrap().unwrap();
        assert_eq!(stored_responses(&held.pool), ["01", "02", "03"]);
        assert_eq!(audit_actions(&held.pool), ["01", "02", "03"]);
        assert_eq!(stats.retried.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_lone_write_whose_row_fails_gets_the_error() {
        let held = held_writer();
        held.release.send(()).unwrap();
        held.first.join().unwrap().unwrap();
        adding("07", held.writer.clone(), false)
            .join()
            .unwrap()
            .unwrap();
        let again = adding("07", held.writer.clone(), false).join().unwrap();
        assert!(again.is_err(), "a lone duplicate was reported stored");
        assert_eq!(stored_responses(&held.pool), ["07"]);
        assert_eq!(held.writer.stats().retried.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn queued_jobs_share_one_commit() {
        let held = held_writer();
        let waiting: Vec<_> = (0..10)
            .map(|i| {
                let writer = held.writer.clone();
                std::thread::spawn(move || {
                    writer.run(move |w| {
                        setting(w, &format!("gc-{i:02}"))?;
                        Ok(i)
                    })
                })
            })
            .collect();
        wait_until_submitted(&held.writer, 11);
        held.release.send(()).unwrap();
        held.first.join().unwrap().unwrap();
        for (i, thread) in waiting.into_iter().enumerate() {
            assert_eq!(thread.join().unwrap().unwrap(), i);
        }
        let stats = held.writer.stats();
        assert_eq!(stats.jobs.load(Ordering::Relaxed), 11);
        assert_eq!(
            stats.batches.load(Ordering::Relaxed),
            2,
            "the held job alone, then the ten queued behind it together"
        );
        assert_eq!(stats.retried.load(Ordering::Relaxed), 0);
        assert_eq!(names(&held.pool).len(), 11);
    }

    #[test]
    fn a_failing_job_is_rolled_back_alone() {
        let held = held_writer();
        let ok = |name: &'static str, writer: Arc<GroupCommit>| {
            std::thread::spawn(move || {
                writer.run(move |w| {
                    setting(w, name)?;
                    Ok(())
                })
            })
        };
        let before = ok("gc-before", held.writer.clone());
        wait_until_submitted(&held.writer, 2);
        let failing = {
            let writer = held.writer.clone();
            std::thread::spawn(move || {
                writer.run(move |w| -> Result<(), ServiceError> {
                    setting(w, "gc-failing")?;
                    Err(ServiceError::Conflict("refused after writing".into()))
                })
            })
        };
        wait_until_submitted(&held.writer, 3);
        let duplicate = {
            let writer = held.writer.clone();
            std::thread::spawn(move || {
                writer.run(move |w| {
                    setting(w, "gc-before")?;
                    Ok(())
                })
            })
        };
        wait_until_submitted(&held.writer, 4);
        let after = ok("gc-after", held.writer.clone());
        wait_until_submitted(&held.writer, 5);
        held.release.send(()).unwrap();
        held.first.join().unwrap().unwrap();
        before.join().unwrap().unwrap();
        after.join().unwrap().unwrap();
        assert!(matches!(
            failing.join().unwrap(),
            Err(ServiceError::Conflict(_))
        ));
        assert!(matches!(
            duplicate.join().unwrap(),
            Err(ServiceError::Internal(m)) if m.contains("UNIQUE")
        ));
        assert_eq!(held.writer.stats().batches.load(Ordering::Relaxed), 2);
        assert_eq!(names(&held.pool), ["gc-after", "gc-before", "gc-first"]);
    }

    fn audit_actions(pool: &DbPool) -> Vec<String> {
        use crate::store::schema::audit_log;
        let mut conn = pool.get().unwrap();
        assert!(
            matches!(crate::store::audit_log::verify(&mut conn), Ok(Ok(_))),
            "the chain verifies"
        );
        audit_log::table
            .order(audit_log::seq.asc())
            .select(audit_log::action)
            .load(&mut conn)
            .unwrap()
    }

    #[test]
    fn audit_entries_are_chained_in_order_and_a_failed_write_leaves_none() {
        let held = held_writer();
        let mut threads = Vec::new();
        for (i, action) in ["one", "refused", "two"].into_iter().enumerate() {
            let writer = held.writer.clone();
            threads.push(std::thread::spawn(move || {
                writer.run(move |w| {
                    setting(w, &format!("gc-{action}"))?;
                    w.audit(Entry::new(1, "tester", action, "x", serde_json::json!({})));
                    if action == "refused" {
                        return Err(ServiceError::Conflict("refused after auditing".into()));
                    }
                    Ok(())
                })
            }));
            wait_until_submitted(&held.writer, i as u64 + 2);
        }
        held.release.send(()).unwrap();
        held.first.join().unwrap().unwrap();
        let outcomes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(outcomes[0].is_ok() && outcomes[2].is_ok());
        assert!(matches!(outcomes[1], Err(ServiceError::Conflict(_))));
        let stats = held.writer.stats();
        assert_eq!(stats.batches.load(Ordering::Relaxed), 2);
        assert_eq!(
            stats.retried.load(Ordering::Relaxed),
            1,
            "the batch ran again with savepoints"
        );
        assert_eq!(audit_actions(&held.pool), ["one", "two"]);
        assert_eq!(names(&held.pool), ["gc-first", "gc-one", "gc-two"]);
    }

    #[test]
    fn a_lone_failing_job_gets_its_own_error_without_a_retry() {
        let held = held_writer();
        held.release.send(()).unwrap();
        held.first.join().unwrap().unwrap();
        let outcome = held.writer.run(|w| -> Result<(), ServiceError> {
            setting(w, "gc-lone")?;
            w.audit(Entry::new(1, "tester", "lone", "x", serde_json::json!({})));
            Err(ServiceError::Invalid("no".into()))
        });
        assert!(matches!(outcome, Err(ServiceError::Invalid(_))));
        assert_eq!(held.writer.stats().retried.load(Ordering::Relaxed), 0);
        assert!(audit_actions(&held.pool).is_empty());
        assert_eq!(names(&held.pool), ["gc-first"]);
    }

    #[test]
    fn refused_inside_a_write_transaction() {
        let held = held_writer();
        held.release.send(()).unwrap();
        held.first.join().unwrap().unwrap();
        let mut conn = held.pool.get().unwrap();
        let inside =
            write_transaction::<_, ServiceError, _>(&mut conn, |_| held.writer.run(|_| Ok(())));
        assert!(
            matches!(inside, Err(ServiceError::Internal(m)) if m.contains("inside a write transaction"))
        );
    }
}
