//! The sequencer: one writer task owns every tenant log's tail (size, last leaf hash, Merkle frontier). Request
//! handlers hand it entries; it assigns indices, commits them in batches (group commit, one transaction,
//! one fsync), and answers each handler only once its entry is durable. It signs a checkpoint per log at
//! most once per interval while entries arrive, and on demand for exports.
//!
//! SQLite has a single writer anyway, so one task with per-log state is the "one sequencer per log" of the
//! design without a task per tenant.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use tokio::sync::{mpsc, oneshot};

use super::content::{Content, Sealer};
use super::entry::Entry;
use super::heads::SignedHeads;
use super::merkle::{Frontier, Hash, leaf_hash};
use super::note::{self, Checkpoint};
use crate::storage::{
    AuditBatch, AuditRow, AuditWriter, ContentRow, CoverRow, SpendRow, Storage, StorageError,
};

/// Why an entry could not be made durable. The request that carried it fails with 503.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("the audit log could not commit: {0}")]
    Commit(String),
    #[error("the audit sequencer has stopped")]
    Stopped,
    /// The log's stored entries do not extend the head last signed for it: it is never signed again.
    #[error(
        "the audit log of tenant {0} does not extend its last signed checkpoint: the database was modified"
    )]
    Damaged(String),
}

/// Where an entry landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub index: u64,
    pub leaf: Hash,
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub size: u64,
    pub root: Hash,
    pub note: String,
}

/// What the latest checkpoint of a log covers, as the sequencer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// The latest signed checkpoint; `None` for a log without entries.
    pub checkpoint: Option<SignedCheckpoint>,
    /// Entries the log holds now, covered or not.
    pub log_size: u64,
    /// How long until a checkpoint covering them may be signed (the once-per-interval rule); zero when
    /// every entry is covered.
    pub next_signing_in: Duration,
}

type Reply = oneshot::Sender<Result<Appended, AuditError>>;

/// An append waiting in the sequencer's batch.
struct Pending {
    entry: Box<Entry>,
    content: Option<Box<Content>>,
    release: u64,
    reply: Reply,
}

/// A budget cover to raise before a request is forwarded, and covers to lower (slack taken back), in one
/// transaction.
struct CoverChange {
    raise: Option<CoverRow>,
    lower: Vec<CoverRow>,
    reply: oneshot::Sender<Result<(), AuditError>>,
}

enum Command {
    Append {
        entry: Box<Entry>,
        content: Option<Box<Content>>,
        /// What the entry's request holds of its budget cover, released in the entry's transaction.
        release: u64,
        reply: Reply,
    },
    Covers(Box<CoverChange>),
    Checkpoint {
        tenant: String,
        reply: oneshot::Sender<Result<Coverage, AuditError>>,
    },
    /// Sign every log that grew since its last checkpoint (shutdown).
    Flush {
        reply: oneshot::Sender<()>,
    },
}

/// Signs checkpoints; the key never leaves this struct.
pub struct Signer {
    origin: String,
    key: SigningKey,
}

impl Signer {
    pub fn new(origin: String, key: SigningKey) -> Signer {
        Signer { origin, key }
    }
    /// The origin line of a tenant's log.
    pub fn log_origin(&self, tenant: &str) -> String {
        format!("{}/{tenant}", self.origin)
    }
    /// The signed-note verifier key text auditors pin.
    pub fn verifier_key(&self) -> String {
        note::verifier_key_text(&self.origin, &self.key.verifying_key())
    }
    pub fn key_name(&self) -> &str {
        &self.origin
    }
    fn sign(&self, tenant: &str, size: u64, root: Hash) -> String {
        let cp = Checkpoint {
            origin: self.log_origin(tenant),
            size,
            root,
        };
        note::sign(&cp, &self.origin, &self.key)
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Default)]
struct Tail {
    size: u64,
    last_leaf: Hash,
    frontier: Frontier,
    signed_size: u64,
    signed_at: Option<Instant>,
}

/// Handle to the sequencer; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Command>,
    signer: Arc<Signer>,
    sealer: Arc<Sealer>,
    storage: Storage,
    depth: Arc<AtomicI64>,
    /// Batches committed since start.
    commits: Arc<AtomicU64>,
    /// Writes (entries, cover raises) answered with an error since start: nothing was made durable.
    failures: Arc<AtomicU64>,
    /// Tenants' own retention in days (0 = keep no content), served from memory.
    retention: Arc<RwLock<HashMap<String, u32>>>,
    default_retention_days: u32,
    /// Tenants whose stored log did not match their latest signed checkpoint at start.
    damaged: Arc<Vec<String>>,
    /// How many witnesses are asked to cosign each checkpoint.
    witnesses: usize,
}

/// Where each newly signed checkpoint goes to be cosigned by witnesses: (tenant, checkpoint).
pub type ToWitnesses = mpsc::Sender<(String, SignedCheckpoint)>;

/// How the sequencer runs.
pub struct LogOptions {
    /// Days of content a tenant keeps unless it set its own.
    pub default_retention_days: u32,
    /// Most entries committed in one transaction.
    pub batch_max: usize,
    /// Least time between two checkpoints of one log.
    pub checkpoint_interval: Duration,
    /// The last head signed of each log, kept outside the database.
    pub heads: SignedHeads,
    /// Witnesses to cosign each checkpoint: where checkpoints go, and how many witnesses there are.
    pub witnesses: Option<(ToWitnesses, usize)>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

/// Queue length between handlers and the sequencer; handlers wait (never drop) when it is full.
const QUEUE: usize = 16 * 1024;

impl AuditLog {
    /// Rebuilds every log's tail from storage and starts the sequencer.
    pub async fn open(
        storage: Storage,
        signer: Signer,
        sealer: Sealer,
        options: LogOptions,
    ) -> Result<(AuditLog, tokio::task::JoinHandle<()>), OpenError> {
        let LogOptions {
            default_retention_days,
            batch_max,
            checkpoint_interval,
            heads,
            witnesses,
        } = options;
        let (to_witnesses, witness_count) = witnesses.map_or((None, 0), |(tx, n)| (Some(tx), n));
        let sealer = Arc::new(sealer);
        let retention = Arc::new(RwLock::new(
            storage
                .retention_overrides()
                .await?
                .into_iter()
                .collect::<HashMap<_, _>>(),
        ));
        let mut heads = heads;
        let (tails, damaged) = load_tails(&storage, &mut heads).await?;
        let db = storage.audit_writer().await?;
        let syncer = db
            .wal_to_sync()
            .map(|wal| Syncer::start(wal.to_owned()))
            .transpose()?;
        let (committed, commits) = tokio::sync::watch::channel(());
        let checkpointed = Arc::new(AtomicBool::new(false));
        tokio::spawn(checkpoint_wal(
            storage.clone(),
            commits,
            checkpointed.clone(),
        ));
        let (tx, rx) = mpsc::channel(QUEUE);
        let signer = Arc::new(signer);
        let depth = Arc::new(AtomicI64::new(0));
        let commits = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            commits: commits.clone(),
            storage: storage.clone(),
            db: Some(db),
            syncer,
            committed,
            checkpointed,
            sealer: sealer.clone(),
            signer: signer.clone(),
            tails,
            heads,
            damaged: damaged.iter().cloned().collect(),
            to_witnesses,
            batch_max,
            interval: checkpoint_interval,
            depth: depth.clone(),
        };
        let task = tokio::spawn(writer.run(rx));
        Ok((
            AuditLog {
                tx,
                signer,
                sealer,
                storage,
                depth,
                commits,
                failures: Arc::new(AtomicU64::new(0)),
                retention,
                default_retention_days,
                damaged: Arc::new(damaged),
                witnesses: witness_count,
            },
            task,
        ))
    }

    /// Appends an entry (its `index` and `prev_leaf` are assigned here) and resolves once it is durable.
    pub fn append(
        &self,
        entry: Entry,
        content: Option<Content>,
    ) -> impl Future<Output = Result<Appended, AuditError>> + Send + 'static {
        self.append_settling(entry, content, 0)
    }

    /// Appends an entry that settles a request covered by its key's budget cover (`spend_covers`): the cover
    /// is lowered by `release` micro-USD, the request's reservation, in the entry's transaction. Until then
    /// the cover holds the request, so a crash in between charges it.
    pub fn append_settling(
        &self,
        entry: Entry,
        content: Option<Content>,
        release: u64,
    ) -> impl Future<Output = Result<Appended, AuditError>> + Send + 'static {
        let tx = self.tx.clone();
        let depth = self.depth.clone();
        let failures = self.failures.clone();
        async move {
            let (reply, answer) = oneshot::channel();
            depth.fetch_add(1, Ordering::Relaxed);
            if tx
                .send(Command::Append {
                    entry: Box::new(entry),
                    content: content.map(Box::new),
                    release,
                    reply,
                })
                .await
                .is_err()
            {
                depth.fetch_sub(1, Ordering::Relaxed);
                failures.fetch_add(1, Ordering::Relaxed);
                return Err(AuditError::Stopped);
            }
            let appended = answer.await.unwrap_or(Err(AuditError::Stopped));
            if appended.is_err() {
                failures.fetch_add(1, Ordering::Relaxed);
            }
            appended
        }
    }

    /// Raises a budget cover by `cover.micro_usd`, and lowers the `lower` covers by theirs, in one
    /// transaction (the sequencer's next batch); resolves once that is durable. A request the cover did not
    /// hold is forwarded only after this. Only `admission::cover` calls it.
    pub(crate) async fn raise_cover(
        &self,
        cover: CoverRow,
        lower: Vec<CoverRow>,
    ) -> Result<(), AuditError> {
        self.change_covers(Some(cover), lower).await
    }

    /// Lowers budget covers by what they hold beyond requests in flight (their slack, at shutdown) and
    /// resolves once that is durable.
    pub(crate) async fn lower_covers(&self, lower: Vec<CoverRow>) -> Result<(), AuditError> {
        self.change_covers(None, lower).await
    }

    async fn change_covers(
        &self,
        raise: Option<CoverRow>,
        lower: Vec<CoverRow>,
    ) -> Result<(), AuditError> {
        let (reply, answer) = oneshot::channel();
        let sent = self
            .tx
            .send(Command::Covers(Box::new(CoverChange {
                raise,
                lower,
                reply,
            })))
            .await;
        let changed = match sent {
            Ok(()) => answer.await.unwrap_or(Err(AuditError::Stopped)),
            Err(_) => Err(AuditError::Stopped),
        };
        if changed.is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        changed
    }

    /// Signs a checkpoint covering every durable entry of the tenant's log now (or returns the latest one if
    /// nothing was added since). `None` for a log without entries.
    pub async fn checkpoint_now(
        &self,
        tenant: &str,
    ) -> Result<Option<SignedCheckpoint>, AuditError> {
        Ok(self.coverage(tenant).await?.checkpoint)
    }

    /// Like `checkpoint_now`, with what the checkpoint leaves uncovered: a checkpoint signed within the
    /// interval is handed out as it is, and may cover fewer entries than the log holds.
    pub async fn coverage(&self, tenant: &str) -> Result<Coverage, AuditError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Checkpoint {
                tenant: tenant.to_owned(),
                reply,
            })
            .await
            .map_err(|_| AuditError::Stopped)?;
        answer.await.unwrap_or(Err(AuditError::Stopped))
    }

    /// Signs a checkpoint for every log with unsigned entries; used when shutting down.
    pub async fn flush(&self) {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Command::Flush { reply }).await.is_ok() {
            let _ = answer.await;
        }
    }

    /// Tenants whose stored entries no longer hash to their latest signed checkpoint (found at start).
    pub fn damaged_logs(&self) -> &[String] {
        &self.damaged
    }

    /// How many witnesses are asked to cosign each checkpoint.
    pub fn witnesses(&self) -> usize {
        self.witnesses
    }

    /// Days of content a tenant keeps; 0 means none is ever written.
    pub fn retention_days(&self, tenant: &str) -> u32 {
        self.retention
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(tenant)
            .copied()
            .unwrap_or(self.default_retention_days)
    }

    /// Sets a tenant's retention (durably, then in memory). Returns false for an unknown tenant.
    pub async fn set_retention(&self, tenant: &str, days: u32) -> Result<bool, StorageError> {
        if !self.storage.set_retention(tenant, days).await? {
            return Ok(false);
        }
        self.retention
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(tenant.to_owned(), days);
        if days == 0 {
            // Zero retention applies to what is already stored, too.
            self.storage.audit_delete_content(tenant, None).await?;
        }
        Ok(true)
    }

    /// Deletes content past each tenant's retention, as of `now` (unix seconds). Returns rows deleted.
    pub async fn prune(&self, now: i64) -> Result<u64, StorageError> {
        let mut deleted = 0;
        for tenant in self.storage.audit_content_tenants().await? {
            let days = i64::from(self.retention_days(&tenant));
            deleted += self
                .storage
                .audit_delete_content(&tenant, Some(now - days * 86_400))
                .await?;
        }
        Ok(deleted)
    }

    /// Decrypts stored content for export.
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Batches committed since start (entries ÷ commits is the mean group-commit size).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Entries handed over and not yet answered.
    /// Writes (entries, cover changes) that failed since start: none of them was made durable.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub fn queue_depth(&self) -> i64 {
        self.depth.load(Ordering::Relaxed)
    }
}

const SYNC_FAILED: &str =
    "syncing the audit log to disk failed; the gateway must be restarted before it audits again";

/// Replies waiting for their batch to be durable.
struct Acks {
    /// The sequencer's commit count once the batch committed.
    seq: u64,
    appends: Vec<(Reply, Appended)>,
    raises: Vec<oneshot::Sender<Result<(), AuditError>>>,
    /// Answered once everything committed before it is durable.
    barrier: Option<oneshot::Sender<Result<(), AuditError>>>,
}

impl Acks {
    fn resolve(self, outcome: &Result<(), AuditError>) {
        for (reply, appended) in self.appends {
            let _ = reply.send(outcome.clone().map(|()| appended));
        }
        for reply in self.raises.into_iter().chain(self.barrier) {
            let _ = reply.send(outcome.clone());
        }
    }
}

/// Syncs the WAL file on its own thread while the sequencer commits the next batch (group commit across
/// batches). Each sync covers every batch committed before it began; their replies go out when it returns.
/// A failed sync is final (the kernel may have dropped the dirty pages, so a retry proves nothing): every
/// waiting and later append fails with 503 until a restart.
struct Syncer {
    tx: std::sync::mpsc::Sender<Acks>,
    failed: Arc<AtomicBool>,
    /// The commit count the last successful sync covered.
    synced: Arc<AtomicU64>,
}

impl Syncer {
    fn start(wal: std::path::PathBuf) -> Result<Syncer, StorageError> {
        let (tx, rx) = std::sync::mpsc::channel::<Acks>();
        let failed = Arc::new(AtomicBool::new(false));
        let synced = Arc::new(AtomicU64::new(0));
        let (flag, covered) = (failed.clone(), synced.clone());
        std::thread::Builder::new()
            .name("sluice-audit-sync".to_owned())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    // Everything queued now was committed before this sync begins.
                    let group: Vec<Acks> = std::iter::once(first).chain(rx.try_iter()).collect();
                    let seq = group.iter().map(|a| a.seq).max().unwrap_or(0);
                    let outcome = if flag.load(Ordering::Acquire) {
                        Err(AuditError::Commit(SYNC_FAILED.to_owned()))
                    } else {
                        // Opened for each sync: SQLite may recreate the WAL file between two of them.
                        std::fs::File::open(&wal)
                            .and_then(|f| f.sync_data())
                            .map_err(|e| {
                                flag.store(true, Ordering::Release);
                                tracing::error!(error = %e, wal = %wal.display(), "{SYNC_FAILED}");
                                AuditError::Commit(SYNC_FAILED.to_owned())
                            })
                    };
                    if outcome.is_ok() {
                        covered.fetch_max(seq, Ordering::Release);
                    }
                    for acks in group {
                        acks.resolve(&outcome);
                    }
                }
            })
            .map_err(|e| StorageError::Sync(e.to_string()))?;
        Ok(Syncer { tx, failed, synced })
    }

    /// Hands replies over; they are answered after the next sync.
    fn after_sync(&self, acks: Acks) {
        if let Err(std::sync::mpsc::SendError(acks)) = self.tx.send(acks) {
            acks.resolve(&Err(AuditError::Stopped));
        }
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }
}

/// Least time between two WAL checkpoints: each copies what the batches committed meanwhile.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Checkpoints the WAL in the background while the sequencer commits, so no batch waits for pages to be
/// copied into the database file; then sets `checkpointed`, for the sequencer to finish the job before its
/// next batch (see `Storage::wal_checkpoint`). Ends when the sequencer is gone.
async fn checkpoint_wal(
    storage: Storage,
    mut commits: tokio::sync::watch::Receiver<()>,
    checkpointed: Arc<AtomicBool>,
) {
    while commits.changed().await.is_ok() {
        match storage.wal_checkpoint().await {
            Ok(_) => checkpointed.store(true, Ordering::Release),
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; the next one retries"),
        }
        tokio::time::sleep(CHECKPOINT_EVERY).await;
    }
}

struct Writer {
    storage: Storage,
    /// The sequencer's own connection; reopened after a failed commit, in case it broke.
    db: Option<AuditWriter>,
    /// Syncs the WAL after commits and then acknowledges them (`durability = fsync` on a file).
    syncer: Option<Syncer>,
    /// Wakes the WAL checkpointer after a commit; dropping it stops the checkpointer.
    committed: tokio::sync::watch::Sender<()>,
    /// Set by the checkpointer after a background checkpoint: the next batch finishes it.
    checkpointed: Arc<AtomicBool>,
    sealer: Arc<Sealer>,
    signer: Arc<Signer>,
    tails: HashMap<String, Tail>,
    /// The last head signed for each log, outside the database; written before a signature leaves.
    heads: SignedHeads,
    /// Logs that do not extend their last signed head: never signed again.
    damaged: std::collections::HashSet<String>,
    /// Each signed checkpoint is handed here for witnesses to cosign (skipped when the queue is full).
    to_witnesses: Option<ToWitnesses>,
    batch_max: usize,
    interval: Duration,
    depth: Arc<AtomicI64>,
    commits: Arc<AtomicU64>,
}

impl Writer {
    /// The sequencer's connection, opened again if the last commit failed.
    async fn db(&mut self) -> Result<&mut AuditWriter, StorageError> {
        match &mut self.db {
            Some(db) => Ok(db),
            slot @ None => Ok(slot.insert(self.storage.audit_writer().await?)),
        }
    }

    /// Passes a write's outcome through, dropping the connection after a failure so the next write opens a
    /// fresh one.
    fn keep_db<T>(&mut self, outcome: Result<T, StorageError>) -> Result<T, StorageError> {
        if outcome.is_err() {
            self.db = None;
        }
        outcome
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(self.interval.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    let mut batch = vec![cmd];
                    while batch.len() < self.batch_max {
                        match rx.try_recv() {
                            Ok(c) => batch.push(c),
                            Err(_) => break,
                        }
                    }
                    self.process(batch).await;
                }
                _ = tick.tick() => self.sign_due(false).await,
            }
        }
        // The queue is closed and drained: sign what is left so the last entries are covered.
        self.sign_due(true).await;
    }

    async fn process(&mut self, batch: Vec<Command>) {
        let mut appends = Vec::with_capacity(batch.len());
        let mut raises = Vec::new();
        let mut checkpoints = Vec::new();
        let mut flushes = Vec::new();
        for cmd in batch {
            match cmd {
                Command::Append {
                    entry,
                    content,
                    release,
                    reply,
                } => appends.push(Pending {
                    entry,
                    content,
                    release,
                    reply,
                }),
                Command::Covers(change) => raises.push(*change),
                Command::Checkpoint { tenant, reply } => checkpoints.push((tenant, reply)),
                Command::Flush { reply } => flushes.push(reply),
            }
        }
        if !appends.is_empty() || !raises.is_empty() {
            self.commit(appends, raises).await;
        }
        for (tenant, reply) in checkpoints {
            let signed = self.sign(&tenant, true).await;
            let _ = reply.send(signed.map(|checkpoint| self.coverage(&tenant, checkpoint)));
        }
        self.sign_due(!flushes.is_empty()).await;
        for reply in flushes {
            let _ = reply.send(());
        }
    }

    /// Assigns indices on copies of the tails, commits, and only then makes the copies the truth: a failed
    /// commit leaves no hole and no skipped index.
    async fn commit(&mut self, appends: Vec<Pending>, raises: Vec<CoverChange>) {
        let n = i64::try_from(appends.len()).unwrap_or(i64::MAX);
        let mut staged: HashMap<String, Tail> = HashMap::new();
        let mut rows = Vec::with_capacity(appends.len());
        let mut results = Vec::with_capacity(appends.len());
        let mut sealed = Vec::new();
        let mut lower: HashMap<(String, String, String), u64> = HashMap::new();
        let mut spend: HashMap<(String, String, u64), SpendRow> = HashMap::new();
        for Pending {
            entry,
            content,
            release: settles,
            reply,
        } in appends
        {
            // What the entry's request held of its cover is released in the same transaction.
            if settles > 0 {
                *lower
                    .entry((
                        entry.tenant_id.clone(),
                        entry.key_id.clone(),
                        entry.endpoint.clone(),
                    ))
                    .or_default() += settles;
            }
            add_spend(&mut spend, &entry);
            let (row, appended) = self.stage_entry(&mut staged, entry);
            if let Some(content) = content {
                sealed.extend(self.seal_content(&row, &content));
            }
            results.push((reply, appended));
            rows.push(row);
        }
        let mut raise: HashMap<(String, String, String), u64> = HashMap::new();
        let raise_replies = fold_cover_changes(raises, &mut raise, &mut lower);
        let batch = AuditBatch {
            entries: rows,
            content: sealed,
            spend: spend.into_values().collect(),
            raise: cover_rows(raise),
            lower: cover_rows(lower),
            checkpoint_first: self.checkpointed.swap(false, Ordering::Acquire),
        };
        let outcome = self.write_batch(&batch).await;
        self.depth.fetch_sub(n, Ordering::Relaxed);
        let acks = Acks {
            seq: self.commits.load(Ordering::Relaxed) + 1,
            appends: results,
            raises: raise_replies,
            barrier: None,
        };
        self.finish_commit(outcome, staged, acks);
    }

    /// Gives an entry the next index of its tenant's log on the staged copy of the tail (copied from the
    /// real tail the first time the batch touches that tenant) and chains it to the tail's last leaf.
    fn stage_entry(
        &self,
        staged: &mut HashMap<String, Tail>,
        mut entry: Box<Entry>,
    ) -> (AuditRow, Appended) {
        let tail = staged.entry(entry.tenant_id.clone()).or_insert_with(|| {
            self.tails
                .get(&entry.tenant_id)
                .cloned()
                .unwrap_or_default()
        });
        entry.index = tail.size;
        entry.prev_leaf = tail.last_leaf;
        let bytes = entry.encode();
        let leaf = leaf_hash(&bytes);
        tail.size += 1;
        tail.last_leaf = leaf;
        tail.frontier.push(leaf);
        let Entry {
            tenant_id,
            index,
            request_id,
            ..
        } = *entry;
        let row = AuditRow {
            tenant_id,
            index,
            entry: bytes,
            leaf_hash: leaf,
            request_id,
        };
        (row, Appended { index, leaf })
    }

    /// Encrypts an entry's content for storage. The index is part of the associated data, so content is
    /// sealed only once its entry's index is assigned. Content that cannot be sealed is left out (and
    /// logged): the entry still commits to it, so the batch goes on.
    fn seal_content(&self, row: &AuditRow, content: &Content) -> Option<ContentRow> {
        match self.sealer.seal(&row.tenant_id, row.index, content) {
            Ok((nonce, ciphertext)) => Some(ContentRow {
                tenant_id: row.tenant_id.clone(),
                index: row.index,
                nonce,
                ciphertext,
            }),
            Err(e) => {
                tracing::error!(error = %e, "content could not be sealed; the entry keeps its commitments");
                None
            }
        }
    }

    /// Commits a batch in one transaction, refusing to after a failed sync.
    async fn write_batch(&mut self, batch: &AuditBatch) -> Result<(), AuditError> {
        if self.syncer.as_ref().is_some_and(Syncer::failed) {
            // After a failed sync nothing is known to be on disk: appending more would hand out answers whose
            // entries may not survive. Only a restart (and SQLite's recovery) clears this.
            return Err(AuditError::Commit(SYNC_FAILED.to_owned()));
        }
        let outcome = async { self.db().await?.insert_batch(batch).await }.await;
        self.keep_db(outcome).map_err(|e| {
            tracing::error!(error = %e, entries = batch.entries.len(), covers_raised = batch.raise.len(), "audit batch failed to commit");
            AuditError::Commit(e.to_string())
        })
    }

    /// After a commit: advances the tails to the staged copies and answers the waiters once the syncer has
    /// made the batch durable (at once without a syncer). After a failure the tails stay as they were and
    /// every waiter gets the error.
    fn finish_commit(
        &mut self,
        outcome: Result<(), AuditError>,
        staged: HashMap<String, Tail>,
        acks: Acks,
    ) {
        match outcome {
            Ok(()) => {
                self.committed.send_replace(());
                self.commits.fetch_add(1, Ordering::Relaxed);
                self.tails.extend(staged);
                match &self.syncer {
                    Some(syncer) => syncer.after_sync(acks),
                    None => acks.resolve(&Ok(())),
                }
            }
            Err(err) => acks.resolve(&Err(err)),
        }
    }

    /// Waits until every batch committed so far is on disk (a no-op without a syncer).
    async fn synced(&self) -> Result<(), AuditError> {
        let Some(syncer) = &self.syncer else {
            return Ok(());
        };
        let seq = self.commits.load(Ordering::Relaxed);
        if syncer.synced.load(Ordering::Acquire) >= seq && !syncer.failed() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        syncer.after_sync(Acks {
            seq,
            appends: Vec::new(),
            raises: Vec::new(),
            barrier: Some(reply),
        });
        answer.await.unwrap_or(Err(AuditError::Stopped))
    }

    /// What `checkpoint` (the latest of `tenant`'s log) covers of the log.
    fn coverage(&self, tenant: &str, checkpoint: Option<SignedCheckpoint>) -> Coverage {
        let tail = self.tails.get(tenant);
        let log_size = tail.map_or(0, |t| t.size);
        let covered = checkpoint.as_ref().map_or(0, |c| c.size);
        let next_signing_in = match tail.and_then(|t| t.signed_at) {
            Some(at) if covered < log_size => self.interval.saturating_sub(at.elapsed()),
            _ => Duration::ZERO,
        };
        Coverage {
            checkpoint,
            log_size,
            next_signing_in,
        }
    }

    /// Signs logs that grew since their last checkpoint and whose interval has passed (all of them if
    /// `all`).
    async fn sign_due(&mut self, all: bool) {
        let due: Vec<String> = self
            .tails
            .iter()
            .filter(|(_, t)| {
                t.size > t.signed_size
                    && (all || t.signed_at.is_none_or(|at| at.elapsed() >= self.interval))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for tenant in due {
            if let Err(e) = self.sign(&tenant, false).await {
                tracing::error!(tenant = %tenant, error = %e, "checkpoint signing failed");
            }
        }
    }

    async fn sign(
        &mut self,
        tenant: &str,
        on_demand: bool,
    ) -> Result<Option<SignedCheckpoint>, AuditError> {
        if self.damaged.contains(tenant) {
            return Err(AuditError::Damaged(tenant.to_owned()));
        }
        let Some(tail) = self.tails.get(tenant).cloned() else {
            return Ok(None);
        };
        if tail.size == 0 {
            return Ok(None);
        }
        let root = tail.frontier.root();
        // At most one signature per interval per log, on demand too: a recent checkpoint is handed out
        // instead (it covers fewer entries; exports and proofs then cover exactly those).
        let recent = tail
            .signed_at
            .is_some_and(|at| at.elapsed() < self.interval)
            && tail.signed_size > 0;
        if tail.size == tail.signed_size || recent {
            if on_demand {
                // Nothing new: hand out the stored one (it covers the same size and root).
                let stored = self
                    .storage
                    .audit_checkpoints(tenant)
                    .await
                    .map_err(|e| AuditError::Commit(e.to_string()))?;
                if let Some(last) = stored.into_iter().next_back() {
                    let root: Hash = last.root.as_slice().try_into().unwrap_or([0; 32]);
                    return Ok(Some(SignedCheckpoint {
                        size: last.size,
                        root,
                        note: last.note,
                    }));
                }
            } else {
                return Ok(None);
            }
        }
        // A checkpoint must never cover an entry that a power cut could still take back.
        self.synced().await?;
        // The head is on disk, outside the database, before any signature over it exists.
        self.heads
            .record(tenant, tail.size, root)
            .map_err(|e| AuditError::Commit(e.to_string()))?;
        let note = self.signer.sign(tenant, tail.size, root);
        let stored = async {
            self.db()
                .await?
                .insert_checkpoint(tenant, tail.size, &root, &note)
                .await
        }
        .await;
        let stored = self
            .keep_db(stored)
            .map_err(|e| AuditError::Commit(e.to_string()))?;
        if let Some(t) = self.tails.get_mut(tenant) {
            t.signed_size = tail.size;
            t.signed_at = Some(Instant::now());
        }
        if !stored {
            // Another writer stored one of this size or larger. The note just signed never leaves this
            // function, so no second, possibly diverging checkpoint exists; the operator must look.
            tracing::error!(tenant = %tenant, size = tail.size, "a checkpoint of this size or larger already exists");
            return Err(AuditError::Commit(
                "a checkpoint of this size or larger already exists".to_owned(),
            ));
        }
        let signed = SignedCheckpoint {
            size: tail.size,
            root,
            note,
        };
        if let Some(tx) = &self.to_witnesses {
            // Never waits: a skipped checkpoint is covered by the next one the witnesses cosign.
            let _ = tx.try_send((tenant.to_owned(), signed.clone()));
        }
        Ok(Some(signed))
    }
}

/// Why the audit log could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Heads(#[from] super::heads::HeadsError),
}

/// Rebuilds every log's tail from its stored leaves and checks them against what was signed: the latest
/// checkpoint in the database and the head kept outside it. A log whose entries do not hash to either (or
/// that holds fewer entries than was signed) is damaged. Heads missing outside the database (a first start
/// of this version) are taken from intact logs' checkpoints.
async fn load_tails(
    storage: &Storage,
    heads: &mut SignedHeads,
) -> Result<(HashMap<String, Tail>, Vec<String>), OpenError> {
    let latest: HashMap<String, (u64, Vec<u8>)> = storage
        .audit_latest_checkpoints()
        .await?
        .into_iter()
        .map(|(tenant, size, root)| (tenant, (size, root)))
        .collect();
    let signed: HashMap<String, (u64, Hash)> = heads
        .logs()
        .map(|(log, head)| (log.to_owned(), head))
        .collect();
    let mut tails: HashMap<String, Tail> = HashMap::new();
    let mut damaged = Vec::new();
    for (tenant, index, leaf) in storage.audit_all_leaves().await? {
        let tail = tails.entry(tenant.clone()).or_default();
        let leaf: Hash = leaf.as_slice().try_into().unwrap_or([0; 32]);
        if index != tail.size {
            // A gap means the database was edited behind the gateway's back; keep appending after the
            // highest index so nothing is overwritten, and say so loudly.
            tracing::error!(tenant = %tenant, expected = tail.size, found = index, "audit log has a gap");
        }
        tail.size = index + 1;
        tail.last_leaf = leaf;
        tail.frontier.push(leaf);
        // The stored entries must still hash to every root signed over them.
        let size = tail.frontier.size();
        let in_db = latest.get(&tenant).is_some_and(|(s, root)| {
            *s == size && tail.frontier.root().as_slice() != root.as_slice()
        });
        let outside = signed
            .get(&tenant)
            .is_some_and(|(s, root)| *s == size && tail.frontier.root() != *root);
        if (in_db || outside) && !damaged.contains(&tenant) {
            damaged.push(tenant.clone());
        }
    }
    let sizes = latest
        .iter()
        .map(|(t, (size, _))| (t, *size))
        .chain(signed.iter().map(|(t, (size, _))| (t, *size)));
    for (tenant, size) in sizes {
        let tail = tails.entry(tenant.clone()).or_default();
        tail.signed_size = tail.signed_size.max(size);
        if tail.frontier.size() < size && !damaged.contains(tenant) {
            damaged.push(tenant.clone());
        }
    }
    for (tenant, (size, root)) in &latest {
        let root: Hash = root.as_slice().try_into().unwrap_or([0; 32]);
        if !damaged.contains(tenant) && heads.get(tenant).is_none_or(|(s, _)| s < *size) {
            heads.record(tenant, *size, root)?;
        }
    }
    for tenant in &damaged {
        tracing::error!(tenant = %tenant, "audit log does not extend what was signed for it: the database was modified; it is not signed again");
    }
    Ok((tails, damaged))
}

/// Adds a request entry to its key's daily spend totals. Only requests to metered endpoints count.
fn add_spend(spend: &mut HashMap<(String, String, u64), SpendRow>, entry: &Entry) {
    if entry.kind != super::entry::EntryKind::Request
        || !super::entry::INFERENCE_ENDPOINTS.contains(&entry.endpoint.as_str())
    {
        return;
    }
    let day = entry.timestamp_ms / 86_400_000;
    let row = spend
        .entry((entry.tenant_id.clone(), entry.key_id.clone(), day))
        .or_insert_with(|| SpendRow {
            tenant_id: entry.tenant_id.clone(),
            key_id: entry.key_id.clone(),
            day,
            ..SpendRow::default()
        });
    row.requests = row.requests.saturating_add(1);
    row.prompt_tokens = row.prompt_tokens.saturating_add(entry.prompt_tokens);
    row.completion_tokens = row
        .completion_tokens
        .saturating_add(entry.completion_tokens);
    row.micro_usd = row.micro_usd.saturating_add(entry.cost_micro_usd);
}

/// Sums the batch's cover changes per (tenant, key, endpoint) into `raise` and `lower` (the latter next to
/// what the entries released), so the transaction writes one row per cover. Returns the changes' replies,
/// answered with the batch.
fn fold_cover_changes(
    raises: Vec<CoverChange>,
    raise: &mut HashMap<(String, String, String), u64>,
    lower: &mut HashMap<(String, String, String), u64>,
) -> Vec<oneshot::Sender<Result<(), AuditError>>> {
    let mut raise_replies = Vec::with_capacity(raises.len());
    for CoverChange {
        raise: raised,
        lower: lowered,
        reply,
    } in raises
    {
        if let Some(cover) = raised {
            *raise
                .entry((cover.tenant_id, cover.key_id, cover.endpoint))
                .or_default() += cover.micro_usd;
        }
        for c in lowered {
            *lower
                .entry((c.tenant_id, c.key_id, c.endpoint))
                .or_default() += c.micro_usd;
        }
        raise_replies.push(reply);
    }
    raise_replies
}

/// Summed covers as rows for the batch.
fn cover_rows(covers: HashMap<(String, String, String), u64>) -> Vec<CoverRow> {
    covers
        .into_iter()
        .map(|((tenant_id, key_id, endpoint), micro_usd)| CoverRow {
            tenant_id,
            key_id,
            endpoint,
            micro_usd,
        })
        .collect()
}
