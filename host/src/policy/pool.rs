//! The bounded pool tenant policy calls run on, off the async workers, fair across tenants.
//!
//! Each tenant's calls wait in their own first-in-first-out line. Free threads take the next call by deficit
//! round robin over the tenants with calls waiting, weighted by the CPU time calls really used: a tenant's
//! deficit grows by one quantum per round and shrinks by the CPU time of each call it ran (the thread's CPU
//! clock, charged after the call, since a call's cost is known only then). A tenant may also run at most
//! `per_tenant` calls at once, so with two threads one tenant's burst always leaves a thread for everyone
//! else. A line holds at most `queue_per_tenant` calls and the pool `queue`; a call beyond is refused at
//! once (`Refused::Busy`) instead of waiting. When the pool's queue is full, a call of a tenant whose line
//! is shorter than the longest by two or more still gets in: the newest call of the longest line is refused
//! in its place (longest queue drop). So a tenant that is not using its share of the queue is never turned
//! away because others filled it, however many do; only the tenants holding the most waiting calls are.
//!
//! The tenant's CPU budget (`cpu.rs`) is checked when a call's turn comes, before it starts, and charged
//! with what it used. A call whose caller went away (the client hung up) while it waited is dropped unrun.
//! The threads run at a lower priority than the ones serving connections (`WORKER_NICE`).
//!
//! Unlike the local models' queue (`inference::fair`, one thread, turns of equal work), calls here are
//! short, run whole, on several threads, and differ in cost by orders of magnitude: hence the weighting.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::cpu::CpuBudgets;

pub use crate::config::PoolConfig;

/// The pool's threads run at this nice value, below the threads that serve connections: tenant policy work
/// takes the CPU those leave, and cannot slow the requests of tenants it is not for. Measured with the load
/// harness's noisy neighbour: a quiet tenant's p50 during a burning tenant's load went from about twice its
/// p50 alone to within a few percent of it.
const WORKER_NICE: i32 = 10;

/// CPU time a tenant's deficit grows by per round: more than most calls cost (tens of microseconds), so a
/// tenant of cheap calls is served several in a row.
const QUANTUM_NS: i64 = 1_000_000;

/// Why a call did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The tenant's line (or the pool's queue) is full.
    Busy,
    /// The tenant's CPU budget is spent; it is not empty again for this long.
    OverBudget(Duration),
    /// The pool is shutting down.
    Stopped,
}

/// A call waiting for its turn, its result type erased.
trait Task: Send {
    /// Whether nobody waits for the result any more.
    fn abandoned(&self) -> bool;
    /// Answers that the call was refused before its turn came (it never counted as running).
    fn refuse(self: Box<Self>, why: Refused);
    /// Runs the call (`Ok`) or answers that it may not (`Err`). `book` hears what became of it, with the CPU
    /// time it ran for (read with `clock`), before the caller does: the caller's next request sees it charged.
    fn finish(
        self: Box<Self>,
        start: Result<(), Refused>,
        clock: fn() -> Duration,
        book: &mut dyn FnMut(Turn),
    );
}

struct Pending<T, F> {
    work: F,
    reply: tokio::sync::oneshot::Sender<Result<T, Refused>>,
}

impl<T: Send, F: FnOnce() -> T + Send> Task for Pending<T, F> {
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn refuse(self: Box<Self>, why: Refused) {
        let Pending { work, reply } = *self;
        drop(work);
        let _ = reply.send(Err(why));
    }

    fn finish(
        self: Box<Self>,
        start: Result<(), Refused>,
        clock: fn() -> Duration,
        book: &mut dyn FnMut(Turn),
    ) {
        let Pending { work, reply } = *self;
        if let Err(why) = start {
            // What the call holds is let go before its caller hears back (`Arc::make_mut` there need not copy).
            drop(work);
            book(Turn::OverBudget);
            let _ = reply.send(Err(why));
            return;
        }
        let started = clock();
        // A panic in the host's part of a call must not take the thread; its caller hears `Stopped`.
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        book(Turn::Ran(clock().saturating_sub(started)));
        match out {
            Ok(value) => {
                let _ = reply.send(Ok(value));
            }
            Err(_) => tracing::error!("a policy call panicked on the policy pool"),
        }
    }
}

/// One tenant's calls and standing.
#[derive(Default)]
struct Line {
    waiting: VecDeque<Box<dyn Task>>,
    /// CPU nanoseconds the tenant may still use this round; at most 0 it waits for the next round.
    deficit_ns: i64,
    running: usize,
    /// Calls the pool ran; refused because the line was full; refused for the budget; withdrawn unrun.
    ran: u64,
    busy: u64,
    over_budget: u64,
    withdrawn: u64,
}

/// What became of a call whose turn came.
#[derive(Debug, Clone, Copy)]
enum Turn {
    Ran(Duration),
    OverBudget,
    Withdrawn,
}

/// What the threads share under one lock.
#[derive(Default)]
struct Queues {
    /// Keyed by shared names, so that queueing a call of a known tenant allocates no name.
    lines: HashMap<Arc<str>, Line>,
    /// Tenants with calls waiting, in serving order.
    ring: VecDeque<Arc<str>>,
    waiting: usize,
    stopping: bool,
}

struct Shared {
    config: PoolConfig,
    queues: Mutex<Queues>,
    ready: Condvar,
    budgets: Arc<CpuBudgets>,
    clock: fn() -> Duration,
}

/// A tenant's figures, for `/metrics` and the tenant's policy view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineStats {
    pub ran: u64,
    pub busy: u64,
    pub over_budget: u64,
    pub withdrawn: u64,
    pub waiting: usize,
    pub running: usize,
}

/// The pool: its threads stop when it is dropped, after the call each is running.
pub struct Pool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Queues {
    /// The next call to run, by deficit round robin among tenants under their running cap; `None` when every
    /// tenant with calls waiting is at its cap (or none waits).
    fn next(&mut self, per_tenant: usize) -> Option<(Arc<str>, Box<dyn Task>)> {
        loop {
            let mut in_debt = None::<i64>;
            for i in 0..self.ring.len() {
                let line = self.lines.get(&self.ring[i])?;
                if line.running >= per_tenant {
                    continue;
                }
                if line.deficit_ns <= 0 {
                    let rounds = (QUANTUM_NS - line.deficit_ns) / QUANTUM_NS;
                    in_debt = Some(in_debt.map_or(rounds, |r| r.min(rounds)));
                    continue;
                }
                let tenant = self.ring.remove(i)?;
                let line = self.lines.get_mut(&tenant)?;
                let task = line.waiting.pop_front()?;
                line.running += 1;
                self.waiting -= 1;
                if line.waiting.is_empty() {
                    // Credit is not banked while idle; a debt stays until it is worked off.
                    line.deficit_ns = line.deficit_ns.min(0);
                } else {
                    // Its turn ends: the others come first.
                    self.ring.push_back(tenant.clone());
                }
                return Some((tenant, task));
            }
            // Nobody eligible has credit: as many rounds pass as the least indebted needs.
            let rounds = in_debt?;
            for tenant in &self.ring {
                if let Some(line) = self.lines.get_mut(tenant) {
                    line.deficit_ns = line.deficit_ns.saturating_add(rounds * QUANTUM_NS);
                }
            }
        }
    }

    /// Puts a call at the back of `tenant`'s line, unless the line is full, or the pool is full and no other
    /// line is longer than `tenant`'s by two or more. `Ok` may carry the call pushed out to make room: the
    /// newest of the longest line, for the caller to refuse (outside the lock).
    fn push(
        &mut self,
        tenant: &str,
        task: Box<dyn Task>,
        config: &PoolConfig,
    ) -> Result<Option<Box<dyn Task>>, Refused> {
        if self.stopping {
            return Err(Refused::Stopped);
        }
        let key = match self.lines.get_key_value(tenant) {
            Some((key, _)) => key.clone(),
            None => Arc::from(tenant),
        };
        let mine = self.lines.get(&key).map_or(0, |l| l.waiting.len());
        let mut pushed_out = None;
        if mine < config.queue_per_tenant && self.waiting >= config.queue {
            pushed_out = self.push_out(mine);
        }
        let line = self.lines.entry(key.clone()).or_default();
        if line.waiting.len() >= config.queue_per_tenant
            || (self.waiting >= config.queue && pushed_out.is_none())
        {
            line.busy += 1;
            return Err(Refused::Busy);
        }
        if line.waiting.is_empty() {
            // A tenant joining the round starts with one quantum (less any debt it still has).
            line.deficit_ns = line.deficit_ns.min(0).saturating_add(QUANTUM_NS);
            self.ring.push_back(key);
        }
        line.waiting.push_back(task);
        self.waiting += 1;
        Ok(pushed_out)
    }

    /// Takes the newest call of the longest line, if that line is longer than `mine` by two or more (by one,
    /// the two lines would only trade places). The line counts it as refused for being full.
    fn push_out(&mut self, mine: usize) -> Option<Box<dyn Task>> {
        let longest = self
            .ring
            .iter()
            .max_by_key(|t| self.lines.get(*t).map_or(0, |l| l.waiting.len()))?
            .clone();
        let line = self.lines.get_mut(&longest)?;
        if line.waiting.len() < mine + 2 {
            return None;
        }
        let task = line.waiting.pop_back()?;
        line.busy += 1;
        self.waiting -= 1;
        if line.waiting.is_empty() {
            line.deficit_ns = line.deficit_ns.min(0);
            self.ring.retain(|t| *t != longest);
        }
        Some(task)
    }

    /// Books the end of a call of `tenant`: what it ran for is charged to its deficit.
    fn done(&mut self, tenant: &str, turn: Turn) {
        let Some(line) = self.lines.get_mut(tenant) else {
            return;
        };
        line.running -= 1;
        match turn {
            Turn::Ran(cpu) => {
                line.ran += 1;
                let cost = i64::try_from(cpu.as_nanos()).unwrap_or(i64::MAX);
                line.deficit_ns = line.deficit_ns.saturating_sub(cost);
            }
            Turn::OverBudget => line.over_budget += 1,
            Turn::Withdrawn => line.withdrawn += 1,
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn work(&self) {
        let mut queues = self.lock();
        loop {
            if queues.stopping {
                return;
            }
            let Some((tenant, task)) = queues.next(self.config.per_tenant) else {
                queues = self
                    .ready
                    .wait(queues)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            drop(queues);
            let mut book = |turn: Turn| {
                if let Turn::Ran(cpu) = turn {
                    self.budgets.charge(&tenant, cpu);
                }
                self.lock().done(&tenant, turn);
            };
            if task.abandoned() {
                book(Turn::Withdrawn);
            } else {
                let start = self.budgets.admit(&tenant).map_err(Refused::OverBudget);
                task.finish(start, self.clock, &mut book);
            }
            // This thread looks for the next call itself (a call that waited for its tenant's running cap
            // included), so nobody needs waking.
            queues = self.lock();
        }
    }
}

impl Pool {
    /// Starts `config.workers` threads. `clock` reads the calling thread's CPU time; `budgets` are the
    /// tenants' CPU budgets.
    pub fn start(
        config: PoolConfig,
        clock: fn() -> Duration,
        budgets: Arc<CpuBudgets>,
    ) -> std::io::Result<Pool> {
        let config = PoolConfig {
            workers: config.workers.max(1),
            per_tenant: config.per_tenant.max(1),
            queue: config.queue.max(1),
            queue_per_tenant: config.queue_per_tenant.max(1),
        };
        let shared = Arc::new(Shared {
            config,
            queues: Mutex::default(),
            ready: Condvar::new(),
            budgets,
            clock,
        });
        for i in 0..config.workers {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("sluice-policy-{i}"))
                .spawn(move || {
                    // On Linux the nice value is the calling thread's alone.
                    if let Err(e) = rustix::process::setpriority_process(None, WORKER_NICE) {
                        tracing::warn!(error = %e, "a policy pool thread keeps the normal priority");
                    }
                    shared.work()
                })?;
        }
        Ok(Pool { shared })
    }

    pub fn config(&self) -> PoolConfig {
        self.shared.config
    }

    /// Runs `work` on a pool thread in `tenant`'s turn, within its CPU budget. Dropping the future before the
    /// turn comes withdraws the call.
    pub async fn run<T, F>(&self, tenant: &str, work: F) -> Result<T, Refused>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queue(tenant, Box::new(Pending { work, reply }))?;
        answer.await.unwrap_or(Err(Refused::Stopped))
    }

    fn queue(&self, tenant: &str, task: Box<dyn Task>) -> Result<(), Refused> {
        let pushed_out = self.shared.lock().push(tenant, task, &self.shared.config)?;
        self.shared.ready.notify_one();
        if let Some(task) = pushed_out {
            task.refuse(Refused::Busy);
        }
        Ok(())
    }

    /// Every tenant's figures.
    pub fn stats(&self) -> Vec<(String, LineStats)> {
        let queues = self.shared.lock();
        queues
            .lines
            .iter()
            .map(|(tenant, line)| (tenant.to_string(), line.stats()))
            .collect()
    }

    /// One tenant's figures.
    pub fn tenant_stats(&self, tenant: &str) -> LineStats {
        self.shared
            .lock()
            .lines
            .get(tenant)
            .map(Line::stats)
            .unwrap_or_default()
    }
}

impl Line {
    fn stats(&self) -> LineStats {
        LineStats {
            ran: self.ran,
            busy: self.busy,
            over_budget: self.over_budget,
            withdrawn: self.withdrawn,
            waiting: self.waiting.len(),
            running: self.running,
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let mut queues = self.shared.lock();
        queues.stopping = true;
        // Waiting calls are answered `Stopped` by their dropped senders.
        queues.lines.clear();
        queues.ring.clear();
        queues.waiting = 0;
        drop(queues);
        self.shared.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets() -> Arc<CpuBudgets> {
        Arc::new(CpuBudgets::new(1_000_000))
    }

    /// A pool whose calls cost what they say: a clock that is moved by hand, per thread.
    mod fake_clock {
        use std::cell::Cell;
        use std::time::Duration;
        thread_local!(static NOW: Cell<Duration> = const { Cell::new(Duration::ZERO) });
        pub fn now() -> Duration {
            NOW.with(Cell::get)
        }
        pub fn spend(d: Duration) {
            NOW.with(|n| n.set(n.get() + d));
        }
    }

    /// Holds the pool threads that run its calls until it is opened.
    type Gate = Arc<(Mutex<bool>, Condvar)>;

    /// A call of `tenant` that holds its thread until `gate` opens.
    fn hold(
        pool: &Arc<Pool>,
        tenant: &'static str,
        gate: &Gate,
    ) -> tokio::task::JoinHandle<Result<(), Refused>> {
        let (pool, gate) = (pool.clone(), gate.clone());
        tokio::spawn(async move {
            pool.run(tenant, move || {
                let (lock, cv) = &*gate;
                let mut open = lock.lock().unwrap();
                while !*open {
                    open = cv.wait(open).unwrap();
                }
            })
            .await
        })
    }

    fn open(gate: &Gate) {
        let (lock, cv) = &**gate;
        *lock.lock().unwrap() = true;
        cv.notify_all();
    }

    fn config(workers: usize, per_tenant: usize) -> PoolConfig {
        PoolConfig {
            workers,
            per_tenant,
            queue: 1_000,
            queue_per_tenant: 500,
        }
    }

    #[test]
    fn calls_are_served_by_cpu_used_not_by_how_many_a_tenant_sends() {
        // Deterministic: the queues alone, no threads. Tenant a's calls cost 5 ms, b's 0.1 ms; both keep
        // 50 calls waiting.
        let mut q = Queues::default();
        let cost = |t: &str| {
            if t == "a" {
                Duration::from_millis(5)
            } else {
                Duration::from_micros(100)
            }
        };
        for t in ["a", "b"] {
            for _ in 0..50 {
                let (reply, rx) = tokio::sync::oneshot::channel::<Result<(), Refused>>();
                std::mem::forget(rx);
                q.push(t, Box::new(Pending { work: || (), reply }), &config(1, 1))
                    .unwrap();
            }
        }
        let mut cpu = HashMap::<String, Duration>::new();
        let mut order = String::new();
        for _ in 0..40 {
            let (t, _task) = q.next(1).unwrap();
            q.done(&t, Turn::Ran(cost(&t)));
            *cpu.entry(t.to_string()).or_default() += cost(&t);
            order.push_str(&t);
        }
        let (a, b) = (cpu["a"], cpu["b"]);
        // b ran far more calls, and the CPU each got is within one call of a's.
        assert!(
            order.matches('b').count() > 3 * order.matches('a').count(),
            "{order}"
        );
        assert!(
            a.abs_diff(b) <= Duration::from_millis(6),
            "a {a:?}, b {b:?}: {order}"
        );
    }

    fn call() -> (
        Box<dyn Task>,
        tokio::sync::oneshot::Receiver<Result<(), Refused>>,
    ) {
        let (reply, rx) = tokio::sync::oneshot::channel();
        (Box::new(Pending { work: || (), reply }), rx)
    }

    /// Each noisy tenant sends calls until refused; what was pushed out is answered `Busy`.
    fn fill(q: &mut Queues, noisy: usize, config: &PoolConfig) -> usize {
        let mut refused = 0;
        for n in 0..noisy {
            loop {
                let (task, _rx) = call();
                match q.push(&format!("noisy-{n}"), task, config) {
                    Ok(Some(out)) => {
                        out.refuse(Refused::Busy);
                        refused += 1;
                    }
                    Ok(None) => {}
                    Err(Refused::Busy) => {
                        refused += 1;
                        break;
                    }
                    Err(other) => panic!("{other:?}"),
                }
            }
        }
        refused
    }

    /// The defect this guards against: with `queue = 16` and one tenant allowed all of it, noisy tenants
    /// kept the queue full and a quiet tenant's every call was refused. Now a quiet tenant's call always gets
    /// in (a noisy one gives way) and is served within one round of the others.
    fn noisy_tenants_cannot_keep_a_quiet_one_out(noisy: usize) {
        let config = PoolConfig {
            workers: 1,
            per_tenant: 1,
            queue: 16,
            queue_per_tenant: 16,
        };
        let mut q = Queues::default();
        fill(&mut q, noisy, &config);
        assert_eq!(q.waiting, 16, "the noisy tenants fill the queue");
        for i in 0..50 {
            let (task, mut answer) = call();
            let out = q
                .push("quiet", task, &config)
                .unwrap_or_else(|e| panic!("the quiet tenant's call {i} was refused: {e:?}"));
            let out = out.expect("a noisy call gave way");
            out.refuse(Refused::Busy);
            assert_eq!(q.waiting, 16, "the bound holds");
            // Served within one round: every noisy tenant at most once before it.
            let mut turns = 0;
            loop {
                let (tenant, task) = q.next(config.per_tenant).expect("a call to run");
                turns += 1;
                let quiet = &*tenant == "quiet";
                task.finish(Ok(()), fake_clock::now, &mut |_| {});
                q.done(
                    &tenant,
                    Turn::Ran(Duration::from_micros(if quiet { 10 } else { 2_000 })),
                );
                if quiet {
                    break;
                }
                assert!(turns <= noisy, "the quiet call waited {turns} turns");
            }
            assert!(matches!(answer.try_recv(), Ok(Ok(()))));
            // The noisy tenants fill the room again.
            fill(&mut q, noisy, &config);
            assert_eq!(q.waiting, 16);
        }
        // Only noisy tenants were ever refused.
        assert_eq!(q.lines["quiet"].busy, 0);
        let longest = (0..noisy)
            .map(|n| q.lines[format!("noisy-{n}").as_str()].waiting.len())
            .max()
            .unwrap();
        let shortest = (0..noisy)
            .map(|n| q.lines[format!("noisy-{n}").as_str()].waiting.len())
            .min()
            .unwrap();
        assert!(
            longest - shortest <= 1,
            "the noisy share the queue evenly: {shortest}..{longest}"
        );
    }

    #[test]
    fn three_noisy_tenants_cannot_keep_a_quiet_one_out() {
        noisy_tenants_cannot_keep_a_quiet_one_out(3);
    }

    #[test]
    fn ten_noisy_tenants_cannot_keep_a_quiet_one_out() {
        noisy_tenants_cannot_keep_a_quiet_one_out(10);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_quiet_tenants_call_runs_while_noisy_calls_fill_the_running_pool() {
        let pool = Arc::new(
            Pool::start(
                PoolConfig {
                    workers: 2,
                    per_tenant: 1,
                    queue: 16,
                    queue_per_tenant: 16,
                },
                fake_clock::now,
                budgets(),
            )
            .unwrap(),
        );
        let gate = Gate::default();
        let tenants = ["n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9"];
        let mut held = Vec::new();
        for tenant in tenants {
            for _ in 0..4 {
                held.push(hold(&pool, tenant, &gate));
            }
        }
        // Every call has either been refused or is waiting or running.
        let settled = || {
            let stats = pool.stats();
            let placed: usize = stats.iter().map(|(_, s)| s.waiting + s.running).sum();
            let busy: u64 = stats.iter().map(|(_, s)| s.busy).sum();
            placed + usize::try_from(busy).unwrap() == 40
        };
        while !settled() {
            tokio::task::yield_now().await;
        }
        let quiet = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run("quiet", || 7).await })
        };
        while pool.tenant_stats("quiet").waiting == 0 && !quiet.is_finished() {
            tokio::task::yield_now().await;
        }
        assert!(
            !quiet.is_finished(),
            "the quiet call waits for a thread, it is not refused"
        );
        open(&gate);
        assert_eq!(quiet.await.unwrap(), Ok(7));
        for h in held {
            let _ = h.await.unwrap();
        }
        assert_eq!(pool.tenant_stats("quiet").busy, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tenants_burst_leaves_a_thread_for_the_others_and_is_bounded() {
        let pool = Arc::new(
            Pool::start(
                PoolConfig {
                    queue_per_tenant: 40,
                    ..config(2, 1)
                },
                fake_clock::now,
                budgets(),
            )
            .unwrap(),
        );
        // a floods the pool with calls that hold a thread until released.
        let gate = Gate::default();
        let mut held = Vec::new();
        // One runs, then 40 wait: a's line is full.
        for i in 0..41 {
            if i == 1 {
                while pool.tenant_stats("a").running == 0 {
                    tokio::task::yield_now().await;
                }
            }
            held.push(hold(&pool, "a", &gate));
        }
        // Once a's line is full, the next call is refused at once.
        while pool.tenant_stats("a").waiting < 40 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.run("a", || ()).await, Err(Refused::Busy));
        assert_eq!(
            pool.tenant_stats("a").running,
            1,
            "one thread at most for a"
        );
        // b is served while all of a's calls are held.
        for i in 0..20 {
            assert_eq!(pool.run("b", move || i * 2).await, Ok(i * 2));
        }
        open(&gate);
        for h in held {
            assert_eq!(h.await.unwrap(), Ok(()));
        }
        let a = pool.tenant_stats("a");
        assert_eq!((a.ran, a.busy, a.waiting, a.running), (41, 1, 0, 0));
        assert_eq!(pool.tenant_stats("b").ran, 20);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_budget_is_checked_before_a_call_starts_and_charged_after() {
        let budgets = Arc::new(CpuBudgets::new(10));
        let pool = Pool::start(config(1, 1), fake_clock::now, budgets.clone()).unwrap();
        let ran = pool
            .run("a", || fake_clock::spend(Duration::from_millis(30)))
            .await;
        assert_eq!(ran, Ok(()));
        assert_eq!(budgets.used("a"), Duration::from_millis(30));
        let Err(Refused::OverBudget(wait)) = pool.run("a", || unreachable!()).await else {
            panic!("a is over its budget");
        };
        assert!(wait > Duration::from_secs(1), "{wait:?}");
        assert_eq!(pool.run("b", || 7).await, Ok(7), "b has its own budget");
        assert_eq!(pool.tenant_stats("a").over_budget, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_whose_caller_left_is_not_run() {
        let pool = Arc::new(Pool::start(config(1, 1), fake_clock::now, budgets()).unwrap());
        let gate = Gate::default();
        let blocker = hold(&pool, "a", &gate);
        while pool.tenant_stats("a").running == 0 {
            tokio::task::yield_now().await;
        }
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let left = {
            let (pool, ran) = (pool.clone(), ran.clone());
            tokio::spawn(async move {
                pool.run("b", move || {
                    ran.store(true, std::sync::atomic::Ordering::SeqCst)
                })
                .await
            })
        };
        while pool.tenant_stats("b").waiting == 0 {
            tokio::task::yield_now().await;
        }
        left.abort();
        let _ = left.await;
        open(&gate);
        assert_eq!(blocker.await.unwrap(), Ok(()));
        // The pool goes on to b's withdrawn call and skips it.
        assert_eq!(pool.run("c", || 1).await, Ok(1));
        while pool.tenant_stats("b").waiting != 0 {
            tokio::task::yield_now().await;
        }
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(pool.tenant_stats("b").withdrawn, 1);
    }
}
