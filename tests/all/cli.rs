//! The `sluice` binary end to end: init, serve, tenant and key commands, logs and database free of the key,
//! SIGTERM exits cleanly, and a config typo stops startup naming the field.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

pub(crate) fn run(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let out = Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_typo_fails_startup_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "version = 1\n[server]\nlistn = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let (ok, _, stderr) = run(dir.path(), &["serve", "--config", "bad.toml"], &[]);
    assert!(!ok);
    assert!(stderr.contains("unknown field `listn`"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn init_serve_create_key_and_call() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = run(dir.path(), &["init", "--config", "sluice.toml"], &[]);
    assert!(ok, "{stderr}");
    let token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("export SLUICE_ADMIN_TOKEN="))
        .unwrap()
        .to_owned();
    let config_text = std::fs::read_to_string(dir.path().join("sluice.toml")).unwrap();
    assert!(
        !config_text.contains(&token),
        "the config holds only the token's hash"
    );
    // Port 0 so parallel test runs never collide; the fake provider stands in for the local models.
    std::fs::write(
        dir.path().join("sluice.toml"),
        with_fake_models(&config_text.replace("127.0.0.1:8080", "127.0.0.1:0")),
    )
    .unwrap();

    let mut child = Served(
        Command::new(BIN)
            .current_dir(dir.path())
            .args(["serve", "--config", "sluice.toml"])
            .env("RUST_LOG", "debug")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = String::new();
    let mut logs = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        logs.push_str(&line);
        if let Some(a) = line.trim().strip_prefix("sluice listening on ") {
            addr = a.to_owned();
            break;
        }
        line.clear();
    }
    assert!(!addr.is_empty(), "{logs}");
    let logs_task = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
        rest
    });
    let gateway = format!("http://{addr}");
    let env = [
        ("SLUICE_GATEWAY", gateway.as_str()),
        ("SLUICE_ADMIN_TOKEN", token.as_str()),
    ];
    let (ok, out, err) = run(dir.path(), &["tenant", "create", "--name", "acme"], &env);
    assert!(ok, "{err}");
    let tenant: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tenant_id = tenant["id"].as_str().unwrap().to_owned();
    let (ok, out, err) = run(
        dir.path(),
        &["key", "create", "--tenant", &tenant_id, "--name", "dev"],
        &env,
    );
    assert!(ok, "{err}");
    let key: serde_json::Value = serde_json::from_str(&out).unwrap();
    let plaintext = key["key"].as_str().unwrap().to_owned();

    let client = reqwest::Client::new();
    let body =
        serde_json::json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]});
    let resp = client
        .post(format!("{gateway}/v1/chat/completions"))
        .bearer_auth(&plaintext)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-deployment"], "local-chat");
    let mut stream_body = body.clone();
    stream_body["stream"] = true.into();
    let text = client
        .post(format!("{gateway}/v1/chat/completions"))
        .bearer_auth(&plaintext)
        .json(&stream_body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));

    let (ok, _, err) = run(
        dir.path(),
        &["key", "revoke", key["id"].as_str().unwrap()],
        &env,
    );
    assert!(ok, "{err}");
    let resp = client
        .post(format!("{gateway}/v1/chat/completions"))
        .bearer_auth(&plaintext)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // The tenant's audit log: export with an admin key, verify offline, then tamper with the file.
    let (ok, out, err) = run(
        dir.path(),
        &[
            "key", "create", "--tenant", &tenant_id, "--name", "auditor", "--role", "admin",
        ],
        &env,
    );
    assert!(ok, "{err}");
    let admin: serde_json::Value = serde_json::from_str(&out).unwrap();
    let admin_key = admin["key"].as_str().unwrap().to_owned();
    let export_env = [
        ("SLUICE_GATEWAY", gateway.as_str()),
        ("SLUICE_API_KEY", admin_key.as_str()),
    ];
    // Checkpoints are signed at most once a second: wait until one covers the requests above.
    for _ in 0..100 {
        let cp: serde_json::Value = client
            .get(format!("{gateway}/v1/audit/checkpoint"))
            .bearer_auth(&admin_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if cp["size"].as_u64().unwrap_or(0) >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (ok, out, err) = run(
        dir.path(),
        &["audit", "export", "--out", "acme.audit.json"],
        &export_env,
    );
    assert!(ok, "{out}{err}");
    let keys: serde_json::Value = client
        .get(format!("{gateway}/.well-known/sluice-audit-keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pinned = keys["keys"][0]["verifier_key"].as_str().unwrap().to_owned();
    let (ok, out, err) = run(
        dir.path(),
        &[
            "audit",
            "verify",
            "acme.audit.json",
            "--public-key",
            &pinned,
        ],
        &[],
    );
    assert!(ok, "{out}{err}");
    assert!(out.starts_with("OK: "), "{out}");
    let mut export: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("acme.audit.json")).unwrap())
            .unwrap();
    let entry = export["entries"][2]["entry"].as_str().unwrap().to_owned();
    let mut bytes =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &entry).unwrap();
    let last = bytes.len() - 40; // inside the numeric fields near the end
    bytes[last] ^= 0x10;
    export["entries"][2]["entry"] =
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes).into();
    std::fs::write(dir.path().join("tampered.json"), export.to_string()).unwrap();
    let (ok, out, _) = run(
        dir.path(),
        &["audit", "verify", "tampered.json", "--public-key", &pinned],
        &[],
    );
    assert!(!ok, "a tampered export must not verify");
    assert!(out.contains("FAILED: entry 2"), "{out}");

    // The auditor's own verifier, built alone from this checkout (a target folder of its own, so nothing of
    // the gateway is reused), says the same of both files.
    let verifier = standalone_verifier();
    let verify = |file: &str| {
        let out = Command::new(&verifier)
            .current_dir(dir.path())
            .args([file, "--public-key", &pinned])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = verify("acme.audit.json");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("OK: "), "{out}");
    let (code, out) = verify("tampered.json");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAILED: entry 2"), "{out}");
    assert_eq!(
        verify("missing.json").0,
        Some(2),
        "an unreadable input is not a verdict"
    );

    // SIGTERM: graceful shutdown, exit 0.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut status = None;
    for _ in 0..600 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let Some(status) = status else {
        let _ = child.kill();
        panic!(
            "the gateway did not exit within 15 s of SIGTERM; logs:\n{}",
            logs_task.join().unwrap()
        );
    };
    assert!(status.success(), "{status:?}");
    logs.push_str(&logs_task.join().unwrap());

    let secret = sluice::auth::keys::parse(&plaintext)
        .unwrap()
        .secret
        .to_owned();
    assert!(
        !logs.contains(&plaintext) && !logs.contains(&secret),
        "the key appears in the logs"
    );
    // Every file, the compiled-policy cache (`policy-cache/`) included.
    let mut files = Vec::new();
    let mut dirs = vec![dir.path().to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "cwasm"))
    );
    for path in files {
        let hay = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        assert!(
            !hay.contains(&secret),
            "{} holds the key's secret",
            path.display()
        );
        assert!(
            !hay.contains(&token),
            "{} holds the operator token",
            path.display()
        );
    }
}

/// `sluice init` in `dir`, with the listener moved to a free port; returns the operator token it printed.
pub(crate) fn init_on_any_port(dir: &std::path::Path) -> String {
    let (ok, stdout, stderr) = run(dir, &["init", "--config", "sluice.toml"], &[]);
    assert!(ok, "{stderr}");
    let path = dir.join("sluice.toml");
    std::fs::write(
        &path,
        with_fake_models(
            &std::fs::read_to_string(&path)
                .unwrap()
                .replace("127.0.0.1:8080", "127.0.0.1:0"),
        ),
    )
    .unwrap();
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("export SLUICE_ADMIN_TOKEN="))
        .unwrap()
        .to_owned()
}

/// The starter config with its local provider turned into the fake one: the deployments keep their names,
/// and no model is fetched or loaded. These tests are about the process, not about inference.
pub(crate) fn with_fake_models(starter: &str) -> String {
    let local = "kind = \"local\"\nmodels_dir = \"models\"\non_missing = \"fetch\"\n";
    assert!(
        starter.contains(local),
        "the starter config's local provider changed"
    );
    starter.replace(local, "kind = \"fake\"\n")
}

/// A `sluice serve` child process, killed if the test ends (or fails) while it still runs.
pub(crate) struct Served(std::process::Child);

impl std::ops::Deref for Served {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Served {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `sluice serve` in `dir` (config already there) and returns it with its address.
pub(crate) fn spawn_serve(dir: &std::path::Path) -> (Served, String) {
    let mut child = Served(
        Command::new(BIN)
            .current_dir(dir)
            .args(["serve", "--config", "sluice.toml"])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "gateway exited early"
        );
        if let Some(a) = line.trim().strip_prefix("sluice listening on ") {
            break a.to_owned();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (child, format!("http://{addr}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_under_load_loses_no_answered_request() {
    let dir = tempfile::tempdir().unwrap();
    let token = init_on_any_port(dir.path());
    let (mut child, gateway) = spawn_serve(dir.path());
    let client = reqwest::Client::new();
    let tenant: serde_json::Value = client
        .post(format!("{gateway}/admin/v1/tenants"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "acme"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key: serde_json::Value = client
        .post(format!(
            "{gateway}/admin/v1/tenants/{}/keys",
            tenant["id"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "load", "role": "admin"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["key"].as_str().unwrap().to_owned();

    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (client, gateway, key, answered) = (
            client.clone(),
            gateway.clone(),
            key.clone(),
            answered.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let body = serde_json::json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]});
            loop {
                let Ok(resp) = client.post(format!("{gateway}/v1/chat/completions")).bearer_auth(&key).json(&body).send().await else {
                    return;
                };
                let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
                // Only a response read to its end counts as answered.
                if resp.status() == 200 && resp.bytes().await.is_ok() {
                    answered.lock().unwrap().push(id);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().unwrap(); // SIGKILL: no drain, no flush
    child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() > 50,
        "the load ran: {} answered",
        answered.len()
    );

    let (mut second, gateway) = spawn_serve(dir.path());
    let export: sluice::audit::verify::Export = client
        .get(format!("{gateway}/v1/audit/export"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys: serde_json::Value = client
        .get(format!("{gateway}/.well-known/sluice-audit-keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let report = sluice::audit::verify::verify_export(
        &export,
        keys["keys"][0]["verifier_key"].as_str(),
        None,
    )
    .expect("contiguous, chained and signed after the crash");
    let logged: std::collections::HashSet<String> = export
        .entries
        .iter()
        .map(|e| {
            let bytes =
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &e.entry)
                    .unwrap();
            sluice::audit::entry::Entry::decode(&bytes)
                .unwrap()
                .request_id
        })
        .collect();
    let lost: Vec<&String> = answered.iter().filter(|id| !logged.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} answered requests have no entry, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    assert!(report.size as usize >= answered.len());
    assert!(
        Command::new("kill")
            .args(["-TERM", &second.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    second.wait().unwrap();
}

/// Builds `sluice-verify` from the `sluice-audit` crate alone, in a target folder of its own, and checks that
/// what it was built from has no async runtime, HTTP stack, database, Wasm engine or model code; returns
/// the binary.
fn standalone_verifier() -> std::path::PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("verifier-alone");
    let cargo = env!("CARGO");
    let built = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--locked",
            "--offline",
            "-p",
            "sluice-audit",
            "--bin",
            "sluice-verify",
        ])
        .arg("--target-dir")
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let tree = Command::new(cargo)
        .current_dir(root)
        .args([
            "tree",
            "--locked",
            "--offline",
            "-p",
            "sluice-audit",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .output()
        .unwrap();
    assert!(
        tree.status.success(),
        "{}",
        String::from_utf8_lossy(&tree.stderr)
    );
    let tree = String::from_utf8_lossy(&tree.stdout);
    for heavy in [
        "wasmtime",
        "candle",
        "tokio",
        "hyper",
        "sqlx",
        "usearch",
        "tokenizers",
    ] {
        assert!(
            !tree.lines().any(|l| l.starts_with(heavy)),
            "sluice-audit depends on {heavy}:\n{tree}"
        );
    }
    target.join("debug/sluice-verify")
}

/// On a machine whose toolchain lacks the `wasm32-wasip2` target, the build installs it with rustup when
/// rustup is there, and otherwise stops with the command to run; a rustup that fails is reported too. (The
/// build script runs exactly this code; here stand-in sysroots and rustups play the machine.)
#[test]
fn the_build_installs_a_missing_wasm_target_or_says_how() {
    use crate::wasm_target::{Outcome, TARGET, ensure, find_rustup, installed, sysroot};
    use std::os::unix::fs::PermissionsExt;
    // This machine's toolchain: the build ran, so the target is there.
    let real = sysroot(std::path::Path::new("rustc")).unwrap();
    assert!(installed(&real), "{}", real.display());
    assert_eq!(ensure(&real, None, None), Ok(Outcome::Present));

    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("sysroot");
    std::fs::create_dir_all(bare.join("lib/rustlib/x86_64-unknown-linux-gnu/lib")).unwrap();
    let script = |name: &str, body: &str| {
        let path = dir.path().join(name).join("rustup");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    // No rustup: the error names the command.
    let err = ensure(&bare, None, None).unwrap_err();
    assert!(err.contains("rustup target add wasm32-wasip2"), "{err}");
    assert!(!installed(&bare));
    // A rustup that fails (offline, say): reported, with the command.
    let failing = script("failing", "exit 1");
    let err = ensure(&bare, Some(&failing), Some("1.95.0")).unwrap_err();
    assert!(err.contains("did not install it"), "{err}");
    assert!(err.contains("rustup target add wasm32-wasip2"), "{err}");
    // A rustup that installs it, asked for this toolchain.
    let calls = dir.path().join("calls");
    let working = script(
        "working",
        &format!(
            "echo \"$@\" >> {}\nmkdir -p {}/lib/rustlib/{TARGET}/lib",
            calls.display(),
            bare.display()
        ),
    );
    assert_eq!(
        ensure(&bare, Some(&working), Some("1.95.0")),
        Ok(Outcome::Installed)
    );
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap().trim(),
        "target add wasm32-wasip2 --toolchain 1.95.0"
    );
    assert_eq!(ensure(&bare, Some(&working), None), Ok(Outcome::Present));
    // rustup is found on PATH.
    let path = std::env::join_paths([
        dir.path().join("nothing"),
        working.parent().unwrap().to_owned(),
    ])
    .unwrap();
    assert_eq!(find_rustup(Some(&path)), Some(working.clone()));
    assert_eq!(find_rustup(None), None);
}

/// `sluice version` says what the binary is: its version, the commit, the policy contracts it runs, and the
/// pinned digest of every model file.
#[test]
fn version_prints_the_commit_contracts_and_pinned_digests() {
    let out = Command::new(BIN).arg("version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("sluice {}\n", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    let commit = text
        .lines()
        .find_map(|l| l.strip_prefix("commit "))
        .unwrap();
    assert!(
        commit == "unknown"
            || (commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{commit}"
    );
    assert!(text.contains("sluice:policy@0.1.0, @0.1.1"), "{text}");
    for package in sluice::inference::catalog::CATALOG {
        for file in package.files {
            assert!(
                text.contains(&format!(
                    "file {}/{} sha256:{}",
                    package.name, file.name, file.sha256
                )),
                "{text}"
            );
        }
    }
}
