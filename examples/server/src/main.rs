//! `cairn-server`: serves Cairn's REST API (see `docs/api.md`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cairn_server::auth::{Scope, Tokens, UrlKey, new_token};
use cairn_server::metrics::Metrics;
use cairn_server::{AppState, HttpLimits, app, serve};
use clap::{Parser, Subcommand};

/// Cairn's REST server.
#[derive(Debug, Parser)]
#[command(
    name = "cairn-server",
    version,
    after_help = "\
The configuration is the CLI's cairn.toml, with a [server] section (see
`cairn init`). Without tokens the server only listens on loopback.

Examples:
  cairn-server --config /etc/cairn/cairn.toml
  cairn-server token --name ci --scope backups:write"
)]
struct Cli {
    /// The configuration file (default: ./cairn.toml, then $CAIRN_HOME/cairn.toml).
    #[arg(long, global = true, env = "CAIRN_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides [server] listen).
    #[arg(long)]
    listen: Option<String>,
    /// Logs as JSON lines.
    #[arg(long)]
    log_json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a bearer token: prints it once, and the lines for cairn.toml
    /// (which keep only its SHA-256).
    Token {
        /// Who will hold it.
        #[arg(long)]
        name: String,
        /// backups:read, backups:write or backups:admin (each includes the ones before).
        #[arg(long, default_value = "backups:read")]
        scope: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Token { name, scope }) = &cli.command {
        return match token(name, scope) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn token(name: &str, scope: &str) -> Result<(), String> {
    let scope = Scope::parse(scope)?;
    let (token, hash) = new_token()?;
    println!("token (shown once; give it to {name}):\n  {token}\n");
    println!("add to cairn.toml:\n");
    println!(
        "[[server.token]]\nname = {name:?}\nsha256 = \"{hash}\"\nscopes = [\"{}\"]",
        scope.as_str()
    );
    Ok(())
}

fn logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The secret of the server's signed URLs: the configured file, else
/// `<home>/url-secret`, made (mode 0600) on first use.
fn url_key(configured: Option<&Path>, home: &Path) -> Result<UrlKey, String> {
    let path = configured.map_or_else(|| home.join("url-secret"), Path::to_owned);
    if configured.is_none() && !path.exists() {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
        cairn_config::write_new(&path, hex::encode(bytes).as_bytes(), 0o600)
            .map_err(|e| e.to_string())?;
    }
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let secret = hex::decode(text.trim())
        .map_err(|_| format!("{}: the URL secret must be hex", path.display()))?;
    UrlKey::new(&secret).map_err(|e| format!("{}: {e}", path.display()))
}

async fn run(cli: Cli) -> Result<(), String> {
    let settings = cairn_config::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
    let server = &settings.server;
    logging(cli.log_json || server.log_json);
    let tokens = Tokens::from_config(&server.tokens)?;
    let listen = cli
        .listen
        .as_deref()
        .or(server.listen.as_deref())
        .unwrap_or("127.0.0.1:8420");
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| format!("listen: {listen:?} is not an address like 127.0.0.1:8420"))?;
    if !addr.ip().is_loopback() && !tokens.enabled() {
        return Err(format!(
            "refusing to listen on {addr} without tokens: add [[server.token]] entries (`cairn-server token`) or listen on 127.0.0.1"
        ));
    }
    let limits = HttpLimits {
        request_timeout: server
            .request_timeout
            .map_or(Duration::from_secs(30), |i| i.0),
        ..HttpLimits::default()
    };
    let grace = server
        .shutdown_grace
        .map_or(Duration::from_secs(60), |i| i.0);
    let metrics = Arc::new(Metrics::default());
    let vault = settings
        .vault_builder()
        .map_err(|e| e.to_string())?
        .observe(Arc::clone(&metrics) as _)
        .open()
        .await
        .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("listening on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let state = AppState {
        vault,
        url_key: url_key(server.url_secret_file.as_deref(), &settings.home)?,
        base_url: format!("http://{local}"),
        max_upload: server.max_upload_bytes.unwrap_or(16 << 30),
        metrics,
        fleet: Arc::default(),
        sessions: Arc::default(),
    };
    let scheduler = tokio::spawn(state.vault.clone().run_scheduler(Duration::from_secs(30)));
    tracing::info!(%local, targets = settings.targets.len(), auth = tokens.enabled(), "listening");
    let router = app(state.clone(), tokens, &limits);
    // No scheduled backup starts once the shutdown has begun.
    let signal = async move {
        shutdown_signal().await;
        scheduler.abort();
    };
    let stopped = serve(listener, router, &state.vault, signal, grace)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(
        finished = stopped.finished,
        cancelled = stopped.cancelled,
        left = stopped.left,
        "stopped"
    );
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutting down: no new connections");
}
