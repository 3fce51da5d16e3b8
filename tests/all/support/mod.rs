//! Test harness: the gateway on 127.0.0.1:0 from a config string, with its own SQLite file, shut down on
//! drop; plus fake upstreams (`upstream`).

pub mod upstream;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use sluice::App;
use sluice::{Config, ConfigSource, Gateway};
use tokio_util::sync::CancellationToken;

pub const ADMIN_TOKEN: &str = "test-operator-token-0123456789";
/// base64 of 32 bytes of 7: a fixed test signing key.
pub const AUDIT_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
/// base64 of 32 bytes of 8: a fixed content master key.
pub const MASTER_KEY: &str = "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=";
pub const PEPPER: &str = "test-pepper-test-pepper-test-pepper-0123";

pub fn env() -> HashMap<String, String> {
    HashMap::from([
        ("SLUICE_ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned()),
        ("SLUICE_KEY_PEPPER".to_owned(), PEPPER.to_owned()),
        ("ANTHROPIC_TEST_KEY".to_owned(), "sk-ant-test".to_owned()),
        ("SLUICE_AUDIT_SIGNING_KEY".to_owned(), AUDIT_KEY.to_owned()),
        ("SLUICE_AUDIT_MASTER_KEY".to_owned(), MASTER_KEY.to_owned()),
    ])
}

/// The config header every test gateway shares; tests append providers and deployments. Its last table is
/// `[policies]`, so appended text may begin with more `[policies]` keys.
pub fn base_config(db: &std::path::Path, server_extra: &str) -> String {
    format!(
        "version = 1\n[server]\nlisten = \"127.0.0.1:0\"\n{server_extra}\n[storage]\nurl = \"sqlite://{}\"\n\
         # Tests read fresh checkpoints right after writing; the once-per-interval rule has its own test.\n\
         [audit]\ncheckpoint_interval_ms = 0\n\
         # Compiled policies are shared by every test gateway, as they would be across restarts.\n\
         [policies]\ncache_dir = \"{}\"\n",
        db.display(),
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("policy-cache")
            .display()
    )
}

pub struct TestGateway {
    pub base: String,
    pub app: Arc<App>,
    pub db_path: PathBuf,
    pub config_path: PathBuf,
    dir: Option<tempfile::TempDir>,
    pub shutdown: CancellationToken,
    pub task: Option<tokio::task::JoinHandle<()>>,
    pub http: reqwest::Client,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestGateway {
    /// Starts a gateway whose config is the shared header plus `routing` (providers, deployments, models).
    pub async fn start(routing: &str) -> TestGateway {
        TestGateway::start_with(routing, "").await
    }

    /// Like `start`, with extra `[server]` lines (limits).
    pub async fn start_with(routing: &str, server_extra: &str) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("sluice.db");
        let text = format!("{}\n{routing}", base_config(&db_path, server_extra));
        std::fs::write(dir.path().join("sluice.toml"), &text).unwrap();
        TestGateway::start_in(dir).await
    }

    /// Like `start`, with a change to the loaded config.
    pub async fn start_changed(routing: &str, change: impl FnOnce(&mut Config)) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("sluice.db");
        let text = format!("{}\n{routing}", base_config(&db_path, ""));
        std::fs::write(dir.path().join("sluice.toml"), &text).unwrap();
        TestGateway::start_in_with(dir, change).await
    }

    /// Starts a gateway from the config and database in `dir` (left by `stop_keep_dir`): a restart.
    pub async fn start_in(dir: tempfile::TempDir) -> TestGateway {
        TestGateway::start_in_with(dir, |_| {}).await
    }

    /// Like `start_in`, with a change to the loaded config (settings the config file does not hold).
    pub async fn start_in_with(
        dir: tempfile::TempDir,
        change: impl FnOnce(&mut Config),
    ) -> TestGateway {
        let db_path = dir.path().join("sluice.db");
        let config_path = dir.path().join("sluice.toml");
        let mut config = Config::load(&config_path, &env()).unwrap();
        change(&mut config);
        let gateway = Gateway::bind(
            config,
            ConfigSource {
                path: Some(config_path.clone()),
                env: env(),
            },
        )
        .await
        .unwrap();
        let addr = gateway.local_addr().unwrap();
        let shutdown = gateway.shutdown_token();
        let app = gateway.app();
        let task = tokio::spawn(gateway.run());
        TestGateway {
            base: format!("http://{addr}"),
            app,
            db_path,
            config_path,
            dir: Some(dir),
            shutdown,
            task: Some(task),
            http: reqwest::Client::new(),
        }
    }

    /// The Prometheus text of `/metrics`, fetched with the operator token.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Calls the control plane with the operator token.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// Creates a tenant and a key for it; returns (tenant id, key id, plaintext key).
    pub async fn tenant_key(&self, name: &str) -> (String, String, String) {
        let t: serde_json::Value = self
            .admin(
                reqwest::Method::POST,
                "/admin/v1/tenants",
                Some(serde_json::json!({"name": name})),
            )
            .await
            .json()
            .await
            .unwrap();
        let tenant = t["id"].as_str().unwrap().to_owned();
        let (id, key) = self.key(&tenant, "test", "member").await;
        (tenant, id, key)
    }

    /// Creates a key of `role` for `tenant`; returns (key id, plaintext key).
    pub async fn key(&self, tenant: &str, name: &str, role: &str) -> (String, String) {
        let k: serde_json::Value = self
            .admin(
                reqwest::Method::POST,
                &format!("/admin/v1/tenants/{tenant}/keys"),
                Some(serde_json::json!({"name": name, "role": role})),
            )
            .await
            .json()
            .await
            .unwrap();
        (
            k["id"].as_str().unwrap().to_owned(),
            k["key"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates tenant `acme` with a member key and an admin key (for the audit endpoints); returns
    /// (tenant id, admin key, member key).
    pub async fn tenant_admin_member(&self) -> (String, String, String) {
        let (tenant, _, member) = self.tenant_key("acme").await;
        let (_, admin) = self.key(&tenant, "auditor", "admin").await;
        (tenant, admin, member)
    }

    /// GETs a tenant path with a key, expecting 200, and returns the JSON body.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str, key: &str) -> T {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.unwrap()
    }

    /// POSTs JSON to a data-plane path with a key.
    pub async fn post(&self, path: &str, key: &str, body: serde_json::Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Stops the gateway, waits for its drain, and hands over its directory (config, database).
    pub async fn stop_keep_dir(mut self) -> tempfile::TempDir {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        self.dir.take().unwrap()
    }

    /// Stops the gateway and waits for its drain to finish.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

/// A provider section pointing at a fake upstream.
pub fn openai_provider(name: &str, url: &str, extra: &str) -> String {
    format!("[[providers]]\nname = \"{name}\"\nkind = \"openai\"\nbase_url = \"{url}\"\n{extra}\n")
}

/// A chat deployment.
pub fn deployment(name: &str, provider: &str, model: &str) -> String {
    format!(
        "[[deployments]]\nname = \"{name}\"\nprovider = \"{provider}\"\nmodel = \"{model}\"\ntier = \"simple\"\nregion = \"eu\"\nprice = {{ input_per_mtok = 1.0, output_per_mtok = 2.0 }}\n"
    )
}

pub fn chat_body(model: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}]})
}

/// The error object of an error response, after checking the documented shape.
pub async fn error_of(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let rid = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: serde_json::Value = resp.json().await.unwrap();
    let err = body["error"].clone();
    assert!(err["message"].is_string(), "error shape: {body}");
    assert!(err["type"].is_string(), "error shape: {body}");
    assert!(err["code"].is_string(), "error shape: {body}");
    assert!(err.get("param").is_some(), "error shape: {body}");
    let rid = rid.expect("every response carries x-request-id");
    assert!(
        err["message"].as_str().unwrap().contains(&rid),
        "the message names the request id: {body}"
    );
    (status, err)
}

/// What an insider with the database file does to a stopped gateway's log: every entry of `tenant` edited
/// (its cost zeroed), the hash chain and leaf hashes recomputed after it, and every record of what was
/// signed or cosigned deleted. Only what lives outside the database can tell.
pub async fn forge_history(dir: &std::path::Path, tenant: &str) {
    use sqlx::Row;
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.join("sluice.db").display()))
        .await
        .unwrap();
    let rows = sqlx::query("SELECT idx, entry FROM audit_entries WHERE tenant_id = ? ORDER BY idx")
        .bind(tenant)
        .fetch_all(&db)
        .await
        .unwrap();
    let mut prev = [0u8; 32];
    for row in rows {
        let idx: i64 = row.get(0);
        let mut e = sluice::audit::entry::Entry::decode(&row.get::<Vec<u8>, _>(1)).unwrap();
        e.cost_micro_usd = 0;
        e.prev_leaf = prev;
        let bytes = e.encode();
        prev = sluice::audit::merkle::leaf_hash(&bytes);
        sqlx::query(
            "UPDATE audit_entries SET entry = ?, leaf_hash = ? WHERE tenant_id = ? AND idx = ?",
        )
        .bind(&bytes)
        .bind(&prev[..])
        .bind(tenant)
        .bind(idx)
        .execute(&db)
        .await
        .unwrap();
    }
    for table in ["audit_checkpoints", "audit_cosignatures"] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&db)
            .await
            .unwrap();
    }
    db.close().await;
}
