//! Sluice guest SDK: write a Sluice policy (`auth`, `classify` or `route`) as one ordinary Rust function and
//! export it with one macro line; the SDK generates the WebAssembly component bindings from the gateway's WIT
//! contract (`wit/policy.wit`, package `sluice:policy@0.1.1`).
//!
//! ```no_run
//! use sluice_guest::prelude::*;
//!
//! fn route(input: RoutingInput) -> Result<RouteDecision, PolicyError> {
//!     let Some(first) = input.candidates.cheapest_healthy(input.tier, None) else {
//!         return Ok(RouteDecision::Reject("no healthy deployment".to_owned()));
//!     };
//!     log::info(&format!("routing to {}", first.name));
//!     Ok(RouteDecision::Route(vec![first.name.clone()]))
//! }
//!
//! sluice_guest::export_router!(route);
//! # fn main() {}
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2` in a `cdylib` crate. Each macro makes the
//! component export only its own slot's interface ([`export_auth!`], [`export_classifier!`],
//! [`export_router!`]); a function whose signature does not match its slot is a compile error:
//!
//! ```compile_fail
//! use sluice_guest::prelude::*;
//!
//! // A router takes a `RoutingInput`, not a `Request`.
//! fn route(req: Request) -> Result<RouteDecision, PolicyError> {
//!     Ok(RouteDecision::Reject(req.model))
//! }
//!
//! sluice_guest::export_router!(route);
//! # fn main() {}
//! ```
//!
//! The data types ([`Request`], [`Deployment`], [`RoutingInput`], ...) are the WIT records as wit-bindgen
//! generates them, one Rust type per WIT type whatever the slot; their fields are documented in the WIT
//! contract. The SDK adds helpers on top: catalog queries ([`Catalog`]), costs
//! ([`Deployment::worst_case_cost`], [`RoutingInput::can_afford`]), request access ([`Request::meta`],
//! [`Request::label`], [`Request::last_user_text`], [`Request::contains_code`]), a token estimate
//! ([`estimate_tokens`]) and host logging ([`log`]).
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod catalog;
pub mod head;
pub mod log;
mod request;

pub use catalog::{ASSUMED_OUTPUT_TOKENS, Catalog};
pub use head::LinearHead;
pub use request::{estimate_tokens, looks_like_code};

/// The bindings wit-bindgen generates, one module per world. Not part of the API: the export macros reach
/// into it, tenants use the re-exports at the crate root.
///
/// wit-bindgen's generated code is `unsafe` (the canonical ABI glue) and has no docs of its own beyond the
/// WIT's, so the lints that the rest of the crate keeps are relaxed here only.
#[doc(hidden)]
#[allow(unsafe_code, missing_docs)]
pub mod __private {
    /// The router world. It also holds the shared `types` and `log` bindings that the other worlds reuse
    /// (`with`), so a `Request` or a `Deployment` is one Rust type in every slot.
    pub mod router {
        wit_bindgen::generate!({
            path: "../wit",
            world: "router-policy",
            // The export macro is used from the tenant's crate, and emits the world's exports there: a
            // component built with it exports this slot only.
            pub_export_macro: true,
            export_macro_name: "__export_router",
            default_bindings_module: "$crate::__private::router",
            additional_derives: [PartialEq],
        });
    }

    /// The classifier world, reusing the router world's `types` and `log`.
    pub mod classifier {
        wit_bindgen::generate!({
            path: "../wit",
            world: "classifier-policy",
            pub_export_macro: true,
            export_macro_name: "__export_classifier",
            default_bindings_module: "$crate::__private::classifier",
            additional_derives: [PartialEq],
            with: {
                "sluice:policy/types@0.1.1": crate::__private::router::sluice::policy::types,
                "sluice:policy/log@0.1.1": crate::__private::router::sluice::policy::log,
            },
        });
    }

    /// The embedding classifier world, reusing the router world's `types` and `log`.
    pub mod embedding_classifier {
        wit_bindgen::generate!({
            path: "../wit",
            world: "embedding-classifier-policy",
            pub_export_macro: true,
            export_macro_name: "__export_embedding_classifier",
            default_bindings_module: "$crate::__private::embedding_classifier",
            additional_derives: [PartialEq],
            with: {
                "sluice:policy/types@0.1.1": crate::__private::router::sluice::policy::types,
                "sluice:policy/log@0.1.1": crate::__private::router::sluice::policy::log,
            },
        });
    }

    /// The auth world, reusing the router world's `types` and `log`.
    pub mod auth {
        wit_bindgen::generate!({
            path: "../wit",
            world: "auth-policy",
            pub_export_macro: true,
            export_macro_name: "__export_auth",
            default_bindings_module: "$crate::__private::auth",
            additional_derives: [PartialEq],
            with: {
                "sluice:policy/types@0.1.1": crate::__private::router::sluice::policy::types,
                "sluice:policy/log@0.1.1": crate::__private::router::sluice::policy::log,
            },
        });
    }
}

pub use __private::auth::exports::sluice::policy::auth::Decision as AuthDecision;
pub use __private::classifier::exports::sluice::policy::classifier::Classification;
pub use __private::router::exports::sluice::policy::router::{
    Decision as RouteDecision, RoutingInput,
};
pub use __private::router::sluice::policy::types::{
    Budget, Deployment, Embedding, Endpoint, Health, Label, Message, PolicyError, Request, Role,
    Tier,
};

/// Everything a policy usually needs: `use sluice_guest::prelude::*;`.
pub mod prelude {
    pub use crate::log;
    pub use crate::{
        ASSUMED_OUTPUT_TOKENS, AuthDecision, Budget, Catalog, Classification, Deployment,
        Embedding, Endpoint, Health, Label, LinearHead, Message, PolicyError, Request, Role,
        RouteDecision, RoutingInput, Tier, estimate_tokens, looks_like_code,
    };
}

impl PolicyError {
    /// A policy error with this message. `auth` fails closed on it; `classify` and `route` fall back to the
    /// built-in policy.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Exports `fn(RoutingInput) -> Result<RouteDecision, PolicyError>` as the component's `route` slot (world
/// `router-policy`).
///
/// ```no_run
/// use sluice_guest::prelude::*;
///
/// fn route(input: RoutingInput) -> Result<RouteDecision, PolicyError> {
///     Ok(RouteDecision::Route(input.candidates.healthy().cheapest_first().names()))
/// }
/// sluice_guest::export_router!(route);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_router {
    ($route:path) => {
        const _: () = {
            struct SluiceGuestRouter;
            impl $crate::__private::router::exports::sluice::policy::router::Guest
                for SluiceGuestRouter
            {
                fn route(
                    input: $crate::RoutingInput,
                ) -> ::core::result::Result<$crate::RouteDecision, $crate::PolicyError> {
                    // The coercion names the expected signature in the compile error of a wrong one.
                    let route: fn(
                        $crate::RoutingInput,
                    ) -> ::core::result::Result<
                        $crate::RouteDecision,
                        $crate::PolicyError,
                    > = $route;
                    route(input)
                }
            }
            $crate::__private::router::__export_router!(
                SluiceGuestRouter with_types_in $crate::__private::router
            );
        };
    };
}

/// Exports `fn(Request) -> Result<Classification, PolicyError>` as the component's `classify` slot (world
/// `classifier-policy`).
///
/// ```no_run
/// use sluice_guest::prelude::*;
///
/// fn classify(req: Request) -> Result<Classification, PolicyError> {
///     let tier = if req.contains_code() { Tier::Complex } else { Tier::Simple };
///     Ok(Classification { tier, score: 0.5, labels: vec![Label::new("classifier", "mine")] })
/// }
/// sluice_guest::export_classifier!(classify);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_classifier {
    ($classify:path) => {
        const _: () = {
            struct SluiceGuestClassifier;
            impl $crate::__private::classifier::exports::sluice::policy::classifier::Guest
                for SluiceGuestClassifier
            {
                fn classify(
                    req: $crate::Request,
                ) -> ::core::result::Result<$crate::Classification, $crate::PolicyError> {
                    // The coercion names the expected signature in the compile error of a wrong one.
                    let classify: fn(
                        $crate::Request,
                    ) -> ::core::result::Result<
                        $crate::Classification,
                        $crate::PolicyError,
                    > = $classify;
                    classify(req)
                }
            }
            $crate::__private::classifier::__export_classifier!(
                SluiceGuestClassifier with_types_in $crate::__private::classifier
            );
        };
    };
}

/// Exports `fn(Request, Option<Embedding>) -> Result<Classification, PolicyError>` as the component's
/// `classify` slot with the request's embedding (world `embedding-classifier-policy`, since contract
/// 0.1.1). The host computes the embedding (its last user message through the gateway's embedding model)
/// only for a classifier exported this way; it is `None` when the gateway has no embedding model or could
/// not compute it in time, so the function needs a fallback.
///
/// ```no_run
/// use sluice_guest::prelude::*;
///
/// // Weights written by `sluice route train` (see `LinearHead`).
/// # const HEAD: &[u8] = &[];
/// fn classify(req: Request, embedding: Option<Embedding>) -> Result<Classification, PolicyError> {
///     let head = LinearHead::parse(HEAD).map_err(PolicyError::new)?;
///     let score = match embedding.as_ref() {
///         Some(e) => head.score(e, &sluice_guest::head::structural(&req))?,
///         None => 0.5,
///     };
///     let tier = if score < 0.5 { Tier::Simple } else { Tier::Complex };
///     Ok(Classification { tier, score, labels: vec![] })
/// }
/// sluice_guest::export_embedding_classifier!(classify);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_embedding_classifier {
    ($classify:path) => {
        const _: () = {
            struct SluiceGuestEmbeddingClassifier;
            impl $crate::__private::embedding_classifier::exports::sluice::policy::embedding_classifier::Guest
                for SluiceGuestEmbeddingClassifier
            {
                fn classify(
                    req: $crate::Request,
                    embedding: ::core::option::Option<$crate::Embedding>,
                ) -> ::core::result::Result<
                    $crate::__private::embedding_classifier::exports::sluice::policy::embedding_classifier::Classification,
                    $crate::PolicyError,
                > {
                    // The coercion names the expected signature in the compile error of a wrong one.
                    let classify: fn(
                        $crate::Request,
                        ::core::option::Option<$crate::Embedding>,
                    ) -> ::core::result::Result<
                        $crate::Classification,
                        $crate::PolicyError,
                    > = $classify;
                    classify(req, embedding).map(|c| {
                        $crate::__private::embedding_classifier::exports::sluice::policy::embedding_classifier::Classification {
                            tier: c.tier,
                            score: c.score,
                            labels: c.labels,
                        }
                    })
                }
            }
            $crate::__private::embedding_classifier::__export_embedding_classifier!(
                SluiceGuestEmbeddingClassifier with_types_in $crate::__private::embedding_classifier
            );
        };
    };
}

/// Exports `fn(Request) -> Result<AuthDecision, PolicyError>` as the component's `authorize` slot (world
/// `auth-policy`).
///
/// ```no_run
/// use sluice_guest::prelude::*;
///
/// fn authorize(req: Request) -> Result<AuthDecision, PolicyError> {
///     match req.meta("team") {
///         Some(team) => Ok(AuthDecision::Allow(vec![Label::new("team", team)])),
///         None => Ok(AuthDecision::Deny("set the x-sluice-meta-team header".to_owned())),
///     }
/// }
/// sluice_guest::export_auth!(authorize);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_auth {
    ($authorize:path) => {
        const _: () = {
            struct SluiceGuestAuth;
            impl $crate::__private::auth::exports::sluice::policy::auth::Guest for SluiceGuestAuth {
                fn authorize(
                    req: $crate::Request,
                ) -> ::core::result::Result<$crate::AuthDecision, $crate::PolicyError> {
                    // The coercion names the expected signature in the compile error of a wrong one.
                    let authorize: fn(
                        $crate::Request,
                    ) -> ::core::result::Result<
                        $crate::AuthDecision,
                        $crate::PolicyError,
                    > = $authorize;
                    authorize(req)
                }
            }
            $crate::__private::auth::__export_auth!(
                SluiceGuestAuth with_types_in $crate::__private::auth
            );
        };
    };
}

/// The README's examples, compiled as doc tests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
