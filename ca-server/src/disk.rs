//! Free space where Mamori writes: the data folder and, on SQLite, the database's folder. A
//! full disk turns database writes into a clear 503 (every write is one transaction, so nothing
//! is half-written); `/healthz` and `/metrics` say how much space is left, so that the operator
//! sees why before anyone calls.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Database writes refused for want of space since the process started.
pub static DISK_FULL_ERRORS: AtomicU64 = AtomicU64::new(0);

/// What a request refused for want of space is told.
pub const DISK_FULL: &str = "the server's data disk is full: nothing was changed; free space \
     and try again / データ用ディスクがいっぱいです。変更は行われていません。空きを作ってから再試行してください";

/// Whether a database error's text says the disk (or the database's quota) is full: SQLite's
/// SQLITE_FULL, PostgreSQL's disk_full (53100) and the ENOSPC text both carry.
pub fn is_disk_full(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("database or disk is full")
        || m.contains("no space left on device")
        || m.contains("could not extend file")
}

/// Counts one database write refused for want of space and logs it.
pub fn count_disk_full(text: &str) {
    DISK_FULL_ERRORS.fetch_add(1, Ordering::Relaxed);
    tracing::error!(error = %text, "a database write failed: the disk is full");
}

/// The folders whose free space matters, and how little is too little.
#[derive(Debug, Clone)]
pub struct DiskWatch {
    paths: Vec<PathBuf>,
    min_free: u64,
}

impl DiskWatch {
    /// `data_dir` and, for a SQLite `database_url`, the database file's folder; unhealthy below
    /// `min_free` bytes.
    pub fn new(data_dir: &Path, database_url: &str, min_free: u64) -> DiskWatch {
        let mut paths = vec![data_dir.to_path_buf()];
        if let Some(file) = database_url.strip_prefix("sqlite://") {
            if let Some(dir) = Path::new(file).parent() {
                let dir = if dir.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    dir.to_path_buf()
                };
                if !paths.contains(&dir) {
                    paths.push(dir);
                }
            }
        }
        DiskWatch { paths, min_free }
    }

    /// The least free space (bytes an unprivileged writer may use) over the watched folders;
    /// `None` when none can be read.
    pub fn free_bytes(&self) -> Option<u64> {
        self.paths
            .iter()
            .filter_map(|p| rustix::fs::statvfs(p).ok())
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
            .min()
    }

    /// Why the disk is unhealthy, if it is: less free than `min_free_disk_bytes`.
    pub fn low(&self) -> Option<String> {
        let free = self.free_bytes()?;
        (free < self.min_free).then(|| {
            format!(
                "the data disk has {free} bytes free, less than min_free_disk_bytes ({})",
                self.min_free
            )
        })
    }

    /// Prometheus lines: free bytes and refused writes.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP mamori_data_disk_free_bytes Free space on the disk of the data folder (and SQLite database), the least of them.\n# TYPE mamori_data_disk_free_bytes gauge\n",
        );
        if let Some(free) = self.free_bytes() {
            out.push_str(&format!("mamori_data_disk_free_bytes {free}\n"));
        }
        out.push_str(&format!(
            "# HELP mamori_disk_full_errors_total Database writes refused because the disk was full.\n# TYPE mamori_disk_full_errors_total counter\nmamori_disk_full_errors_total {}\n",
            DISK_FULL_ERRORS.load(Ordering::Relaxed)
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disks_are_recognised_in_both_databases_words() {
        assert!(is_disk_full("database or disk is full"));
        assert!(is_disk_full(
            "could not extend file \"base/16384/2619\": No space left on device"
        ));
        assert!(!is_disk_full("database is locked"));
    }

    #[test]
    fn the_data_folder_has_a_free_space_reading() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/m.db", dir.path().display());
        let watch = DiskWatch::new(dir.path(), &url, u64::MAX);
        assert!(watch.free_bytes().is_some());
        assert!(watch.low().unwrap().contains("min_free_disk_bytes"));
        assert!(watch.render().contains("mamori_data_disk_free_bytes "));
    }
}
