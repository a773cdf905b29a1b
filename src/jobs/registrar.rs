//! Group commit of registrations: one writer task stores registrations in batches.
//!
//! Every registration is a write transaction that must reach the disk before the
//! receipt is sent, and every registration appends to the one audit chain, so
//! registrations are written one after the other whatever happens. Rather than have
//! each request wait for the write lock and pay for its own sync, requests hand their
//! registration to the [`Registrar`]; its single writer task takes everything that is
//! waiting (up to [`MAX_BATCH`]; where the commit waits for the disk, after a wait of
//! at most [`GATHER`] for the requests it expects to join, see [`gather`]), stores it
//! with [`Store::register_batch`] (one transaction with a constant number of
//! statements, one commit; a savepoint per registration if that fails) and only then
//! answers each request. Under light load a batch holds one registration and nothing
//! waits; under heavy load the cost of a commit is shared by the whole batch. Nothing
//! is acknowledged before its batch is committed; a refused registration (a duplicate,
//! a closed window) leaves nothing behind and does not affect the rest of its batch.
//!
//! If a batch fails as a whole (an error no savepoint contains), nothing of it was
//! stored, and each of its registrations is tried again alone, so each request gets
//! its own answer.
//!
//! On a SQLite file, "committed" is not yet "on the disk": the writer commits through
//! a connection of its own that does not wait for the disk, hands the batch's answers
//! to a second task that syncs the log ([`LogFile`]), and goes on with the next batch
//! while the disk works. A batch is answered only once a sync that began after its
//! commit has returned, so every receipt still stands for a registration that
//! survives a power cut; what changes is that the writer no longer sits idle during
//! the sync. On PostgreSQL the commit itself waits for the server's log, as before.
//!
//! On a SQLite file the writer also drives that connection itself
//! ([`crate::store::direct`]): the whole batch runs on one blocking thread, with the
//! decisions of [`Store::register_set`], instead of passing each of its statements
//! through sqlx to the connection's thread and back. If that connection fails a
//! batch, the batch is stored one by one through sqlx, as above.
//!
//! The measured effect is in `docs/benchmarks.md`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use metrics::Histogram;
use tokio::sync::{mpsc, oneshot};

use crate::domain::identity::DuplicateKeys;
use crate::domain::registration::{Channel, Registration};
use crate::store::direct::{DirectWriter, SentMails};
use crate::store::entries::PendingRegistration;
use crate::store::{
    IdempotencyRequest, NewCode, NewEntry, NewMail, RegisterOutcome, Store, StoreError,
};

/// The most registrations stored in one transaction. Larger batches share a commit
/// among more requests but hold the write lock longer. With the set-based path a
/// batch costs the same dozen statements whatever its size, so a batch holds as
/// many registrations as 256 connections keep waiting; its largest statement (the
/// entries, 25 parameters each) stays far below both engines' limits on parameters.
pub const MAX_BATCH: usize = 256;

/// The least time between two background checkpoints of SQLite's log.
const CHECKPOINT_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// The most time a batch waits for the registrations expected to join it (see
/// [`gather`]).
const GATHER: std::time::Duration = std::time::Duration::from_millis(3);

/// Registrations waiting for the writer beyond this make new requests wait to hand
/// theirs over (back-pressure instead of an unbounded queue).
const QUEUE: usize = 1024;

/// A registration ready to store, owning its parts (it crosses to the writer task).
#[derive(Debug, Clone)]
pub struct NewRegistration {
    pub entry_id: String,
    pub window_id: String,
    pub channel: Channel,
    pub access_code_hash: Vec<u8>,
    pub registration: Registration,
    pub keys: DuplicateKeys,
    pub weight: u32,
    pub unsuccessful_draws: u32,
    /// The staff token that registered the entry at the counter.
    pub registered_by: Option<String>,
    /// The hash of the verification code, and when it expires (online registrations).
    pub code: Option<(Vec<u8>, DateTime<Utc>)>,
    pub mail: Option<NewMail>,
    pub idempotency: Option<Idempotency>,
    pub now: DateTime<Utc>,
}

/// The idempotency record to keep with a registration (see [`IdempotencyRequest`]).
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub scope: String,
    pub key: String,
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
    pub expires_at: DateTime<Utc>,
}

impl Idempotency {
    fn request(&self) -> IdempotencyRequest<'_> {
        IdempotencyRequest {
            scope: self.scope.clone(),
            key: &self.key,
            fingerprint: self.fingerprint.clone(),
            status: self.status,
            body: self.body.clone(),
            expires_at: self.expires_at,
        }
    }
}

impl NewRegistration {
    fn entry(&self) -> NewEntry<'_> {
        NewEntry {
            id: &self.entry_id,
            window_id: &self.window_id,
            channel: self.channel,
            access_code_hash: &self.access_code_hash,
            registration: &self.registration,
            keys: &self.keys,
            weight: self.weight,
            unsuccessful_draws: self.unsuccessful_draws,
            registered_by: self.registered_by.as_deref(),
        }
    }

    fn code(&self) -> Option<NewCode<'_>> {
        self.code.as_ref().map(|(code_hash, expires_at)| NewCode {
            code_hash,
            expires_at: *expires_at,
        })
    }
}

type Reply = oneshot::Sender<Result<RegisterOutcome, StoreError>>;

/// What the writer records of its work, for `/metrics` ([`crate::http::metrics`]):
/// how many registrations each batch held, how long storing it took (its wait for
/// the writers' turn and its commit included; on PostgreSQL the commit makes it
/// durable), and on a SQLite file how long each sync of the log took, after which the
/// batches it covers are answered. A disk whose syncs stall holds every registration
/// committed meanwhile (`docs/benchmarks.md`, twenty-fourth round); these say so.
#[derive(Clone, Debug)]
pub struct WriteTimings {
    pub batch_size: Histogram,
    pub batch_seconds: Histogram,
    pub log_sync_seconds: Histogram,
}

impl WriteTimings {
    /// Timings recorded nowhere.
    pub fn unrecorded() -> Self {
        Self {
            batch_size: Histogram::noop(),
            batch_seconds: Histogram::noop(),
            log_sync_seconds: Histogram::noop(),
        }
    }
}

/// Hands registrations to the writer task. Cheap to clone; the task stops when the
/// last clone is dropped, or at [`Registrar::close`], after storing what it was given.
#[derive(Clone, Debug)]
pub struct Registrar {
    queue: mpsc::Sender<(NewRegistration, Reply)>,
    /// Mails sent, for the writer to record through its own connection (see
    /// [`Registrar::record_sent`]); `None` where it has none.
    sent: Option<mpsc::UnboundedSender<SentMails>>,
    /// Set by [`Registrar::close`]; the writer then takes no new registration.
    stop: Arc<tokio::sync::watch::Sender<bool>>,
    /// Set by the writer once it has stored what it was given and let go of its
    /// connections.
    done: tokio::sync::watch::Receiver<bool>,
}

impl Registrar {
    /// Starts the writer task on a thread of its own (see [`run_on_own_thread`]); its
    /// companions run on the current tokio runtime. On a SQLite file it
    /// writes through the store's [`Store::unsynced_writer`] and answers each batch
    /// once the log is synced (see [`LogFile`]).
    pub fn start(store: Store) -> Self {
        Self::start_timed(store, WriteTimings::unrecorded())
    }

    /// [`Registrar::start`], recording the writer's work in `timings`.
    pub fn start_timed(store: Store, timings: WriteTimings) -> Self {
        match store.unsynced_writer() {
            Some((writer, log)) => {
                let log = LogFile::new(log);
                Self::start_with_sync_timed(store.clone(), writer, Arc::new(log), timings)
            }
            None => Self::spawn(store.clone(), store, None, timings),
        }
    }

    /// Starts the writer task writing through `writer` (a store whose commits do not
    /// wait for the disk, see [`Store::unsynced_writer`]) and answering a batch only
    /// once `log.sync()`, started after the batch's commit, has returned. `store` is
    /// the service's store, for the checkpoints.
    ///
    /// The batches go through a connection of the writer's own that it drives
    /// directly ([`Store::direct_writer`], see [`crate::store::direct`]); if that
    /// connection cannot be opened, or is lost, they go through `writer`'s.
    pub fn start_with_sync(store: Store, writer: Store, log: Arc<dyn LogSync>) -> Self {
        Self::start_with_sync_timed(store, writer, log, WriteTimings::unrecorded())
    }

    fn start_with_sync_timed(
        store: Store,
        writer: Store,
        log: Arc<dyn LogSync>,
        timings: WriteTimings,
    ) -> Self {
        let (committed, to_sync) = mpsc::channel(SYNC_QUEUE);
        tokio::spawn(sync_then_answer(
            log,
            to_sync,
            timings.log_sync_seconds.clone(),
        ));
        Self::spawn(store, writer, Some(committed), timings)
    }

    fn spawn(
        store: Store,
        writer: Store,
        synced: Option<mpsc::Sender<Committed>>,
        timings: WriteTimings,
    ) -> Self {
        let direct = match store.direct_writer() {
            Some(Ok(direct)) => Some(direct),
            Some(Err(error)) => {
                tracing::warn!(error = %error, "could not open the registrar's own connection; batches go through the pool's");
                None
            }
            None => None,
        };
        let (queue, waiting) = mpsc::channel(QUEUE);
        let (sent, marks) = match direct {
            Some(_) => {
                let (sent, marks) = mpsc::unbounded_channel();
                (Some(sent), Some(marks))
            }
            None => (None, None),
        };
        let checkpoints = store.is_sqlite().then(|| {
            // At most one request waiting: batches committed while a checkpoint runs
            // are all covered by the next one.
            let (ask, asked) = mpsc::channel(1);
            tokio::spawn(checkpoint(store.clone(), asked));
            ask
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (finished, done) = tokio::sync::watch::channel(false);
        let writes = async move {
            let writer = match writer.writer_pool().await {
                Some(Ok(own)) => own,
                Some(Err(error)) => {
                    tracing::warn!(error = %error, "could not open the registrar's own connections; batches go through the pool's");
                    writer
                }
                None => writer,
            };
            let tasks = Tasks {
                checkpoints,
                synced,
                timings,
            };
            write(writer, direct, waiting, marks, stopped, tasks).await;
            finished.send_replace(true);
        };
        run_on_own_thread(writes);
        Self {
            queue,
            sent,
            stop: Arc::new(stop),
            done,
        }
    }

    /// Stops taking registrations (a request handing one over from now on gets an
    /// error), stores those already handed over, and returns once the writer has let
    /// go of its connections: before the store is closed, and before anything replaces
    /// the database's files.
    pub async fn close(&self) {
        self.stop.send_replace(true);
        let mut done = self.done.clone();
        // An error means the writer is gone already.
        let _ = done.wait_for(|done| *done).await;
    }

    /// Hands mails recorded as sent to the writer, which writes them through its own
    /// SQLite connection with its next batch, or alone if none is waiting
    /// ([`DirectWriter::mails_sent`] says why). Gives the ids back where the writer
    /// has no connection of its own (PostgreSQL), or has stopped: the caller then
    /// records them itself. Like the outbox's own record, nothing waits for it: a
    /// mark lost to a crash only sends the mail again once its lease ends.
    pub fn record_sent(&self, ids: Vec<i64>, at: DateTime<Utc>) -> Result<(), Vec<i64>> {
        match &self.sent {
            Some(sent) => sent.send((ids, at)).map_err(|returned| returned.0.0),
            None => Err(ids),
        }
    }

    /// Stores a registration and answers once it is committed (or refused).
    pub async fn register(
        &self,
        registration: NewRegistration,
    ) -> Result<RegisterOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((registration, reply))
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?;
        answer
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?
    }
}

/// Runs the writer on a thread of its own, with a runtime of its own.
///
/// Among the request tasks, each statement of a batch on PostgreSQL (a dozen a batch)
/// woke the writer only once a runtime worker, busy with requests, next looked at the
/// sockets and then reached the writer in its queue: with 256 connections a batch took
/// about 27 ms, 200 µs a registration, most of it waiting. On its own thread, with its
/// own connections ([`Store::writer_pool`]), the writer is woken by the system as soon
/// as the server answers (`docs/benchmarks.md`, thirteenth round). SQLite's batches
/// already run on a thread outside the workers; for them this changes nothing
/// measurable. If the runtime cannot be built, the writer runs among the requests.
fn run_on_own_thread(writes: impl Future<Output = ()> + Send + 'static) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::warn!(error = %error, "could not build the registrar's runtime; it runs among the requests");
            tokio::spawn(writes);
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("tirage-registrar".to_owned())
        .spawn(move || runtime.block_on(writes));
    if let Err(error) = spawned {
        // The writer is gone with its queue: every registration is answered with an
        // error rather than left waiting.
        tracing::error!(error = %error, "could not start the registrar's thread");
    }
}

/// Where the writer hands its work on: the checkpoints' task (SQLite), the sync
/// task that answers committed batches (a SQLite file), and its timings.
struct Tasks {
    checkpoints: Option<mpsc::Sender<Ask>>,
    synced: Option<mpsc::Sender<Committed>>,
    timings: WriteTimings,
}

/// The writer task: takes what is waiting, stores it, answers (or hands the answers
/// to [`sync_then_answer`]), again.
async fn write(
    store: Store,
    mut direct: Option<DirectWriter>,
    mut waiting: mpsc::Receiver<(NewRegistration, Reply)>,
    mut marks: Option<mpsc::UnboundedReceiver<SentMails>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    tasks: Tasks,
) {
    let Tasks {
        checkpoints,
        synced,
        timings,
    } = tasks;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // The registrations of the last batch, and those already waiting when it was
    // committed: about how many requests are in flight.
    let (mut stored, mut waited) = (0, 0);
    loop {
        let next = tokio::select! {
            // Registrations first: marks wait for the next batch unless none waits.
            biased;
            received = waiting.recv_many(&mut batch, MAX_BATCH) => Next::Received(received),
            Some(mark) = next_mark(&mut marks) => Next::Sent(mark),
            Ok(_) = stop.wait_for(|stop| *stop), if !waiting.is_closed() => Next::Stop,
        };
        let received = match next {
            Next::Received(received) => received,
            Next::Sent(mark) => {
                let mut sent = vec![mark];
                sent.extend(queued_marks(&mut marks));
                record_alone(&store, &mut direct, sent).await;
                continue;
            }
            Next::Stop => {
                // Closed, what is queued is still received, then nothing.
                waiting.close();
                continue;
            }
        };
        if received == 0 {
            break;
        }
        if synced.is_none() {
            gather(&mut waiting, &mut batch, (stored + waited).min(MAX_BATCH)).await;
        }
        stored = batch.len();
        let (registrations, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let sent = queued_marks(&mut marks);
        let started = std::time::Instant::now();
        let (outcomes, unwritten) = {
            let _turn = store.write_turn().await;
            store_through(&store, &mut direct, registrations, sent).await
        };
        timings.batch_seconds.record(started.elapsed());
        timings.batch_size.record(stored as f64);
        record_sent(&store, unwritten).await;
        waited = waiting.len();
        store.registrations_stored(
            outcomes
                .iter()
                .filter(|outcome| matches!(outcome, Ok(RegisterOutcome::Created { .. })))
                .count(),
        );
        match &synced {
            Some(synced) => {
                if let Err(mpsc::error::SendError((replies, outcomes))) =
                    synced.send((replies, outcomes)).await
                {
                    // The sync task is gone (only at shutdown): nothing can say
                    // these commits reached the disk.
                    answer(replies, outcomes, Some(&not_synced("the log sync stopped")));
                }
            }
            None => answer(replies, outcomes, None),
        }
        if let Some(checkpoints) = &checkpoints {
            // Full: a checkpoint is already asked for, and it will cover this batch.
            let log_pages = direct.as_ref().and_then(DirectWriter::log_pages);
            let _ = checkpoints.try_send(Ask::after(stored, waited, log_pages));
        }
    }
    // Marks handed over before the writer stopped taking them.
    if let Some(marks) = marks.as_mut() {
        marks.close();
    }
    record_alone(&store, &mut direct, queued_marks(&mut marks)).await;
}

/// Records mails sent when no batch takes them: through the writer's own connection
/// in the writers' turn, or else through the store.
async fn record_alone(store: &Store, direct: &mut Option<DirectWriter>, sent: Vec<SentMails>) {
    if sent.is_empty() {
        return;
    }
    let unwritten = {
        let _turn = store.write_turn().await;
        record_sent_through(direct, sent).await
    };
    record_sent(store, unwritten).await;
}

/// What the writer does next.
enum Next {
    /// Store the registrations received (none: the queue is closed and empty).
    Received(usize),
    /// Record mails sent: no registration is waiting.
    Sent(SentMails),
    /// Stop taking registrations.
    Stop,
}

/// The next mails recorded as sent; never, where the writer takes none.
async fn next_mark(marks: &mut Option<mpsc::UnboundedReceiver<SentMails>>) -> Option<SentMails> {
    match marks {
        Some(marks) => marks.recv().await,
        None => std::future::pending().await,
    }
}

/// The mails recorded as sent that are waiting, without waiting for more.
fn queued_marks(marks: &mut Option<mpsc::UnboundedReceiver<SentMails>>) -> Vec<SentMails> {
    let mut sent = Vec::new();
    if let Some(marks) = marks {
        while let Ok(mark) = marks.try_recv() {
            sent.push(mark);
        }
    }
    sent
}

/// Records `sent` through the writer's own connection ([`on_own_connection`]); gives
/// back what it could not record (no connection, or its transaction failed).
async fn record_sent_through(
    direct: &mut Option<DirectWriter>,
    sent: Vec<SentMails>,
) -> Vec<SentMails> {
    let Some(connection) = direct.take() else {
        return sent;
    };
    let recorded = on_own_connection(direct, connection, move |connection| {
        let recorded = connection.mails_sent(&sent);
        (sent, recorded)
    })
    .await;
    match recorded {
        Ok((_, Ok(()))) => Vec::new(),
        Ok((sent, Err(error))) => {
            tracing::warn!(error = %error, "could not record sent mails through the registrar's connection");
            sent
        }
        // Lost with the thread: a mail whose mark is lost is sent again later.
        Err(_) => Vec::new(),
    }
}

/// Runs `work` with the writer's own `connection` on a thread where blocking is
/// allowed, and puts the connection back in `direct`; unless that thread panicked:
/// the connection is then dropped (which rolls its transaction back), later batches
/// go through the pool's, and the panic comes back as an error.
async fn on_own_connection<T: Send + 'static>(
    direct: &mut Option<DirectWriter>,
    mut connection: DirectWriter,
    work: impl FnOnce(&mut DirectWriter) -> T + Send + 'static,
) -> Result<T, StoreError> {
    let ran = tokio::task::spawn_blocking(move || {
        let value = work(&mut connection);
        (connection, value)
    })
    .await;
    match ran {
        Ok((connection, value)) => {
            *direct = Some(connection);
            Ok(value)
        }
        Err(panicked) => {
            tracing::error!(error = %panicked, "the registrar's own connection was lost; batches go through the pool's");
            Err(StoreError::Database(sqlx::Error::Protocol(
                panicked.to_string(),
            )))
        }
    }
}

/// Records through the store what the writer's connection did not (outside the
/// writers' turn, which [`Store::mails_sent`] takes itself). A failure only sends the
/// mails again once their lease ends.
async fn record_sent(store: &Store, sent: Vec<SentMails>) {
    for (ids, at) in sent {
        if let Err(error) = store.mails_sent(&ids, at).await {
            tracing::error!(mails = ids.len(), error = %error, "could not record sent mails");
        }
    }
}

/// The batches committed and not yet answered that the sync task holds at most;
/// beyond, the writer waits for it.
const SYNC_QUEUE: usize = 8;

/// A committed batch: its requests and their outcomes.
type Committed = (Vec<Reply>, Vec<Result<RegisterOutcome, StoreError>>);

/// Syncs a log file of the database to the disk (see [`LogFile`]); a test can put a
/// gate of its own instead.
pub trait LogSync: Send + Sync + 'static {
    /// Returns once everything written to the log before the call is on the disk.
    fn sync(&self) -> std::io::Result<()>;
}

/// SQLite's log (`<database>-wal`), synced with `fdatasync` by path.
///
/// The registrar's connection commits with `synchronous=NORMAL`: its commit writes
/// the batch to the log, without waiting for the disk. [`sync_then_answer`] then
/// syncs the log beside the writer, which meanwhile stores the next batch, and only
/// after that answers the batch's requests. A sync covers everything written to the
/// file before it started, whoever wrote it, so one sync answers every batch committed
/// before it began. What a power cut can take is a commit that nobody was told about;
/// SQLite's recovery stops at the first frame of the log that is not whole, so such a
/// commit is lost whole. The log is opened again by path at every sync (SQLite may
/// replace the file), and the first sync of each new file also syncs its folder, so
/// that the file itself survives the cut.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    /// The log file whose folder entry was synced (its inode number).
    known: Mutex<Option<u64>>,
}

impl LogFile {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            known: Mutex::new(None),
        }
    }
}

impl LogSync for LogFile {
    fn sync(&self) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let file = std::fs::File::open(&self.path)?;
        file.sync_data()?;
        let inode = file.metadata()?.ino();
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if *known != Some(inode) {
            let folder = match self.path.parent() {
                Some(folder) if !folder.as_os_str().is_empty() => folder,
                _ => Path::new("."),
            };
            std::fs::File::open(folder)?.sync_all()?;
            *known = Some(inode);
        }
        Ok(())
    }
}

/// Answers the committed batches once a sync of the log, started after their commits,
/// has returned. If the sync fails, nothing says those commits are on the disk: each
/// registration stored is answered with the error instead (a retry then finds the
/// entry if it survived; a refusal, which wrote nothing, is answered as it is).
async fn sync_then_answer(
    log: Arc<dyn LogSync>,
    mut committed: mpsc::Receiver<Committed>,
    sync_seconds: Histogram,
) {
    let mut batches = Vec::with_capacity(SYNC_QUEUE);
    while committed.recv_many(&mut batches, SYNC_QUEUE).await > 0 {
        let log = Arc::clone(&log);
        let started = std::time::Instant::now();
        let synced = match tokio::task::spawn_blocking(move || log.sync()).await {
            Ok(synced) => synced,
            Err(panicked) => Err(std::io::Error::other(panicked.to_string())),
        };
        sync_seconds.record(started.elapsed());
        let failure = synced.err().map(|error| {
            tracing::error!(error = %error, "could not sync the log after a batch of registrations");
            not_synced(&error.to_string())
        });
        for (replies, outcomes) in batches.drain(..) {
            answer(replies, outcomes, failure.as_ref());
        }
    }
}

/// The error that replaces a stored registration's answer when its sync failed.
fn not_synced(detail: &str) -> std::io::Error {
    std::io::Error::other(format!("the registration may not be on the disk: {detail}"))
}

/// Sends each request its outcome; with `failure`, a registration stored is answered
/// with that error instead.
fn answer(
    replies: Vec<Reply>,
    outcomes: Vec<Result<RegisterOutcome, StoreError>>,
    failure: Option<&std::io::Error>,
) {
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        let outcome = match (failure, outcome) {
            (Some(error), Ok(RegisterOutcome::Created { .. })) => Err(StoreError::Database(
                sqlx::Error::Io(std::io::Error::new(error.kind(), error.to_string())),
            )),
            (_, outcome) => outcome,
        };
        // A request that gave up (its client went away) no longer listens; what was
        // committed stays committed, as it would without batching.
        let _ = reply.send(outcome);
    }
}

/// Waits up to [`GATHER`] for `batch` to hold `expected` registrations.
///
/// Without it, 64 clients that each send their next registration as soon as they are
/// answered split into two groups: the writer answers one group and at once starts
/// the next batch with the other, which had arrived while the first was written; the
/// first group's next requests, parsed a millisecond later, then wait for that whole
/// batch. Batches held 32 registrations on average, each paying a whole commit.
/// Waiting a little for the requests the last batch is about to send back (like
/// PostgreSQL's `commit_delay`) merged the groups: 48 per batch on average for the
/// same time per batch (`docs/benchmarks.md`). A lone registration has nothing to
/// wait for (`expected` is 1), and no batch waits more than [`GATHER`].
///
/// Only where the commit waits for the disk (PostgreSQL, SQLite in memory). When the
/// log is synced beside the writer, the requests of the last batch are still waiting
/// for its sync when the next batch starts, so they cannot join it: timed batch by
/// batch, the writer spent a fifth of its time in this wait, almost always to its
/// end, for nothing. Without it the writer takes what is waiting and starts at once
/// (seventh round in `docs/benchmarks.md`).
async fn gather(
    waiting: &mut mpsc::Receiver<(NewRegistration, Reply)>,
    batch: &mut Vec<(NewRegistration, Reply)>,
    expected: usize,
) {
    let deadline = tokio::time::Instant::now() + GATHER;
    while batch.len() < expected {
        let room = MAX_BATCH - batch.len();
        match tokio::time::timeout_at(deadline, waiting.recv_many(batch, room)).await {
            Ok(received) if received > 0 => {}
            // the time is up, or the queue is closed
            _ => break,
        }
    }
}

/// The log's length (in pages of 4 KiB; a registration writes 24 to 32 KiB of log)
/// beyond which, while registrations come in slowly (see [`BUSY_RESTART_PAGES`]),
/// the checkpoints copy all of it and let the next batch start it again (see
/// [`copy_log`]). At 8,192 pages the log started again two to five times a second
/// under load, each time after syncing the database file and pausing the writer.
/// Four times as long a log, with the rounds of [`copy_log`], meant 5 to 12% more
/// registrations a second, and a p99 at 256 connections of 120 to 136 ms instead of
/// 149 to 155 (`docs/benchmarks.md`, eleventh round).
///
/// Each start again still holds the writer while the last pass copies and syncs
/// what the batch before it wrote: 14 to 100 ms, and once 0.8 s, as the database
/// grows. At 32,768 pages (once a second at 8,500 registrations a second) those
/// pauses set the p99 at 256 connections; at 262,144 pages (a log of 1 GiB, once
/// every five seconds) they come five times less often: p99 58 to 68 ms instead of
/// 79 to 87 in runs of 30 s (`docs/benchmarks.md`, nineteenth round).
const RESTART_PAGES: i64 = 262_144;

/// The log's length beyond which the checkpoints start it again even while
/// registrations stream in. Each start again holds the writer while the last pass
/// copies and syncs (100 to 170 ms on a slow day), so every request in flight then
/// waits that long once more; past [`RESTART_PAGES`] (every 5 to 10 s under 256
/// connections) those pauses reached more than one request in a hundred and set
/// the p99. Four times as far, they come every 20 to 40 s: a few requests in a
/// thousand (`docs/benchmarks.md`, twentieth round). The cost is disk: the log's
/// file grows to about 5 GiB during a long stream, and SQLite reuses it from its
/// beginning rather than shrinking it. Once the stream slows down, the log starts
/// again at [`RESTART_PAGES`].
const BUSY_RESTART_PAGES: i64 = 4 * RESTART_PAGES;

/// A batch at most this large, with nothing waiting behind it when it was
/// committed, means registrations are coming in slowly: a start again of the log
/// then holds few requests (see [`BUSY_RESTART_PAGES`]).
const QUIET_BATCH: usize = 8;

/// The commits' own checkpoint must stay a safety net, well past where the log
/// starts again (see [`crate::store::AUTOCHECKPOINT_PAGES`]): under a stream the log
/// goes on growing while the checkpoints copy and sync it, to about 1.35 times the
/// length they start from.
const _: () = assert!(2 * BUSY_RESTART_PAGES <= crate::store::AUTOCHECKPOINT_PAGES);

/// What may be left unsynced in the database file for the pass in the writers' turn
/// (see [`copy_log`]).
const FINAL_PAGES: i64 = 64;

/// The most rounds of syncing the database file and copying what the log gained
/// meanwhile, before the last pass (see [`copy_log`]).
const SYNC_ROUNDS: usize = 8;

/// What the writer tells the checkpoints after a batch: whether registrations stream
/// in, and the log's length after the commit where its connection knows it
/// ([`DirectWriter::log_pages`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ask {
    streaming: bool,
    log_pages: Option<i64>,
}

impl Ask {
    /// After a batch of `stored` registrations committed while `waited` more were
    /// waiting, with the log then `log_pages` long: registrations come in slowly if the
    /// batch held at most [`QUIET_BATCH`] and nothing waited behind it.
    fn after(stored: usize, waited: usize, log_pages: Option<i64>) -> Self {
        Self {
            streaming: stored > QUIET_BATCH || waited > 0,
            log_pages,
        }
    }

    /// How long the log may grow before it starts again: [`RESTART_PAGES`] while
    /// registrations come in slowly, [`BUSY_RESTART_PAGES`] while they stream in.
    fn restart_pages(self) -> i64 {
        if self.streaming {
            BUSY_RESTART_PAGES
        } else {
            RESTART_PAGES
        }
    }

    /// Whether to copy the log now. While registrations stream in, not before the log
    /// must start again: each pass copies every page changed since the one before, and
    /// under a stream most of them change again a moment later. Passes every 50 ms
    /// copied about 20,000 pages a second and kept the disk busy beside the log's
    /// syncs; without them, at 256 connections, the p99 was 75 to 87 ms instead of 105
    /// to 233 (`docs/benchmarks.md`, twenty-first round). Where the log's length is
    /// unknown (the batch went through the pool), a pass runs as before.
    fn pass_now(self) -> bool {
        !self.streaming
            || self
                .log_pages
                .is_none_or(|pages| pages > BUSY_RESTART_PAGES)
    }
}

/// A stream is over once none of its batches came for this long. Under 256
/// connections a small batch with nothing behind it comes now and then; taken
/// alone for the end of the stream, it made the log start again at
/// [`RESTART_PAGES`]. And a pass left for later ([`Ask::pass_now`]) runs once nothing
/// is asked for this long: the last batches of a stream need not be quiet ones.
const STREAM_ENDS: std::time::Duration = std::time::Duration::from_secs(1);

/// SQLite only: copies the log back into the database after batches, beside the
/// writer rather than inside its commits (see [`copy_log`]), when [`Ask::pass_now`]
/// says so. Each request says how long the log may grow before it starts again
/// ([`Ask::restart_pages`]). Stops when the writer task does.
async fn checkpoint(store: Store, mut asked: mpsc::Receiver<Ask>) {
    let mut owed = false;
    let mut streamed: Option<std::time::Instant> = None;
    loop {
        let ask = if owed {
            tokio::time::timeout(STREAM_ENDS, asked.recv())
                .await
                .unwrap_or(Some(Ask::after(0, 0, None)))
        } else {
            asked.recv().await
        };
        let Some(mut ask) = ask else { break };
        let now = std::time::Instant::now();
        if ask.streaming {
            streamed = Some(now);
        }
        ask.streaming = streamed.is_some_and(|at| now - at < STREAM_ENDS);
        if !ask.pass_now() {
            owed = true;
            continue;
        }
        owed = false;
        if let Err(error) = copy_log(&store, ask.restart_pages()).await {
            // Not a loss: the log stays longer, and the committing connection
            // checkpoints itself past its limit.
            tracing::warn!(error = %error, "could not checkpoint the log");
        }
        // A few batches per checkpoint: each one syncs the database file.
        tokio::time::sleep(CHECKPOINT_PAUSE).await;
    }
}

/// Copies SQLite's log into the database ([`Store::checkpoint_wal`]) and, once the
/// log holds more than `restart_pages`, copies all of it so that the next batch
/// starts it again from its beginning. Returns the log's length after the last pass.
///
/// Under a stream of batches a pass never copies the whole log, since batches are
/// added while it copies, and SQLite starts the log again only once all of it is
/// copied. Left alone, the log grows until the committing connection's own
/// checkpoint copies the rest inside a commit, which holds that batch 35 to 110 ms.
/// Instead, past `restart_pages`, the last pass runs in the writers' turn
/// ([`Store::write_turn`]), where nothing can be added, and the batch waiting for the
/// turn then starts the log anew (`docs/benchmarks.md`, eighth round).
///
/// That last pass is the only one that syncs the database file (SQLite syncs it only
/// in a pass that copies the whole log), and the writer waits for it: it should find
/// little to copy and little to sync. So before it, rounds alternate: sync the
/// database file ([`Store::sync_database_file`]), outside the turn, then copy what
/// the log gained during that sync, until a round leaves fewer than [`FINAL_PAGES`]
/// copied and unsynced, or after [`SYNC_ROUNDS`]. Each round's sync has only what
/// came during the one before, but under a stream of registrations the disk barely
/// keeps up: measured, the eighth round still left 200 to 1,000 pages at 64
/// connections and 800 to 3,000 at 256, and the last pass took 5 to 40 ms. With a
/// single sync (tenth round), the pass in the turn also had everything copied during
/// that sync (50 to 145 ms under 256 connections), and commits met their own
/// checkpoint first (eleventh round).
///
/// The first round has the most to write: under a stream nothing was copied before
/// the log reached its limit, and its first pass puts 100,000 pages or more into the
/// database file. That round writes the file out a slice at a time with rests
/// between ([`Store::write_back_database_file`]), so that the log's syncs, which
/// every registration waits for, are not held behind it (twenty-first round). At a
/// national window's size that round takes 10 to 20 s, the log gains 300,000 pages or
/// more meanwhile, and the next rounds then have hundreds of MiB to write each; they
/// write it a slice at a time too, without rests, so that they still converge
/// (twenty-sixth round; with rests they did not, twenty-first round).
pub async fn copy_log(store: &Store, restart_pages: i64) -> Result<i64, StoreError> {
    let started = std::time::Instant::now();
    let mut log = store.checkpoint_wal().await?;
    if log <= restart_pages {
        return Ok(log);
    }
    tracing::debug!(
        pass_ms = started.elapsed().as_secs_f64() * 1e3,
        log_pages = log,
        "the log's copy begins"
    );
    // The log's length whose copy is on the disk. A pass that could not run (another
    // checkpoint held the lock) answers -1, which ends the rounds.
    let mut synced = 0;
    for round in 0..SYNC_ROUNDS {
        if log - synced < FINAL_PAGES {
            break;
        }
        let started = std::time::Instant::now();
        if round == 0 {
            // The whole log's copy: yield the disk to the log's syncs meanwhile.
            store.write_back_database_file().await?;
        } else {
            store.sync_database_file().await?;
        }
        let copied = std::time::Instant::now();
        synced = log;
        log = store.checkpoint_wal().await?;
        tracing::debug!(
            round,
            sync_ms = (copied - started).as_secs_f64() * 1e3,
            pass_ms = copied.elapsed().as_secs_f64() * 1e3,
            log_pages = log,
            unsynced_pages = log - synced,
            "a round of the log's copy"
        );
    }
    let waited = std::time::Instant::now();
    let _turn = store.write_turn().await;
    let held = std::time::Instant::now();
    let last = store.checkpoint_wal().await;
    // what the writer waited for, for whoever tunes the log's length
    tracing::debug!(
        turn_wait_ms = (held - waited).as_secs_f64() * 1e3,
        held_ms = held.elapsed().as_secs_f64() * 1e3,
        log_pages = log,
        "the log was copied whole in the writers' turn"
    );
    last
}

async fn store_batch(
    store: &Store,
    registrations: &[NewRegistration],
) -> Vec<Result<RegisterOutcome, StoreError>> {
    let requests = idempotency_requests(registrations);
    match store
        .register_batch(&pending(registrations, &requests))
        .await
    {
        Ok(outcomes) => outcomes,
        Err(error) => fall_back(store, registrations, &error).await,
    }
}

/// The idempotency request of each registration that has one.
fn idempotency_requests(registrations: &[NewRegistration]) -> Vec<Option<IdempotencyRequest<'_>>> {
    registrations
        .iter()
        .map(|r| r.idempotency.as_ref().map(Idempotency::request))
        .collect()
}

/// The batch as the store's calls take it.
fn pending<'a>(
    registrations: &'a [NewRegistration],
    requests: &'a [Option<IdempotencyRequest<'a>>],
) -> Vec<PendingRegistration<'a>> {
    registrations
        .iter()
        .zip(requests)
        .map(|(r, request)| PendingRegistration {
            entry: r.entry(),
            code: r.code(),
            mail: r.mail.as_ref(),
            idempotency: request.as_ref(),
            now: r.now,
        })
        .collect()
}

/// Stores a batch: through `store` ([`store_batch`]) if `direct` holds no connection;
/// otherwise through the writer's own connection ([`on_own_connection`],
/// [`DirectWriter::register_batch`]). If the batch fails there, nothing of it was
/// stored, and it is stored one by one through `store`.
///
/// `sent`, mails recorded as sent, is written in the same transaction; what could not
/// be is given back, for the caller to record otherwise.
async fn store_through(
    store: &Store,
    direct: &mut Option<DirectWriter>,
    registrations: Vec<NewRegistration>,
    sent: Vec<SentMails>,
) -> (Vec<Result<RegisterOutcome, StoreError>>, Vec<SentMails>) {
    let Some(connection) = direct.take() else {
        return (store_batch(store, &registrations).await, sent);
    };
    let shared = Arc::new(registrations);
    let batch = Arc::clone(&shared);
    let stored = on_own_connection(direct, connection, move |connection| {
        let requests = idempotency_requests(&batch);
        let outcomes = connection.register_batch(&pending(&batch, &requests), &sent);
        (outcomes, sent)
    })
    .await;
    let (error, sent) = match stored {
        Ok((Ok(outcomes), _)) => return (outcomes, Vec::new()),
        Ok((Err(error), sent)) => (error, sent),
        // Lost with the thread: a mail whose mark is lost is sent again later.
        Err(error) => (error, Vec::new()),
    };
    (fall_back(store, &shared, &error).await, sent)
}

/// After a batch failed as a whole (nothing of it stored): stores its registrations
/// one by one through `store`, so that each gets its own answer.
async fn fall_back(
    store: &Store,
    registrations: &[NewRegistration],
    error: &StoreError,
) -> Vec<Result<RegisterOutcome, StoreError>> {
    tracing::warn!(batch.size = registrations.len(), error = %error, "a batch of registrations failed; storing them one by one");
    let requests = idempotency_requests(registrations);
    let mut outcomes = Vec::with_capacity(registrations.len());
    for (registration, request) in registrations.iter().zip(&requests) {
        outcomes.push(
            store
                .register(
                    &registration.entry(),
                    registration.code().as_ref(),
                    registration.mail.as_ref(),
                    request.as_ref(),
                    registration.now,
                )
                .await,
        );
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_grows_longer_only_while_registrations_stream_in() {
        let restart = |stored, waited| Ask::after(stored, waited, None).restart_pages();
        // a lone registration, or a few with nothing behind them
        assert_eq!(restart(1, 0), RESTART_PAGES);
        assert_eq!(restart(QUIET_BATCH, 0), RESTART_PAGES);
        // a larger batch, or anything waiting behind it
        assert_eq!(restart(QUIET_BATCH + 1, 0), BUSY_RESTART_PAGES);
        assert_eq!(restart(1, 1), BUSY_RESTART_PAGES);
        assert_eq!(restart(MAX_BATCH, 500), BUSY_RESTART_PAGES);
    }

    #[test]
    fn under_a_stream_the_log_is_copied_only_once_it_must_start_again() {
        let long = Some(BUSY_RESTART_PAGES + 1);
        let short = Some(BUSY_RESTART_PAGES);
        // registrations coming in slowly: a pass after every batch, whatever the log
        for log in [None, Some(0), short, long] {
            assert!(Ask::after(QUIET_BATCH, 0, log).pass_now());
        }
        // streaming in: no pass while the log is shorter than its limit
        assert!(!Ask::after(MAX_BATCH, 0, Some(1)).pass_now());
        assert!(!Ask::after(1, 3, short).pass_now());
        assert!(Ask::after(MAX_BATCH, 0, long).pass_now());
        // the log's length unknown (a batch through the pool): a pass, as before
        assert!(Ask::after(MAX_BATCH, 10, None).pass_now());
    }
}
