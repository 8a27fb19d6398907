//! Group commit: write transactions from many request threads share one database transaction —
//! and so one WAL flush — per batch.
//!
//! Every issuance makes two durable commits (the reservation, then the signed certificate), and
//! each of them appends to the audit chain, whose single head makes writers take turns on either
//! backend. One commit at a time, each waiting for its own flush (and on SQLite for the busy
//! handler's sleeps), capped issuance at a few hundred per second. Here one writer thread takes
//! whatever jobs are queued (up to [`MAX_BATCH`]), runs each in its own savepoint inside one
//! transaction, commits once, and only then answers each caller. A job that fails is rolled back
//! to its savepoint alone and gets its own error; if the commit fails every job in the batch gets
//! an error, and none of them took effect — a caller is told "done" only for what is durable.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use diesel::Connection;

use crate::error::ServiceError;
use crate::store::{write_transaction, Conn, DbConnection, DbPool, StoreError};

/// The most jobs one transaction takes, so that one batch's commit never waits on an unbounded
/// amount of work.
pub const MAX_BATCH: usize = 64;

/// A queued unit of work: runs inside the batch's transaction, then hears how the batch ended.
trait Job: Send {
    /// Runs the work in its own savepoint.
    fn run(&mut self, conn: &mut DbConnection);
    /// Answers the caller: the work's own result if the batch committed, else the batch's error.
    fn finish(self: Box<Self>, committed: Result<(), &str>);
}

struct Pending<T, F> {
    work: Option<F>,
    outcome: Option<Result<T, ServiceError>>,
    reply: mpsc::SyncSender<Result<T, ServiceError>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnOnce(&mut DbConnection) -> Result<T, ServiceError> + Send,
{
    fn run(&mut self, conn: &mut DbConnection) {
        if let Some(work) = self.work.take() {
            self.outcome = Some(conn.transaction(work));
        }
    }

    fn finish(self: Box<Self>, committed: Result<(), &str>) {
        let outcome = match (committed, self.outcome) {
            (Ok(()), Some(outcome)) => outcome,
            (_, Some(Err(own))) => Err(own),
            (Err(batch), _) => Err(ServiceError::Internal(format!("database: {batch}"))),
            (Ok(()), None) => Err(ServiceError::Internal("a queued write never ran".into())),
        };
        let _ = self.reply.send(outcome);
    }
}

/// The handle request threads submit write transactions through; cheap to share.
pub struct GroupCommit {
    jobs: mpsc::Sender<Box<dyn Job>>,
    stats: Arc<Stats>,
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
}

impl GroupCommit {
    /// Starts the writer thread with its own connection to `url` (outside the request pool, so
    /// callers holding pooled connections can never starve it). The connection is opened on first
    /// use and re-opened after a failure.
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
        Ok(GroupCommit { jobs, stats })
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Runs `work` as part of the next batch and returns its result once the batch is durable.
    /// `work` must not take the write gate itself; calling this while holding it (inside
    /// `write_transaction`) would wait on a batch that waits on this thread, so it is refused.
    pub fn run<T, F>(&self, work: F) -> Result<T, ServiceError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, ServiceError> + Send + 'static,
    {
        if crate::store::gate::held_here() {
            return Err(ServiceError::Internal(
                "group commit called inside a write transaction".into(),
            ));
        }
        let stopped = || ServiceError::Internal("the database writer has stopped".into());
        let (reply, outcome) = mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(Pending {
                work: Some(work),
                outcome: None,
                reply,
            }))
            .map_err(|_| stopped())?;
        self.stats.submitted.fetch_add(1, Ordering::Relaxed);
        outcome.recv().map_err(|_| stopped())?
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
        let committed = match held.take().map_or_else(|| pool.get(), Ok) {
            Ok(mut conn) => {
                let committed = commit(&mut conn, &mut batch);
                if committed.is_ok() {
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

/// One transaction for the whole batch. A panic inside a job rolls the batch back: the
/// connection is still inside its transaction, so it is dropped and the pool discards it.
fn commit(conn: &mut DbConnection, batch: &mut [Box<dyn Job>]) -> Result<(), String> {
    let ran = catch_unwind(AssertUnwindSafe(|| {
        write_transaction::<_, diesel::result::Error, _>(conn, |conn| {
            for job in batch.iter_mut() {
                job.run(conn);
            }
            Ok(())
        })
    }));
    match ran {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("a write panicked; the batch was rolled back".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::prelude::*;
    use std::time::{Duration, Instant};

    fn setting(conn: &mut DbConnection, name: &str) -> QueryResult<usize> {
        diesel::sql_query("INSERT INTO settings (name, value) VALUES (?, 'x')")
            .bind::<diesel::sql_types::Text, _>(name)
            .execute(conn)
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
    /// meanwhile queue up and are taken as one batch.
    struct Held {
        writer: Arc<GroupCommit>,
        pool: DbPool,
        release: mpsc::Sender<()>,
        first: std::thread::JoinHandle<Result<(), ServiceError>>,
        _dir: tempfile::TempDir,
    }

    fn held_writer() -> Held {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("gc.db").display());
        let pool = crate::store::open(&url, 2).unwrap();
        let writer = Arc::new(GroupCommit::start(&url).unwrap());
        let (release, wait) = mpsc::channel::<()>();
        let first = {
            let writer = writer.clone();
            std::thread::spawn(move || {
                writer.run(move |conn| {
                    wait.recv().ok();
                    setting(conn, "gc-first")?;
                    Ok(())
                })
            })
        };
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

    #[test]
    fn queued_jobs_share_one_commit() {
        let held = held_writer();
        wait_until_submitted(&held.writer, 1);
        let waiting: Vec<_> = (0..10)
            .map(|i| {
                let writer = held.writer.clone();
                std::thread::spawn(move || {
                    writer.run(move |conn| {
                        setting(conn, &format!("gc-{i:02}"))?;
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
        assert_eq!(names(&held.pool).len(), 11);
    }

    #[test]
    fn a_failing_job_is_rolled_back_alone() {
        let held = held_writer();
        wait_until_submitted(&held.writer, 1);
        let ok = |name: &'static str, writer: Arc<GroupCommit>| {
            std::thread::spawn(move || {
                writer.run(move |conn| {
                    setting(conn, name)?;
                    Ok(())
                })
            })
        };
        let before = ok("gc-before", held.writer.clone());
        wait_until_submitted(&held.writer, 2);
        let failing = {
            let writer = held.writer.clone();
            std::thread::spawn(move || {
                writer.run(move |conn| -> Result<(), ServiceError> {
                    setting(conn, "gc-failing")?;
                    Err(ServiceError::Conflict("refused after writing".into()))
                })
            })
        };
        wait_until_submitted(&held.writer, 3);
        let duplicate = {
            let writer = held.writer.clone();
            std::thread::spawn(move || {
                writer.run(move |conn| {
                    setting(conn, "gc-before")?;
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
