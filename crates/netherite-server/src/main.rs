//! The `netherite` binary.
//!
//! `netherite serve` runs the engine on the embedded default and serves the Durable Task
//! sidecar protocol, so that apps written with the public Durable Task SDKs (Python,
//! JavaScript, Java, .NET, Go) run on netherite unmodified. Settings come from a TOML file
//! (`--config`), then from `NETHERITE_*` environment variables, then from the flags, each
//! overriding the one before.

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use netherite::sdk::Registry;
use netherite::settings::Settings;
use netherite_server::serve::{Backend, DEFAULT_LISTEN, serve};

#[derive(Parser, Debug)]
#[command(name = "netherite", version, about = "A durable workflow engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the Durable Task gRPC protocol (TaskHubSidecarService).
    Serve(ServeArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// The address to listen on, `host:port` (loopback by default).
    #[arg(long, default_value = DEFAULT_LISTEN, env = "NETHERITE_LISTEN")]
    listen: String,
    /// The task hub's data directory (default `./netherite-data`); with `--transport kafka`,
    /// a directory that every node of the hub shares.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A TOML settings file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The partition count of a new task hub (fixed once the hub exists).
    #[arg(long)]
    partitions: Option<u32>,
    /// The largest input, output or event payload, in bytes.
    #[arg(long)]
    payload_bytes_max: Option<u64>,
    /// Where partition inputs live: `local` (files in the data directory) or `kafka`.
    #[arg(long, value_enum, default_value_t = TransportKind::Local)]
    transport: TransportKind,
    /// The Kafka bootstrap brokers, `host:port[,host:port...]` (with `--transport kafka`).
    #[arg(long, env = "NETHERITE_KAFKA_BROKERS")]
    brokers: Option<String>,
    /// The task hub's name on Kafka: the prefix of its topics and consumer group.
    #[arg(long, default_value = "netherite")]
    hub: String,
}

/// The choices of `--transport`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum TransportKind {
    /// Durable queues on local files.
    Local,
    /// Topics on Kafka.
    Kafka,
}

impl ServeArgs {
    fn settings(&self) -> anyhow::Result<Settings> {
        let mut settings = Settings::load(self.config.as_deref()).context("reading settings")?;
        if let Some(dir) = &self.data_dir {
            settings.data_dir = dir.clone();
        }
        if let Some(n) = self.partitions {
            settings.partition_count = n;
        }
        if let Some(n) = self.payload_bytes_max {
            settings.payload_bytes_max = n;
        }
        settings.validate().context("checking settings")?;
        Ok(settings)
    }

    /// The engine's backend the flags ask for.
    fn backend(&self, settings: &Settings) -> anyhow::Result<Backend> {
        match self.transport {
            TransportKind::Local => Ok(Backend::Local),
            TransportKind::Kafka => self.kafka(settings),
        }
    }

    #[cfg(feature = "kafka")]
    fn kafka(&self, settings: &Settings) -> anyhow::Result<Backend> {
        let brokers = self
            .brokers
            .clone()
            .context("--transport kafka needs --brokers HOST:PORT")?;
        let options = netherite::kafka::KafkaOptions::new(
            brokers,
            self.hub.clone(),
            settings.partition_count,
        );
        Ok(Backend::Kafka(Box::new(options)))
    }

    #[cfg(not(feature = "kafka"))]
    fn kafka(&self, _: &Settings) -> anyhow::Result<Backend> {
        anyhow::bail!("this netherite was built without Kafka: build it with `--features kafka`")
    }

    /// The first address `--listen` names (a host name is looked up).
    fn address(&self) -> anyhow::Result<SocketAddr> {
        let mut addresses = self
            .listen
            .to_socket_addrs()
            .with_context(|| format!("--listen {}: not an address", self.listen))?;
        addresses
            .next()
            .with_context(|| format!("--listen {}: the name has no address", self.listen))
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("netherite: {}", chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes in one line, leaving out a cause its effect already quotes.
fn chain(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let Command::Serve(args) = cli.command;
    let settings = args.settings()?;
    let address = args.address()?;
    let backend = args.backend(&settings)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let ready = |address| eprintln!("netherite: serving on {address}");
        let registry = Registry::new();
        serve(
            settings,
            registry,
            backend,
            address,
            ready,
            shutdown_signal(),
        )
        .await
    })?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
