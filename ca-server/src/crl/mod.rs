//! CRL publication for every scope of every CA — the whole CA, or one shard when partitioned
//! CRLs are on — as complete CRLs and, when enabled, delta CRLs (RFC 5280 §5.2.4). All of a CA's
//! CRLs share one cRLNumber sequence that only grows.
//!
//! A revocation republishes its scope from the previous CRL's DER (entries kept byte for byte,
//! changed serials replaced), so a CA with a million revoked certificates publishes in well under
//! a second; the scheduled complete rebuild reads rows from the database in batches, twice (to
//! measure, then to write into the CRL's own buffer), so memory holds the CRL and one batch.
//! CRLs are stored in 1 MiB chunks, kept in memory for the public listener and re-read when
//! another instance publishes.
//!
//! The CRL service owns its cache and serves CRLs to the public listener; it signs only through a
//! [`Publisher`], which the CA side makes with the CAs it holds. `storage` reads and writes CRLs and their numbers,
//! `publish` builds and signs them.

mod publish;
mod storage;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use actix_web::web::Bytes;
use ca_core::ca::CertificateAuthority;
use ca_core::clock::Clock;
use ca_core::time::UnixTime;

use crate::ca::Issuers;
use crate::config::Config;
use crate::error::ServiceError;
use crate::store::checkout::{checkout, Held};
use crate::store::crl_rows::CrlRows;
use crate::store::models::PublishedCrlRow;
use crate::store::DbPool;

/// A published CRL as served.
#[derive(Debug)]
pub struct PublishedCrl {
    /// DER, shared with every response that serves it.
    pub der: Bytes,
    /// cRLNumber.
    pub number: i64,
    /// thisUpdate (Unix seconds).
    pub this_update: i64,
    /// nextUpdate (Unix seconds).
    pub next_update: i64,
}

impl PublishedCrl {
    pub(super) fn new(row: &PublishedCrlRow, der: Vec<u8>) -> Self {
        PublishedCrl {
            der: Bytes::from(der),
            number: row.crl_number,
            this_update: row.this_update,
            next_update: row.next_update,
        }
    }
}

/// Published CRLs by file name (`issuing`, `issuing-p3`, `issuing-delta`, `root`, ...).
#[derive(Debug, Default)]
pub struct CrlCache {
    map: RwLock<HashMap<String, Arc<PublishedCrl>>>,
    /// This instance's publications between start and caching their CRL (see [`Publishing`]).
    publishing: AtomicUsize,
}

/// Marks a publication in progress from before its transaction until its CRL is cached. A CRL is
/// visible to the poll from its commit, and on SQLite the committing connection may then spend a
/// while checkpointing the CRL's pages into the database file before the publisher caches it: a
/// poll in that window loaded a second copy of the CRL from the database (49 MB for a million
/// entries, which took the server past 200 MB). The poll leaves such a CRL to its publisher.
pub(super) struct Publishing<'a>(&'a AtomicUsize);

impl<'a> Publishing<'a> {
    pub(super) fn start(count: &'a AtomicUsize) -> Publishing<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        Publishing(count)
    }
}

impl Drop for Publishing<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The CRL service with the CAs it signs with: every publication goes through it.
pub struct Publisher<'a> {
    service: &'a CrlService,
    issuers: &'a Issuers,
}

impl std::ops::Deref for Publisher<'_> {
    type Target = CrlService;

    fn deref(&self) -> &CrlService {
        self.service
    }
}

impl Publisher<'_> {
    fn ca(&self, ca_id: &str) -> Result<&CertificateAuthority, ServiceError> {
        self.issuers
            .get(ca_id)
            .ok_or_else(|| ServiceError::NotFound(format!("CA {ca_id}")))
    }
}

/// The CRL service's state: the published CRLs, served from memory.
pub struct CrlService {
    pool: DbPool,
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    crl_cache: CrlCache,
}

impl CrlService {
    /// The service; it publishes only through [`CrlService::publisher`], with the CAs.
    pub fn new(pool: DbPool, config: Arc<Config>, clock: Arc<dyn Clock>) -> CrlService {
        CrlService {
            pool,
            config,
            clock,
            crl_cache: CrlCache::default(),
        }
    }

    /// Publishing with the CAs whose keys the caller holds.
    pub fn publisher<'a>(&'a self, issuers: &'a Issuers) -> Publisher<'a> {
        Publisher {
            service: self,
            issuers,
        }
    }

    fn conn(&self) -> Result<Held, ServiceError> {
        Ok(checkout(&self.pool)?)
    }

    fn now(&self) -> UnixTime {
        self.clock.now()
    }

    fn remember(&self, name: &str, crl: PublishedCrl) {
        if let Ok(mut map) = self.crl_cache.map.write() {
            map.insert(name.to_string(), Arc::new(crl));
        }
    }

    fn cached_crl(&self, name: &str) -> Option<Arc<PublishedCrl>> {
        self.crl_cache
            .map
            .read()
            .ok()
            .and_then(|m| m.get(name).cloned())
    }

    /// A published CRL by file name (`issuing`, `issuing-p3`, `issuing-delta`, `root`), from
    /// memory.
    pub fn crl_file(&self, name: &str) -> Result<Arc<PublishedCrl>, ServiceError> {
        if let Some(hit) = self.cached_crl(name) {
            return Ok(hit);
        }
        let loaded = self.load_crl(name)?;
        self.remember(name, loaded);
        self.cached_crl(name)
            .ok_or_else(|| ServiceError::NotFound(format!("CRL {name}")))
    }

    fn load_crl(&self, name: &str) -> Result<PublishedCrl, ServiceError> {
        let mut conn = self.conn()?;
        storage::load(&mut conn, name)?.ok_or_else(|| ServiceError::NotFound(format!("CRL {name}")))
    }

    /// The current complete, unpartitioned CRL of `ca_id`.
    pub fn crl(&self, ca_id: &str) -> Result<Arc<PublishedCrl>, ServiceError> {
        self.crl_file(ca_id)
    }

    /// Re-reads CRLs another instance published (their numbers moved on in the database).
    pub fn poll_crls(&self) -> Result<(), ServiceError> {
        let mut conn = self.conn()?;
        let published = conn.published_numbers()?;
        drop(conn);
        for (name, number) in published {
            // The mark is read before the cache: a publication of this instance that committed
            // before the numbers were read is either still marked (its publisher caches it) or
            // already cached.
            if self.crl_cache.publishing.load(Ordering::SeqCst) > 0
                || self.cached_crl(&name).map(|c| c.number) == Some(number)
            {
                continue;
            }
            let loaded = self.load_crl(&name)?;
            self.remember(&name, loaded);
        }
        Ok(())
    }
}
