//! The `headcount` command line. Thin: parse arguments, load the config,
//! set up logging, hand over to the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use headcount::config::{Config, EXAMPLE, LogFormat};
use headcount::{app, salt_keeper, store};
use std::path::PathBuf;

/// jemalloc, configured in `.cargo/config.toml` to hand freed memory back
/// within 250 ms from a background thread. Under load, glibc's malloc kept
/// what batches, connections and parse caches had once used: at 20,900
/// pageviews/s its RSS sat at ~105 MB; jemalloc held 64–74 MB and served
/// `/p.gif` ~6 % faster (BENCHMARKS.md, fourth session). mimalloc, tried
/// earlier, held more, not less. The cost is a higher floor when idle
/// (~39 → 40–52 MB).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "headcount",
    version,
    about = "Privacy-preserving web analytics: counts people without knowing who they are"
)]
struct Cli {
    /// Configuration file (TOML). Keys can be overridden by HEADCOUNT_<SECTION>__<KEY>.
    #[arg(long, short, global = true, default_value = "headcount.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate ClickHouse and serve the beacon endpoints.
    Serve,
    /// Apply missing ClickHouse migrations and exit.
    Migrate,
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Salt key helpers.
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Salt lifecycle.
    Salts {
        #[command(subcommand)]
        action: SaltsAction,
    },
    /// Dashboard users (operators) and their sites.
    User {
        #[command(subcommand)]
        action: headcount::auth::cli::UserCommand,
    },
    /// Shared read-only links to a dashboard.
    Share {
        #[command(subcommand)]
        action: headcount::auth::cli::ShareCommand,
    },
    /// Stats API keys (Plausible Stats API v1 compatible).
    Apikey {
        #[command(subcommand)]
        action: headcount::auth::cli::ApiKeyCommand,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print the annotated default configuration.
    Example,
    /// Validate the configuration and report every problem.
    Check,
}

#[derive(Subcommand)]
enum KeyAction {
    /// Write a new salt key to the configured salt_key_file (never overwrites).
    Generate,
}

#[derive(Subcommand)]
enum SaltsAction {
    /// Which days have stored salts (never their values).
    Status,
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path, std::env::vars()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cfg.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Config { action: ConfigAction::Example } => {
            print!("{EXAMPLE}");
            Ok(())
        }
        Command::Config { action: ConfigAction::Check } => {
            let cfg = load(&cli.config)?;
            println!(
                "{}: OK ({} site(s), ip_mode {:?}, ClickHouse {} database {})",
                cli.config.display(),
                cfg.sites.len(),
                cfg.privacy.ip_mode,
                cfg.clickhouse.url,
                cfg.clickhouse.database
            );
            Ok(())
        }
        Command::Key { action: KeyAction::Generate } => {
            let cfg = load(&cli.config)?;
            let key = headcount::privacy::seal::SaltKey::generate()?;
            let path = &cfg.privacy.salt_key_file;
            salt_keeper::write_key(path, &key).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {} (fingerprint {})", path.display(), key.fingerprint());
            Ok(())
        }
        Command::Salts { action: SaltsAction::Status } => {
            let cfg = load(&cli.config)?;
            let db = store::client(&cfg.clickhouse);
            let grace = cfg.privacy.salt_grace;
            for (day, proposals) in store::salts::days(&db).await? {
                let destroy_at = day.next_day().map(|d| d.midnight().assume_utc() + grace);
                println!(
                    "{day}  {proposals} sealed proposal(s)  destroyed after {}",
                    destroy_at.map(|t| t.to_string()).unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::User { action } => headcount::auth::cli::user(&load(&cli.config)?, action).await,
        Command::Share { action } => headcount::auth::cli::share(&load(&cli.config)?, action).await,
        Command::Apikey { action } => headcount::auth::cli::api_key(&load(&cli.config)?, action).await,
        Command::Migrate => {
            let cfg = load(&cli.config)?;
            init_logging(&cfg);
            let applied = store::migrate::run(&store::server_client(&cfg.clickhouse), &cfg.clickhouse.database)
                .await
                .with_context(|| format!("migrating ClickHouse at {}", cfg.clickhouse.url))?;
            println!("{} migration(s) applied", applied.len());
            Ok(())
        }
        Command::Serve => {
            let cfg = load(&cli.config)?;
            init_logging(&cfg);
            let listener = tokio::net::TcpListener::bind(cfg.server.listen)
                .await
                .with_context(|| format!("binding {}", cfg.server.listen))?;
            app::run(listener, cfg, app::Options::default(), shutdown_signal()).await?;
            Ok(())
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
