//! A test program, never served: exports `sluice:policy/auth@0.1.0` with a function type the contract does
//! not have. The gateway must refuse the upload instead of letting every call trap.

wit_bindgen::generate!({ path: "wit", world: "bad-auth" });

struct Policy;

impl exports::sluice::policy::auth::Guest for Policy {
    fn authorize(n: u32) -> u32 {
        n
    }
}

export!(Policy);
