//! An example tenant `auth` policy for Sluice: refuse prompts that carry credentials before any provider
//! sees them, keep `member` keys to a modest output cap, and label the request with its team for the later
//! slots. Edit the constants to make it yours.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use sluice_guest::prelude::*;

/// The most output tokens a `member` key may ask for; owners and admins are not capped here.
const MEMBER_MAX_TOKENS: u32 = 4096;
/// The metadata key (`x-sluice-meta-team` header) whose value becomes the `team` label.
const TEAM: &str = "team";

/// The auth slot: deny with a reason the client sees, or allow with labels.
fn authorize(req: Request) -> Result<AuthDecision, PolicyError> {
    Ok(decide(&req))
}

sluice_guest::export_auth!(authorize);

/// The decision as a pure function, so it is tested on the build machine.
fn decide(req: &Request) -> AuthDecision {
    if let Some(what) = req.messages.iter().find_map(|m| credential_in(&m.text)) {
        // The reason names the kind of credential, never the text.
        return AuthDecision::Deny(format!(
            "the prompt carries what looks like {what}; remove it and retry"
        ));
    }
    if req.key_role == Role::Member && req.max_tokens.is_some_and(|n| n > MEMBER_MAX_TOKENS) {
        return AuthDecision::Deny(format!(
            "member keys may ask for at most {MEMBER_MAX_TOKENS} output tokens"
        ));
    }
    let labels = req
        .meta(TEAM)
        .map(|team| vec![Label::new(TEAM, team)])
        .unwrap_or_default();
    AuthDecision::Allow(labels)
}

/// What kind of credential `text` seems to hold, if any.
fn credential_in(text: &str) -> Option<&'static str> {
    if text.contains("PRIVATE KEY-----") {
        return Some("a private key");
    }
    // An AWS access key id: AKIA and 16 upper-case letters or digits.
    if token_after(text, "AKIA", 16, |c| {
        c.is_ascii_uppercase() || c.is_ascii_digit()
    }) {
        return Some("an AWS access key");
    }
    // OpenAI-style and Sluice API keys: a prefix and a long run of key characters.
    let key_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if token_after(text, "sk-", 32, key_char) || token_after(text, "slk_", 32, key_char) {
        return Some("an API key");
    }
    None
}

/// Whether `prefix` occurs in `text` followed by at least `len` characters that satisfy `ok`.
fn token_after(text: &str, prefix: &str, len: usize, ok: impl Fn(char) -> bool) -> bool {
    text.match_indices(prefix).any(|(at, _)| {
        text[at + prefix.len()..]
            .chars()
            .take(len)
            .filter(|&c| ok(c))
            .count()
            == len
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str, role: Role, max_tokens: Option<u32>, meta: &[(&str, &str)]) -> Request {
        Request {
            request_id: "req-1".to_owned(),
            tenant_id: "tenant-1".to_owned(),
            key_id: "key-1".to_owned(),
            key_role: role,
            endpoint: Endpoint::Chat,
            model: "auto".to_owned(),
            messages: vec![
                Message {
                    role: "system".to_owned(),
                    text: "You are helpful.".to_owned(),
                },
                Message {
                    role: "user".to_owned(),
                    text: text.to_owned(),
                },
            ],
            max_tokens,
            temperature: None,
            stream: false,
            has_tools: false,
            metadata: meta.iter().map(|(k, v)| Label::new(*k, *v)).collect(),
            prompt_tokens: 100,
            labels: Vec::new(),
        }
    }

    fn denial(req: &Request) -> String {
        match decide(req) {
            AuthDecision::Deny(reason) => reason,
            AuthDecision::Allow(labels) => panic!("allowed with {labels:?}"),
        }
    }

    #[test]
    fn ordinary_prompts_pass_with_the_team_label() {
        let req = request(
            "Summarise this sketch.",
            Role::Member,
            Some(500),
            &[("team", "search")],
        );
        let AuthDecision::Allow(labels) = decide(&req) else {
            panic!("denied");
        };
        assert_eq!(labels, [Label::new("team", "search")]);
        let req = request("What is a risk-free rate?", Role::Admin, None, &[]);
        assert!(matches!(decide(&req), AuthDecision::Allow(l) if l.is_empty()));
    }

    #[test]
    fn credentials_are_refused_without_being_echoed() {
        let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----";
        let aws = "my key is AKIAIOSFODNN7EXAMPLE, why does it fail?";
        let openai = "export OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz0123456789";
        for (text, what) in [
            (pem, "a private key"),
            (aws, "an AWS access key"),
            (openai, "an API key"),
        ] {
            let reason = denial(&request(text, Role::Owner, None, &[]));
            assert!(reason.contains(what), "{reason}");
            assert!(
                !reason.contains("EXAMPLE") && !reason.contains("abcdef"),
                "{reason}"
            );
        }
    }

    #[test]
    fn look_alikes_pass() {
        for text in [
            "Ask for a risk-free sk-ewed estimate.",
            "AKIA is a prefix; AKIA123 is too short.",
            "The public key is shared; the private key is not.",
        ] {
            assert!(
                matches!(
                    decide(&request(text, Role::Member, None, &[])),
                    AuthDecision::Allow(_)
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn members_are_capped_and_admins_are_not() {
        let reason = denial(&request("Write a novel.", Role::Member, Some(8000), &[]));
        assert!(reason.contains("4096"), "{reason}");
        let req = request("Write a novel.", Role::Admin, Some(8000), &[]);
        assert!(matches!(decide(&req), AuthDecision::Allow(_)));
    }

    #[test]
    fn the_slot_answers_the_decision() {
        let req = request("Hello", Role::Member, Some(10), &[]);
        assert!(matches!(authorize(req), Ok(AuthDecision::Allow(_))));
    }
}
