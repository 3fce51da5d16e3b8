//! The Wasm policy runtime: wasmtime 48 with the component model only, a pooling allocator that keeps memory
//! resident so a fresh instance costs microseconds, fuel for the work a call may do, epoch interruption as a
//! wall-clock backstop, store limits, a 256 KiB wasm stack, and no WASI at all: the only import a policy
//! gets is the host `log`; anything else it imports (the WASI interfaces Rust's std pulls in) traps when
//! called.
//!
//! A call's deadline is a budget of work, not of time: it gets `deadline × fuel_per_ms` fuel, so a policy
//! that does too much fails the same way on an idle machine and on an overloaded one (`OutOfFuel`, its own
//! fault). The epoch deadline (`backstop`) stops a call with fuel left once it has used its deadline of CPU
//! time (the thread's CPU clock: work fuel does not see, its own fault, `TooMuchCpu`); a call the host has
//! not given that much CPU runs on until `starved`, and is then stopped as `Overloaded`, not its fault.
//!
//! Every call gets a fresh `Store` from a pre-linked `InstancePre`, so nothing survives between requests.
//! This is the one `bindgen!` of the host.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig, Store,
    StoreContextMut, StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline,
};

mod bindings {
    wasmtime::component::bindgen!({ path: "wit", world: "any-policy" });
}

pub use bindings::exports::sluice::policy::auth::Decision as AuthDecision;
pub use bindings::exports::sluice::policy::classifier::Classification;
pub use bindings::exports::sluice::policy::router::{Decision as RouteDecision, RoutingInput};
pub use bindings::sluice::policy::types as wit;
pub use bindings::sluice::policy::types::Embedding;

use bindings::exports::sluice::policy::{auth, classifier, embedding_classifier, router};
use bindings::sluice::policy::log;

/// The versions of the `sluice:policy` contract a component may be built against: each adds to the one
/// before, so a component of any of them runs.
pub const CONTRACT_VERSIONS: [&str; 2] = ["0.1.0", "0.1.1"];

/// Most log lines a call may emit, and the longest line kept; the rest is dropped.
pub const MAX_LOG_LINES: usize = 32;
pub const MAX_LOG_LINE_BYTES: usize = 1024;

/// Most bytes the host copies out of a policy in one go: its answer, or one `log` line (wasmtime's
/// "hostcall fuel", charged per string byte and list element while lifting). Far above what the host keeps of
/// an answer (32 labels of 64 + 256 bytes, a few hundred deployment names), and far below what a policy could
/// otherwise make the host allocate: lists aliasing one huge string would each be copied. An answer past it
/// stops the copy where it runs out, a trap and the policy's fault.
pub const MAX_COPY_BYTES: usize = 64 << 10;

pub use crate::config::DEFAULT_FUEL_PER_MS;

/// Limits of every call.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Default deadline of one call: a budget of `deadline × fuel_per_ms` fuel, and a wall-clock backstop
    /// (`backstop`, epoch ticks of 1 ms).
    pub deadline: Duration,
    /// Fuel per millisecond of deadline (`DEFAULT_FUEL_PER_MS`).
    pub fuel_per_ms: u64,
    /// Linear memory a call may use.
    pub max_memory_bytes: usize,
    /// Reads the CPU time a call has used: the calling thread's CPU clock (`thread_cpu`).
    pub cpu_clock: fn() -> Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_millis(5),
            fuel_per_ms: DEFAULT_FUEL_PER_MS,
            max_memory_bytes: 32 << 20,
            cpu_clock: thread_cpu,
        }
    }
}

impl Limits {
    /// The fuel of a call with this deadline.
    pub fn fuel(&self, deadline: Duration) -> u64 {
        let micros = u64::try_from(deadline.as_micros()).unwrap_or(u64::MAX);
        micros.saturating_mul(self.fuel_per_ms) / 1_000
    }
}

/// CPU time the calling thread has used so far. A policy call runs on one thread from instantiation to its
/// answer, so the difference over the call is what the call cost the host in CPU.
pub fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// The wall-clock backstop of a call with this deadline: `max(4 × deadline, deadline + 20 ms)`.
///
/// Fuel already bounds the work, so the backstop only has to keep a worker from being held without end, and
/// must not fire on a well-behaved call that was merely descheduled. Four times the deadline lets a call
/// finish as long as it gets a quarter of a core while it runs; the 20 ms floor covers a few scheduler time
/// slices, which a short deadline could otherwise lose to a single descheduling. A call on the CPU holds its
/// thread for at most the backstop: 25 ms at the 5 ms default, 200 ms at the 50 ms a tenant may choose by
/// default; one the host starves of the CPU, for at most `starved`.
pub fn backstop(deadline: Duration) -> Duration {
    (deadline * 4).max(deadline + Duration::from_millis(20))
}

/// How long a call the host does not give the CPU may wait for it: ten backstops (250 ms at the 5 ms
/// default). Past the backstop a call goes on only while it has not yet used its deadline of CPU time (the
/// thread's CPU clock), so a busy machine, or the policy pool's lower priority, does not turn a policy's own
/// runaway loop into an overload: the loop gets its deadline of CPU and fails as its own fault. A call still
/// short of that after `starved` is stopped as an overload, not its fault.
pub fn starved(deadline: Duration) -> Duration {
    backstop(deadline) * 10
}

/// Why a policy could not be loaded or did not decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyFailure {
    #[error("not a WebAssembly file (no `\\0asm` header)")]
    NotWasm,
    #[error(
        "a core WebAssembly module, not a component: build for the `wasm32-wasip2` target (or wrap the module with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("not a Wasm component: {0}")]
    NotAComponent(String),
    #[error(
        "the component imports `{0}`, which the gateway does not grant (policies may import `sluice:policy/types` and `sluice:policy/log` at 0.1.0 or 0.1.1 and the WASI 0.2 interfaces Rust's std links, which trap)"
    )]
    ForbiddenImport(String),
    /// An export under the slot's name whose functions do not have the contract's types.
    #[error("the `{slot}` export does not match the contract `sluice:policy@0.1.1`: {detail}")]
    ExportType { slot: &'static str, detail: String },
    #[error("the component cannot be linked: {0}")]
    Link(String),
    #[error("the component does not export the `{0}` slot")]
    MissingSlot(&'static str),
    /// The policy did more work than its deadline allows: its own fault, the same on any machine.
    #[error("the policy used up its fuel ({fuel} units: the work of its {deadline:?} deadline)")]
    OutOfFuel { fuel: u64, deadline: Duration },
    /// The call ran on the CPU for longer than its deadline (the backstop stopped it with fuel left), or for
    /// longer than its backstop: work fuel does not count (a one-instruction loop, touching fresh pages,
    /// results the host copies), and the policy's own fault.
    #[error(
        "the policy ran on the CPU for {cpu:?}, more than its {deadline:?} deadline allows (work its fuel does not count)"
    )]
    TooMuchCpu { cpu: Duration, deadline: Duration },
    /// The wall-clock backstop stopped the policy while it still had fuel and before it had used its
    /// deadline's CPU time: the host did not give it the CPU (overload), so this is not the policy's fault.
    #[error(
        "the host was overloaded: in {waited:?} it did not give the policy its deadline of {deadline:?} of CPU time, and the policy was stopped with fuel left"
    )]
    Overloaded {
        deadline: Duration,
        waited: Duration,
    },
    /// The tenant used its CPU budget of policy calls (`policy::cpu`): the call did not run.
    #[error("the tenant's policies used their CPU budget; retry in {retry_after:?}")]
    OverBudget { retry_after: Duration },
    /// The tenant's line of the policy pool (`policy::pool`) is full: the call did not run.
    #[error("the tenant's policy calls fill their queue on the policy pool")]
    Busy,
    #[error("the policy trapped: {0}")]
    Trap(String),
    #[error("the policy reported an error: {0}")]
    Policy(String),
    #[error("the policy runtime could not start: {0}")]
    Engine(String),
}

impl PolicyFailure {
    /// Whether the host, not the policy, is to blame: such a failure does not count toward quarantine.
    pub fn is_overload(&self) -> bool {
        matches!(self, PolicyFailure::Overloaded { .. })
    }
}

/// Per-call state: the limits and the log lines the policy emitted.
struct State {
    limits: StoreLimits,
    log: Vec<String>,
}

/// The host's own work for a policy is charged to the policy's fuel as time, at the call's fuel rate: Wasm
/// fuel does not burn while the host works, so without a charge a policy could spend its time in host calls
/// until the backstop stopped it, which would pass for an overload (not counted toward quarantine) when it is
/// the policy's doing. A `log` call costs about 0.6 µs plus 0.07 ns per byte of its line (measured with a
/// policy that logs in a loop, `log-spin` and `log-flood` of `policies/test-hostile`, debug build); it is
/// charged 5 µs plus 1 ns per byte, so such a policy runs out of fuel well before its deadline.
const LOG_CALL_NS: u64 = 5_000;
const LOG_BYTE_NS: u64 = 1;

/// The `log` import: charged as host work (`LOG_CALL_NS`), then kept within the caps.
fn emit(
    mut store: StoreContextMut<'_, State>,
    message: String,
    fuel_per_ms: u64,
) -> wasmtime::Result<()> {
    let bytes = u64::try_from(message.len()).unwrap_or(u64::MAX);
    let ns = LOG_CALL_NS.saturating_add(bytes.saturating_mul(LOG_BYTE_NS));
    let cost =
        u64::try_from(u128::from(ns) * u128::from(fuel_per_ms) / 1_000_000).unwrap_or(u64::MAX);
    let left = store.get_fuel()?;
    store.set_fuel(left.saturating_sub(cost))?;
    if cost > left {
        return Err(Trap::OutOfFuel.into());
    }
    store.data_mut().keep(message);
    Ok(())
}

impl State {
    fn keep(&mut self, message: String) {
        if self.log.len() >= MAX_LOG_LINES {
            return;
        }
        self.log.push(printable(&message, MAX_LOG_LINE_BYTES));
    }
}

/// Text a policy wrote (a `log` line, an error message, names inside a trap's backtrace), fit for the
/// operator's log: at most `max` bytes (cut at a character, marked `…`), and every control character
/// escaped, so no policy can forge log lines with a newline or move a terminal's cursor.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let piece: String = if c.is_control() {
            c.escape_default().collect()
        } else {
            c.to_string()
        };
        if out.len() + piece.len() > max {
            // The marker fits within `max` too.
            let mut end = max.saturating_sub('…'.len_utf8()).min(out.len());
            while !out.is_char_boundary(end) {
                end -= 1;
            }
            out.truncate(end);
            out.push('…');
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// The longest error message of a policy kept (in trails' failures, logs and the quarantine reason).
pub const MAX_ERROR_BYTES: usize = 1024;

/// A loaded policy: pre-linked, with the slots it exports.
pub struct Policy {
    pre: InstancePre<State>,
    auth: Option<auth::GuestIndices>,
    classifier: Option<classifier::GuestIndices>,
    /// The classify slot with the request's embedding (contract 0.1.1): preferred to `classifier`.
    embedding_classifier: Option<embedding_classifier::GuestIndices>,
    router: Option<router::GuestIndices>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("auth", &self.auth.is_some())
            .field("classifier", &self.classifier.is_some())
            .field("embedding_classifier", &self.embedding_classifier.is_some())
            .field("router", &self.router.is_some())
            .finish()
    }
}

/// What a call returned, with the policy's log lines and the work it took.
#[derive(Debug)]
pub struct Outcome<T> {
    pub value: T,
    pub log: Vec<String>,
    /// Fuel the call used (instantiation included), out of `Limits::fuel` of its deadline.
    pub fuel: u64,
}

/// The engine, the base linker and the epoch ticker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<State>,
    limits: Limits,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn engine_err(e: impl std::fmt::Display) -> PolicyFailure {
    PolicyFailure::Engine(e.to_string())
}

/// The engine's settings. The compiler process (`compiler.rs`) builds its engine from the same limits:
/// wasmtime loads compiled code only into an engine with compatible settings.
pub fn engine_config(limits: &Limits) -> Config {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(256)
        .total_core_instances(1024)
        .total_memories(256)
        .total_tables(512)
        .max_memory_size(limits.max_memory_bytes)
        // Keep the first pages resident (reset with memset instead of a fresh mapping): most small
        // policies never touch more, and this is what makes a fresh instance cost microseconds.
        .linear_memory_keep_resident(1 << 20)
        .table_keep_resident(64 << 10)
        .pagemap_scan(Enabled::Auto);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(256 << 10)
        .cranelift_opt_level(OptLevel::Speed)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

impl Runtime {
    pub fn new(limits: Limits) -> Result<Runtime, PolicyFailure> {
        let engine = Engine::new(&engine_config(&limits)).map_err(engine_err)?;
        let mut linker = Linker::new(&engine);
        // By hand rather than through the generated `add_to_linker`: the import needs the store, to charge
        // the policy's fuel for the host's work. Under every version of the contract a component may import
        // it at: unknown imports are linked as traps by their exact name, before any version matching.
        let fuel_per_ms = limits.fuel_per_ms;
        for version in CONTRACT_VERSIONS {
            linker
                .instance(&format!("sluice:policy/log@{version}"))
                .and_then(|mut log| {
                    log.func_wrap(
                        "emit",
                        move |store, (_level, message): (log::Level, String)| {
                            emit(store, message, fuel_per_ms)
                        },
                    )
                })
                .map_err(engine_err)?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (engine, stop) = (engine.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                    engine.increment_epoch();
                }
            }
        };
        std::thread::Builder::new()
            .name("sluice-epoch".to_owned())
            .spawn(ticker)
            .map_err(engine_err)?;
        Ok(Runtime {
            engine,
            linker,
            limits,
            stop,
        })
    }

    /// Compiles and pre-links a component. Imports other than `log` are linked as traps.
    pub fn load(&self, bytes: &[u8]) -> Result<Policy, PolicyFailure> {
        let component = compile(&self.engine, bytes)?;
        self.link(&component)
    }

    /// The engine, to compile on another thread (`compile`) or to (de)serialize artifacts.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Pre-links a compiled component: `log` is the host's, other imports trap when called.
    pub fn link(&self, component: &Component) -> Result<Policy, PolicyFailure> {
        let mut linker = self.linker.clone();
        linker
            .define_unknown_imports_as_traps(component)
            .map_err(|e| PolicyFailure::Link(format!("{e:#}")))?;
        let pre = linker
            .instantiate_pre(component)
            .map_err(|e| PolicyFailure::Link(format!("{e:#}")))?;
        Ok(Policy {
            auth: auth::GuestIndices::new(&pre).ok(),
            classifier: classifier::GuestIndices::new(&pre).ok(),
            embedding_classifier: embedding_classifier::GuestIndices::new(&pre).ok(),
            router: router::GuestIndices::new(&pre).ok(),
            pre,
        })
    }

    /// Instantiates the policy once and binds the slot's export, which checks every function of it against
    /// the contract's types: an upload whose export has the right name but other types would otherwise
    /// trap on every call. Its start function runs under the default deadline.
    pub fn check_export(&self, policy: &Policy, slot: Slot) -> Result<(), PolicyFailure> {
        let deadline = self.limits.deadline;
        let fuel = self.limits.fuel(deadline);
        let mut store = self.store(deadline, fuel)?;
        let started = (self.limits.cpu_clock)();
        let instance = policy.pre.instantiate(&mut store).map_err(|e| {
            let cpu = (self.limits.cpu_clock)().saturating_sub(started);
            Self::failure(&e, deadline, fuel, cpu)
        })?;
        let bound = match slot {
            Slot::Auth => policy
                .auth
                .as_ref()
                .map(|ix| ix.load(&mut store, &instance).map(drop)),
            Slot::Classify => match (&policy.embedding_classifier, &policy.classifier) {
                (Some(ix), _) => Some(ix.load(&mut store, &instance).map(drop)),
                (None, Some(ix)) => Some(ix.load(&mut store, &instance).map(drop)),
                (None, None) => None,
            },
            Slot::Route => policy
                .router
                .as_ref()
                .map(|ix| ix.load(&mut store, &instance).map(drop)),
        };
        match bound {
            None => Err(PolicyFailure::MissingSlot(slot.as_str())),
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(PolicyFailure::ExportType {
                slot: slot.as_str(),
                detail: format!("{e:#}"),
            }),
        }
    }

    /// The limits calls run under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A fresh store with the call's fuel and its wall-clock backstop.
    fn store(&self, deadline: Duration, fuel: u64) -> Result<Store<State>, PolicyFailure> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.max_memory_bytes)
            .instances(16)
            .tables(16)
            .memories(4)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(
            &self.engine,
            State {
                limits,
                log: Vec::new(),
            },
        );
        store.limiter(|s| &mut s.limits);
        store.set_hostcall_fuel(MAX_COPY_BYTES);
        store.set_fuel(fuel).map_err(engine_err)?;
        // One tick is 1 ms; one more so a call never gets less than its backstop.
        let ticks = u64::try_from(backstop(deadline).as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        store.set_epoch_deadline(ticks);
        // At the backstop, a call that has used its deadline of CPU time is stopped (its own fault); one the
        // host has not yet given that much CPU runs on, tick by tick, until it has or until `starved`.
        let (clock, cpu_start) = (self.limits.cpu_clock, (self.limits.cpu_clock)());
        let give_up = std::time::Instant::now() + starved(deadline);
        store.epoch_deadline_callback(move |_| {
            let cpu = clock().saturating_sub(cpu_start);
            if cpu >= deadline || std::time::Instant::now() >= give_up {
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Continue(1))
        });
        Ok(store)
    }

    fn failure(e: &wasmtime::Error, deadline: Duration, fuel: u64, cpu: Duration) -> PolicyFailure {
        match e.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => PolicyFailure::OutOfFuel { fuel, deadline },
            // Only the backstop interrupts, and only a call that still had fuel reaches it. If the thread
            // ran the call for its whole deadline of CPU time, the policy did work fuel does not see: its
            // fault. Otherwise the host did not give it the CPU.
            Some(Trap::Interrupt) if cpu >= deadline => PolicyFailure::TooMuchCpu { cpu, deadline },
            Some(Trap::Interrupt) => PolicyFailure::Overloaded {
                deadline,
                waited: starved(deadline),
            },
            // The cause first: a long backtrace must not push it past what is kept.
            _ => PolicyFailure::Trap(printable(
                &format!("{}; {e:#}", e.root_cause()),
                MAX_ERROR_BYTES,
            )),
        }
    }

    /// Instantiates the policy in a fresh store and runs one slot, under the limits and the deadline.
    fn call<I, T>(
        &self,
        policy: &Policy,
        indices: Option<&I>,
        slot: &'static str,
        deadline: Option<Duration>,
        run: impl FnOnce(
            &I,
            &mut Store<State>,
            &wasmtime::component::Instance,
        ) -> wasmtime::Result<Result<T, wit::PolicyError>>,
    ) -> Result<Outcome<T>, PolicyFailure> {
        let indices = indices.ok_or(PolicyFailure::MissingSlot(slot))?;
        let deadline = deadline.unwrap_or(self.limits.deadline);
        let fuel = self.limits.fuel(deadline);
        let mut store = self.store(deadline, fuel)?;
        let started = (self.limits.cpu_clock)();
        let result = policy
            .pre
            .instantiate(&mut store)
            .and_then(|instance| run(indices, &mut store, &instance));
        let cpu = (self.limits.cpu_clock)().saturating_sub(started);
        match result {
            // An answer that took more than twice its deadline in CPU time (touching fresh pages of memory,
            // say: the kernel's work for the call, which fuel does not see) is refused like a call the
            // backstop stopped. Twice, so that a call which used its fuel is not refused for cache misses.
            Ok(_) if cpu > deadline * 2 => Err(PolicyFailure::TooMuchCpu { cpu, deadline }),
            Ok(Ok(value)) => Ok(Outcome {
                value,
                fuel: fuel.saturating_sub(store.get_fuel().unwrap_or(0)),
                log: store.into_data().log,
            }),
            Ok(Err(e)) => Err(PolicyFailure::Policy(printable(
                &e.message,
                MAX_ERROR_BYTES,
            ))),
            Err(e) => Err(Self::failure(&e, deadline, fuel, cpu)),
        }
    }

    /// Runs the `classify` slot in a fresh instance: the `embedding-classifier` export with `embedding` when
    /// the component has it, else the `classifier` export.
    pub fn classify(
        &self,
        policy: &Policy,
        req: &wit::Request,
        embedding: Option<&Embedding>,
        deadline: Option<Duration>,
    ) -> Result<Outcome<Classification>, PolicyFailure> {
        if let Some(indices) = policy.embedding_classifier.as_ref() {
            let out = self.call(
                policy,
                Some(indices),
                "classify",
                deadline,
                |ix, store, instance| {
                    ix.load(&mut *store, instance)?
                        .call_classify(store, req, embedding)
                },
            )?;
            let c = out.value;
            return Ok(Outcome {
                value: Classification {
                    tier: c.tier,
                    score: c.score,
                    labels: c.labels,
                },
                log: out.log,
                fuel: out.fuel,
            });
        }
        self.call(
            policy,
            policy.classifier.as_ref(),
            "classify",
            deadline,
            |ix, store, instance| ix.load(&mut *store, instance)?.call_classify(store, req),
        )
    }

    /// Runs the `route` slot in a fresh instance.
    pub fn route(
        &self,
        policy: &Policy,
        input: &RoutingInput,
        deadline: Option<Duration>,
    ) -> Result<Outcome<RouteDecision>, PolicyFailure> {
        let indices = policy.router.as_ref();
        self.call(policy, indices, "route", deadline, |ix, store, instance| {
            ix.load(&mut *store, instance)?.call_route(store, input)
        })
    }

    /// Runs the `authorize` slot in a fresh instance.
    pub fn authorize(
        &self,
        policy: &Policy,
        req: &wit::Request,
        deadline: Option<Duration>,
    ) -> Result<Outcome<AuthDecision>, PolicyFailure> {
        let indices = policy.auth.as_ref();
        self.call(policy, indices, "auth", deadline, |ix, store, instance| {
            ix.load(&mut *store, instance)?.call_authorize(store, req)
        })
    }
}

/// The WASI 0.2 interfaces Rust's std can link for `wasm32-wasip2` (which of them a component imports
/// depends on what of std it uses). They are linked as traps: no capability is behind any of them.
const STD_WASI: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/ip-name-lookup",
];

/// Interfaces a policy may import, by exact name and version: the contract's own (`types`, and `log`,
/// whose function types the linker checks) and the std WASI interfaces at any 0.2 version. Nothing else:
/// not `wasi:http`, not an interface of the contract that does not exist.
fn granted_import(name: &str) -> bool {
    let contract = ["sluice:policy/types@", "sluice:policy/log@"]
        .iter()
        .filter_map(|prefix| name.strip_prefix(prefix))
        .any(|version| CONTRACT_VERSIONS.contains(&version));
    if contract {
        return true;
    }
    let Some((interface, version)) = name.split_once('@') else {
        return false;
    };
    let minor_of_0_2 = version
        .strip_prefix("0.2.")
        .is_some_and(|patch| !patch.is_empty() && patch.bytes().all(|b| b.is_ascii_digit()));
    minor_of_0_2 && STD_WASI.contains(&interface)
}

/// Checks the header, then compiles a component and checks its imports. Slow (Cranelift): callers off the
/// request path only.
pub fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, PolicyFailure> {
    check_header(bytes)?;
    let component = Component::new(engine, bytes)
        .map_err(|e| PolicyFailure::NotAComponent(format!("{e:#}")))?;
    check_imports(engine, &component)?;
    Ok(component)
}

fn check_header(bytes: &[u8]) -> Result<(), PolicyFailure> {
    match bytes.get(..8) {
        Some([0x00, b'a', b's', b'm', 0x01, 0x00, 0x00, 0x00]) => Err(PolicyFailure::CoreModule),
        Some([0x00, b'a', b's', b'm', ..]) => Ok(()),
        _ => Err(PolicyFailure::NotWasm),
    }
}

/// What the compiler process does: checks the header and compiles a component into a serialized artifact,
/// for [`load_artifact`] in the gateway.
pub fn precompile(engine: &Engine, bytes: &[u8]) -> Result<Vec<u8>, PolicyFailure> {
    check_header(bytes)?;
    engine
        .precompile_component(bytes)
        .map_err(|e| PolicyFailure::NotAComponent(format!("{e:#}")))
}

/// Loads a serialized artifact that this gateway's own compiler produced, and checks its imports.
pub fn load_artifact(engine: &Engine, artifact: &[u8]) -> Result<Component, PolicyFailure> {
    let component = deserialize(engine, artifact).map_err(engine_err)?;
    check_imports(engine, &component)?;
    Ok(component)
}

/// Native code from outside the process. Only two callers, each of which vouches for its bytes: the artifact
/// cache (an HMAC under a key only this gateway's pepper yields, checked just before) and the compiler
/// process (this same binary, spawned by the gateway, answering over a pipe only the gateway holds).
#[expect(
    unsafe_code,
    reason = "wasmtime trusts serialized artifacts; both callers vouch for theirs (see above)"
)]
pub(super) fn deserialize(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `artifact` was produced by `Engine::precompile_component` or `Component::serialize` of this
    // gateway's code (see the callers), and wasmtime checks the engine compatibility itself.
    unsafe { Component::deserialize(engine, artifact) }
}

fn check_imports(engine: &Engine, component: &Component) -> Result<(), PolicyFailure> {
    let ty = component.component_type();
    if let Some((name, _)) = ty.imports(engine).find(|(name, _)| !granted_import(name)) {
        return Err(PolicyFailure::ForbiddenImport(name.to_owned()));
    }
    Ok(())
}

/// A key of the engine's code generation settings (and this build): compiled artifacts are only valid for
/// the same key.
pub fn engine_key(engine: &Engine) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    format!("{:016x}", h.finish())
}

impl Policy {
    /// Whether the component exports a slot.
    pub fn exports(&self, slot: Slot) -> bool {
        match slot {
            Slot::Auth => self.auth.is_some(),
            Slot::Classify => self.classifier.is_some() || self.embedding_classifier.is_some(),
            Slot::Route => self.router.is_some(),
        }
    }

    /// Whether the component's classify slot reads the request's embedding (it exports
    /// `embedding-classifier`): the host computes the embedding only for such a classifier.
    pub fn reads_embedding(&self) -> bool {
        self.embedding_classifier.is_some()
    }
}

/// The three policy slots, in the order a request meets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    Auth,
    Classify,
    Route,
}

impl Slot {
    pub const ALL: [Slot; 3] = [Slot::Auth, Slot::Classify, Slot::Route];

    /// The name in URLs, storage and audit entries.
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::Auth => "auth",
            Slot::Classify => "classify",
            Slot::Route => "route",
        }
    }

    pub fn parse(s: &str) -> Option<Slot> {
        Slot::ALL.into_iter().find(|slot| slot.as_str() == s)
    }

    /// The world a component for this slot targets.
    pub fn world(self) -> &'static str {
        match self {
            Slot::Auth => "sluice:policy/auth-policy@0.1.1",
            Slot::Classify => "sluice:policy/classifier-policy@0.1.1",
            Slot::Route => "sluice:policy/router-policy@0.1.1",
        }
    }

    pub fn index(self) -> usize {
        match self {
            Slot::Auth => 0,
            Slot::Classify => 1,
            Slot::Route => 2,
        }
    }
}

#[cfg(test)]
mod tests;
