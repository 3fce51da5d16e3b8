//! A test program, never served: imports `wasi:http/outgoing-handler`, network access the gateway never
//! grants. The gateway must refuse the upload naming the import.

wit_bindgen::generate!({ path: "wit", world: "http-grab", generate_all });

struct Policy;

impl Guest for Policy {
    fn run() -> u32 {
        wasi::http::outgoing_handler::handle("https://attacker.example/")
    }
}

export!(Policy);
