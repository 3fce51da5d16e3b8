//! A test program, never served: a policy that misbehaves as the request asks (the `hostile` metadata value,
//! else the `model`), so the tests can check each defence (fuel and the backstop, memory limit, stack limit,
//! no WASI, capped output, host-checked routes).

wit_bindgen::generate!({ path: "../../wit", world: "any-policy" });

use exports::sluice::policy::auth::{Decision as AuthDecision, Guest as Auth};
use exports::sluice::policy::classifier::{Classification, Guest as Classifier};
use exports::sluice::policy::embedding_classifier::{
    Classification as EmbeddingClassification, Guest as EmbeddingClassifier,
};
use exports::sluice::policy::router::{Decision, Guest as Router, RoutingInput};
use sluice::policy::log::{Level, emit};
use sluice::policy::types::{Embedding, Label, PolicyError, Request, Tier};

#[inline(never)]
fn recurse(n: u64) -> u64 {
    if n == u64::MAX {
        return 0;
    }
    // The black box keeps the recursion from being turned into a loop.
    std::hint::black_box(recurse(n + 1)) + 1
}

fn meta<'a>(req: &'a Request, key: &str) -> Option<&'a str> {
    req.metadata
        .iter()
        .find(|l| l.key == key)
        .map(|l| l.value.as_str())
}

fn misbehave(req: &Request) -> Result<Vec<Label>, PolicyError> {
    match meta(req, "hostile").unwrap_or(req.model.as_str()) {
        "loop" => loop {
            std::hint::black_box(&req.model);
        },
        "alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "stack" => Ok(vec![Label {
            key: "depth".to_owned(),
            value: recurse(0).to_string(),
        }]),
        "file" => std::fs::read("/etc/passwd")
            .map(|b| {
                vec![Label {
                    key: "file".to_owned(),
                    value: String::from_utf8_lossy(&b).into_owned(),
                }]
            })
            .map_err(|e| PolicyError {
                message: e.to_string(),
            }),
        "env" => Ok(std::env::vars()
            .map(|(k, v)| Label { key: k, value: v })
            .collect()),
        "net" => std::net::TcpStream::connect("127.0.0.1:5432")
            .map(|_| Vec::new())
            .map_err(|e| PolicyError {
                message: e.to_string(),
            }),
        // 4 MB of labels: far past what the host copies out of an answer.
        "labels" => Ok((0..4_000)
            .map(|i| Label {
                key: format!("k{i}"),
                value: "x".repeat(1_000),
            })
            .collect()),
        // More labels than the host keeps, within what it copies.
        "labels-some" => Ok((0..200)
            .map(|i| Label {
                key: format!("k{i}"),
                value: "x".repeat(100),
            })
            .collect()),
        // Touches one byte of each 4 KiB page of 28 MiB, left uninitialised so that no fuel goes into
        // zeroing it: a few thousand instructions of fuel, and a page fault in the host for every page.
        "touch" => {
            const SIZE: usize = 28 << 20;
            let layout =
                std::alloc::Layout::from_size_align(SIZE, 4096).map_err(|e| PolicyError {
                    message: e.to_string(),
                })?;
            // SAFETY: the layout has a non-zero size; the pointer is checked, written within its size
            // and never read.
            let pages = unsafe { std::alloc::alloc(layout) };
            if pages.is_null() {
                return Err(PolicyError {
                    message: "no memory".to_owned(),
                });
            }
            for offset in (0..SIZE).step_by(4096) {
                // SAFETY: `offset < SIZE`, inside the allocation.
                unsafe { pages.add(offset).write_volatile(1) };
            }
            Ok(Vec::new())
        }
        "log" => {
            for _ in 0..1_000 {
                emit(Level::Info, &"y".repeat(10_000));
            }
            Ok(Vec::new())
        }
        // One log line past what the host copies out of a policy.
        "log-huge" => {
            emit(Level::Info, &"h".repeat(1 << 20));
            Ok(Vec::new())
        }
        // Host calls without end: the work happens in the host, where no Wasm fuel burns.
        "log-flood" => {
            let line = "z".repeat(64 << 10);
            loop {
                emit(Level::Info, &line);
            }
        }
        "log-spin" => loop {
            emit(Level::Debug, "");
        },
        "error" => Err(PolicyError {
            message: "refusing on purpose".to_owned(),
        }),
        "panic" => panic!("a policy bug"),
        // Legal but heavy: a good part of the default deadline's fuel of real work, then an answer.
        "burn" => {
            let mut x = 0u64;
            for i in 0..300_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            Ok(vec![Label {
                key: "burned".to_owned(),
                value: (x % 10).to_string(),
            }])
        }
        // The cheapest loop there is: one branch, burning far less fuel per nanosecond than real work.
        "spin" =>
        {
            #[allow(clippy::empty_loop)]
            loop {}
        }
        _ => Ok(Vec::new()),
    }
}

struct Hostile;

impl Auth for Hostile {
    fn authorize(req: Request) -> Result<AuthDecision, PolicyError> {
        if meta(&req, "hostile") == Some("deny") {
            return Ok(AuthDecision::Deny(
                "denied by the tenant's policy".to_owned(),
            ));
        }
        misbehave(&req).map(AuthDecision::Allow)
    }
}

impl Classifier for Hostile {
    fn classify(req: Request) -> Result<Classification, PolicyError> {
        let labels = misbehave(&req)?;
        Ok(Classification {
            tier: Tier::Simple,
            score: 0.0,
            labels,
        })
    }
}

/// The classify slot the gateway calls (it prefers this export): misbehaves the same way.
impl EmbeddingClassifier for Hostile {
    fn classify(
        req: Request,
        _: Option<Embedding>,
    ) -> Result<EmbeddingClassification, PolicyError> {
        let c = <Hostile as Classifier>::classify(req)?;
        Ok(EmbeddingClassification {
            tier: c.tier,
            score: c.score,
            labels: c.labels,
        })
    }
}

impl Router for Hostile {
    fn route(input: RoutingInput) -> Result<Decision, PolicyError> {
        misbehave(&input.req)?;
        // `route-to`: exactly that name (in the catalog or not); otherwise one that does not exist.
        let name = meta(&input.req, "route-to").unwrap_or("no-such-deployment");
        Ok(Decision::Route(vec![name.to_owned()]))
    }
}

export!(Hostile);
