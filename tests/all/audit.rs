//! The audit log end to end: one entry per authenticated request, exports that verify offline, a tamper
//! matrix on the real database file, concurrent writers, and a locked database answered with 503.

use std::time::Duration;

use base64::Engine;
use reqwest::Method;
use sluice::audit::entry::Entry;
use sluice::audit::verify::{Export, VerifyError, verify_export};
use sqlx::Row;

use crate::support::upstream::Upstream;
use crate::support::{TestGateway, chat_body, deployment, openai_provider};

async fn gateway() -> (TestGateway, Upstream) {
    let up = Upstream::ok().await;
    let gw = TestGateway::start(&format!(
        "{}{}",
        openai_provider("up", &up.url, ""),
        deployment("small", "up", "m")
    ))
    .await;
    (gw, up)
}

/// A tenant with an admin key (for the audit endpoints) and a member key.
async fn tenant(gw: &TestGateway) -> (String, String, String) {
    gw.tenant_admin_member().await
}

async fn export(gw: &TestGateway, admin_key: &str) -> Export {
    gw.get_json("/v1/audit/export", admin_key).await
}

fn entries(e: &Export) -> Vec<Entry> {
    e.entries
        .iter()
        .map(|x| {
            Entry::decode(
                &base64::engine::general_purpose::STANDARD
                    .decode(&x.entry)
                    .unwrap(),
            )
            .unwrap()
        })
        .collect()
}

async fn pinned_key(gw: &TestGateway) -> String {
    let keys: serde_json::Value = gw
        .http
        .get(gw.url("/.well-known/sluice-audit-keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    keys["keys"][0]["verifier_key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_authenticated_request_gets_exactly_one_entry_and_the_export_verifies() {
    let (gw, _up) = gateway().await;
    let (tenant, admin, member) = tenant(&gw).await;
    let ok = gw
        .post("/v1/chat/completions", &member, chat_body("small"))
        .await;
    let ok_id = ok.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(ok.status(), 200);
    let missing = gw
        .post("/v1/chat/completions", &member, chat_body("nope"))
        .await;
    assert_eq!(missing.status(), 404);
    let mut stream = chat_body("small");
    stream["stream"] = true.into();
    let text = gw
        .post("/v1/chat/completions", &member, stream)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    // Not authenticated: no entry.
    let anon = gw
        .post("/v1/chat/completions", "slk_bad", chat_body("small"))
        .await;
    assert_eq!(anon.status(), 401);
    // A member may not read the log (and the denial is itself recorded).
    let denied = gw
        .http
        .get(gw.url("/v1/audit/export"))
        .bearer_auth(&member)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);

    let exported = export(&gw, &admin).await;
    let key = pinned_key(&gw).await;
    let report = verify_export(&exported, Some(&key), None).unwrap();
    let all = entries(&exported);
    assert_eq!(report.size, all.len() as u64);
    let endpoints: Vec<(&str, u16, &str)> = all
        .iter()
        .map(|e| (e.endpoint.as_str(), e.status, e.error_code.as_str()))
        .collect();
    assert_eq!(
        endpoints,
        vec![
            ("admin.tenant_created", 200, ""),
            ("admin.key_created", 200, ""),
            ("admin.key_created", 200, ""),
            ("chat", 200, ""),
            ("chat", 404, "model_not_found"),
            ("chat", 200, ""),
            ("audit.export", 403, "forbidden"),
        ]
    );
    assert!(all.iter().all(|e| e.tenant_id == tenant));
    let chat = &all[3];
    assert_eq!(chat.request_id, ok_id);
    assert_eq!(chat.deployment, "small");
    assert_eq!((chat.prompt_tokens, chat.completion_tokens), (11, 3));
    // 11 input tokens at $1/Mtok + 3 output at $2/Mtok = 17 micro-USD.
    assert_eq!(chat.cost_micro_usd, 17);
    assert_eq!(all[5].completion_tokens, 3, "stream usage is recorded");

    // Inclusion proof for the first chat request verifies against the signed checkpoint.
    let proof: serde_json::Value = gw
        .http
        .get(gw.url(&format!("/v1/audit/proof/inclusion?request_id={ok_id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (name, vk) = sluice::audit::note::parse_verifier_key(&key).unwrap();
    let cp =
        sluice::audit::note::verify(proof["checkpoint"].as_str().unwrap(), &name, &vk).unwrap();
    let path: Vec<[u8; 32]> = proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| sluice::config::decode_hex32(h.as_str().unwrap()).unwrap())
        .collect();
    let leaf = sluice::config::decode_hex32(proof["leaf_hash"].as_str().unwrap()).unwrap();
    assert_eq!(proof["index"], 3);
    sluice::audit::merkle::verify_inclusion(&leaf, 3, cp.size, &path, &cp.root).unwrap();

    // Consistency between the first export's checkpoint and a later one.
    let later = export(&gw, &admin).await;
    let report2 = verify_export(&later, Some(&key), Some(&exported.checkpoint)).unwrap();
    assert_eq!(report2.extends, Some(report.size));
    assert!(report2.size > report.size);
}

/// The original rows, to restore after each tamper.
async fn rows(db: &sqlx::SqlitePool, tenant: &str) -> Vec<(i64, Vec<u8>, Vec<u8>, String)> {
    sqlx::query("SELECT idx, entry, leaf_hash, request_id FROM audit_entries WHERE tenant_id = ? ORDER BY idx")
        .bind(tenant)
        .fetch_all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

async fn restore(
    db: &sqlx::SqlitePool,
    tenant: &str,
    original: &[(i64, Vec<u8>, Vec<u8>, String)],
) {
    let mut tx = db.begin().await.unwrap();
    sqlx::query("DELETE FROM audit_entries WHERE tenant_id = ? AND idx < ?")
        .bind(tenant)
        .bind(original.len() as i64)
        .execute(&mut *tx)
        .await
        .unwrap();
    for (idx, entry, leaf, rid) in original {
        sqlx::query("INSERT INTO audit_entries (tenant_id, idx, entry, leaf_hash, request_id) VALUES (?, ?, ?, ?, ?)")
            .bind(tenant)
            .bind(idx)
            .bind(entry)
            .bind(leaf)
            .bind(rid)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn set_entry(db: &sqlx::SqlitePool, tenant: &str, idx: i64, bytes: &[u8]) {
    sqlx::query("UPDATE audit_entries SET entry = ? WHERE tenant_id = ? AND idx = ?")
        .bind(bytes)
        .bind(tenant)
        .bind(idx)
        .execute(db)
        .await
        .unwrap();
}

/// Verifies a fresh export of only the first `n` entries... no: the export is whatever the server holds.
async fn verdict(gw: &TestGateway, admin: &str, key: &str) -> Result<(), VerifyError> {
    verify_export(&export(gw, admin).await, Some(key), None).map(|_| ())
}

fn names_index(result: Result<(), VerifyError>, index: u64) -> String {
    let err = result.expect_err("the tamper must be detected");
    let text = err.to_string();
    match &err {
        VerifyError::Entry { index: i, .. } => assert_eq!(*i, index, "{text}"),
        VerifyError::Log(msg) => assert!(msg.contains(&index.to_string()), "{text}"),
        other => panic!("unexpected verdict {other:?}"),
    }
    text
}

#[tokio::test]
async fn tamper_matrix_on_the_database_file() {
    let (gw, _up) = gateway().await;
    let (tenant, admin, member) = tenant(&gw).await;
    for _ in 0..8 {
        assert_eq!(
            gw.post("/v1/chat/completions", &member, chat_body("small"))
                .await
                .status(),
            200
        );
    }
    let key = pinned_key(&gw).await;
    let first = export(&gw, &admin).await;
    verify_export(&first, Some(&key), None).unwrap();
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", gw.db_path.display()))
        .await
        .unwrap();
    let original = rows(&db, &tenant).await;
    let decode = |i: usize| Entry::decode(&original[i].1).unwrap();

    // Flip one byte in the middle of entry 5.
    let mut flipped = original[5].1.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    set_entry(&db, &tenant, 5, &flipped).await;
    names_index(verdict(&gw, &admin, &key).await, 5);
    restore(&db, &tenant, &original).await;

    // Delete row 4.
    sqlx::query("DELETE FROM audit_entries WHERE tenant_id = ? AND idx = 4")
        .bind(&tenant)
        .execute(&db)
        .await
        .unwrap();
    let text = names_index(verdict(&gw, &admin, &key).await, 4);
    assert!(text.contains("missing"), "{text}");
    restore(&db, &tenant, &original).await;

    // Swap rows 6 and 7 (their bytes change places).
    set_entry(&db, &tenant, 6, &original[7].1).await;
    set_entry(&db, &tenant, 7, &original[6].1).await;
    let text = names_index(verdict(&gw, &admin, &key).await, 6);
    assert!(text.contains("index 7"), "{text}");
    restore(&db, &tenant, &original).await;

    // Reorder: rotate entries 3..=5.
    set_entry(&db, &tenant, 3, &original[4].1).await;
    set_entry(&db, &tenant, 4, &original[5].1).await;
    set_entry(&db, &tenant, 5, &original[3].1).await;
    names_index(verdict(&gw, &admin, &key).await, 3);
    restore(&db, &tenant, &original).await;

    // Change a cost in entry 6, re-encoded canonically (a careful forger).
    let mut cheaper = decode(6);
    cheaper.cost_micro_usd = 0;
    set_entry(&db, &tenant, 6, &cheaper.encode()).await;
    let text = names_index(verdict(&gw, &admin, &key).await, 6);
    assert!(text.contains("modified"), "{text}");
    restore(&db, &tenant, &original).await;

    // Change the cost of the last exported entry: no successor to break the chain, the signed root catches it.
    let last = original.len() - 1;
    let mut forged = decode(last);
    forged.cost_micro_usd += 1_000;
    set_entry(&db, &tenant, last as i64, &forged.encode()).await;
    names_index(verdict(&gw, &admin, &key).await, last as u64);
    restore(&db, &tenant, &original).await;

    // Truncate the tail: the checkpoint covers more entries than the export holds. (Each export appended
    // its own entry, so snapshot everything first.)
    let original = rows(&db, &tenant).await;
    sqlx::query("DELETE FROM audit_entries WHERE tenant_id = ? AND idx >= ?")
        .bind(&tenant)
        .bind(last as i64 - 1)
        .execute(&db)
        .await
        .unwrap();
    let text = names_index(verdict(&gw, &admin, &key).await, last as u64 - 1);
    assert!(text.contains("truncated"), "{text}");
    restore(&db, &tenant, &original).await;

    // Untouched again: verifies.
    verify_export(&export(&gw, &admin).await, Some(&key), None).unwrap();
}

#[tokio::test]
async fn a_full_rewrite_is_refused_by_the_signed_head_and_caught_by_an_older_checkpoint() {
    let (gw, _up) = gateway().await;
    let (tenant, admin, member) = tenant(&gw).await;
    for _ in 0..5 {
        gw.post("/v1/chat/completions", &member, chat_body("small"))
            .await;
    }
    let key = pinned_key(&gw).await;
    let old = export(&gw, &admin).await;
    verify_export(&old, Some(&key), None).unwrap();
    let dir = gw.stop_keep_dir().await;
    crate::support::forge_history(dir.path(), &tenant).await;

    // The head signed last is kept beside the signing key, outside the database: the forged history does
    // not hash to it, so the gateway marks the log damaged and signs nothing over it.
    let gw = TestGateway::start_in(dir).await;
    let resp = gw
        .http
        .get(gw.url("/v1/audit/export"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        503,
        "no checkpoint is signed over a forged history"
    );
    let metrics = gw.metrics_text().await;
    assert!(metrics.contains("sluice_audit_damaged_logs 1"), "{metrics}");
    // Requests are still served and audited; only signing stops.
    assert_eq!(
        gw.post("/v1/chat/completions", &member, chat_body("small"))
            .await
            .status(),
        200
    );

    // An insider who also deletes the heads gets a fresh history signed: self-consistent on its own...
    let dir = gw.stop_keep_dir().await;
    std::fs::remove_dir_all(dir.path().join("audit-heads")).unwrap();
    let gw = TestGateway::start_in(dir).await;
    let forged = export(&gw, &admin).await;
    verify_export(&forged, Some(&key), None).unwrap();
    // ...but not against the checkpoint the auditor kept.
    let err = verify_export(&forged, Some(&key), Some(&old.checkpoint)).unwrap_err();
    assert!(err.to_string().contains("rewritten"), "{err}");
}

#[tokio::test]
async fn concurrent_writers_get_contiguous_indices() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, log) = open_log(&dir, Duration::ZERO).await;
    const N: usize = 16;
    const M: usize = 100;
    let mut tasks = Vec::new();
    for w in 0..N {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for m in 0..M {
                let mut e = sample_entry("t1");
                e.request_id = format!("w{w}-m{m}");
                got.push(log.append(e, None).await.unwrap().index);
            }
            got
        }));
    }
    let mut indices = Vec::new();
    for t in tasks {
        indices.extend(t.await.unwrap());
    }
    indices.sort_unstable();
    assert_eq!(
        indices,
        (0..(N * M) as u64).collect::<Vec<_>>(),
        "every index once, no gaps"
    );
    let cp = log.checkpoint_now("t1").await.unwrap().unwrap();
    assert_eq!(cp.size, (N * M) as u64);
    let rows = storage.audit_entries("t1", 0, cp.size).await.unwrap();
    let export = Export {
        format: sluice::audit::verify::FORMAT.into(),
        tenant_id: "t1".into(),
        origin: "test/t1".into(),
        public_key: log.signer().verifier_key(),
        entries: rows
            .into_iter()
            .map(|(index, b)| sluice::audit::verify::ExportedEntry {
                index,
                entry: base64::engine::general_purpose::STANDARD.encode(b),
                fields: None,
                content: None,
                content_error: None,
            })
            .collect(),
        checkpoint: cp.note,
        checkpoints: vec![],
    };
    let report = verify_export(&export, Some(&log.signer().verifier_key()), None).unwrap();
    assert_eq!(report.size, (N * M) as u64);
}

pub fn sample_entry(tenant: &str) -> Entry {
    Entry {
        index: 0,
        prev_leaf: [0; 32],
        kind: sluice::audit::entry::EntryKind::Request,
        timestamp_ms: 1,
        tenant_id: tenant.into(),
        key_id: "k".into(),
        request_id: "r".into(),
        trace_id: String::new(),
        endpoint: "chat".into(),
        subject: String::new(),
        model_requested: "m".into(),
        deployment: "d".into(),
        tier: "simple".into(),
        region: "eu".into(),
        cache: "bypass".into(),
        policy: "builtin".into(),
        status: 200,
        error_code: String::new(),
        prompt_tokens: 1,
        completion_tokens: 1,
        cost_micro_usd: 1,
        latency_us: 1,
        content: sluice::audit::entry::ContentMark::None,
        prompt_commitment: None,
        response_commitment: None,
        model_digest: String::new(),
    }
}

#[tokio::test]
async fn a_locked_database_fails_requests_with_503_instead_of_running_unaudited() {
    let (gw, up) = gateway().await;
    let (_tenant, admin, member) = tenant(&gw).await;
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", gw.db_path.display()))
        .await
        .unwrap();
    let mut lock = db.acquire().await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let resp = gw
        .post("/v1/chat/completions", &member, chat_body("small"))
        .await;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    assert_eq!(up.hits(), 1, "the answer existed but was withheld");
    assert!(
        gw.metrics_text()
            .await
            .contains("sluice_audit_failures_total 1\n"),
        "the failed write is counted"
    );
    sqlx::query("ROLLBACK").execute(&mut *lock).await.unwrap();
    drop(lock);
    assert_eq!(
        gw.post("/v1/chat/completions", &member, chat_body("small"))
            .await
            .status(),
        200
    );
    let key = pinned_key(&gw).await;
    let exported = export(&gw, &admin).await;
    verify_export(&exported, Some(&key), None).unwrap();
    let chats = entries(&exported)
        .into_iter()
        .filter(|e| e.endpoint == "chat")
        .count();
    assert_eq!(chats, 1, "only the request that was answered is in the log");
}

fn canary() -> String {
    format!("canary-{}", sluice::auth::keys::random_base62(24))
}

fn files_containing(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file()
            && std::fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
        {
            hits.push(path.display().to_string());
        }
    }
    hits
}

#[tokio::test]
async fn content_is_encrypted_committed_and_tamper_evident() {
    let (gw, _up) = gateway().await;
    let (tenant, admin, member) = tenant(&gw).await;
    let secret = canary();
    let mut body = chat_body("small");
    body["messages"][0]["content"] = secret.clone().into();
    assert_eq!(
        gw.post("/v1/chat/completions", &member, body)
            .await
            .status(),
        200
    );
    let key = pinned_key(&gw).await;
    let exported = export(&gw, &admin).await;
    verify_export(&exported, Some(&key), None).unwrap();
    let chat = exported
        .entries
        .iter()
        .find(|e| e.content.is_some())
        .expect("content is exported");
    let prompt = base64::engine::general_purpose::STANDARD
        .decode(&chat.content.as_ref().unwrap().prompt)
        .unwrap();
    assert!(String::from_utf8(prompt).unwrap().contains(&secret));
    assert!(
        files_containing(gw.db_path.parent().unwrap(), &secret).is_empty(),
        "content is encrypted at rest"
    );

    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", gw.db_path.display()))
        .await
        .unwrap();
    let (nonce, original): (Vec<u8>, Vec<u8>) = sqlx::query_as(
        "SELECT nonce, ciphertext FROM audit_content WHERE tenant_id = ? AND idx = ?",
    )
    .bind(&tenant)
    .bind(chat.index as i64)
    .fetch_one(&db)
    .await
    .unwrap();
    // A flipped ciphertext byte no longer authenticates.
    let mut flipped = original.clone();
    flipped[10] ^= 1;
    sqlx::query("UPDATE audit_content SET ciphertext = ? WHERE tenant_id = ? AND idx = ?")
        .bind(&flipped)
        .bind(&tenant)
        .bind(chat.index as i64)
        .execute(&db)
        .await
        .unwrap();
    let err = verify_export(&export(&gw, &admin).await, Some(&key), None).unwrap_err();
    assert!(
        matches!(err, VerifyError::Entry { index, .. } if index == chat.index),
        "{err}"
    );
    // An operator with the master key re-seals edited content: the commitment catches it.
    let sealer = sluice::audit::content::Sealer::new(
        sluice::audit::key32_from_text(crate::support::MASTER_KEY).unwrap(),
    );
    let mut content = sealer.open(&tenant, chat.index, &nonce, &original).unwrap();
    content.response = b"a different answer".to_vec();
    let (nonce2, forged) = sealer.seal(&tenant, chat.index, &content).unwrap();
    sqlx::query(
        "UPDATE audit_content SET nonce = ?, ciphertext = ? WHERE tenant_id = ? AND idx = ?",
    )
    .bind(&nonce2)
    .bind(&forged)
    .bind(&tenant)
    .bind(chat.index as i64)
    .execute(&db)
    .await
    .unwrap();
    let err = verify_export(&export(&gw, &admin).await, Some(&key), None).unwrap_err();
    assert!(err.to_string().contains("content edited"), "{err}");
    assert!(
        matches!(err, VerifyError::Entry { index, .. } if index == chat.index),
        "{err}"
    );
}

#[tokio::test]
async fn retention_pruning_and_erasure_keep_verification_green() {
    let (gw, _up) = gateway().await;
    let (_tenant, admin, member) = tenant(&gw).await;
    for _ in 0..3 {
        gw.post("/v1/chat/completions", &member, chat_body("small"))
            .await;
    }
    let key = pinned_key(&gw).await;
    let before = export(&gw, &admin).await;
    assert_eq!(
        before
            .entries
            .iter()
            .filter(|e| e.content.is_some())
            .count(),
        3
    );
    // Nothing is older than the default 365 days yet.
    let pruned: serde_json::Value = gw
        .admin(
            Method::POST,
            "/admin/v1/audit/prune",
            Some(serde_json::json!({})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pruned["deleted"], 0);
    // A year and a day later, all of it is.
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 366 * 86_400;
    let pruned: serde_json::Value = gw
        .admin(
            Method::POST,
            "/admin/v1/audit/prune",
            Some(serde_json::json!({"now": later})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pruned["deleted"], 3);
    let after = export(&gw, &admin).await;
    assert!(after.entries.iter().all(|e| e.content.is_none()));
    verify_export(&after, Some(&key), Some(&before.checkpoint)).unwrap();

    // Erasure on the tenant's request.
    gw.post("/v1/chat/completions", &member, chat_body("small"))
        .await;
    assert!(
        export(&gw, &admin)
            .await
            .entries
            .iter()
            .any(|e| e.content.is_some())
    );
    let erased = gw
        .http
        .post(gw.url("/v1/audit/erase"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), 200);
    let after = export(&gw, &admin).await;
    assert!(after.entries.iter().all(|e| e.content.is_none()));
    let report = verify_export(&after, Some(&key), Some(&before.checkpoint)).unwrap();
    assert!(
        entries(&after).iter().any(|e| e.endpoint == "audit.erase"),
        "the erasure itself is recorded"
    );
    assert!(report.size > before.entries.len() as u64);
}

#[tokio::test]
async fn a_zero_retention_tenants_content_is_nowhere_on_disk() {
    let up = Upstream::ok().await;
    let slow = Upstream::slow(Duration::from_secs(5)).await;
    let gw = TestGateway::start(&format!(
        "{}{}{}{}[[providers]]\nname = \"boom\"\nkind = \"fake\"\npanic = true\n[[deployments]]\nname = \"boom\"\nprovider = \"boom\"\nmodel = \"b\"\n",
        openai_provider("up", &up.url, ""),
        openai_provider("slow", &slow.url, "first_byte_timeout_ms = 100"),
        deployment("small", "up", "m"),
        deployment("slow", "slow", "m"),
    ))
    .await;
    let (tenant, admin, member) = tenant(&gw).await;
    let set = gw
        .admin(
            Method::PUT,
            &format!("/admin/v1/tenants/{tenant}/retention"),
            Some(serde_json::json!({"days": 0})),
        )
        .await;
    assert_eq!(set.status(), 200);
    let secret = canary();
    let with = |model: &str, stream: bool| {
        let mut b = chat_body(model);
        b["messages"][0]["content"] = secret.clone().into();
        b["stream"] = stream.into();
        b
    };
    assert_eq!(
        gw.post("/v1/chat/completions", &member, with("small", false))
            .await
            .status(),
        200
    );
    let streamed = gw
        .post("/v1/chat/completions", &member, with("small", true))
        .await
        .text()
        .await
        .unwrap();
    assert!(streamed.ends_with("data: [DONE]\n\n"));
    assert_eq!(
        gw.post(
            "/v1/chat/completions",
            &member,
            with("no-such-model", false)
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        gw.post("/v1/chat/completions", &member, with("slow", false))
            .await
            .status(),
        504
    );
    assert_eq!(
        gw.post("/v1/chat/completions", &member, with("boom", false))
            .await
            .status(),
        500
    );
    let exported = export(&gw, &admin).await;
    verify_export(&exported, Some(&pinned_key(&gw).await), None).unwrap();
    let marks: Vec<_> = entries(&exported)
        .into_iter()
        .filter(|e| e.endpoint == "chat")
        .map(|e| e.content)
        .collect();
    assert_eq!(marks.len(), 5);
    // The panicking request's entry too: its audit guard holds the request, so it records that content
    // existed, and keeps none of it.
    assert!(
        marks
            .iter()
            .all(|m| *m == sluice::audit::entry::ContentMark::NotRetained),
        "{marks:?}"
    );
    let dir = gw.stop_keep_dir().await;
    let hits = files_containing(dir.path(), &secret);
    assert!(hits.is_empty(), "the canary was written to {hits:?}");
}

#[tokio::test]
async fn a_log_is_signed_at_most_once_per_interval_even_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, log) = open_log(&dir, Duration::from_secs(3600)).await;
    log.append(sample_entry("t1"), None).await.unwrap();
    let first = log.checkpoint_now("t1").await.unwrap().unwrap();
    assert_eq!(first.size, 1);
    for _ in 0..5 {
        log.append(sample_entry("t1"), None).await.unwrap();
        let again = log.checkpoint_now("t1").await.unwrap().unwrap();
        assert_eq!(
            (again.size, &again.note),
            (1, &first.note),
            "within the interval the last checkpoint is reused"
        );
    }
    assert_eq!(storage.audit_checkpoints("t1").await.unwrap().len(), 1);
}

/// A sequencer on its own database file, with the test signing key.
async fn open_log(
    dir: &tempfile::TempDir,
    interval: Duration,
) -> (sluice::storage::Storage, sluice::audit::AuditLog) {
    let storage = sluice::storage::Storage::open(
        &format!("sqlite://{}", dir.path().join("a.db").display()),
        4,
        sluice::config::Durability::Fsync,
    )
    .await
    .unwrap();
    let key = sluice::audit::signing_key_from_text(crate::support::AUDIT_KEY).unwrap();
    let (log, _task) = sluice::audit::AuditLog::open(
        storage.clone(),
        sluice::audit::Signer::new("test".into(), key),
        sluice::audit::content::Sealer::new([8; 32]),
        sluice::audit::LogOptions {
            default_retention_days: 365,
            batch_max: 256,
            checkpoint_interval: interval,
            heads: sluice::audit::heads::SignedHeads::open(&dir.path().join("heads")).unwrap(),
            witnesses: None,
        },
    )
    .await
    .unwrap();
    (storage, log)
}

/// Under load a commit lands while every background checkpoint runs, so SQLite never finds the whole WAL copied
/// and never starts it again from the beginning: it would grow without end, and a sync of a growing file costs
/// twice a rewrite. The sequencer finishes the checkpoint before its next transaction, which restarts the WAL.
#[tokio::test]
async fn finishing_a_background_checkpoint_restarts_the_wal() {
    use sluice::storage::{AuditBatch, AuditRow};
    let batch = |first: u64, rows: u64, checkpoint_first: bool| AuditBatch {
        entries: (first..first + rows)
            .map(|i| AuditRow {
                tenant_id: "t1".into(),
                index: i,
                entry: vec![7; 1000],
                leaf_hash: [0; 32],
                request_id: format!("r{i}"),
            })
            .collect(),
        content: Vec::new(),
        spend: Vec::new(),
        raise: Vec::new(),
        lower: Vec::new(),
        checkpoint_first,
    };
    for finish in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let storage = sluice::storage::Storage::open(
            &format!("sqlite://{}", dir.path().join("a.db").display()),
            4,
            sluice::config::Durability::Fsync,
        )
        .await
        .unwrap();
        let mut writer = storage.audit_writer().await.unwrap();
        writer.insert_batch(&batch(0, 1, false)).await.unwrap();
        // The background checkpoint copies everything so far...
        let (frames, copied) = storage.wal_checkpoint().await.unwrap();
        assert_eq!(frames, copied);
        // ...and a big batch commits after it (this one still restarts the WAL: nothing landed meanwhile).
        writer.insert_batch(&batch(1, 200, false)).await.unwrap();
        writer.insert_batch(&batch(201, 1, finish)).await.unwrap();
        let (frames, _) = storage.wal_checkpoint().await.unwrap();
        if finish {
            assert!(
                frames < 10,
                "the last batch restarted the WAL: {frames} frames, only its own"
            );
        } else {
            // The control: without finishing, the big batch's 50-odd pages are still in the WAL.
            assert!(frames > 50, "{frames} frames");
        }
    }
}

/// With `durability = fsync` the sequencer syncs the WAL itself after each commit. A failed sync is final:
/// that append and every later one fail (503 for their requests), and no checkpoint is signed over entries
/// that might not be on disk.
#[tokio::test]
async fn a_failed_sync_fails_this_and_every_later_append_and_signs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, log) = open_log(&dir, Duration::ZERO).await;
    log.append(sample_entry("t1"), None).await.unwrap();
    log.checkpoint_now("t1").await.unwrap().unwrap();
    // The WAL file disappears from under the gateway: the next commit still lands in SQLite's open file, but
    // the sync after it cannot reach the disk.
    std::fs::remove_file(dir.path().join("a.db-wal")).unwrap();
    for _ in 0..2 {
        let err = log.append(sample_entry("t1"), None).await.unwrap_err();
        assert!(
            matches!(&err, sluice::audit::AuditError::Commit(m) if m.contains("must be restarted")),
            "{err}"
        );
    }
    assert!(log.checkpoint_now("t1").await.is_err());
    let signed = storage.audit_checkpoints("t1").await.unwrap();
    assert_eq!(
        signed.iter().map(|c| c.size).collect::<Vec<_>>(),
        [1],
        "only the checkpoint from before the failure"
    );
}

#[tokio::test]
async fn a_restart_flags_a_log_that_no_longer_matches_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_storage, log) = open_log(&dir, Duration::ZERO).await;
        for _ in 0..5 {
            log.append(sample_entry("t1"), None).await.unwrap();
            log.append(sample_entry("t2"), None).await.unwrap();
        }
        log.checkpoint_now("t1").await.unwrap().unwrap();
        log.checkpoint_now("t2").await.unwrap().unwrap();
    }
    let (_storage, reopened) = open_log(&dir, Duration::ZERO).await;
    assert!(
        reopened.damaged_logs().is_empty(),
        "an untouched log is fine"
    );
    drop(reopened);
    // Rewrite entry 2 of t1 together with its stored leaf hash: only the signed root can tell.
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("a.db").display()))
        .await
        .unwrap();
    let mut forged = sample_entry("t1");
    forged.index = 2;
    forged.cost_micro_usd = 999;
    let bytes = forged.encode();
    sqlx::query(
        "UPDATE audit_entries SET entry = ?, leaf_hash = ? WHERE tenant_id = 't1' AND idx = 2",
    )
    .bind(&bytes)
    .bind(&sluice::audit::merkle::leaf_hash(&bytes)[..])
    .execute(&db)
    .await
    .unwrap();
    db.close().await;
    let (_storage, reopened) = open_log(&dir, Duration::ZERO).await;
    assert_eq!(reopened.damaged_logs(), ["t1".to_owned()]);
}

/// A gateway whose logs are signed at most once per `interval`.
async fn gateway_signing_every(interval: Duration) -> (TestGateway, Upstream) {
    let up = Upstream::ok().await;
    let routing = format!(
        "{}{}",
        openai_provider("up", &up.url, ""),
        deployment("small", "up", "m")
    );
    let gw = TestGateway::start_changed(&routing, |c| c.audit.checkpoint_interval = interval).await;
    (gw, up)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_right_after_activity_covers_every_entry() {
    let (gw, _up) = gateway_signing_every(Duration::from_millis(800)).await;
    let (_, admin, member) = tenant(&gw).await;
    let first = export(&gw, &admin).await;
    let mut last_id = String::new();
    for _ in 0..13 {
        let resp = gw
            .post("/v1/chat/completions", &member, chat_body("small"))
            .await;
        assert_eq!(resp.status(), 200);
        last_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    }
    // Within the interval of the first export's checkpoint: this one waits for the next signing.
    let second = export(&gw, &admin).await;
    let all = entries(&second);
    assert_eq!(
        all.len(),
        first.entries.len() + 1 + 13,
        "the earlier export, its own entry and the 13 requests"
    );
    let key = pinned_key(&gw).await;
    verify_export(&second, Some(&key), Some(&first.checkpoint)).unwrap();

    // A proof for a request made a moment ago waits for a checkpoint that covers it.
    let resp = gw
        .post("/v1/chat/completions", &member, chat_body("small"))
        .await;
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let proof = gw
        .http
        .get(gw.url(&format!("/v1/audit/proof/inclusion?request_id={id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(proof.status(), 200);
    let proof: serde_json::Value = proof.json().await.unwrap();
    assert!(proof["index"].as_u64().unwrap() < proof["size"].as_u64().unwrap());
    assert_ne!(id, last_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_no_checkpoint_covers_yet_is_409_with_retry_after() {
    let (gw, _up) = gateway_signing_every(Duration::from_secs(3600)).await;
    let (_, admin, member) = tenant(&gw).await;
    assert_eq!(
        gw.post("/v1/chat/completions", &member, chat_body("small"))
            .await
            .status(),
        200
    );
    // The tenant's first entry was signed at once; everything after it waits for the next interval.
    let resp = gw
        .post("/v1/chat/completions", &member, chat_body("small"))
        .await;
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let listed: serde_json::Value = gw.get_json("/v1/audit/entries", &admin).await;
    let size = listed["data"].as_array().unwrap().len();
    for path in [
        format!("/v1/audit/proof/inclusion?request_id={id}"),
        "/v1/audit/export".to_owned(),
        format!("/v1/audit/proof/consistency?from=1&to={size}"),
    ] {
        let resp = gw
            .http
            .get(gw.url(&path))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        let retry: u64 = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse().unwrap())
            .unwrap_or(0);
        let (status, err) = crate::support::error_of(resp).await;
        assert_eq!(
            (status, err["code"].as_str()),
            (409, Some("not_checkpointed")),
            "{path}: {err}"
        );
        assert!(
            (3500..=3600).contains(&retry),
            "{path}: Retry-After {retry}"
        );
    }
    // Past the end of the log is a bad argument, not a wait.
    let resp = gw
        .http
        .get(gw.url("/v1/audit/proof/consistency?from=1&to=1000"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_whose_readable_fields_were_edited_does_not_verify() {
    let (gw, _up) = gateway().await;
    let (_, admin, member) = tenant(&gw).await;
    for _ in 0..3 {
        gw.post("/v1/chat/completions", &member, chat_body("small"))
            .await;
    }
    let key = pinned_key(&gw).await;
    let original: serde_json::Value = gw.get_json("/v1/audit/export", &admin).await;
    let parse = |v: &serde_json::Value| serde_json::from_value::<Export>(v.clone()).unwrap();
    verify_export(&parse(&original), Some(&key), None).unwrap();

    let mut edited = original.clone();
    edited["entries"][2]["fields"]["cost_micro_usd"] = 1.into();
    let err = verify_export(&parse(&edited), Some(&key), None).unwrap_err();
    assert_eq!(
        err,
        VerifyError::Entry {
            index: 2,
            reason: "its readable `fields` differ from its signed bytes (`cost_micro_usd` edited)"
                .to_owned()
        }
    );
    let mut added = original.clone();
    added["entries"][1]["fields"]["approved_by"] = "auditor".into();
    assert!(matches!(
        verify_export(&parse(&added), Some(&key), None),
        Err(VerifyError::Entry { index: 1, .. })
    ));
    // Without readable fields the bytes alone still verify.
    let mut bare = original;
    for e in bare["entries"].as_array_mut().unwrap() {
        e.as_object_mut().unwrap().remove("fields");
    }
    verify_export(&parse(&bare), Some(&key), None).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_are_streamed_and_bounded_in_number() {
    let up = Upstream::ok().await;
    let routing = format!(
        "{}{}",
        openai_provider("up", &up.url, ""),
        deployment("small", "up", "m")
    );
    let gw = TestGateway::start_changed(&routing, |c| c.audit.max_concurrent_exports = 1).await;
    let (_, admin, member) = tenant(&gw).await;
    // 40 prompts of 512 KiB: an export of about 28 MB, more than loopback socket buffers hold.
    for i in 0..40 {
        let mut body = chat_body("small");
        body["messages"][0]["content"] = format!("{i} {}", "p".repeat(512 * 1024)).into();
        assert_eq!(
            gw.post("/v1/chat/completions", &member, body)
                .await
                .status(),
            200
        );
    }
    let get = || {
        gw.http
            .get(gw.url("/v1/audit/export"))
            .bearer_auth(&admin)
            .send()
    };
    // A client that stops reading keeps its export, and its slot, open.
    let stalled = get().await.unwrap();
    assert_eq!(stalled.status(), 200);
    let busy = get().await.unwrap();
    assert_eq!(busy.status(), 429);
    assert_eq!(busy.headers()["retry-after"], "1");
    let (_, err) = crate::support::error_of(busy).await;
    assert_eq!(err["code"], "rate_limited");
    // Once it hangs up, the slot is free again and a full export streams and verifies.
    drop(stalled);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let export: Export = loop {
        let resp = get().await.unwrap();
        if resp.status() == 200 {
            break resp.json().await.unwrap();
        }
        assert_eq!(resp.status(), 429);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was never released"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let key = pinned_key(&gw).await;
    let report = verify_export(&export, Some(&key), None).unwrap();
    assert_eq!(report.size, export.entries.len() as u64);
    let with_content = export
        .entries
        .iter()
        .filter(|e| e.content.is_some())
        .count();
    assert_eq!(with_content, 40, "every prompt's content is in the export");
}
