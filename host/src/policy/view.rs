//! What policies see: every conversion between host types and the wit binding types (requests, messages,
//! tiers, deployments, the routing input, labels).

use std::sync::Arc;

use super::wasm::{self, wit};
use crate::config::Tier;
use crate::providers::{Deployment, Endpoint};
use crate::wire::{self, ChatRequest};

/// Most labels one slot may add, and the longest key and value kept; the rest is dropped.
pub const MAX_LABELS: usize = 32;
pub const MAX_LABEL_KEY: usize = 64;
pub const MAX_LABEL_VALUE: usize = 256;

/// Longest metadata value passed to policies, and most metadata entries.
pub const MAX_META_VALUE: usize = 256;
pub const MAX_META: usize = 32;

/// What the policies see of a request (plain data, nothing secret).
pub type PolicyRequest = wit::Request;

/// The facts of a request that policies may see, in host types.
#[derive(Debug, Clone)]
pub struct RequestFacts<'a> {
    pub request_id: &'a str,
    pub principal: &'a crate::auth::Principal,
    pub endpoint: Endpoint,
    pub model: &'a str,
    pub chat: Option<&'a ChatRequest>,
    pub max_tokens: Option<u32>,
    pub stream: bool,
    pub prompt_tokens: u64,
    /// `x-sluice-meta-*` headers (prefix stripped), as the client sent them. Headers whose value is not
    /// visible ASCII (`HeaderValue::to_str` fails) are left out by the caller.
    pub metadata: Vec<(String, String)>,
}

/// What the policies see of a request: the first `MAX_META` metadata entries, each value cut to
/// `MAX_META_VALUE` characters, then the chat request's `user` as the `user` entry; no labels yet.
pub fn request_view(facts: &RequestFacts<'_>) -> PolicyRequest {
    let chat = facts.chat;
    let mut metadata: Vec<wit::Label> = facts
        .metadata
        .iter()
        .take(MAX_META)
        .map(|(key, value)| wit::Label {
            key: key.clone(),
            value: value.chars().take(MAX_META_VALUE).collect(),
        })
        .collect();
    if let Some(user) = chat.and_then(|c| c.user.as_ref()) {
        metadata.push(wit::Label {
            key: "user".to_owned(),
            value: user.chars().take(MAX_META_VALUE).collect(),
        });
    }
    let p = facts.principal;
    wit::Request {
        request_id: facts.request_id.to_owned(),
        tenant_id: p.tenant_id.to_string(),
        key_id: p.key_id.to_string(),
        key_role: wit_role(p.role),
        endpoint: wit_endpoint(facts.endpoint),
        model: facts.model.to_owned(),
        messages: chat.map(messages).unwrap_or_default(),
        max_tokens: facts.max_tokens,
        temperature: chat.and_then(|c| c.temperature),
        stream: facts.stream,
        has_tools: chat.is_some_and(|c| c.tools.as_ref().is_some_and(|t| !t.is_empty())),
        metadata,
        prompt_tokens: facts.prompt_tokens,
        labels: Vec::new(),
    }
}

fn wit_role(r: crate::auth::Role) -> wit::Role {
    match r {
        crate::auth::Role::Owner => wit::Role::Owner,
        crate::auth::Role::Admin => wit::Role::Admin,
        crate::auth::Role::Member => wit::Role::Member,
    }
}

fn wit_endpoint(e: Endpoint) -> wit::Endpoint {
    match e {
        Endpoint::Chat => wit::Endpoint::Chat,
        Endpoint::Embeddings => wit::Endpoint::Embeddings,
    }
}

/// What the policies see of a chat request's messages: roles and text parts.
pub fn messages(chat: &ChatRequest) -> Vec<wit::Message> {
    chat.messages
        .iter()
        .map(|m| wit::Message {
            role: serde_json::to_value(m.role)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            text: wire::content_text(m.content.as_ref())
                .collect::<Vec<_>>()
                .join("\n"),
        })
        .collect()
}

pub fn wit_tier(t: Tier) -> wit::Tier {
    match t {
        Tier::Simple => wit::Tier::Simple,
        Tier::Standard => wit::Tier::Standard,
        Tier::Complex => wit::Tier::Complex,
    }
}

pub fn host_tier(t: wit::Tier) -> Tier {
    match t {
        wit::Tier::Simple => Tier::Simple,
        wit::Tier::Standard => Tier::Standard,
        wit::Tier::Complex => Tier::Complex,
    }
}

/// The catalog entry a router sees for a deployment.
pub fn wit_deployment(d: &Deployment) -> wit::Deployment {
    wit::Deployment {
        name: d.config.name.clone(),
        tier: wit_tier(d.config.tier),
        region: d.config.region.clone(),
        input_micro_usd_per_mtok: d.config.price.input_micro_usd_per_mtok,
        output_micro_usd_per_mtok: d.config.price.output_micro_usd_per_mtok,
        // The gateway does not track deployment health yet: every deployment is reported healthy.
        health: wit::Health::Healthy,
        recent_latency_ms: None,
    }
}

/// What a router sees: the request, its tier, the candidates' catalog entries and the budget left.
pub fn routing_input(
    req: PolicyRequest,
    tier: Tier,
    candidates: &[Arc<Deployment>],
    remaining_micro_usd: Option<u64>,
) -> wasm::RoutingInput {
    wasm::RoutingInput {
        req,
        tier: wit_tier(tier),
        candidates: candidates.iter().map(|d| wit_deployment(d)).collect(),
        budget: wit::Budget {
            remaining_micro_usd,
        },
    }
}

/// Keeps at most `MAX_LABELS` labels, each cut to the key and value limits.
pub fn cap_labels(labels: Vec<wit::Label>) -> Vec<wit::Label> {
    fn cut(s: String, max: usize) -> String {
        if s.len() <= max {
            return s;
        }
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_owned()
    }
    labels
        .into_iter()
        .take(MAX_LABELS)
        .map(|l| wit::Label {
            key: cut(l.key, MAX_LABEL_KEY),
            value: cut(l.value, MAX_LABEL_VALUE),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthMethod, Principal, Role};

    #[test]
    fn the_request_view_caps_metadata_and_adds_the_user() {
        let chat: ChatRequest = wire::parse_body(
            br#"{"model":"auto","user":"u","temperature":0.5,"messages":[{"role":"user","content":"hi"}],
                "tools":[{"type":"function","function":{"name":"f"}}]}"#,
        )
        .unwrap();
        let principal = Principal {
            tenant_id: "t".into(),
            key_id: "k".into(),
            role: Role::Member,
            method: AuthMethod::ApiKey,
        };
        let metadata = (0..40)
            .map(|i| (format!("m{i}"), "é".repeat(300)))
            .collect();
        let req = request_view(&RequestFacts {
            request_id: "r",
            principal: &principal,
            endpoint: Endpoint::Chat,
            model: "auto",
            chat: Some(&chat),
            max_tokens: Some(7),
            stream: true,
            prompt_tokens: 12,
            metadata,
        });
        assert_eq!(req.metadata.len(), MAX_META + 1);
        assert!(
            req.metadata[..MAX_META]
                .iter()
                .all(|l| l.value.chars().count() == MAX_META_VALUE)
        );
        let user = &req.metadata[MAX_META];
        assert_eq!((user.key.as_str(), user.value.as_str()), ("user", "u"));
        assert_eq!(
            (req.request_id.as_str(), req.tenant_id.as_str()),
            ("r", "t")
        );
        assert_eq!(req.key_role, wit::Role::Member);
        assert_eq!(req.endpoint, wit::Endpoint::Chat);
        assert_eq!(req.messages.len(), 1);
        assert_eq!(req.messages[0].role, "user");
        assert_eq!(req.messages[0].text, "hi");
        assert_eq!(
            (req.max_tokens, req.stream, req.prompt_tokens),
            (Some(7), true, 12)
        );
        assert_eq!(req.temperature, Some(0.5));
        assert!(req.has_tools);
        assert!(req.labels.is_empty());
    }
}
