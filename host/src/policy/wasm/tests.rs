//! The runtime against real components: the built-in policies, and a hostile test program that loops,
//! allocates, recurses, reaches for WASI, floods its output and panics on request.

use std::sync::OnceLock;

use super::wit::{Deployment, Endpoint, Health, Label, Message, Request, Role, Tier};
use super::*;
use crate::policy::builtin;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(Limits::default()).unwrap())
}

fn request(model: &str, text: &str) -> Request {
    Request {
        request_id: "req-1".to_owned(),
        tenant_id: "t".to_owned(),
        key_id: "k".to_owned(),
        key_role: Role::Member,
        endpoint: Endpoint::Chat,
        model: model.to_owned(),
        messages: vec![Message {
            role: "user".to_owned(),
            text: text.to_owned(),
        }],
        max_tokens: None,
        temperature: None,
        stream: false,
        has_tools: false,
        metadata: Vec::new(),
        prompt_tokens: u64::try_from(text.len()).unwrap() + 8,
        labels: Vec::new(),
    }
}

fn deployment(name: &str, tier: Tier, region: &str, input: u64, output: u64) -> Deployment {
    Deployment {
        name: name.to_owned(),
        tier,
        region: region.to_owned(),
        input_micro_usd_per_mtok: input,
        output_micro_usd_per_mtok: output,
        health: Health::Healthy,
        recent_latency_ms: None,
    }
}

#[test]
fn the_builtin_classifier_tells_simple_from_complex() {
    let policy = runtime().load(builtin::CLASSIFIER).unwrap();
    let simple = runtime()
        .classify(
            &policy,
            &request("auto", "What is the capital of France?"),
            None,
            None,
        )
        .unwrap();
    assert_eq!(
        simple.value.tier,
        Tier::Simple,
        "score {}",
        simple.value.score
    );
    let hard = "Prove that the integral of x^2 from 0 to 3 equals 9, step by step. Then write a Rust \
                function `fn integrate(f: impl Fn(f64) -> f64, a: f64, b: f64) -> f64` that must use \
                exactly 1000 trapezoids, and do not use any crate. Format the answer as Markdown with ``` \
                code blocks.";
    let complex = runtime()
        .classify(&policy, &request("auto", hard), None, None)
        .unwrap();
    assert_eq!(
        complex.value.tier,
        Tier::Complex,
        "score {}",
        complex.value.score
    );
    assert!(complex.value.score > simple.value.score);
    // Each call reports its work, well within the default deadline's fuel.
    let budget = runtime().limits().fuel(Limits::default().deadline);
    assert!(
        simple.fuel > 0 && simple.fuel < budget / 10,
        "{} of {budget}",
        simple.fuel
    );
    assert_eq!(complex.value.labels[0].key, "complexity");
}

fn catalog() -> Vec<Deployment> {
    vec![
        deployment("small-eu", Tier::Simple, "eu", 100_000, 400_000),
        deployment("small-us", Tier::Simple, "us", 50_000, 200_000),
        deployment("mid", Tier::Standard, "eu", 1_000_000, 3_000_000),
        deployment("large", Tier::Complex, "eu", 2_500_000, 10_000_000),
        deployment("huge", Tier::Complex, "us", 15_000_000, 60_000_000),
    ]
}

fn route(
    tier: Tier,
    candidates: Vec<Deployment>,
    budget: Option<u64>,
    req: Request,
) -> Vec<String> {
    let policy = runtime().load(builtin::ROUTER).unwrap();
    let input = RoutingInput {
        req,
        tier,
        candidates,
        budget: wit::Budget {
            remaining_micro_usd: budget,
        },
    };
    match runtime().route(&policy, &input, None).unwrap().value {
        RouteDecision::Route(names) => names,
        RouteDecision::Reject(why) => panic!("rejected: {why}"),
    }
}

#[test]
fn the_builtin_router_picks_by_tier_region_health_and_budget() {
    let hi = || request("auto", "hi");
    // Simple: the cheapest simple deployment first, the other simple one next, then the rest by price.
    assert_eq!(
        route(Tier::Simple, catalog(), None, hi()),
        ["small-us", "small-eu", "mid", "large", "huge"]
    );
    // Complex: the best complex deployment.
    assert_eq!(route(Tier::Complex, catalog(), None, hi())[0], "huge");
    // A region in the metadata restricts the choice to that region.
    let mut eu = hi();
    eu.metadata.push(Label {
        key: "region".to_owned(),
        value: "eu".to_owned(),
    });
    assert_eq!(
        route(Tier::Complex, catalog(), None, eu.clone()),
        ["large", "small-eu", "mid"]
    );
    // A deployment that is down is never chosen.
    let mut down = catalog();
    down[4].health = Health::Down;
    assert_eq!(route(Tier::Complex, down, None, hi())[0], "large");
    // The budget runs low: `huge` (1,024 output tokens: 61,440 µUSD) and then `large` no longer fit.
    assert_eq!(
        route(Tier::Complex, catalog(), Some(20_000), hi())[0],
        "large"
    );
    assert_eq!(route(Tier::Complex, catalog(), Some(5_000), hi())[0], "mid");
    assert_eq!(
        route(Tier::Complex, catalog(), Some(100), hi())[0],
        "small-us"
    );
}

/// A runtime whose calls get more fuel than any loop uses in a test, reading CPU time with `cpu_clock`.
fn unlimited_fuel(cpu_clock: fn() -> Duration) -> Runtime {
    Runtime::new(Limits {
        fuel_per_ms: 1 << 40,
        cpu_clock,
        ..Limits::default()
    })
    .unwrap()
}

fn hostile() -> Policy {
    runtime().load(builtin::TEST_HOSTILE).unwrap()
}

/// How a call of the default runtime fails when it used up its deadline's fuel.
fn out_of_fuel(deadline: Duration) -> PolicyFailure {
    PolicyFailure::OutOfFuel {
        fuel: runtime().limits().fuel(deadline),
        deadline,
    }
}

#[test]
fn a_policy_that_loops_forever_runs_out_of_fuel() {
    // 50 ms rather than the 5 ms default: fuel wins as long as the loop gets a quarter of a core before the
    // 200 ms backstop, which a machine busy with the other tests still gives it.
    let deadline = Duration::from_millis(50);
    let err = runtime()
        .classify(&hostile(), &request("loop", ""), None, Some(deadline))
        .unwrap_err();
    assert_eq!(err, out_of_fuel(deadline));
    assert!(!err.is_overload());
}

/// A CPU clock that stands still: what a call looks like to a host that never scheduled it.
fn starved() -> Duration {
    Duration::ZERO
}

#[test]
fn a_loop_that_used_its_deadline_of_cpu_is_the_policys_fault_even_with_fuel_left() {
    // Fuel this loop cannot use up: only the backstop stops it, after it ran on the CPU for far longer
    // than its deadline.
    let rich = unlimited_fuel(thread_cpu);
    let policy = rich.load(builtin::TEST_HOSTILE).unwrap();
    let deadline = Duration::from_millis(5);
    let err = rich
        .classify(&policy, &request("loop", ""), None, Some(deadline))
        .unwrap_err();
    assert!(
        matches!(err, PolicyFailure::TooMuchCpu { cpu, .. } if cpu >= deadline),
        "{err:?}"
    );
    assert!(!err.is_overload());
    // A one-instruction loop at the default fuel: it burns fuel slower than real work, so it reaches the
    // backstop with fuel left; it still is the policy's doing.
    let err = runtime()
        .classify(&hostile(), &request("spin", ""), None, Some(deadline))
        .unwrap_err();
    assert!(
        matches!(
            err,
            PolicyFailure::TooMuchCpu { .. } | PolicyFailure::OutOfFuel { .. }
        ),
        "{err:?}"
    );
    assert!(!err.is_overload());
}

#[test]
fn a_policy_with_fuel_left_is_stopped_by_the_backstop_as_an_overload() {
    // Fuel this loop cannot use up, and a host that gave it no CPU time: only the wall-clock backstop
    // stops it, and the machine is to blame.
    let rich = unlimited_fuel(starved);
    let policy = rich.load(builtin::TEST_HOSTILE).unwrap();
    let deadline = Duration::from_millis(5);
    let started = std::time::Instant::now();
    let err = rich
        .classify(&policy, &request("loop", ""), None, Some(deadline))
        .unwrap_err();
    assert_eq!(
        err,
        PolicyFailure::Overloaded {
            deadline,
            waited: Duration::from_millis(250)
        }
    );
    assert!(err.is_overload());
    // Not before the host had ten backstops to give it the CPU.
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[test]
fn a_loop_the_host_gives_little_cpu_runs_past_the_backstop_and_is_its_own_fault() {
    // A CPU clock at a tenth of the wall clock: a host that gives the call a tenth of a core. The backstop
    // (25 ms) passes with 2.5 ms of CPU used; the loop goes on until it has used its 5 ms deadline, and is
    // then stopped as its own fault, not as an overload.
    fn tenth() -> Duration {
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed() / 10
    }
    let rich = unlimited_fuel(tenth);
    let policy = rich.load(builtin::TEST_HOSTILE).unwrap();
    let deadline = Duration::from_millis(5);
    let started = std::time::Instant::now();
    let err = rich
        .classify(&policy, &request("loop", ""), None, Some(deadline))
        .unwrap_err();
    assert!(
        matches!(err, PolicyFailure::TooMuchCpu { cpu, .. } if cpu >= deadline),
        "{err:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn host_calls_are_charged_so_a_policy_cannot_hide_its_work_in_the_host() {
    // Logging in a loop burns almost no Wasm fuel: uncharged, only the backstop would stop it, and that
    // passes for an overload, which never quarantines. Charged, it runs out of fuel like any loop.
    let deadline = Duration::from_millis(50);
    for mode in ["log-flood", "log-spin"] {
        let err = runtime()
            .classify(&hostile(), &request(mode, ""), None, Some(deadline))
            .unwrap_err();
        assert_eq!(err, out_of_fuel(deadline), "{mode}");
    }
}

#[test]
fn the_backstop_is_four_deadlines_and_at_least_twenty_ms_more() {
    assert_eq!(
        backstop(Duration::from_millis(1)),
        Duration::from_millis(21)
    );
    assert_eq!(
        backstop(Duration::from_millis(5)),
        Duration::from_millis(25)
    );
    assert_eq!(
        backstop(Duration::from_millis(50)),
        Duration::from_millis(200)
    );
    let limits = Limits {
        fuel_per_ms: 1_000,
        ..Limits::default()
    };
    assert_eq!(limits.fuel(Duration::from_millis(5)), 5_000);
    assert_eq!(limits.fuel(Duration::from_micros(1_500)), 1_500);
    assert_eq!(
        Limits {
            fuel_per_ms: u64::MAX,
            ..limits
        }
        .fuel(Duration::from_secs(1)),
        u64::MAX / 1_000
    );
}

#[test]
fn a_policy_that_allocates_without_bound_traps_at_the_memory_limit() {
    // A generous deadline, so the memory limit is what stops it.
    let err = runtime()
        .classify(
            &hostile(),
            &request("alloc", ""),
            None,
            Some(Duration::from_secs(5)),
        )
        .unwrap_err();
    assert!(matches!(err, PolicyFailure::Trap(_)), "{err:?}");
}

#[test]
fn a_policy_that_recurses_without_end_traps_on_its_stack_limit() {
    let err = runtime()
        .classify(&hostile(), &request("stack", ""), None, None)
        .unwrap_err();
    let PolicyFailure::Trap(why) = err else {
        panic!("expected a trap, got {err:?}");
    };
    assert!(why.contains("stack"), "{why}");
}

#[test]
fn a_policy_cannot_read_files_the_environment_or_the_network() {
    for what in ["file", "env", "net"] {
        let err = runtime()
            .classify(&hostile(), &request(what, ""), None, None)
            .unwrap_err();
        // The WASI imports std reaches for are linked as traps: no capability exists to call.
        let PolicyFailure::Trap(why) = err else {
            panic!("{what}: expected a trap, got {err:?}");
        };
        assert!(why.contains("unknown import"), "{what}: {why}");
    }
}

#[test]
fn log_lines_are_capped_in_number_and_length() {
    let out = runtime()
        .classify(
            &hostile(),
            &request("log", ""),
            None,
            Some(Duration::from_secs(5)),
        )
        .unwrap();
    assert_eq!(out.log.len(), MAX_LOG_LINES);
    assert!(out.log.iter().all(|l| l.len() == MAX_LOG_LINE_BYTES));
}

#[test]
fn errors_and_panics_are_failures_not_decisions() {
    let err = runtime()
        .classify(&hostile(), &request("error", ""), None, None)
        .unwrap_err();
    assert_eq!(err, PolicyFailure::Policy("refusing on purpose".to_owned()));
    let err = runtime()
        .classify(&hostile(), &request("panic", ""), None, None)
        .unwrap_err();
    assert!(matches!(err, PolicyFailure::Trap(_)), "{err:?}");
    // The same runtime goes on serving other policies after a trap.
    let policy = runtime().load(builtin::CLASSIFIER).unwrap();
    assert!(
        runtime()
            .classify(&policy, &request("auto", "hi"), None, None)
            .is_ok()
    );
}

#[test]
fn only_components_load_and_slots_must_be_exported() {
    // A core module (the 8-byte empty module), and bytes that are not Wasm at all.
    assert_eq!(
        runtime().load(b"\0asm\x01\0\0\0").unwrap_err(),
        PolicyFailure::CoreModule
    );
    assert_eq!(
        runtime().load(b"#!/bin/sh\necho hi\n").unwrap_err(),
        PolicyFailure::NotWasm
    );
    assert!(matches!(
        runtime().load(b"\0asm\x0d\0\x01\0garbage").unwrap_err(),
        PolicyFailure::NotAComponent(_)
    ));
    // Every import of the built-ins is granted (WASI, linked as traps, and the contract's own).
    let engine = runtime().engine();
    for bytes in [builtin::CLASSIFIER, builtin::ROUTER, builtin::TEST_HOSTILE] {
        compile(engine, bytes).unwrap();
    }
    let classifier = runtime().load(builtin::CLASSIFIER).unwrap();
    let input = RoutingInput {
        req: request("auto", "hi"),
        tier: Tier::Simple,
        candidates: catalog(),
        budget: wit::Budget {
            remaining_micro_usd: None,
        },
    };
    assert_eq!(
        runtime().route(&classifier, &input, None).unwrap_err(),
        PolicyFailure::MissingSlot("route")
    );
}

#[test]
fn an_answer_past_the_copy_limit_is_refused_while_it_is_copied_and_one_within_it_is_capped() {
    let policy = runtime().load(builtin::TEST_HOSTILE).unwrap();
    // 4 MB of labels: the copy stops at `MAX_COPY_BYTES`, a trap, however long the deadline.
    let err = runtime()
        .authorize(
            &policy,
            &request("labels", ""),
            Some(Duration::from_secs(1)),
        )
        .unwrap_err();
    let PolicyFailure::Trap(message) = &err else {
        panic!("expected a trap, got {err:?}");
    };
    assert!(message.contains("too much data"), "{message}");
    // 200 labels of 100 bytes come back; the host keeps 32 of them.
    let out = runtime()
        .authorize(&policy, &request("labels-some", ""), None)
        .unwrap();
    let AuthDecision::Allow(labels) = out.value else {
        panic!("expected allow");
    };
    assert_eq!(labels.len(), 200);
    let kept = crate::policy::view::cap_labels(labels);
    assert_eq!(kept.len(), crate::policy::view::MAX_LABELS);
    // A log line past the limit is refused the same way.
    let err = runtime()
        .classify(&policy, &request("log-huge", ""), None, None)
        .unwrap_err();
    assert!(matches!(err, PolicyFailure::Trap(_)), "{err:?}");
}

#[test]
fn touching_pages_fuel_does_not_count_is_charged_to_the_call() {
    // 7,168 fresh pages cost the host a page fault each and the policy almost no fuel: at a 1 ms deadline
    // (2 ms of CPU allowed) the call is refused for its CPU time, not for fuel.
    let policy = runtime().load(builtin::TEST_HOSTILE).unwrap();
    let deadline = Duration::from_millis(1);
    let err = runtime()
        .classify(&policy, &request("touch", ""), None, Some(deadline))
        .unwrap_err();
    assert!(
        matches!(err, PolicyFailure::TooMuchCpu { cpu, .. } if cpu > deadline * 2),
        "{err:?}"
    );
    // The same policy doing nothing passes at that deadline.
    runtime()
        .classify(&policy, &request("nothing", ""), None, Some(deadline))
        .unwrap();
}

#[test]
fn what_a_policy_writes_is_bounded_and_cannot_forge_log_lines() {
    let forged = "ok\n2026-12-02T00:00:00Z ERROR sluice: operator token leaked\r\x1b[2J";
    let shown = printable(forged, 1024);
    assert!(
        !shown.contains('\n') && !shown.contains('\r') && !shown.contains('\x1b'),
        "{shown}"
    );
    assert!(shown.starts_with("ok\\n2026"), "{shown}");
    let long = "é".repeat(2_000);
    let cut = printable(&long, 1024);
    assert!(
        cut.len() <= 1024 && cut.len() > 1000 && cut.ends_with('…'),
        "{}",
        cut.len()
    );
    let mut state = State {
        limits: StoreLimitsBuilder::new().build(),
        log: Vec::new(),
    };
    state.keep("line one\nline two".to_owned());
    assert_eq!(state.log, ["line one\\nline two"]);
}
