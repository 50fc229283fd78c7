//! `headcount user|share|apikey …`: managing access from the command line.
//!
//! Passwords are read from standard input (one line), never from arguments,
//! so they stay out of shell history and `ps`. Each command applies missing
//! migrations first, so it works on a fresh database.

use super::db::{AccessStore, normalize_email};
use super::secret;
use crate::clock::SystemClock;
use crate::config::{Config, normalize_domain};
use anyhow::{Context, bail};
use clap::Subcommand;
use std::io::BufRead;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user, or replace their password and sites (password from stdin).
    Add {
        email: String,
        /// A site the user may read (repeatable).
        #[arg(long = "site")]
        sites: Vec<String>,
        /// The user may read every configured site.
        #[arg(long, conflicts_with = "sites")]
        all_sites: bool,
    },
    /// List users and their sites.
    List,
    /// Delete a user (their sessions and API keys stop working).
    Remove { email: String },
}

#[derive(Debug, Subcommand)]
pub enum ShareCommand {
    /// Create a shared read-only link to a site's dashboard; prints its path.
    Add {
        domain: String,
        /// Protect the link with a password (read from stdin).
        #[arg(long)]
        password: bool,
        /// A note shown in the list.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List shared links (their tokens cannot be shown again).
    List { domain: Option<String> },
    /// Revoke a shared link by its id.
    Remove { id: String },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a Stats API key for a user; prints it once.
    Add {
        email: String,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List API keys (prefixes only).
    List { email: Option<String> },
    /// Revoke the key starting with this prefix (as listed).
    Remove { prefix: String },
}

async fn store(cfg: &Config) -> anyhow::Result<AccessStore> {
    crate::store::migrate::run(&crate::store::server_client(&cfg.clickhouse), &cfg.clickhouse.database)
        .await
        .with_context(|| format!("migrating ClickHouse at {}", cfg.clickhouse.url))?;
    Ok(AccessStore::new(crate::store::client(&cfg.clickhouse), Arc::new(SystemClock)))
}

/// One line from stdin, without its line ending.
fn read_password(what: &str) -> anyhow::Result<String> {
    eprintln!("{what} (one line on standard input):");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    if pw.chars().count() < 8 {
        bail!("the password must have at least 8 characters");
    }
    Ok(pw)
}

fn configured(cfg: &Config, domain: &str) -> anyhow::Result<String> {
    match cfg.site(domain) {
        Some(s) => Ok(s.domain.clone()),
        None => bail!(
            "`{domain}` is not a configured site (configured: {})",
            cfg.sites.iter().map(|s| s.domain.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

pub async fn user(cfg: &Config, cmd: UserCommand) -> anyhow::Result<()> {
    let store = store(cfg).await?;
    match cmd {
        UserCommand::Add { email, sites, all_sites } => {
            let email = normalize_email(&email);
            if !email.contains('@') || email.len() > 254 || email.chars().any(char::is_whitespace) {
                bail!("`{email}` does not look like an e-mail address");
            }
            if sites.is_empty() && !all_sites {
                bail!("give --site DOMAIN (repeatable) or --all-sites");
            }
            let sites = sites.iter().map(|s| configured(cfg, s)).collect::<anyhow::Result<Vec<_>>>()?;
            let pw = read_password(&format!("Password for {email}"))?;
            let hash = tokio::task::spawn_blocking(move || secret::hash_password(&pw)).await??;
            store.put_user(&email, &hash, all_sites, &sites).await?;
            let access = if all_sites { "all sites".to_string() } else { sites.join(", ") };
            println!("user {email} saved; may read {access}");
        }
        UserCommand::List => {
            for u in store.users().await? {
                let access = if u.all_sites { "(all sites)".to_string() } else { u.sites.join(", ") };
                println!("{}\t{access}", u.email);
            }
        }
        UserCommand::Remove { email } => {
            if store.delete_user(&email).await? {
                println!("user {} removed", normalize_email(&email));
            } else {
                bail!("no user {}", normalize_email(&email));
            }
        }
    }
    Ok(())
}

pub async fn share(cfg: &Config, cmd: ShareCommand) -> anyhow::Result<()> {
    let store = store(cfg).await?;
    match cmd {
        ShareCommand::Add { domain, password, label } => {
            let site = configured(cfg, &domain)?;
            let hash = if password {
                let pw = read_password("Password for the shared link")?;
                tokio::task::spawn_blocking(move || secret::hash_password(&pw)).await??
            } else {
                String::new()
            };
            let (share, token) = store.create_share(&site, &hash, &label, "cli").await?;
            println!("shared link {} to {site}{}:", share.id, if password { " (password-protected)" } else { "" });
            println!("  /share/{token}");
            println!("  e.g. http://{}/share/{token}", cfg.server.listen);
            println!("The token is shown only now; `headcount share remove {}` revokes it.", share.id);
        }
        ShareCommand::List { domain } => {
            let site = domain.as_deref().map(normalize_domain);
            for s in store.shares(site.as_deref()).await? {
                let pw = if s.password_hash.is_empty() { "" } else { "password" };
                println!("{}\t{}\t{}\t{pw}\t{}\t{}", s.id, s.site, s.created_at.date(), s.created_by, s.label);
            }
        }
        ShareCommand::Remove { id } => {
            if !store.revoke_share(&id).await? {
                bail!("no live shared link {id}");
            }
            println!("shared link {id} revoked");
        }
    }
    Ok(())
}

pub async fn api_key(cfg: &Config, cmd: ApiKeyCommand) -> anyhow::Result<()> {
    let store = store(cfg).await?;
    match cmd {
        ApiKeyCommand::Add { email, name } => {
            if store.user(&email).await?.is_none() {
                bail!("no user {}; create one with `headcount user add`", normalize_email(&email));
            }
            let key = store.create_api_key(&email, &name).await?;
            println!("{key}");
            eprintln!(
                "API key for {} (shown only now). Use it as `Authorization: Bearer <key>` with /api/v1/stats/…",
                normalize_email(&email)
            );
        }
        ApiKeyCommand::List { email } => {
            for k in store.api_keys(email.as_deref()).await? {
                println!("{}…\t{}\t{}\t{}", k.prefix, k.email, k.created_at.date(), k.name);
            }
        }
        ApiKeyCommand::Remove { prefix } => {
            let n = store.revoke_api_key(prefix.trim_end_matches('…')).await?;
            if n == 0 {
                bail!("no live API key starting with {prefix}");
            }
            println!("{n} API key(s) revoked");
        }
    }
    Ok(())
}
