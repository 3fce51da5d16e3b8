//! The control plane: operator token, tenants, keys, revocation, and keys never stored in plain.

use reqwest::Method;

use crate::support::upstream::Upstream;
use crate::support::{TestGateway, chat_body, deployment, error_of, openai_provider};

#[tokio::test]
async fn operator_token_guards_the_control_plane() {
    let gw = TestGateway::start("").await;
    let none = gw
        .http
        .get(gw.url("/admin/v1/tenants"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(none).await.0, 401);
    let wrong = gw
        .http
        .get(gw.url("/admin/v1/tenants"))
        .bearer_auth("test-operator-token-0123456788")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(wrong).await.0, 401);
    // A tenant key is not an operator credential.
    let (_, _, key) = gw.tenant_key("acme").await;
    let tenant_key = gw
        .http
        .get(gw.url("/admin/v1/tenants"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(tenant_key).await.0, 401);
}

#[tokio::test]
async fn tenants_and_keys_lifecycle() {
    let gw = TestGateway::start("").await;
    let resp = gw
        .admin(
            Method::POST,
            "/admin/v1/tenants",
            Some(serde_json::json!({"name": "acme"})),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let t: serde_json::Value = resp.json().await.unwrap();
    let tenant = t["id"].as_str().unwrap();
    assert_eq!(t["name"], "acme");
    let dup = gw
        .admin(
            Method::POST,
            "/admin/v1/tenants",
            Some(serde_json::json!({"name": "acme"})),
        )
        .await;
    assert_eq!(error_of(dup).await.0, 400);
    let bad = gw
        .admin(
            Method::POST,
            "/admin/v1/tenants",
            Some(serde_json::json!({"nam": "x"})),
        )
        .await;
    assert_eq!(error_of(bad).await.0, 400);

    let list: serde_json::Value = gw
        .admin(Method::GET, "/admin/v1/tenants", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["id"], tenant);

    let resp = gw
        .admin(
            Method::POST,
            &format!("/admin/v1/tenants/{tenant}/keys"),
            Some(serde_json::json!({"name": "ci", "role": "admin"})),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let k: serde_json::Value = resp.json().await.unwrap();
    let plaintext = k["key"].as_str().unwrap();
    assert!(plaintext.starts_with("slk_"));
    assert_eq!(
        k["last4"].as_str().unwrap(),
        &plaintext[plaintext.len() - 4..]
    );
    assert_eq!(k["role"], "admin");

    let bad_role = gw
        .admin(
            Method::POST,
            &format!("/admin/v1/tenants/{tenant}/keys"),
            Some(serde_json::json!({"name": "x", "role": "root"})),
        )
        .await;
    let (s, err) = error_of(bad_role).await;
    assert_eq!((s, err["param"].as_str()), (400, Some("role")));
    let no_tenant = gw
        .admin(
            Method::POST,
            "/admin/v1/tenants/nope/keys",
            Some(serde_json::json!({"name": "x", "role": "member"})),
        )
        .await;
    assert_eq!(error_of(no_tenant).await.0, 404);

    let keys: serde_json::Value = gw
        .admin(
            Method::GET,
            &format!("/admin/v1/tenants/{tenant}/keys"),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(keys["data"][0]["id"], k["id"]);
    assert!(
        keys["data"][0].get("key").is_none(),
        "listings never show the key"
    );
}

#[tokio::test]
async fn revocation_takes_effect_on_the_next_request() {
    let up = Upstream::ok().await;
    let gw = TestGateway::start(&format!(
        "{}{}",
        openai_provider("up", &up.url, ""),
        deployment("small", "up", "m")
    ))
    .await;
    let (_, key_id, key) = gw.tenant_key("acme").await;
    assert_eq!(
        gw.post("/v1/chat/completions", &key, chat_body("small"))
            .await
            .status(),
        200
    );
    let resp = gw
        .admin(Method::DELETE, &format!("/admin/v1/keys/{key_id}"), None)
        .await;
    assert_eq!(resp.status(), 200);
    let (s, err) = error_of(
        gw.post("/v1/chat/completions", &key, chat_body("small"))
            .await,
    )
    .await;
    assert_eq!((s, err["code"].as_str().unwrap()), (401, "unauthenticated"));
    let again = gw
        .admin(Method::DELETE, &format!("/admin/v1/keys/{key_id}"), None)
        .await;
    assert_eq!(error_of(again).await.0, 404);
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn keys_survive_restart_and_are_stored_only_hashed() {
    let up = Upstream::ok().await;
    let routing = format!(
        "{}{}",
        openai_provider("up", &up.url, ""),
        deployment("small", "up", "m")
    );
    let gw = TestGateway::start(&routing).await;
    let (_, _, key) = gw.tenant_key("acme").await;
    assert_eq!(
        gw.post("/v1/chat/completions", &key, chat_body("small"))
            .await
            .status(),
        200
    );
    let db = gw.db_path.clone();
    let dir = gw.stop_keep_dir().await;
    let dir_path = dir.path().to_path_buf();
    let secret = sluice::auth::keys::parse(&key).unwrap().secret.to_owned();
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    let mut dirs = vec![dir_path.clone()];
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
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let hay = String::from_utf8_lossy(&bytes);
        assert!(
            !hay.contains(&key) && !hay.contains(&secret),
            "{} holds the key in plain",
            path.display()
        );
    }
    // A second gateway on the same database accepts the key: it was persisted, hashed.
    let text = std::fs::read_to_string(dir_path.join("sluice.toml")).unwrap();
    let config = sluice::Config::from_toml(&text, &dir_path, &crate::support::env()).unwrap();
    let second = sluice::Gateway::bind(
        config,
        sluice::ConfigSource {
            path: None,
            env: crate::support::env(),
        },
    )
    .await
    .unwrap();
    let addr = second.local_addr().unwrap();
    let stop = second.shutdown_token();
    let task = tokio::spawn(second.run());
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&chat_body("small"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    stop.cancel();
    task.await.unwrap();
    assert!(db.exists());
    drop(dir);
}
