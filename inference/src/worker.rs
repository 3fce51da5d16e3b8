//! The inference worker: one thread per loaded model, off the async workers, serving a bounded
//! `FairQueue` of jobs one turn at a time. A turn is small (one prompt chunk or one generated token, one
//! embedded input), so a tenant's long generations and another tenant's short one advance side by side.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::fair::{FairQueue, Refusal};

/// What a turn of a job came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Did work; more to do.
    Again,
    /// Could not proceed now (its reader is not keeping up); try again later.
    Blocked,
    /// Finished, failed, cancelled or out of time: leaves the queue.
    Done,
}

/// Work the worker runs turn by turn.
pub trait Job: Send + 'static {
    fn turn(&mut self) -> Turn;
}

/// Counts a worker keeps for `/metrics`.
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub turns: AtomicU64,
    pub refused_tenant_full: AtomicU64,
    pub refused_full: AtomicU64,
}

struct Shared<J> {
    /// `None` marks the job the worker has taken out for its turn.
    queue: Mutex<FairQueue<Option<J>>>,
    wake: Condvar,
    closed: std::sync::atomic::AtomicBool,
    stats: WorkerStats,
}

impl<J> Shared<J> {
    fn lock(&self) -> MutexGuard<'_, FairQueue<Option<J>>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A model's queue and the thread that serves it. Dropping it stops the thread once its current turn ends;
/// jobs still queued are dropped, which their waiting requests see as the model going away.
pub struct Worker<J: Job> {
    shared: Arc<Shared<J>>,
}

impl<J: Job> std::fmt::Debug for Worker<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("queued", &self.queued())
            .finish()
    }
}

impl<J: Job> Worker<J> {
    /// Starts the thread `name` over a queue of `capacity` jobs, at most `per_tenant` of one tenant.
    pub fn start(name: &str, capacity: usize, per_tenant: usize) -> std::io::Result<Worker<J>> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(FairQueue::new(capacity, per_tenant)),
            wake: Condvar::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
            stats: WorkerStats::default(),
        });
        let for_thread = shared.clone();
        std::thread::Builder::new()
            .name(format!("sluice-{name}"))
            .spawn(move || serve(&for_thread))?;
        Ok(Worker { shared })
    }

    /// Queues `job` for `tenant`.
    pub fn submit(&self, tenant: &str, job: J) -> Result<(), Refusal> {
        let refused = self.shared.lock().push(tenant, Some(job)).err();
        if let Some((why, _job)) = refused {
            let counter = match why {
                Refusal::TenantFull => &self.shared.stats.refused_tenant_full,
                Refusal::Full => &self.shared.stats.refused_full,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            return Err(why);
        }
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Jobs waiting or running.
    pub fn queued(&self) -> usize {
        self.shared.lock().len()
    }

    pub fn stats(&self) -> &WorkerStats {
        &self.shared.stats
    }
}

impl<J: Job> Drop for Worker<J> {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.wake.notify_all();
    }
}

/// The worker thread: takes the current tenant's front job out, runs one turn without holding the lock,
/// puts it back and passes the turn on. Only this thread takes jobs out, so the slot it left is where it
/// returns.
fn serve<J: Job>(shared: &Shared<J>) {
    let mut blocked_in_a_row = 0usize;
    loop {
        let mut job = {
            let mut queue = shared.lock();
            loop {
                if shared.closed.load(Ordering::Relaxed) {
                    return;
                }
                if let Some((_, slot)) = queue.current() {
                    break slot.take();
                }
                queue = shared
                    .wake
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let turn = job.as_mut().map_or(Turn::Done, |j| j.turn());
        shared.stats.turns.fetch_add(1, Ordering::Relaxed);
        let mut queue = shared.lock();
        if let Some((_, slot)) = queue.current() {
            *slot = job;
        }
        queue.end_turn(turn == Turn::Done);
        blocked_in_a_row = if turn == Turn::Blocked {
            blocked_in_a_row + 1
        } else {
            0
        };
        // Every job waits on its reader: wait a little instead of spinning.
        if blocked_in_a_row > 0 && blocked_in_a_row >= queue.len() {
            drop(queue);
            std::thread::sleep(Duration::from_millis(2));
            blocked_in_a_row = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    struct Steps {
        name: &'static str,
        left: u32,
        log: mpsc::Sender<&'static str>,
    }

    impl Job for Steps {
        fn turn(&mut self) -> Turn {
            let _ = self.log.send(self.name);
            self.left -= 1;
            if self.left == 0 {
                Turn::Done
            } else {
                Turn::Again
            }
        }
    }

    #[test]
    fn a_short_job_of_another_tenant_is_not_stuck_behind_a_long_burst() {
        let worker: Worker<Steps> = Worker::start("test", 16, 8).expect("worker");
        let (log, turns) = mpsc::channel();
        for _ in 0..4 {
            let job = Steps {
                name: "long",
                left: 50,
                log: log.clone(),
            };
            assert!(worker.submit("a", job).is_ok());
        }
        assert!(
            worker
                .submit(
                    "b",
                    Steps {
                        name: "short",
                        left: 3,
                        log: log.clone()
                    }
                )
                .is_ok()
        );
        drop(log);
        let order: Vec<&str> = turns.iter().collect();
        assert_eq!(order.len(), 203);
        let last_short = order
            .iter()
            .rposition(|n| *n == "short")
            .expect("short ran");
        // At most one turn of each queued long job before each of the short job's turns.
        assert!(
            last_short < 12,
            "the short job finished at turn {last_short}: {order:?}"
        );
    }
}
