//! Admission on an injected clock: exact GCRA bursts and rates, concurrency, token caps, budgets that never
//! overshoot, clamping, window rollover and the rebuild of spend.

use std::sync::Arc;
use std::time::Duration;

use super::window::{NS_PER_DAY, days_from_civil};
use super::*;

const MS: u64 = 1_000_000;

/// 2026-11-23 12:00:00 UTC.
fn noon() -> u64 {
    days_from_civil(2026, 11, 23) * NS_PER_DAY + 12 * 3600 * NS_PER_SEC
}

fn setup(now: u64) -> (Arc<ManualClock>, Admission) {
    let clock = Arc::new(ManualClock::new(now));
    let adm = Admission::new(clock.clone());
    (clock, adm)
}

fn chat(key: &str, tokens: u64) -> Demand<'_> {
    Demand {
        key_id: key,
        endpoint: "chat",
        tokens,
        unbounded: false,
    }
}

/// Admits requests at the current instant until one is refused; settles each right away.
fn burst(adm: &Admission, key: &str) -> (u32, Rejection) {
    let mut n = 0;
    loop {
        match adm.admit("t", &chat(key, 0)) {
            Ok(ticket) => {
                ticket.settle(0, 0);
                n += 1;
            }
            Err(r) => return (n, r),
        }
    }
}

#[test]
fn request_rate_bursts_and_sustains_exactly() {
    let (clock, adm) = setup(noon());
    let limits = LimitSet {
        requests_per_minute: Some(600),
        ..LimitSet::default()
    };
    adm.set_limits("t", &Scope::Tenant, limits);
    // A brand-new tenant gets its full burst at once, then exactly one request per 100 ms.
    let (n, rejection) = burst(&adm, "k");
    assert_eq!(n, 600);
    let Rejection::Rate {
        scope,
        unit,
        retry_after_ns,
        ..
    } = rejection
    else {
        panic!("expected a rate rejection, got {rejection:?}");
    };
    assert_eq!(
        (scope, unit, retry_after_ns),
        ("tenant", Unit::Requests, 100 * MS)
    );
    clock.advance(Duration::from_millis(99));
    assert_eq!(burst(&adm, "k").0, 0);
    clock.advance(Duration::from_millis(1));
    assert_eq!(burst(&adm, "k").0, 1);
    let mut admitted = 0;
    for _ in 0..600 {
        clock.advance(Duration::from_millis(100));
        admitted += burst(&adm, "k").0;
    }
    assert_eq!(admitted, 600, "one minute at the sustained rate");
    // Per-second and per-key limits apply on top, and the tightest one answers.
    adm.set_limits(
        "t",
        &Scope::Key("small".to_owned()),
        LimitSet {
            requests_per_second: Some(3),
            ..LimitSet::default()
        },
    );
    clock.advance(Duration::from_secs(120));
    let (n, rejection) = burst(&adm, "small");
    assert_eq!(n, 3);
    assert!(matches!(rejection, Rejection::Rate { scope: "key", .. }));
    // Other keys of the tenant are not held back by that key's limit.
    assert!(adm.admit("t", &chat("other", 0)).is_ok());
}

#[test]
fn endpoint_limits_apply_to_their_endpoint_only() {
    let (_clock, adm) = setup(noon());
    adm.set_limits(
        "t",
        &Scope::Endpoint("embeddings".to_owned()),
        LimitSet {
            requests_per_minute: Some(2),
            ..LimitSet::default()
        },
    );
    let emb = Demand {
        key_id: "k",
        endpoint: "embeddings",
        tokens: 1,
        unbounded: false,
    };
    assert!(adm.admit("t", &emb).is_ok());
    assert!(adm.admit("t", &emb).is_ok());
    let r = adm.admit("t", &emb).unwrap_err();
    assert!(matches!(
        r,
        Rejection::Rate {
            scope: "endpoint",
            ..
        }
    ));
    assert!(adm.admit("t", &chat("k", 1)).is_ok());
}

#[test]
fn a_rejection_takes_nothing() {
    let (_clock, adm) = setup(noon());
    adm.set_limits(
        "t",
        &Scope::Tenant,
        LimitSet {
            requests_per_minute: Some(10),
            ..LimitSet::default()
        },
    );
    adm.set_limits(
        "t",
        &Scope::Key("k".to_owned()),
        LimitSet {
            max_concurrent: Some(1),
            ..LimitSet::default()
        },
    );
    let held = adm.admit("t", &chat("k", 0)).unwrap();
    // Refused by the key's concurrency limit, after the tenant's rate was checked: the rate is not charged.
    for _ in 0..20 {
        assert!(matches!(
            adm.admit("t", &chat("k", 0)),
            Err(Rejection::Concurrency {
                scope: "key",
                limit: 1
            })
        ));
    }
    drop(held);
    assert_eq!(
        burst(&adm, "other").0,
        9,
        "only the one admitted request used the tenant's rate"
    );
}

#[test]
fn concurrency_slots_are_released_by_settle_and_by_drop() {
    let (_clock, adm) = setup(noon());
    adm.set_limits(
        "t",
        &Scope::Tenant,
        LimitSet {
            max_concurrent: Some(2),
            ..LimitSet::default()
        },
    );
    let a = adm.admit("t", &chat("k1", 0)).unwrap();
    let b = adm.admit("t", &chat("k2", 0)).unwrap();
    let r = adm.admit("t", &chat("k3", 0)).unwrap_err();
    assert_eq!(r.reason(), "concurrency");
    a.settle(0, 0);
    a.settle(0, 0); // settling twice frees one slot, not two
    let c = adm.admit("t", &chat("k3", 0)).unwrap();
    assert!(adm.admit("t", &chat("k4", 0)).is_err());
    drop(b);
    drop(c);
    let (x, y) = (adm.admit("t", &chat("k", 0)), adm.admit("t", &chat("k", 0)));
    assert!(x.is_ok() && y.is_ok());
    assert!(adm.admit("t", &chat("k", 0)).is_err());
}

#[test]
fn token_rates_reserve_then_settle_to_actual_usage() {
    let (clock, adm) = setup(noon());
    adm.set_limits(
        "t",
        &Scope::Tenant,
        LimitSet {
            tokens_per_minute: Some(1_000),
            ..LimitSet::default()
        },
    );
    let a = adm.admit("t", &chat("k", 600)).unwrap();
    // 600 are reserved while in flight: 500 more do not fit.
    assert_eq!(
        adm.admit("t", &chat("k", 500)).unwrap_err().reason(),
        "rate_tokens"
    );
    a.settle(0, 100); // it used 100
    let b = adm.admit("t", &chat("k", 800)).unwrap();
    let tokens = crate::error::rate_headers(&b.rates)
        .iter()
        .find(|(n, _)| n == "x-ratelimit-remaining-tokens")
        .map(|(_, v)| v.to_str().unwrap().to_owned());
    assert_eq!(tokens.as_deref(), Some("100"));
    // It used more than it reserved: the bucket goes into debt and nothing fits until it is paid off.
    b.settle(0, 1_500);
    let r = adm.admit("t", &chat("k", 1)).unwrap_err();
    let Rejection::Rate { retry_after_ns, .. } = r else {
        panic!("expected a rate rejection");
    };
    assert_eq!(retry_after_ns, 36_060 * MS);
    clock.advance(Duration::from_nanos(retry_after_ns));
    assert!(adm.admit("t", &chat("k", 1)).is_ok());
    // A request larger than the whole limit can never fit: 400, not a retry loop.
    let huge = adm.admit("t", &chat("k", 1_001)).unwrap_err();
    assert_eq!(
        crate::error::ApiError::from(&huge).status(),
        http::StatusCode::BAD_REQUEST
    );
}

fn price(input: u64, output: u64) -> Price {
    Price {
        input_micro_usd_per_mtok: input,
        output_micro_usd_per_mtok: output,
    }
}

fn ask(prompt: u64, max: Option<u32>, price: Price) -> BudgetAsk {
    BudgetAsk {
        prompt_tokens: prompt,
        requested_output: max,
        default_output: 4096,
        price,
        generates: true,
        choices: 1,
        extra_output_tokens: 0,
        unbounded: false,
    }
}

#[test]
fn concurrent_reservations_never_overshoot_the_cap() {
    let (_clock, adm) = setup(noon());
    // Each request: 100 prompt tokens at $1/Mtok + 100 output tokens at $2/Mtok = 300 micro-USD.
    let cost = 300;
    let k = 137;
    adm.set_budget(
        "t",
        None,
        BudgetSet {
            daily_micro_usd: Some(k * cost),
            monthly_micro_usd: None,
        },
    );
    let adm = Arc::new(adm);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let adm = adm.clone();
            std::thread::spawn(move || {
                let mut admitted = Vec::new();
                for _ in 0..125 {
                    let ticket = adm.admit("t", &chat("k", 0)).unwrap();
                    match ticket.reserve_budget(&ask(100, Some(100), price(1_000_000, 2_000_000))) {
                        Ok(hold) => {
                            assert_eq!(hold.micro_usd, cost);
                            assert_eq!(hold.max_output, None, "exact fits are not clamped");
                            admitted.push(ticket);
                        }
                        Err(r) => assert_eq!(r.reason(), "budget"),
                    }
                }
                admitted
            })
        })
        .collect();
    let admitted: Vec<Ticket> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(
        admitted.len() as u64,
        k,
        "1,000 concurrent requests, exactly K admitted"
    );
    for t in &admitted {
        t.settle(cost, 200);
    }
    let view = adm.budget_view("t", None);
    assert_eq!(view[0].spent_micro_usd, k * cost);
    assert_eq!(view[0].reserved_micro_usd, 0);
    assert_eq!(view[0].remaining_micro_usd, Some(0));
    // Exhausted: even a request that would cost nothing is refused.
    let t = adm.admit("t", &chat("k", 0)).unwrap();
    assert!(t.reserve_budget(&ask(0, Some(1), price(0, 0))).is_err());
}

#[test]
fn every_choice_and_the_prediction_count_against_the_cap() {
    let (_clock, adm) = setup(noon());
    adm.set_budget(
        "t",
        None,
        BudgetSet {
            daily_micro_usd: Some(1_000),
            monthly_micro_usd: None,
        },
    );
    let p = price(1_000_000, 4_000_000); // $1 in, $4 out per Mtok
    let t = adm.admit("t", &chat("k", 0)).unwrap();
    // n = 128, max_tokens = 100 would cost 100 + 128 * 100 * 4 = 51,300. The 900 left after the prompt pay
    // for 225 output tokens: 1 per choice.
    let many = BudgetAsk {
        choices: 128,
        ..ask(100, Some(100), p)
    };
    let hold = t.reserve_budget(&many).unwrap();
    assert_eq!(
        hold,
        BudgetHold {
            micro_usd: 100 + 128 * 4,
            max_output: Some(1),
            capped: true
        }
    );
    t.settle(0, 0);
    // A prediction of 300 tokens is billed at the output price first: 100 + 1,200 is more than the cap.
    let t = adm.admit("t", &chat("k", 0)).unwrap();
    let predicted = BudgetAsk {
        extra_output_tokens: 300,
        ..ask(100, Some(10), p)
    };
    assert_eq!(t.reserve_budget(&predicted).unwrap_err().reason(), "budget");
    // 300 choices cannot get one token each.
    let t = adm.admit("t", &chat("k", 0)).unwrap();
    let too_many = BudgetAsk {
        choices: 300,
        ..ask(100, Some(10), p)
    };
    assert_eq!(t.reserve_budget(&too_many).unwrap_err().reason(), "budget");
    assert_eq!(
        adm.remaining_budget("t", "k"),
        Some(1_000),
        "nothing was held"
    );
}

#[test]
fn content_without_a_bound_is_refused_under_a_cap_or_a_token_limit() {
    let (_clock, adm) = setup(noon());
    let p = price(1_000_000, 1_000_000);
    let unbounded = BudgetAsk {
        unbounded: true,
        ..ask(100, Some(10), p)
    };
    let t = adm.admit("t", &chat("k", 0)).unwrap();
    assert!(
        !t.reserve_budget(&unbounded).unwrap().capped,
        "without a cap nothing needs the bound"
    );
    adm.set_budget(
        "t",
        Some("k"),
        BudgetSet {
            daily_micro_usd: Some(1_000_000),
            monthly_micro_usd: None,
        },
    );
    let t = adm.admit("t", &chat("k", 0)).unwrap();
    assert!(matches!(
        t.reserve_budget(&unbounded).unwrap_err(),
        Rejection::Unbounded {
            scope: "key",
            limit: "spend cap"
        }
    ));
    adm.set_limits(
        "t",
        &Scope::Tenant,
        LimitSet {
            tokens_per_minute: Some(1_000_000),
            ..LimitSet::default()
        },
    );
    let demand = Demand {
        unbounded: true,
        ..chat("k2", 10)
    };
    assert!(matches!(
        adm.admit("t", &demand).unwrap_err(),
        Rejection::Unbounded {
            scope: "tenant",
            limit: "token rate limit"
        }
    ));
    assert!(adm.admit("t", &chat("k2", 10)).is_ok());
}

#[test]
fn max_tokens_is_clamped_to_what_the_budget_allows() {
    let (_clock, adm) = setup(noon());
    adm.set_budget(
        "t",
        Some("k"),
        BudgetSet {
            daily_micro_usd: None,
            monthly_micro_usd: Some(1_000),
        },
    );
    let p = price(1_000_000, 10_000_000); // $1 in, $10 out per Mtok
    let t = adm.admit("t", &chat("k", 0)).unwrap();
    // 200 prompt tokens cost 200; 800 are left: 80 output tokens.
    let hold = t.reserve_budget(&ask(200, Some(500), p)).unwrap();
    assert_eq!(
        hold,
        BudgetHold {
            micro_usd: 1_000,
            max_output: Some(80),
            capped: true
        }
    );
    drop(t); // unsettled: charged the whole reservation
    assert_eq!(adm.remaining_budget("t", "k"), Some(0));
    let other = adm.admit("t", &chat("k2", 0)).unwrap();
    assert!(
        !other
            .reserve_budget(&ask(200, Some(500), p))
            .unwrap()
            .capped,
        "the cap is the key's"
    );

    // No max_tokens from the client: the default output cap is set, clamped if needed.
    adm.set_budget(
        "t",
        Some("k3"),
        BudgetSet {
            daily_micro_usd: Some(1_000_000),
            monthly_micro_usd: None,
        },
    );
    let t = adm.admit("t", &chat("k3", 0)).unwrap();
    let hold = t.reserve_budget(&ask(10, None, p)).unwrap();
    assert_eq!(hold.max_output, Some(4096));
    t.settle(0, 0);
    // A prompt the budget cannot cover is refused with the numbers.
    let t = adm.admit("t", &chat("k3", 0)).unwrap();
    let r = t.reserve_budget(&ask(2_000_000, None, p)).unwrap_err();
    let e = crate::error::ApiError::from(&r);
    assert_eq!(e.status(), http::StatusCode::PAYMENT_REQUIRED);
    assert_eq!(e.code, crate::error::ErrorCode::BudgetExceeded);
    assert!(
        e.message.contains("key's daily budget has $1.000000 left"),
        "{}",
        e.message
    );
    assert!(
        e.message.contains("needs at least $2.000000"),
        "{}",
        e.message
    );
    assert!(e.message.contains("2026-11-24T00:00:00Z"), "{}", e.message);
}

#[test]
fn windows_roll_over_at_midnight_and_the_first_of_the_month_utc() {
    let start = days_from_civil(2026, 11, 30) * NS_PER_DAY + 23 * 3600 * NS_PER_SEC;
    let (clock, adm) = setup(start);
    adm.set_budget(
        "t",
        None,
        BudgetSet {
            daily_micro_usd: Some(1_000),
            monthly_micro_usd: Some(10_000),
        },
    );
    let spend = |micro| {
        let t = adm.admit("t", &chat("k", 0)).unwrap();
        t.reserve_budget(&ask(0, Some(1), price(0, 1))).unwrap();
        t.settle(micro, 0);
    };
    spend(1_000);
    assert_eq!(adm.remaining_budget("t", "k"), Some(0));
    // 23:59:59.999 is still the same day.
    clock.advance(Duration::from_millis(3_599_999));
    assert_eq!(adm.remaining_budget("t", "k"), Some(0));
    // Midnight UTC on December 1st: a new day and a new month.
    clock.advance(Duration::from_millis(1));
    assert_eq!(adm.remaining_budget("t", "k"), Some(1_000));
    let view = adm.budget_view("t", None);
    assert_eq!(view[0].resets_at, "2026-12-02T00:00:00Z");
    assert_eq!(view[1].resets_at, "2027-01-01T00:00:00Z");
    assert_eq!(view[1].spent_micro_usd, 0);
    spend(900);
    clock.advance(Duration::from_secs(86_400));
    let view = adm.budget_view("t", None);
    assert_eq!(
        (view[0].spent_micro_usd, view[1].spent_micro_usd),
        (0, 900),
        "the month keeps counting"
    );
    // A reservation made before midnight settles into the new day and still counts while in flight.
    clock.set(days_from_civil(2026, 12, 5) * NS_PER_DAY - 1);
    let t = adm.admit("t", &chat("k", 0)).unwrap();
    let hold = t
        .reserve_budget(&ask(0, Some(600), price(0, 1_000_000)))
        .unwrap();
    assert_eq!(hold.micro_usd, 600);
    clock.advance(Duration::from_nanos(1));
    assert_eq!(
        adm.remaining_budget("t", "k"),
        Some(400),
        "in-flight reservations carry into the new day"
    );
    t.settle(500, 0);
    assert_eq!(adm.budget_view("t", None)[0].spent_micro_usd, 500);
}

#[test]
fn spend_is_rebuilt_from_daily_totals() {
    let today = days_from_civil(2026, 11, 23);
    let (_clock, adm) = setup(noon());
    adm.set_budget(
        "t",
        None,
        BudgetSet {
            daily_micro_usd: Some(10_000),
            monthly_micro_usd: Some(100_000),
        },
    );
    adm.record_spend("t", "k", today, 4_000);
    adm.record_spend("t", "k2", today - 3, 20_000);
    adm.record_spend("t", "k", days_from_civil(2026, 10, 31), 50_000); // last month: ignored
    let view = adm.budget_view("t", Some("k"));
    assert_eq!(view[0].spent_micro_usd, 4_000);
    assert_eq!(view[1].spent_micro_usd, 24_000);
    assert_eq!(view[2].scope, "key");
    assert_eq!(view[3].spent_micro_usd, 4_000, "the key's own month");
    assert_eq!(adm.remaining_budget("t", "k"), Some(6_000));
}

#[test]
fn rejection_bodies_and_headers() {
    let (_clock, adm) = setup(noon());
    adm.set_limits(
        "t",
        &Scope::Key("k".to_owned()),
        LimitSet {
            requests_per_minute: Some(1),
            ..LimitSet::default()
        },
    );
    let ok = adm.admit("t", &chat("k", 0)).unwrap();
    let names: Vec<_> = crate::error::rate_headers(&ok.rates)
        .iter()
        .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            "x-ratelimit-limit-requests: 1",
            "x-ratelimit-remaining-requests: 0",
            "x-ratelimit-reset-requests: 1m0s"
        ]
    );
    let e = crate::error::ApiError::from(&adm.admit("t", &chat("k", 0)).unwrap_err());
    assert_eq!(e.status(), http::StatusCode::TOO_MANY_REQUESTS);
    let headers: Vec<_> = e
        .headers
        .iter()
        .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
        .collect();
    assert_eq!(
        headers,
        [
            "retry-after: 60",
            "x-ratelimit-limit-requests: 1",
            "x-ratelimit-remaining-requests: 0",
            "x-ratelimit-reset-requests: 1m0s"
        ]
    );
    let body: serde_json::Value = serde_json::from_slice(&e.body("req-1")).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error": {
            "message": "rate limit reached: the key allows 1 requests per minute; retry in 60 s (request id req-1)",
            "type": "rate_limit_error",
            "code": "rate_limited",
            "param": null,
        }})
    );
}

#[test]
fn cost_is_exact_and_rounds_up() {
    let price = price(100_000, 400_000); // $0.10 and $0.40 per Mtok
    let usage = Usage {
        prompt_tokens: 1_000_000,
        completion_tokens: 10,
    };
    assert_eq!(cost_micro_usd(usage, price), 100_000 + 4);
    let one = Usage {
        prompt_tokens: 1,
        completion_tokens: 0,
    };
    assert_eq!(
        cost_micro_usd(one, price),
        1,
        "a fraction of a micro-dollar rounds up"
    );
    assert_eq!(cost_micro_usd(Usage::default(), price), 0);
}

/// A capped ticket for key `key` reserving `worst` micro-USD (100 prompt tokens at $1/Mtok and output tokens
/// at $1/Mtok: 100 + `worst - 100` tokens).
fn reserved(adm: &Admission, key: &str, worst: u64) -> Ticket {
    let ticket = adm.admit("t", &chat(key, 0)).unwrap();
    let out = u32::try_from(worst - 100).unwrap();
    let hold = ticket
        .reserve_budget(&ask(100, Some(out), price(1_000_000, 1_000_000)))
        .unwrap();
    assert_eq!((hold.micro_usd, hold.capped), (worst, true));
    ticket
}

/// Admission with a daily cap on tenant `t`.
fn capped(daily: u64) -> Admission {
    let (_clock, adm) = setup(noon());
    adm.set_budget(
        "t",
        None,
        BudgetSet {
            daily_micro_usd: Some(daily),
            monthly_micro_usd: None,
        },
    );
    adm
}

/// The raise `ticket` must send before its cover holds it.
fn raise_of(ticket: &Ticket) -> cover::CoverRaise {
    match ticket.cover() {
        cover::CoverStep::Raise(raise) => raise,
        other => panic!("expected a raise, got {other:?}"),
    }
}

#[test]
fn a_cover_is_raised_once_with_a_margin_and_then_holds_requests_without_a_write() {
    use cover::{CoverStep, MIN_REQUESTS};
    let adm = capped(1_000_000);
    let first = reserved(&adm, "k", 300);
    // An empty cover is raised first: by what is in flight (300) plus a margin of MIN_REQUESTS requests.
    let raise = raise_of(&first);
    assert_eq!(raise.row().micro_usd, 300 + MIN_REQUESTS * 300);
    assert_eq!(
        (raise.row().key_id.as_str(), raise.row().endpoint.as_str()),
        ("k", "chat")
    );
    assert_eq!(
        first.covered_micro_usd(),
        0,
        "not held before the raise lands"
    );
    // A second request while the raise is on its way waits for it rather than raising again.
    let second = reserved(&adm, "k", 300);
    let CoverStep::Wait(done) = second.cover() else {
        panic!("one raise at a time");
    };
    assert!(!done.has_changed().unwrap());
    raise.landed();
    assert!(done.has_changed().is_err(), "the waiters are woken");
    for t in [&first, &second] {
        assert!(matches!(t.cover(), CoverStep::Covered(None)));
        assert_eq!(t.covered_micro_usd(), 300);
    }
    // 2,700 durable, 600 held: more fit; the fourth leaves 900, less than half a margin (2,400), so it raises
    // ahead while nobody waits.
    let more: Vec<Ticket> = (0..4).map(|_| reserved(&adm, "k", 300)).collect();
    for t in &more[..3] {
        assert!(matches!(t.cover(), CoverStep::Covered(None)));
    }
    let CoverStep::Covered(Some(ahead)) = more[3].cover() else {
        panic!("a cover running low is raised ahead");
    };
    // In flight 1,800: raised to 1,800 + 2,400 from 2,700.
    assert_eq!(ahead.row().micro_usd, 1_800 + MIN_REQUESTS * 300 - 2_700);
    // While it is on its way, a request that fits does not raise again.
    let extra = reserved(&adm, "k", 300);
    assert!(matches!(extra.cover(), CoverStep::Covered(None)));
    ahead.landed();
    // Settling lowers memory's view of the cover by the reservation: with all seven settled, 2,100 of 4,200
    // is left, and the next request fits without a raise.
    for t in more.iter().chain([&first, &second, &extra]) {
        t.settle(200, 0);
    }
    let next = reserved(&adm, "k", 300);
    assert!(matches!(next.cover(), CoverStep::Covered(None)));
}

#[test]
fn a_raise_that_fails_leaves_the_cover_as_it_was_and_the_next_request_raises() {
    use cover::CoverStep;
    let adm = capped(1_000_000);
    let first = reserved(&adm, "k", 300);
    let second = reserved(&adm, "k", 300);
    let raise = raise_of(&first);
    let CoverStep::Wait(done) = second.cover() else {
        panic!("wait for it");
    };
    drop(raise); // the write failed
    assert!(done.has_changed().is_err());
    // Nothing was covered, so the waiter raises again, for both requests in flight (the first still waits
    // for its request's answer).
    let again = raise_of(&second);
    assert_eq!(again.row().micro_usd, 600 + 2_400);
    // A waiting ticket that goes away no longer counts.
    drop(first);
    again.landed();
    assert!(matches!(second.cover(), CoverStep::Covered(None)));
    assert_eq!(second.covered_micro_usd(), 300);
}

#[test]
fn covers_stay_within_what_the_caps_leave_across_keys() {
    use cover::CoverStep;
    let adm = capped(1_000);
    let a = reserved(&adm, "a", 300);
    let raise = raise_of(&a);
    assert_eq!(raise.row().micro_usd, 1_000, "the margin stops at the cap");
    assert!(raise.lower().is_empty());
    raise.landed();
    assert!(matches!(a.cover(), CoverStep::Covered(None)));
    // Key b needs a cover of its own, but key a's holds all the cap leaves: b takes a's slack (700) back in
    // its raise's transaction, so the covers together never hold more than the cap.
    let b = reserved(&adm, "b", 300);
    let raise = raise_of(&b);
    assert_eq!(
        (raise.row().key_id.as_str(), raise.row().micro_usd),
        ("b", 700)
    );
    let lowered = raise.lower();
    assert_eq!(lowered.len(), 1);
    assert_eq!(
        (lowered[0].key_id.as_str(), lowered[0].micro_usd),
        ("a", 700)
    );
    raise.landed();
    assert!(matches!(b.cover(), CoverStep::Covered(None)));
    assert_eq!(a.covered_micro_usd(), 300, "a's own request stays covered");
    // Spent money leaves the room too: with 300 spent and b's 700, a new request of a's waits for a raise
    // that can take back only b's slack (400).
    a.settle(300, 0);
    let a2 = reserved(&adm, "a", 300);
    // a's cover was emptied by its settle.
    let raise = raise_of(&a2);
    assert_eq!(raise.row().micro_usd, 400);
    assert_eq!(raise.lower()[0].micro_usd, 400);
}
