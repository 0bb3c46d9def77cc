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
use netherite::settings::{Secret, Settings, StorageKind};
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
    /// Where partition inputs live: `local` (files in the data directory), `kafka`, or
    /// `eventhubs` (Azure Event Hubs, with `--storage pageblob`).
    #[arg(long, value_enum, default_value_t = TransportKind::Local)]
    transport: TransportKind,
    /// The Kafka bootstrap brokers, `host:port[,host:port...]` (with `--transport kafka`).
    #[arg(long, env = "NETHERITE_KAFKA_BROKERS")]
    brokers: Option<String>,
    /// The task hub's name on Kafka: the prefix of its topics and consumer group (Kafka only;
    /// on Event Hubs the event hubs are always `partitions` and `clients`).
    #[arg(long, default_value = "netherite")]
    hub: String,
    /// Where partition state lives: `file` (the data directory) or `pageblob` (Azure page
    /// blobs, feature `pageblob`); default: the settings' `storage`.
    #[arg(long, value_enum)]
    storage: Option<StorageArg>,
    /// The Azure Storage connection string for `pageblob`, over the settings file and
    /// NETHERITE_STORAGE_CONNECTION (a flag shows in the process list: prefer the variable or
    /// --storage-connection-file).
    #[arg(long, value_parser = secret)]
    storage_connection: Option<Secret>,
    /// A file holding the Azure Storage connection string (surrounding whitespace ignored);
    /// wins over --storage-connection and the variable.
    #[arg(long)]
    storage_connection_file: Option<PathBuf>,
    /// The container holding the task hub's page blobs (default `netherite`).
    #[arg(long)]
    storage_container: Option<String>,
    /// The Event Hubs namespace's connection string, for `--transport eventhubs` (a policy
    /// with Send and Listen rights, no EntityPath).
    #[arg(long, env = "NETHERITE_EVENTHUBS_CONNECTION", hide_env_values = true,
        value_parser = secret)]
    eventhubs_connection: Option<Secret>,
    /// A file holding the Event Hubs connection string; wins over --eventhubs-connection and
    /// the variable.
    #[arg(long)]
    eventhubs_connection_file: Option<PathBuf>,
}

/// The choices of `--storage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum StorageArg {
    /// Files in the data directory.
    File,
    /// Azure page blobs.
    Pageblob,
}

fn secret(text: &str) -> Result<Secret, String> {
    Ok(Secret::new(text))
}

/// The choices of `--transport`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum TransportKind {
    /// Durable queues on local files.
    Local,
    /// Topics on Kafka.
    Kafka,
    /// Event hubs in an Azure Event Hubs namespace.
    Eventhubs,
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
        self.storage_settings(&mut settings)?;
        settings.validate().context("checking settings")?;
        Ok(settings)
    }

    /// Applies the storage flags; the connection string from a file wins over the flag.
    fn storage_settings(&self, settings: &mut Settings) -> anyhow::Result<()> {
        match self.storage {
            Some(StorageArg::File) => settings.storage = StorageKind::File,
            Some(StorageArg::Pageblob) => settings.storage = StorageKind::PageBlob,
            None => {}
        }
        if let Some(connection) = &self.storage_connection {
            settings.storage_connection = Some(connection.clone());
        }
        if let Some(path) = &self.storage_connection_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--storage-connection-file {}", path.display()))?;
            settings.storage_connection = Some(Secret::new(text.trim()));
        }
        if let Some(container) = &self.storage_container {
            settings.storage_container = container.clone();
        }
        Ok(())
    }

    /// The engine's backend the flags ask for.
    fn backend(&self, settings: &Settings) -> anyhow::Result<Backend> {
        match self.transport {
            TransportKind::Local => Ok(Backend::Local),
            TransportKind::Kafka => self.kafka(settings),
            TransportKind::Eventhubs => self.eventhubs(settings),
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

    #[cfg(feature = "eventhubs")]
    fn eventhubs(&self, settings: &Settings) -> anyhow::Result<Backend> {
        use netherite::azure::StorageAccount;
        use netherite::eventhubs::{EventHubsConnection, EventHubsOptions};

        let text = match &self.eventhubs_connection_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("--eventhubs-connection-file {}", path.display()))?,
            None => self
                .eventhubs_connection
                .as_ref()
                .map(|secret| secret.expose().to_string())
                .context("--transport eventhubs needs --eventhubs-connection(-file)")?,
        };
        let connection =
            EventHubsConnection::parse(text.trim()).context("the Event Hubs connection string")?;
        let storage = settings
            .storage_connection
            .as_ref()
            .context("--transport eventhubs needs --storage pageblob and its connection")?;
        let account =
            StorageAccount::parse(storage.expose()).context("the storage connection string")?;
        let options = EventHubsOptions::new(
            connection,
            account,
            settings.storage_container.clone(),
            settings.partition_count,
        );
        Ok(Backend::EventHubs(Box::new(options)))
    }

    #[cfg(not(feature = "eventhubs"))]
    fn eventhubs(&self, _: &Settings) -> anyhow::Result<Backend> {
        anyhow::bail!(
            "this netherite was built without Event Hubs: build it with `--features eventhubs`"
        )
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
