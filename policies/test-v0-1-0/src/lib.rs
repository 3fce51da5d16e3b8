//! A test program, never served: a classifier built with raw `wit-bindgen` against a frozen copy of the
//! policy contract at `sluice:policy@0.1.0` (in `wit/`), as a tenant's component from before 0.1.1 is. The
//! gateway must still accept and run it. It logs through the 0.1.0 `log` import, and calls a request
//! complex when its last message says "hard".

wit_bindgen::generate!({ path: "wit", world: "classifier-policy" });

use exports::sluice::policy::classifier::{Classification, Guest};
use sluice::policy::log::{Level, emit};
use sluice::policy::types::{Label, PolicyError, Request, Tier};

struct Policy;

impl Guest for Policy {
    fn classify(req: Request) -> Result<Classification, PolicyError> {
        let hard = req.messages.last().is_some_and(|m| m.text.contains("hard"));
        emit(Level::Info, "classified by a 0.1.0 component");
        Ok(Classification {
            tier: if hard { Tier::Complex } else { Tier::Simple },
            score: if hard { 0.9 } else { 0.1 },
            labels: vec![Label {
                key: "contract".to_owned(),
                value: "0.1.0".to_owned(),
            }],
        })
    }
}

export!(Policy);
