//! `sluice tenant` and `sluice key`: the operator's tenant and API-key commands against a running gateway's
//! control plane (`/admin/v1`), authenticated with the operator token.

use anyhow::bail;
use clap::Subcommand;

// No doc comments on the clap types: clap would turn them into help text.
#[derive(clap::Args)]
pub struct Remote {
    /// Base URL of the running gateway.
    #[arg(long, env = "SLUICE_GATEWAY", default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// Operator token (read from the environment; avoid passing it on the command line).
    #[arg(long, env = "SLUICE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
}

#[derive(Subcommand)]
pub enum TenantAction {
    Create {
        #[arg(long)]
        name: String,
    },
    List,
}

#[derive(Subcommand)]
pub enum KeyAction {
    /// Create a key; its plaintext is printed once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "member")]
        role: String,
    },
    List {
        #[arg(long)]
        tenant: String,
    },
    Revoke {
        key_id: String,
    },
}

/// `sluice tenant create` / `list`: prints the gateway's JSON answer.
pub async fn tenant(action: TenantAction, remote: &Remote) -> anyhow::Result<()> {
    let out = match action {
        TenantAction::Create { name } => {
            call(
                remote,
                http::Method::POST,
                "/admin/v1/tenants",
                Some(serde_json::json!({"name": name})),
            )
            .await?
        }
        TenantAction::List => call(remote, http::Method::GET, "/admin/v1/tenants", None).await?,
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// `sluice key create` / `list` / `revoke`: prints the gateway's JSON answer.
pub async fn key(action: KeyAction, remote: &Remote) -> anyhow::Result<()> {
    let out = match action {
        KeyAction::Create { tenant, name, role } => {
            let path = format!("/admin/v1/tenants/{tenant}/keys");
            call(
                remote,
                http::Method::POST,
                &path,
                Some(serde_json::json!({"name": name, "role": role})),
            )
            .await?
        }
        KeyAction::List { tenant } => {
            let path = format!("/admin/v1/tenants/{tenant}/keys");
            call(remote, http::Method::GET, &path, None).await?
        }
        KeyAction::Revoke { key_id } => {
            let path = format!("/admin/v1/keys/{key_id}");
            call(remote, http::Method::DELETE, &path, None).await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Calls the control plane with the operator token, which must be set.
async fn call(
    remote: &Remote,
    method: http::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    if remote.admin_token.is_empty() {
        bail!("set SLUICE_ADMIN_TOKEN to the operator token");
    }
    Ok(super::client::call(&remote.gateway, &remote.admin_token, method, path, body).await?)
}
