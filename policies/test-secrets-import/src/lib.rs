//! A test program, never served: imports `sluice:policy/secrets@0.1.0`, which the contract does not have.
//! The gateway must refuse the upload naming the import.

wit_bindgen::generate!({ path: "wit", world: "secrets-grab" });

struct Policy;

impl exports::sluice::policy::auth::Guest for Policy {
    fn authorize(n: u32) -> u32 {
        u32::try_from(sluice::policy::secrets::get("OPENAI_API_KEY").len()).unwrap_or(n)
    }
}

export!(Policy);
