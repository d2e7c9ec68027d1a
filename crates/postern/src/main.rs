//! `postern`: the mail server and its admin commands.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use postern::admin;
use postern::config::Config;
use store::Store;

#[derive(Parser)]
#[command(
    name = "postern",
    version,
    about = "Postern: a complete mail server in one binary"
)]
struct Cli {
    /// Configuration file (TOML). Without it every key takes its default.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory, overriding `data_dir` from the configuration.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Manage hosted domains.
    #[command(subcommand)]
    Domain(DomainCmd),
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage aliases (FROM may be `@domain` for a catch-all).
    #[command(subcommand)]
    Alias(AliasCmd),
    /// Write a mailbox as mbox (mboxrd) to standard output.
    Export {
        address: String,
        #[arg(long, default_value = "INBOX")]
        mailbox: String,
    },
    /// Import an mbox file or a Maildir (Dovecot/Courier Maildir++) into an account.
    Import {
        address: String,
        path: PathBuf,
        /// Target mailbox for an mbox file (default INBOX; created if missing).
        #[arg(long)]
        mailbox: Option<String>,
    },
    /// Inspect and manage the outbound queue.
    #[command(subcommand)]
    Queue(QueueCmd),
    /// Print counts of domains, accounts, aliases, messages and queued mail.
    Stats,
}

#[derive(Subcommand)]
enum DomainCmd {
    /// Host a domain.
    Add { domain: String },
    /// List hosted domains.
    List,
    /// Stop hosting a domain (it must have no users or aliases left).
    Remove { domain: String },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create an account (password prompted, or read from stdin).
    Add {
        address: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts, optionally of one domain.
    List { domain: Option<String> },
    /// Delete an account and all its mail.
    Remove { address: String },
    /// Change an account's password.
    Passwd {
        address: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum AliasCmd {
    /// Deliver mail for FROM to TO (repeat for several targets).
    Add { from: String, to: String },
    /// List aliases, optionally of one domain.
    List { domain: Option<String> },
    /// Remove FROM -> TO, or every target of FROM.
    Remove { from: String, to: Option<String> },
}

#[derive(Subcommand)]
enum QueueCmd {
    /// List queued messages and their recipients.
    List,
    /// Show one queued message: envelope, recipients with their last result, headers.
    Show { id: i64 },
    /// Make one message (or every message) due now; a running server sends it within a second.
    Retry { id: Option<i64> },
    /// Remove a message from the queue, returning it to its sender with a bounce.
    Delete {
        id: i64,
        /// Remove it without telling the sender.
        #[arg(long)]
        silent: bool,
    },
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Repeat password: ")?;
    if first != second {
        bail!("the passwords do not match");
    }
    Ok(first)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("POSTERN_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(match cli.command {
                    Command::Serve => "info",
                    _ => "warn",
                })
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("postern: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("postern: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    if let Command::Serve = cli.command {
        return serve(config).await;
    }
    let store = Store::open_embedded(&config.data_dir)
        .with_context(|| format!("opening the store in {}", config.data_dir.display()))?;
    match cli.command {
        Command::Serve => unreachable!("handled above"),
        Command::Domain(DomainCmd::Add { domain }) => admin::domain_add(&store, &domain).await,
        Command::Domain(DomainCmd::List) => admin::domain_list(&store).await,
        Command::Domain(DomainCmd::Remove { domain }) => {
            admin::domain_remove(&store, &domain).await
        }
        Command::User(UserCmd::Add {
            address,
            password_stdin,
        }) => {
            admin::parse_address(&address)?;
            admin::user_add(&store, &address, &read_password(password_stdin)?).await
        }
        Command::User(UserCmd::List { domain }) => {
            admin::user_list(&store, domain.as_deref()).await
        }
        Command::User(UserCmd::Remove { address }) => admin::user_remove(&store, &address).await,
        Command::User(UserCmd::Passwd {
            address,
            password_stdin,
        }) => {
            admin::parse_address(&address)?;
            admin::user_passwd(&store, &address, &read_password(password_stdin)?).await
        }
        Command::Alias(AliasCmd::Add { from, to }) => admin::alias_add(&store, &from, &to).await,
        Command::Alias(AliasCmd::List { domain }) => {
            admin::alias_list(&store, domain.as_deref()).await
        }
        Command::Alias(AliasCmd::Remove { from, to }) => {
            admin::alias_remove(&store, &from, to.as_deref()).await
        }
        Command::Export { address, mailbox } => admin::export(&store, &address, &mailbox).await,
        Command::Import {
            address,
            path,
            mailbox,
        } => admin::import(&store, &address, &path, mailbox.as_deref()).await,
        Command::Queue(QueueCmd::List) => admin::queue_list(&store).await,
        Command::Queue(QueueCmd::Show { id }) => admin::queue_show(&store, id).await,
        Command::Queue(QueueCmd::Retry { id }) => admin::queue_retry(&store, id).await,
        Command::Queue(QueueCmd::Delete { id, silent }) => {
            admin::queue_delete(&store, &config.hostname, id, silent).await
        }
        Command::Stats => admin::stats(&store).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let running = postern::server::start(&config).await?;
    println!(
        "postern {} serving as {}; data in {}",
        env!("CARGO_PKG_VERSION"),
        config.hostname,
        config.data_dir.display()
    );
    for (name, addr) in &running.listeners {
        println!("  {name:<12} listening on {addr}");
    }
    for (name, addr) in &running.unavailable {
        println!("  {name:<12} not available in this version (configured {addr})");
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    println!("shutting down");
    running.shutdown().await;
    Ok(())
}
