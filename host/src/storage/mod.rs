//! Durable state behind sqlx: an SQLite (WAL) pool, embedded migrations, and one repository method per
//! query. Each repository is an `impl Storage` block in its own file, beside its row types.

mod admission;
mod audit;
mod cache;
mod policies;
mod tenants;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use crate::auth::KeyRow;
pub use admission::{CoverRow, SpendRow};
pub use audit::{AuditBatch, AuditRow, AuditWriter, CheckpointRow, ContentRow};
pub use cache::{CacheRow, CacheWrite};
pub use policies::{ActivePolicyRow, PolicySettingsRow, PolicyVersionRow};
pub use tenants::TenantRow;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot open database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("a tenant named `{0}` already exists")]
    DuplicateTenant(String),
    #[error("no such tenant")]
    NoSuchTenant,
    #[error("cannot start the audit log's disk sync: {0}")]
    Sync(String),
    /// An upload past the tenant's policy quota (the message says which and what to do).
    #[error("{0}")]
    PolicyQuota(String),
    #[error("the active version cannot be deleted: activate another (or roll back) first")]
    ActiveVersion,
}

/// Handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Storage {
    pool: SqlitePool,
    /// The options to open the audit sequencer's own connection with.
    writer_options: SqliteConnectOptions,
    durability: crate::config::Durability,
}

impl Storage {
    /// Opens (creating if needed) and migrates the database.
    pub async fn open(
        url: &str,
        max_connections: u32,
        durability: crate::config::Durability,
    ) -> Result<Storage, StorageError> {
        let open_err = |source| StorageError::Open {
            url: url.to_owned(),
            source,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed audit batch survives power loss. NORMAL (in WAL mode): it survives a crash of
            // the process, and commits skip the fsync.
            .synchronous(match durability {
                crate::config::Durability::Fsync => SqliteSynchronous::Full,
                crate::config::Durability::Os => SqliteSynchronous::Normal,
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        if !url.contains("mode=memory") {
            owner_only(options.get_filename()).map_err(|e| open_err(sqlx::Error::Io(e)))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options.clone())
            .await
            .map_err(open_err)?;
        sqlx::migrate!("host/migrations/sqlite").run(&pool).await?;
        Ok(Storage {
            pool,
            writer_options: options,
            durability,
        })
    }

    /// Copies committed WAL pages into the database file without blocking writers or readers (a passive
    /// checkpoint). The audit sequencer's connection leaves this to a background task.
    ///
    /// SQLite starts writing the WAL from its beginning again only when a write transaction finds every frame
    /// already copied. Under steady load a commit always lands while this runs, so on its own the WAL would
    /// grow without end; and a sync of a growing file costs about twice that of a rewritten one (ext4 must
    /// also journal the new size). The sequencer therefore finishes each background checkpoint on its own
    /// connection, just before its next transaction ([`AuditBatch::checkpoint_first`]).
    ///
    /// Returns the frames in the WAL and how many of them are now copied (both -1 when the database is not
    /// in WAL mode, such as an in-memory one).
    pub async fn wal_checkpoint(&self) -> Result<(i64, i64), StorageError> {
        let (_busy, frames, copied): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&self.pool)
                .await?;
        Ok((frames, copied))
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Current unix time in seconds.
pub fn unix_now() -> i64 {
    now()
}

/// Makes the database file readable by its owner only (0600), creating it so when it does not exist: it
/// holds key hashes, spend and the audit log. SQLite gives the `-wal` and `-shm` files it creates the
/// database file's mode; those an older version left are tightened too.
fn owner_only(db: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if db.as_os_str().is_empty() || db.as_os_str() == ":memory:" {
            return Ok(());
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(db)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut path = db.as_os_str().to_owned();
            path.push(suffix);
            // A `-wal` or `-shm` file may be gone by now: SQLite removes them when the last connection of
            // an earlier process closes.
            match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
    }
    Ok(())
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
