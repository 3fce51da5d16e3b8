//! Policies over real HTTP: the built-ins behind `model: "auto"` (tier and deployment in the headers and the
//! audit entry), tenant uploads with their checks, versions, activation and rollback, the host's check of
//! every decision, the failure rule of each slot, quarantine, and isolation between tenants.

use serde_json::{Value, json};

use crate::support::TestGateway;

/// The test program that misbehaves on request (`policies/test-hostile`), built by the build script.
const HOSTILE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sluice_policy_test_hostile.wasm"));
/// Test components that break the contract: an `auth` export of the wrong type, and imports of an interface
/// the contract does not have and of `wasi:http`.
const BAD_EXPORT: &[u8] = include_bytes!(concat!(
    env!("OUT_DIR"),
    "/sluice_policy_test_bad_export.wasm"
));
const SECRETS_IMPORT: &[u8] = include_bytes!(concat!(
    env!("OUT_DIR"),
    "/sluice_policy_test_secrets_import.wasm"
));
const HTTP_IMPORT: &[u8] = include_bytes!(concat!(
    env!("OUT_DIR"),
    "/sluice_policy_test_http_import.wasm"
));

const ROUTING: &str = r#"
[[providers]]
name = "fake"
kind = "fake"

[[deployments]]
name = "fake-small"
provider = "fake"
model = "small-1"
tier = "simple"
region = "eu"
price = { input_per_mtok = 0.10, output_per_mtok = 0.40 }

[[deployments]]
name = "fake-large"
provider = "fake"
model = "large-1"
tier = "complex"
region = "eu"
price = { input_per_mtok = 2.50, output_per_mtok = 10.00 }
"#;

const HARD: &str = "Prove that the integral of x^2 from 0 to 3 equals 9, step by step. Then write a Rust \
    function `fn integrate(f: impl Fn(f64) -> f64, a: f64, b: f64) -> f64` that must use exactly 1000 \
    trapezoids, and do not use any crate. Format the answer as Markdown with ``` code blocks.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_sends_simple_and_complex_prompts_to_different_deployments() {
    let gw = TestGateway::start(ROUTING).await;
    let (tenant, _, key) = gw.tenant_key("acme").await;
    let ask =
        |text: &str| json!({"model": "auto", "messages": [{"role": "user", "content": text}]});
    let simple = gw
        .post(
            "/v1/chat/completions",
            &key,
            ask("What is the capital of France?"),
        )
        .await;
    assert_eq!(simple.status(), 200);
    assert_eq!(simple.headers()["x-sluice-deployment"], "fake-small");
    assert_eq!(simple.headers()["x-sluice-tier"], "simple");
    let complex = gw.post("/v1/chat/completions", &key, ask(HARD)).await;
    assert_eq!(complex.status(), 200);
    assert_eq!(complex.headers()["x-sluice-deployment"], "fake-large");
    assert_eq!(complex.headers()["x-sluice-tier"], "complex");

    // The entries say the Wasm policies decided.
    let admin: Value = gw
        .admin(
            reqwest::Method::POST,
            &format!("/admin/v1/tenants/{tenant}/keys"),
            Some(json!({"name": "a", "role": "admin"})),
        )
        .await
        .json()
        .await
        .unwrap();
    let entries: Value = gw
        .get_json(
            "/v1/audit/entries?limit=100",
            admin["key"].as_str().unwrap(),
        )
        .await;
    let chats: Vec<&Value> = entries["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["fields"])
        .filter(|f| f["endpoint"] == "chat")
        .collect();
    assert_eq!(chats.len(), 2);
    // Both decided by the built-in classifier and router, named by digest, without a fallback.
    for f in &chats {
        let trail = f["policy"].as_str().unwrap();
        assert!(
            trail.starts_with("classify=builtin:sha256:")
                && trail.contains(" route=builtin:sha256:")
                && !trail.contains('!'),
            "{trail}"
        );
    }
    assert_eq!(chats[1]["deployment"], "fake-large");

    // A named model is not re-routed.
    let named = gw
        .post(
            "/v1/chat/completions",
            &key,
            json!({"model": "fake-small", "messages": [{"role": "user", "content": HARD}]}),
        )
        .await;
    assert_eq!(named.headers()["x-sluice-deployment"], "fake-small");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_respects_a_region_in_the_metadata() {
    let routing = format!(
        "{ROUTING}\n[[deployments]]\nname = \"us-small\"\nprovider = \"fake\"\nmodel = \"s\"\ntier = \"simple\"\n\
         region = \"us\"\nprice = {{ input_per_mtok = 0.01, output_per_mtok = 0.01 }}\n"
    );
    let gw = TestGateway::start(&routing).await;
    let (_, _, key) = gw.tenant_key("acme").await;
    let body = json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]});
    let cheapest = gw.post("/v1/chat/completions", &key, body.clone()).await;
    assert_eq!(cheapest.headers()["x-sluice-deployment"], "us-small");
    let eu = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("x-sluice-meta-region", "eu")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(eu.status(), 200);
    assert_eq!(eu.headers()["x-sluice-deployment"], "fake-small");
}

/// A key of the given role for a tenant.
async fn key_with_role(gw: &TestGateway, tenant: &str, role: &str) -> String {
    let k: Value = gw
        .admin(
            reqwest::Method::POST,
            &format!("/admin/v1/tenants/{tenant}/keys"),
            Some(json!({"name": role, "role": role})),
        )
        .await
        .json()
        .await
        .unwrap();
    k["key"].as_str().unwrap().to_owned()
}

async fn upload(gw: &TestGateway, key: &str, slot: &str, bytes: Vec<u8>) -> reqwest::Response {
    gw.http
        .put(gw.url(&format!("/v1/policies/{slot}")))
        .bearer_auth(key)
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .unwrap()
}

async fn activate(gw: &TestGateway, key: &str, slot: &str, version: u32) -> reqwest::Response {
    gw.http
        .post(gw.url(&format!("/v1/policies/{slot}/activate")))
        .bearer_auth(key)
        .json(&json!({ "version": version }))
        .send()
        .await
        .unwrap()
}

/// Sets the tenant's policy deadline (`PUT /v1/policies/settings`).
async fn set_deadline(gw: &TestGateway, key: &str, ms: u64) -> reqwest::Response {
    gw.http
        .put(gw.url("/v1/policies/settings"))
        .bearer_auth(key)
        .json(&json!({ "deadline_ms": ms }))
        .send()
        .await
        .unwrap()
}

async fn chat(
    gw: &TestGateway,
    key: &str,
    model: &str,
    meta: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hello"}]}));
    for (k, v) in meta {
        req = req.header(format!("x-sluice-meta-{k}"), *v);
    }
    req.send().await.unwrap()
}

async fn error_message(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// The policy trail of the tenant's chat entries, oldest first.
async fn trails(gw: &TestGateway, admin_key: &str) -> Vec<String> {
    let entries: Value = gw.get_json("/v1/audit/entries?limit=1000", admin_key).await;
    entries["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["fields"])
        .filter(|f| f["endpoint"] == "chat")
        .map(|f| f["policy"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_checked_before_anything_is_stored() {
    let gw = TestGateway::start(ROUTING).await;
    uploads_are_checked(&gw).await;
}

/// `sluice serve`'s compiler: a child process of the binary, which answers as the in-process one does.
fn child_compiler(config: &mut sluice::Config) {
    config.policies.compiler =
        sluice::policy::compiler::Compiler::Process(env!("CARGO_BIN_EXE_sluice").into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compiler_process_refuses_the_same_uploads_and_its_output_runs() {
    let gw = TestGateway::start_changed(ROUTING, child_compiler).await;
    uploads_are_checked(&gw).await;
    let (admin, resp) = new_tenant_uploads_router(&gw, "beta").await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let resp = chat(&gw, &admin, "auto", &[]).await;
    assert_eq!(resp.status(), 200);
    let trails = trails(&gw, &admin).await;
    assert!(
        trails
            .iter()
            .any(|t| t.contains("route=sha256:") && !t.contains("route=builtin")),
        "the tenant's router, compiled by the child, decided: {trails:?}"
    );
}

/// The compiler process on its own, without the in-process fallback that would hide its failures: it
/// compiles code that loads and runs in the gateway's engine, and refuses bad input by its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compiler_process_answers_without_the_fallback() {
    use sluice::policy::compiler::{CompileError, compile_in_child};
    use sluice::policy::wasm::{Limits, PolicyFailure, Runtime, Slot};
    let runtime = Runtime::new(Limits::default()).unwrap();
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_sluice"));
    let timeout = std::time::Duration::from_secs(60);
    let compile = |bytes: &'static [u8]| {
        compile_in_child(
            exe,
            runtime.engine(),
            runtime.limits(),
            bytes,
            timeout,
            1 << 30,
        )
    };
    let router = compile(sluice::policy::builtin::ROUTER).await.unwrap();
    assert!(runtime.link(&router).unwrap().exports(Slot::Route));
    assert!(matches!(
        compile(b"#!/bin/sh\n").await,
        Err(CompileError::Refused(PolicyFailure::NotWasm))
    ));
    assert!(matches!(
        compile(b"\0asm\x01\0\0\0").await,
        Err(CompileError::Refused(PolicyFailure::CoreModule))
    ));
    let broken = b"\0asm\x0d\0\x01\0\xff\xff\xff\xff";
    assert!(matches!(
        compile(broken).await,
        Err(CompileError::Refused(PolicyFailure::NotAComponent(reason))) if !reason.is_empty()
    ));
}

/// A gateway whose compiler is a shell script (`script`, the body after `#!/bin/sh`), started on a
/// database whose built-ins a first start with the real compiler put in the artifact cache. `change` edits
/// the rest of the config.
async fn with_stand_in_compiler(
    name: &str,
    script: &str,
    change: impl FnOnce(&mut sluice::Config),
) -> TestGateway {
    let dir = TestGateway::start_changed(ROUTING, child_compiler)
        .await
        .stop_keep_dir()
        .await;
    let stand_in = dir.path().join(name);
    std::fs::write(&stand_in, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(
        &stand_in,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    TestGateway::start_in_with(dir, |config| {
        config.policies.compiler = sluice::policy::compiler::Compiler::Process(stand_in);
        change(config);
    })
    .await
}

/// A compilation past `policies.compile_timeout` is refused, and its compiler process is killed rather than
/// left running. The compiler here is a stand-in that never answers (`sleep`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compile_past_its_timeout_is_refused_and_its_process_killed() {
    let gw = with_stand_in_compiler("never-answers", "exec sleep 60", |config| {
        config.policies.compile_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let (admin, resp) = new_tenant_uploads_router(&gw, "acme").await;
    let (status, _, message) = error_message(resp).await;
    assert_eq!(status, 400);
    assert!(message.contains("compilation took longer"), "{message}");
    // Bytes compiled before (the built-in router, at the first start) are not compiled again: the upload
    // does not need the compiler that never answers.
    let resp = upload(
        &gw,
        &admin,
        "route",
        sluice::policy::builtin::ROUTER.to_vec(),
    )
    .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    // The stand-in would sleep a minute: it must be gone (a killed child not yet reaped has no command line).
    let mine = std::process::id().to_string();
    let sleepers = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| {
                let dir = e.ok()?.path();
                let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
                let parent = stat
                    .rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(1)?
                    .to_owned();
                let cmdline = std::fs::read(dir.join("cmdline")).ok()?;
                (parent == mine && cmdline.starts_with(b"sleep\0")).then_some(dir)
            })
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sleepers() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the compiler process outlived its timeout"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A compiler process that dies of a signal (its heap or CPU limit, the OOM killer) refused the upload: 400,
/// and the gateway never compiles the same bytes itself. Shown with a stand-in that kills itself, and with the
/// real compiler held to a heap far too small for Cranelift.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compiler_killed_for_its_memory_refuses_the_upload_and_the_gateway_does_not_compile_it() {
    let gw = with_stand_in_compiler("killed", "kill -9 $$", |_| {}).await;
    let (admin, resp) = new_tenant_uploads_router(&gw, "acme").await;
    let (status, _, message) = error_message(resp).await;
    assert_eq!(status, 400, "{message}");
    assert!(message.contains("killed by signal 9"), "{message}");
    let view: Value = gw.get_json("/v1/policies", &admin).await;
    assert_eq!(view["slots"]["route"]["source"], "builtin", "{view}");

    let gw = TestGateway::start_changed(ROUTING, |config| {
        child_compiler(config);
        config.policies.compile_memory_bytes = 8 << 20;
    })
    .await;
    let (_, resp) = new_tenant_uploads_router(&gw, "beta").await;
    let (status, _, message) = error_message(resp).await;
    assert_eq!(status, 400, "{message}");
    assert!(message.contains("compiler"), "{message}");
}

/// One tenant's burst of uploads compiles one at a time, behind itself: another tenant's upload does not
/// wait for the whole burst. The stand-in compiler takes 300 ms and then dies, so every upload is refused;
/// what the test reads is the order the answers come in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_burst_of_uploads_does_not_hold_up_another_tenants() {
    let gw =
        std::sync::Arc::new(with_stand_in_compiler("slow", "sleep 0.3\nkill -9 $$", |_| {}).await);
    let (a, _, _) = gw.tenant_key("bursty").await;
    let a_admin = key_with_role(&gw, &a, "admin").await;
    let (b, _, _) = gw.tenant_key("quiet").await;
    let b_admin = key_with_role(&gw, &b, "admin").await;
    let done = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let send = |who: &'static str, key: String| {
        let (gw, done) = (gw.clone(), done.clone());
        tokio::spawn(async move {
            let resp = upload(&gw, &key, "route", unique(sluice::policy::builtin::ROUTER)).await;
            assert_eq!(resp.status(), 400);
            done.lock().unwrap().push(who);
        })
    };
    let mut tasks: Vec<_> = (0..5).map(|_| send("a", a_admin.clone())).collect();
    // B comes once A's burst is queued.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    tasks.push(send("b", b_admin.clone()));
    for t in tasks {
        t.await.unwrap();
    }
    let order = done.lock().unwrap().clone();
    let b_at = order.iter().position(|w| *w == "b").unwrap();
    assert!(b_at <= 2, "B waited behind A's burst: {order:?}");
}

/// When the compiler process cannot start (say the binary was replaced by an upgrade), the gateway compiles
/// in-process rather than refusing every upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compiler_that_cannot_start_leaves_compiling_to_the_gateway() {
    let gw = TestGateway::start_changed(ROUTING, |config| {
        config.policies.compiler =
            sluice::policy::compiler::Compiler::Process("/nonexistent/sluice".into());
    })
    .await;
    let (_, resp) = new_tenant_uploads_router(&gw, "acme").await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

/// A new tenant's admin key, and the answer to its upload of the built-in router as its own.
async fn new_tenant_uploads_router(gw: &TestGateway, name: &str) -> (String, reqwest::Response) {
    let (tenant, _, _) = gw.tenant_key(name).await;
    let admin = key_with_role(gw, &tenant, "admin").await;
    let resp = upload(gw, &admin, "route", unique(sluice::policy::builtin::ROUTER)).await;
    (admin, resp)
}

/// A component with bytes no test uploaded before (a custom section holding a fresh nonce), so the gateway
/// compiles it instead of finding its digest compiled already.
fn unique(component: &[u8]) -> Vec<u8> {
    let nonce = format!(
        "{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
    );
    let mut section = vec![4u8];
    section.extend_from_slice(b"test");
    section.extend_from_slice(nonce.as_bytes());
    let mut out = component.to_vec();
    out.push(0); // a custom section
    out.push(u8::try_from(section.len()).unwrap()); // its size (under 128: one LEB128 byte)
    out.extend_from_slice(&section);
    out
}

/// Every refusal of a bad upload, with its message; nothing is stored.
async fn uploads_are_checked(gw: &TestGateway) {
    let (tenant, _, member) = gw.tenant_key("acme").await;
    let admin = key_with_role(gw, &tenant, "admin").await;

    // Members may not upload.
    let (status, code, _) =
        error_message(upload(gw, &member, "route", HOSTILE.to_vec()).await).await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    // The wrong content type.
    let resp = gw
        .http
        .put(gw.url("/v1/policies/route"))
        .bearer_auth(&admin)
        .header("content-type", "application/octet-stream")
        .body(HOSTILE.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(error_message(resp).await.0, 415);
    // Not Wasm at all.
    let (status, code, message) =
        error_message(upload(gw, &admin, "route", b"#!/bin/sh\necho hi\n".to_vec()).await).await;
    assert_eq!((status, code.as_str()), (400, "invalid_request"));
    assert!(message.contains("not a WebAssembly file"), "{message}");
    // A core module (the smallest valid one), not a component.
    let core = b"\0asm\x01\0\0\0".to_vec();
    let (status, _, message) = error_message(upload(gw, &admin, "route", core).await).await;
    assert_eq!(status, 400);
    assert!(message.contains("core WebAssembly module"), "{message}");
    // A component header with garbage after it.
    let mut broken = b"\0asm\x0d\0\x01\0".to_vec();
    broken.extend_from_slice(&[0xff; 64]);
    let (status, _, message) = error_message(upload(gw, &admin, "route", broken).await).await;
    assert_eq!(status, 400);
    assert!(message.contains("not a Wasm component"), "{message}");
    // A component for another world: the built-in classifier uploaded as a router.
    let (status, _, message) = error_message(
        upload(
            gw,
            &admin,
            "route",
            sluice::policy::builtin::CLASSIFIER.to_vec(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        message.contains("does not export the `route` slot"),
        "{message}"
    );
    // Uploads that break the contract in ways the bytes alone do not show: each is refused naming what is
    // wrong, instead of being stored and then trapping on every call.
    for (slot, component, expected) in [
        (
            "auth",
            BAD_EXPORT,
            "the `auth` export does not match the contract `sluice:policy@0.1.1`",
        ),
        (
            "auth",
            SECRETS_IMPORT,
            "imports `sluice:policy/secrets@0.1.0`, which the gateway does not grant",
        ),
        (
            "route",
            HTTP_IMPORT,
            "imports `wasi:http/outgoing-handler@0.3.0`, which the gateway does not grant",
        ),
    ] {
        let (status, code, message) =
            error_message(upload(gw, &admin, slot, component.to_vec()).await).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "invalid_request"),
            "{message}"
        );
        assert!(message.contains(expected), "{message}");
    }
    // Over the size cap (4 MiB by default): refused on the declared length, before any of the body is sent
    // (a raw socket, so the test sees the answer rather than the client's broken pipe).
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = tokio::net::TcpStream::connect(gw.base.trim_start_matches("http://"))
            .await
            .unwrap();
        let head = format!(
            "PUT /v1/policies/route HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {admin}\r\n\
             content-type: application/wasm\r\ncontent-length: {}\r\n\r\n",
            (4 << 20) + 1
        );
        sock.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        sock.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("payload_too_large"), "{answer}");
    }
    // An unknown slot.
    let (status, _, message) =
        error_message(upload(gw, &admin, "rank", HOSTILE.to_vec()).await).await;
    assert_eq!(status, 404);
    assert!(message.contains("auth, classify and route"), "{message}");

    // None of that stored anything: every slot is still the built-in.
    let view: Value = gw.get_json("/v1/policies", &admin).await;
    assert_eq!(view["versions"], json!([]));
    for slot in ["auth", "classify", "route"] {
        assert_eq!(view["slots"][slot]["source"], "builtin", "{view}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_activate_roll_back_and_survive_a_restart() {
    let gw = TestGateway::start(ROUTING).await;
    let (tenant, _, member) = gw.tenant_key("acme").await;
    let admin = key_with_role(&gw, &tenant, "admin").await;
    let router = sluice::policy::builtin::ROUTER.to_vec();

    // v1: the hostile program as the router. It names `route-to` (or a deployment that does not exist).
    let resp = upload(&gw, &admin, "route", HOSTILE.to_vec()).await;
    assert_eq!(resp.status(), 201);
    let v1: Value = resp.json().await.unwrap();
    assert_eq!(v1["version"], 1);
    let hostile_digest = v1["digest"].as_str().unwrap().to_owned();
    assert_eq!(hostile_digest, sluice::policy::digest_of(HOSTILE));
    let resp = chat(&gw, &member, "auto", &[("route-to", "fake-large")]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-deployment"], "fake-large");

    // v2: the built-in router's component, uploaded as the tenant's own.
    let v2: Value = upload(&gw, &admin, "route", router.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v2["version"], 2);
    let resp = chat(&gw, &member, "auto", &[("route-to", "fake-large")]).await;
    assert_eq!(resp.headers()["x-sluice-deployment"], "fake-small");

    // Activate v1 again, then roll back: v1 -> the built-in (nothing below v1).
    let resp = activate(&gw, &admin, "route", 1).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        chat(&gw, &member, "auto", &[("route-to", "fake-large")])
            .await
            .headers()["x-sluice-deployment"],
        "fake-large"
    );
    // An unknown version is 404 and changes nothing.
    let resp = activate(&gw, &admin, "route", 9).await;
    assert_eq!(resp.status(), 404);
    let view: Value = gw.get_json("/v1/policies", &admin).await;
    assert_eq!(view["slots"]["route"]["version"], 1);
    assert_eq!(view["versions"].as_array().unwrap().len(), 2);

    // Restart on the same database: the active version is still v1.
    let dir = gw.stop_keep_dir().await;
    let gw = TestGateway::start_in(dir).await;
    let resp = chat(&gw, &member, "auto", &[("route-to", "fake-large")]).await;
    assert_eq!(resp.headers()["x-sluice-deployment"], "fake-large");

    let resp = gw
        .http
        .post(gw.url("/v1/policies/route/rollback"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let view: Value = gw.get_json("/v1/policies", &admin).await;
    assert_eq!(view["slots"]["route"]["source"], "builtin", "{view}");
    assert_eq!(
        chat(&gw, &member, "auto", &[("route-to", "fake-large")])
            .await
            .headers()["x-sluice-deployment"],
        "fake-small"
    );

    // Every change is in the audit log, with the slot, the version and the digest.
    let entries: Value = gw.get_json("/v1/audit/entries?limit=1000", &admin).await;
    let subjects: Vec<String> = entries["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["fields"])
        .filter(|f| f["endpoint"].as_str().unwrap().starts_with("policies."))
        .map(|f| {
            format!(
                "{} {}",
                f["endpoint"].as_str().unwrap(),
                f["subject"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        subjects.contains(&format!(
            "policies.upload policy:route version=1 {hostile_digest}"
        )),
        "{subjects:?}"
    );
    assert!(
        subjects
            .iter()
            .any(|s| s.starts_with("policies.activate policy:route activate version=1"))
    );
    assert!(
        subjects
            .iter()
            .any(|s| s == "policies.rollback policy:route builtin"),
        "{subjects:?}"
    );
    // The chat entries name the tenant's router by digest while it decided.
    let trails = trails(&gw, &admin).await;
    assert!(
        trails[0].contains(&format!("route={hostile_digest}")),
        "{trails:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_checks_every_route_and_each_slot_fails_by_its_rule() {
    let routing = format!(
        "{ROUTING}\n[[deployments]]\nname = \"us-large\"\nprovider = \"fake\"\nmodel = \"l\"\ntier = \"complex\"\n\
         region = \"us\"\nprice = {{ input_per_mtok = 1.0, output_per_mtok = 1.0 }}\n"
    );
    let gw = TestGateway::start(&routing).await;
    let (tenant, _, member) = gw.tenant_key("acme").await;
    let admin = key_with_role(&gw, &tenant, "admin").await;
    // The operator keeps this tenant in the EU.
    let resp = gw
        .admin(
            reqwest::Method::PUT,
            &format!("/admin/v1/tenants/{tenant}/regions"),
            Some(json!({"allowed_regions": ["eu"]})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    // The catalog lists only what the tenant may be routed to.
    let models: serde_json::Value = gw.get_json("/v1/models", &member).await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&"us-large"), "{ids:?}");
    assert!(ids.contains(&"fake-small"), "{ids:?}");
    for slot in ["auth", "classify", "route"] {
        assert_eq!(
            upload(&gw, &admin, slot, HOSTILE.to_vec()).await.status(),
            201
        );
    }

    // A route outside the allowed regions, or to a deployment that does not exist: not taken; the built-in
    // router decides among the EU deployments.
    for target in ["us-large", "no-such-deployment"] {
        let resp = chat(&gw, &member, "auto", &[("route-to", target)]).await;
        assert_eq!(resp.status(), 200);
        let served = resp.headers()["x-sluice-deployment"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(served.starts_with("fake-"), "{target} -> {served}");
    }
    // A named model restricts the router to the deployments serving that name: naming another is dropped.
    let resp = chat(&gw, &member, "fake-small", &[("route-to", "fake-large")]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-deployment"], "fake-small");
    // A named model outside the regions is refused, not served.
    let (status, code, _) = error_message(chat(&gw, &member, "us-large", &[]).await).await;
    assert_eq!((status, code.as_str()), (403, "policy_denied"));
    // The auth slot decides: a denial is 403 with the policy's reason.
    let (status, code, message) =
        error_message(chat(&gw, &member, "auto", &[("hostile", "deny")]).await).await;
    assert_eq!((status, code.as_str()), (403, "policy_denied"));
    assert!(
        message.starts_with("denied by the tenant's policy"),
        "{message}"
    );

    // The tenant may lengthen its deadline up to the operator's maximum (50 ms by default), not beyond.
    let set = |ms: u64| {
        gw.http
            .put(gw.url("/v1/policies/settings"))
            .bearer_auth(&admin)
            .json(&json!({"deadline_ms": ms}))
            .send()
    };
    assert_eq!(set(51).await.unwrap().status(), 400);
    assert_eq!(set(50).await.unwrap().status(), 200);
    // More labels and log lines than the host keeps are capped, and the request is served.
    for mode in ["labels-some", "log"] {
        let resp = chat(&gw, &member, "auto", &[("hostile", mode)]).await;
        let status = resp.status();
        assert_eq!(status, 200, "{mode}: {}", resp.text().await.unwrap());
    }
    // Loops, runaway allocation, stack overflow, WASI reaches, errors and panics: auth fails closed, quickly,
    // each for its own reason (the version is re-activated after each, so no quarantine gets in the way).
    let expected = [
        ("loop", "timeout"),
        // Megabytes of labels: the host stops copying them at its limit.
        ("labels", "trap"),
        ("alloc", "trap"),
        ("stack", "trap"),
        ("file", "trap"),
        ("env", "trap"),
        ("net", "trap"),
        ("error", "error"),
        ("panic", "trap"),
    ];
    for (mode, reason) in expected {
        let started = std::time::Instant::now();
        let (status, code, _) =
            error_message(chat(&gw, &member, "auto", &[("hostile", mode)]).await).await;
        assert_eq!((status, code.as_str()), (403, "policy_denied"), "{mode}");
        // Liveness, not speed: a 5 ms deadline cannot hold a request for seconds.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{mode}"
        );
        let last = trails(&gw, &admin).await.pop().unwrap();
        assert!(
            last.starts_with("auth=sha256:") && last.ends_with(&format!("!{reason}")),
            "{mode}: {last}"
        );
        let resp = activate(&gw, &admin, "auth", 1).await;
        assert_eq!(resp.status(), 200);
    }
    let trails = trails(&gw, &admin).await;
    assert!(
        trails
            .iter()
            .any(|t| t.contains("route=sha256:") && t.contains("!invalid")),
        "{trails:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_policy_is_quarantined_and_never_touches_another_tenant() {
    let gw = TestGateway::start(ROUTING).await;
    let (bad_tenant, _, bad) = gw.tenant_key("bad").await;
    let (_, _, good) = gw.tenant_key("good").await;
    let bad_admin = key_with_role(&gw, &bad_tenant, "admin").await;
    assert_eq!(
        upload(&gw, &bad_admin, "classify", HOSTILE.to_vec())
            .await
            .status(),
        201
    );
    assert_eq!(
        upload(&gw, &bad_admin, "route", HOSTILE.to_vec())
            .await
            .status(),
        201
    );
    // A 50 ms deadline, so fuel rather than the backstop (an overload, which does not count) stops the loops
    // even on a machine busy with other tests.
    assert_eq!(set_deadline(&gw, &bad_admin, 50).await.status(), 200);

    // The bad tenant's policies loop on every request: each falls back to the built-ins and is answered,
    // while the other tenant's requests go through the built-ins untouched, interleaved.
    for _ in 0..6 {
        let resp = chat(&gw, &bad, "auto", &[("hostile", "loop")]).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-sluice-deployment"], "fake-small");
        let resp = chat(
            &gw,
            &good,
            "auto",
            &[("hostile", "loop"), ("route-to", "fake-large")],
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-sluice-deployment"], "fake-small");
    }
    // After five failures in a row (the default), the versions are quarantined: not run any more.
    let view: Value = gw.get_json("/v1/policies", &bad_admin).await;
    assert_eq!(view["slots"]["classify"]["quarantined"], true, "{view}");
    assert_eq!(view["slots"]["route"]["quarantined"], true, "{view}");
    let trails = trails(&gw, &bad_admin).await;
    assert!(trails.first().unwrap().contains("!timeout"), "{trails:?}");
    assert!(
        trails.last().unwrap().contains("!quarantined"),
        "{trails:?}"
    );

    // A new upload lifts the quarantine.
    assert_eq!(
        upload(&gw, &bad_admin, "route", HOSTILE.to_vec())
            .await
            .status(),
        201
    );
    let view: Value = gw.get_json("/v1/policies", &bad_admin).await;
    assert_eq!(view["slots"]["route"]["quarantined"], false, "{view}");
    assert_eq!(view["slots"]["route"]["version"], 2, "{view}");
    let resp = chat(&gw, &bad, "auto", &[("route-to", "fake-large")]).await;
    assert_eq!(resp.headers()["x-sluice-deployment"], "fake-large");
}

/// What `GET /v1/policies` says of the tenant's `auth` slot: (version, quarantined).
async fn auth_slot(gw: &TestGateway, admin_key: &str) -> (Value, Value) {
    let view: Value = gw.get_json("/v1/policies", admin_key).await;
    (
        view["slots"]["auth"]["version"].clone(),
        view["slots"]["auth"]["quarantined"].clone(),
    )
}

/// A tenant with the hostile program as its `auth` policy and a 50 ms deadline: a loop then needs a quarter
/// of a core to run out of fuel before the 200 ms backstop, which a machine busy with other tests gives.
async fn hostile_auth(gw: &TestGateway) -> (String, String) {
    let (tenant, _, member) = gw.tenant_key("acme").await;
    let admin = key_with_role(gw, &tenant, "admin").await;
    assert_eq!(
        upload(gw, &admin, "auth", HOSTILE.to_vec()).await.status(),
        201
    );
    assert_eq!(set_deadline(gw, &admin, 50).await.status(), 200);
    (member, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_policy_that_runs_out_of_fuel_is_denied_and_quarantined() {
    let gw = TestGateway::start(ROUTING).await;
    let (member, admin) = hostile_auth(&gw).await;
    // The loop's work is its own fault: each request is denied, and five in a row (the default
    // `quarantine_after`) quarantine the version.
    for i in 1..=5 {
        let (status, code, _) =
            error_message(chat(&gw, &member, "auto", &[("hostile", "loop")]).await).await;
        assert_eq!(
            (status, code.as_str()),
            (403, "policy_denied"),
            "request {i}"
        );
        let last = trails(&gw, &admin).await.pop().unwrap();
        assert!(last.ends_with("!timeout"), "request {i}: {last}");
    }
    assert_eq!(auth_slot(&gw, &admin).await, (json!(1), json!(true)));
    // Quarantined: denied without running, even a request the policy would allow.
    let (status, code, _) = error_message(chat(&gw, &member, "auto", &[]).await).await;
    assert_eq!((status, code.as_str()), (403, "policy_denied"));
    let last = trails(&gw, &admin).await.pop().unwrap();
    assert!(last.ends_with("!quarantined"), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_host_answers_503_and_quarantines_nothing() {
    // Fuel the loop cannot use up (2^40 per ms) and a CPU clock that stands still, so only the wall-clock
    // backstop stops it before it used any CPU: what an auth call starved of CPU looks like.
    let gw = TestGateway::start_changed(&format!("fuel_per_ms = 1099511627776\n{ROUTING}"), |c| {
        c.policies.cpu_clock = Some(|| std::time::Duration::ZERO);
    })
    .await;
    let (member, admin) = hostile_auth(&gw).await;
    // More than `quarantine_after` (5): each is 503 `unavailable`, retryable, and nothing is quarantined.
    for i in 1..=6 {
        let resp = chat(&gw, &member, "auto", &[("hostile", "loop")]).await;
        assert_eq!(resp.headers()["retry-after"], "1", "request {i}");
        let (status, code, message) = error_message(resp).await;
        assert_eq!((status, code.as_str()), (503, "unavailable"), "request {i}");
        assert!(
            message.starts_with("the gateway is temporarily unavailable (request id "),
            "{message}"
        );
        let last = trails(&gw, &admin).await.pop().unwrap();
        assert!(
            last.starts_with("auth=sha256:") && last.ends_with("!overloaded"),
            "request {i}: {last}"
        );
    }
    assert_eq!(auth_slot(&gw, &admin).await, (json!(1), json!(false)));
    // The policy still decides: a request it allows is served.
    assert_eq!(chat(&gw, &member, "auto", &[]).await.status(), 200);

    // An overload leaves the count of failures as it is, neither adding nor resetting: four errors, an
    // overload, and a fifth error quarantine the version.
    for _ in 0..4 {
        let (status, _, _) =
            error_message(chat(&gw, &member, "auto", &[("hostile", "error")]).await).await;
        assert_eq!(status, 403);
    }
    let resp = chat(&gw, &member, "auto", &[("hostile", "loop")]).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(auth_slot(&gw, &admin).await, (json!(1), json!(false)));
    let resp = chat(&gw, &member, "auto", &[("hostile", "error")]).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(auth_slot(&gw, &admin).await, (json!(1), json!(true)));
}

/// The example tenant router (`examples/custom-router`), built by the build script.
const EXAMPLE: &str = concat!(env!("OUT_DIR"), "/example_custom_router.wasm");

const EXAMPLE_ROUTING: &str = r#"
[[providers]]
name = "fake"
kind = "fake"

[[deployments]]
name = "eu-small"
provider = "fake"
model = "small"
tier = "simple"
region = "eu"
price = { input_per_mtok = 0.10, output_per_mtok = 0.40 }

[[deployments]]
name = "eu-code"
provider = "fake"
model = "code"
tier = "standard"
region = "eu"
price = { input_per_mtok = 0.50, output_per_mtok = 1.50 }

[[deployments]]
name = "eu-large"
provider = "fake"
model = "large"
tier = "complex"
region = "eu"
price = { input_per_mtok = 5.00, output_per_mtok = 15.00 }

[[deployments]]
name = "us-large"
provider = "fake"
model = "large-us"
tier = "complex"
region = "us"
price = { input_per_mtok = 2.50, output_per_mtok = 10.00 }
"#;

/// The README walk-through of `examples/custom-router`: `sluice policy test` offline, `sluice policy push`,
/// then requests whose headers show the new routing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_router_is_tested_pushed_and_routes_as_its_readme_says() {
    let example_dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/custom-router");
    let bin = env!("CARGO_BIN_EXE_sluice");
    let run = |args: Vec<String>, env: Vec<(String, String)>| {
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(bin)
                .args(&args)
                .envs(env)
                .output()
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    };
    // Offline, with the example's request (Rust code) and catalog.
    let (ok, out, err) = run(
        vec![
            "policy".into(),
            "test".into(),
            EXAMPLE.into(),
            "--slot".into(),
            "route".into(),
            "--request".into(),
            example_dir.join("request.json").display().to_string(),
            "--catalog".into(),
            example_dir.join("catalog.json").display().to_string(),
        ],
        Vec::new(),
    )
    .await
    .unwrap();
    assert!(ok, "{out}{err}");
    assert!(out.contains("\"eu-code\""), "{out}");
    assert!(!out.contains("us-large"), "{out}");
    assert!(out.contains("µs per call"), "{out}");
    assert!(
        out.contains("log: custom-router: code in the request"),
        "{out}"
    );

    // Pushed to a running gateway with an admin key of the tenant.
    let gw = TestGateway::start(EXAMPLE_ROUTING).await;
    let (tenant, _, member) = gw.tenant_key("acme").await;
    let admin = key_with_role(&gw, &tenant, "admin").await;
    let push = |key: &str| {
        let args = [
            "policy",
            "push",
            EXAMPLE,
            "--slot",
            "route",
            "--gateway",
            &gw.base,
        ];
        run(
            args.iter().map(|a| (*a).to_owned()).collect(),
            vec![("SLUICE_API_KEY".into(), key.to_owned())],
        )
    };
    let (ok, out, err) = push(&admin).await.unwrap();
    assert!(ok, "{out}{err}");
    let pushed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(pushed["version"], 1);
    // A member key may not push.
    let (ok, _, err) = push(&member).await.unwrap();
    assert!(!ok && err.contains("403"), "{err}");

    let ask = |text: &str, meta: Option<&str>| {
        let mut req = gw
            .http
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&member)
            .json(&json!({"model": "auto", "messages": [{"role": "user", "content": text}]}));
        if let Some(tier) = meta {
            req = req.header("x-sluice-meta-tier", tier);
        }
        req.send()
    };
    let code = ask(
        "Why does this fail?\n```rust\nfn main() { let x: u8 = 300; }\n```",
        None,
    )
    .await
    .unwrap();
    assert_eq!(code.headers()["x-sluice-deployment"], "eu-code");
    let premium = ask("What is the capital of France?", Some("premium"))
        .await
        .unwrap();
    assert_eq!(premium.headers()["x-sluice-deployment"], "eu-large");
    assert_eq!(premium.headers()["x-sluice-tier"], "complex");
    let plain = ask("What is the capital of France?", None).await.unwrap();
    assert_eq!(plain.headers()["x-sluice-deployment"], "eu-small");
    assert_eq!(plain.headers()["x-sluice-tier"], "simple");
    // Without the policy, the built-in router sends a premium-looking hard prompt to the best complex model
    // of any region; with it, never outside the EU.
    let hard = ask(HARD, None).await.unwrap();
    let served = hard.headers()["x-sluice-deployment"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(served.starts_with("eu-"), "{served}");
}

/// The example tenant auth policy (`examples/secret-guard`), built by the build script.
const SECRET_GUARD: &str = concat!(env!("OUT_DIR"), "/example_secret_guard.wasm");

/// `examples/secret-guard` pushed as a tenant's `auth` policy: a prompt carrying a private key is refused
/// before any upstream sees it, a member's oversized output cap is refused, and ordinary requests pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_auth_policy_refuses_credentials_and_lets_the_rest_through() {
    let gw = TestGateway::start(ROUTING).await;
    let (tenant, _, member) = gw.tenant_key("acme").await;
    let admin = key_with_role(&gw, &tenant, "admin").await;
    let bytes = std::fs::read(SECRET_GUARD).unwrap();
    assert_eq!(upload(&gw, &admin, "auth", bytes).await.status(), 201);
    let ask = |key: &str, content: &str, max_tokens: u32| {
        gw.http
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&json!({"model": "auto", "max_tokens": max_tokens,
                          "messages": [{"role": "user", "content": content}]}))
            .send()
    };
    assert_eq!(ask(&member, "hello", 100).await.unwrap().status(), 200);
    let pem = "fix my config:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----";
    let (status, code, message) = error_message(ask(&member, pem, 100).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (403, "policy_denied"));
    assert!(message.contains("a private key"), "{message}");
    assert!(
        !message.contains("MIIE"),
        "the reason never echoes the secret: {message}"
    );
    let (status, _, message) =
        error_message(ask(&member, "a long story", 8000).await.unwrap()).await;
    assert_eq!(status, 403);
    assert!(message.contains("4096"), "{message}");
    // Admins are not capped by this policy.
    assert_eq!(
        ask(&admin, "a long story", 8000).await.unwrap().status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_interleaved_with_successes_still_quarantine() {
    let gw = TestGateway::start(ROUTING).await;
    let (tenant, _, member) = gw.tenant_key("flaky").await;
    let admin = key_with_role(&gw, &tenant, "admin").await;
    assert_eq!(
        upload(&gw, &admin, "classify", HOSTILE.to_vec())
            .await
            .status(),
        201
    );
    // Every other call panics: never five failures in a row, but half of all calls fail.
    for _ in 0..12 {
        assert_eq!(
            chat(&gw, &member, "auto", &[("hostile", "panic")])
                .await
                .status(),
            200
        );
        assert_eq!(chat(&gw, &member, "auto", &[]).await.status(), 200);
    }
    let view: Value = gw.get_json("/v1/policies", &admin).await;
    assert_eq!(view["slots"]["classify"]["quarantined"], true, "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_versions_are_held_to_a_quota_and_inactive_ones_can_be_deleted() {
    let gw = TestGateway::start_changed(ROUTING, |c| c.policies.max_versions = 3).await;
    let (tenant, _, _) = gw.tenant_key("hoarder").await;
    let admin = key_with_role(&gw, &tenant, "admin").await;
    for _ in 0..3 {
        let resp = upload(&gw, &admin, "route", HOSTILE.to_vec()).await;
        assert_eq!(resp.status(), 201);
    }
    let (status, code, message) =
        error_message(upload(&gw, &admin, "route", HOSTILE.to_vec()).await).await;
    assert_eq!(
        (status, code.as_str()),
        (400, "invalid_request"),
        "{message}"
    );
    assert!(
        message.contains("3 policy versions, the most allowed"),
        "{message}"
    );
    let delete = |version: u32| {
        gw.http
            .delete(gw.url(&format!("/v1/policies/route/versions/{version}")))
            .bearer_auth(&admin)
            .send()
    };
    // The active version (3) stays; an inactive one goes, and makes room.
    let (status, _, message) = error_message(delete(3).await.unwrap()).await;
    assert_eq!(status, 400, "{message}");
    assert!(
        message.contains("active version cannot be deleted"),
        "{message}"
    );
    assert_eq!(delete(1).await.unwrap().status(), 200);
    assert_eq!(delete(1).await.unwrap().status(), 404);
    assert_eq!(
        upload(&gw, &admin, "route", HOSTILE.to_vec())
            .await
            .status(),
        201
    );
    let view: Value = gw.get_json("/v1/policies", &admin).await;
    let mut versions: Vec<u64> = view["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, [2, 3, 4], "{view}");
    // The bytes count too.
    let gw = TestGateway::start_changed(ROUTING, |c| {
        c.policies.max_stored_bytes = u64::try_from(HOSTILE.len()).unwrap() + 10;
    })
    .await;
    let (tenant, _, _) = gw.tenant_key("big").await;
    let admin = key_with_role(&gw, &tenant, "admin").await;
    assert_eq!(
        upload(&gw, &admin, "auth", HOSTILE.to_vec()).await.status(),
        201
    );
    let (status, _, message) =
        error_message(upload(&gw, &admin, "route", HOSTILE.to_vec()).await).await;
    assert_eq!(status, 400, "{message}");
    assert!(message.contains("bytes"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_whose_legal_policy_burns_cpu_is_held_to_its_budget_and_its_neighbour_is_served() {
    let gw = std::sync::Arc::new(
        TestGateway::start_changed(ROUTING, |c| c.policies.cpu_ms_per_second = 20).await,
    );
    let (noisy, _, noisy_key) = gw.tenant_key("noisy").await;
    let noisy_admin = key_with_role(&gw, &noisy, "admin").await;
    let (quiet, _, quiet_key) = gw.tenant_key("quiet").await;
    let quiet_admin = key_with_role(&gw, &quiet, "admin").await;
    for admin in [&noisy_admin, &quiet_admin] {
        assert_eq!(
            upload(&gw, admin, "auth", HOSTILE.to_vec()).await.status(),
            201
        );
    }
    // The noisy tenant: 32 clients whose every request makes its policy do real, legal work.
    let burners: Vec<_> = (0..32)
        .map(|_| {
            let (gw, key) = (gw.clone(), noisy_key.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..6 {
                    let resp = chat(&gw, &key, "auto", &[("hostile", "burn")]).await;
                    if resp.status() == 429 {
                        assert!(resp.headers().contains_key("retry-after"));
                        let (_, code, message) = error_message(resp).await;
                        assert_eq!(code, "rate_limited");
                        assert!(message.contains("CPU budget"), "{message}");
                        statuses.push(429);
                    } else {
                        statuses.push(resp.status().as_u16());
                    }
                }
                statuses
            })
        })
        .collect();
    // The quiet tenant, one client, alongside: every request is served.
    for _ in 0..20 {
        let resp = chat(&gw, &quiet_key, "auto", &[]).await;
        assert_eq!(resp.status(), 200);
    }
    let mut noisy_statuses = Vec::new();
    for b in burners {
        noisy_statuses.extend(b.await.unwrap());
    }
    assert!(noisy_statuses.contains(&200), "{noisy_statuses:?}");
    assert!(
        noisy_statuses.contains(&429),
        "the noisy tenant was never held to its budget: {noisy_statuses:?}"
    );
    assert!(noisy_statuses.iter().all(|s| *s == 200 || *s == 429));
    // Both tenants' policy CPU is counted, by tenant, and the budget is not a quarantine.
    let view: Value = gw.get_json("/v1/policies", &noisy_admin).await;
    assert!(view["cpu"]["used_ms"].as_u64().unwrap() > 0, "{view}");
    assert_eq!(view["cpu"]["ms_per_second"], 20);
    assert_eq!(view["slots"]["auth"]["quarantined"], false, "{view}");
    let metrics = gw.metrics_text().await;
    for name in ["noisy", "quiet"] {
        assert!(
            metrics.contains(&format!(
                "sluice_policy_cpu_milliseconds{{tenant=\"{name}\"}}"
            )),
            "{metrics}"
        );
    }
    // The pool ran both tenants' calls: all 20 of quiet's, and noisy's that were within its budget.
    let ran = |tenant: &str| metric_value(&metrics, "sluice_policy_calls", tenant, "ran");
    assert_eq!(ran("quiet"), 20, "{metrics}");
    assert!(ran("noisy") > 0, "{metrics}");
    assert!(
        metric_value(&metrics, "sluice_policy_calls", "noisy", "over_budget") > 0,
        "{metrics}"
    );
    let trails = trails(&gw, &noisy_admin).await;
    assert!(
        trails.iter().any(|t| t.ends_with("!over_budget")),
        "{trails:?}"
    );
    // The operator gives the tenant a budget of its own; a nonsense one is refused.
    let resp = gw
        .admin(
            reqwest::Method::PUT,
            &format!("/admin/v1/tenants/{noisy}/policy-cpu"),
            Some(json!({"ms_per_second": 100_000})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let view: Value = gw.get_json("/v1/policies", &noisy_admin).await;
    assert_eq!(view["cpu"]["ms_per_second"], 100_000, "{view}");
    let resp = gw
        .admin(
            reqwest::Method::PUT,
            &format!("/admin/v1/tenants/{noisy}/policy-cpu"),
            Some(json!({"ms_per_second": 0})),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let quiet_view: Value = gw.get_json("/v1/policies", &quiet_admin).await;
    assert_eq!(quiet_view["cpu"]["ms_per_second"], 20, "the default stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_own_cpu_budget_survives_a_restart() {
    let gw = TestGateway::start(ROUTING).await;
    let (tenant, _, _) = gw.tenant_key("steady").await;
    let admin = key_with_role(&gw, &tenant, "admin").await;
    let resp = gw
        .admin(
            reqwest::Method::PUT,
            &format!("/admin/v1/tenants/{tenant}/policy-cpu"),
            Some(json!({"ms_per_second": 777})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let gw = TestGateway::start_in(gw.stop_keep_dir().await).await;
    let view: Value = gw.get_json("/v1/policies", &admin).await;
    assert_eq!(view["cpu"]["ms_per_second"], 777, "{view}");
}

/// The value of a `sluice_policy_calls`-like gauge for one tenant and outcome (0 when absent).
fn metric_value(metrics: &str, name: &str, tenant: &str, outcome: &str) -> u64 {
    let want = format!("{name}{{tenant=\"{tenant}\",outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&want))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_whose_calls_fill_its_line_of_the_pool_waits_alone() {
    // One thread for the tenant, one call waiting: the rest of a burst of heavy calls is refused at once.
    let gw = std::sync::Arc::new(
        TestGateway::start_changed(ROUTING, |c| {
            c.policies.pool.per_tenant = 1;
            c.policies.pool.queue_per_tenant = 1;
        })
        .await,
    );
    let (busy, _, busy_key) = gw.tenant_key("busy").await;
    let busy_admin = key_with_role(&gw, &busy, "admin").await;
    let (calm, _, calm_key) = gw.tenant_key("calm").await;
    let calm_admin = key_with_role(&gw, &calm, "admin").await;
    for admin in [&busy_admin, &calm_admin] {
        assert_eq!(
            upload(&gw, admin, "auth", HOSTILE.to_vec()).await.status(),
            201
        );
    }
    // 16 clients, 4 requests each: far more at once than one running and one waiting.
    let burst: Vec<_> = (0..16)
        .map(|_| {
            let (gw, key) = (gw.clone(), busy_key.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..4 {
                    let resp = chat(&gw, &key, "auto", &[("hostile", "burn")]).await;
                    let status = resp.status().as_u16();
                    if status == 429 {
                        assert_eq!(resp.headers()["retry-after"], "1");
                        let (_, code, message) = error_message(resp).await;
                        assert_eq!(code, "rate_limited");
                        assert!(message.contains("queue"), "{message}");
                    }
                    statuses.push(status);
                }
                statuses
            })
        })
        .collect();
    // The other tenant, meanwhile: its own line, every request served.
    for _ in 0..5 {
        assert_eq!(chat(&gw, &calm_key, "auto", &[]).await.status(), 200);
    }
    let mut statuses = Vec::new();
    for b in burst {
        statuses.extend(b.await.unwrap());
    }
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    let trails = trails(&gw, &busy_admin).await;
    assert!(trails.iter().any(|t| t.ends_with("!busy")), "{trails:?}");
    let view: Value = gw.get_json("/v1/policies", &busy_admin).await;
    assert!(view["pool"]["busy"].as_u64().unwrap() > 0, "{view}");
    assert_eq!(
        view["slots"]["auth"]["quarantined"], false,
        "a full line is no failure"
    );
    let metrics = gw.metrics_text().await;
    assert_eq!(
        metric_value(&metrics, "sluice_policy_calls", "calm", "ran"),
        5
    );
    assert_eq!(
        metric_value(&metrics, "sluice_policy_calls", "calm", "busy"),
        0
    );
}

/// The review's attack on the shared queue: with `policies.queue = 16` and one tenant allowed all of it,
/// tenants burning CPU in their `auth` policies kept the queue full and a quiet tenant's cheap `auth` answered
/// 429 on 92–97% of its requests. Now the longest line gives way: the quiet tenant is never refused.
async fn noisy_tenants_fill_the_queue_and_a_quiet_one_is_still_served(noisy: usize) {
    let gw = std::sync::Arc::new(
        TestGateway::start_changed(ROUTING, |c| {
            c.policies.pool.queue = 16;
            c.policies.pool.queue_per_tenant = 16;
        })
        .await,
    );
    let mut burners = Vec::new();
    for i in 0..noisy {
        let (tenant, _, key) = gw.tenant_key(&format!("noisy-{i}")).await;
        let admin = key_with_role(&gw, &tenant, "admin").await;
        assert_eq!(
            upload(&gw, &admin, "auth", HOSTILE.to_vec()).await.status(),
            201
        );
        burners.push(key);
    }
    let (quiet, _, quiet_key) = gw.tenant_key("quiet").await;
    let quiet_admin = key_with_role(&gw, &quiet, "admin").await;
    assert_eq!(
        upload(&gw, &quiet_admin, "auth", HOSTILE.to_vec())
            .await
            .status(),
        201
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = burners
        .iter()
        .flat_map(|key| (0..16).map(move |_| key.clone()))
        .map(|key| {
            let (gw, stop) = (gw.clone(), stop.clone());
            tokio::spawn(async move {
                let mut busy = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let resp = chat(&gw, &key, "auto", &[("hostile", "burn")]).await;
                    busy += usize::from(resp.status() == 429);
                }
                busy
            })
        })
        .collect();
    // Let the burners fill the queue before the quiet tenant asks.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while metric_sum(&gw.metrics_text().await, "sluice_policy_waiting") < 12 {
        assert!(
            std::time::Instant::now() < deadline,
            "the burners never filled the queue"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(chat(&gw, &quiet_key, "auto", &[]).await.status().as_u16());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut refused = 0;
    for l in load {
        refused += l.await.unwrap();
    }
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(
        refused > 0,
        "the burners were refused when the queue was full"
    );
    let metrics = gw.metrics_text().await;
    assert_eq!(
        metric_value(&metrics, "sluice_policy_calls", "quiet", "busy"),
        0
    );
}

/// The sum of a per-tenant gauge over every tenant.
fn metric_sum(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.trim().parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_noisy_tenants_cannot_fill_the_policy_queue_against_a_quiet_one() {
    noisy_tenants_fill_the_queue_and_a_quiet_one_is_still_served(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_noisy_tenants_cannot_fill_the_policy_queue_against_a_quiet_one() {
    noisy_tenants_fill_the_queue_and_a_quiet_one_is_still_served(10).await;
}
