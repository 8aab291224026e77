//! The `omtd` command line (kubectl's habits): argument parsing and dispatch. Each command
//! lives in its own file and returns an exit code; errors are reported here, once.

mod agent;
mod apply;
mod bench;
mod completions;
mod debug;
mod delete;
mod demo;
mod describe;
mod diff;
mod epoch;
mod events;
mod get;
pub mod manifests;
mod operator;
mod pki;
mod plan;
pub mod render;
mod secrets;
mod status;
mod store_secure;
mod wait;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::resources::{Keys, Repo};
use crate::store::{self, StoreUrl};

/// omtd keeps a Galaxy-on-Mesos cluster in line with the desired state in its store.
#[derive(Debug, Parser)]
#[command(name = "omtd", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Where the desired state lives: sqlite://PATH, etcd://host:port[,host:port] or
    /// etcd+tls://host:port[,host:port]. Default: sqlite:///var/lib/omtd/omtd.db as root,
    /// else sqlite://$XDG_DATA_HOME/omtd/omtd.db (~/.local/share/omtd/omtd.db).
    #[arg(long, global = true, env = "OMTD_STORE")]
    pub store: Option<String>,
    /// etcd+tls://: the CA certificate (PEM) that signed etcd's server certificate.
    #[arg(long, global = true, env = "OMTD_STORE_CA", value_name = "FILE")]
    pub store_ca: Option<PathBuf>,
    /// etcd+tls://: this process's certificate (PEM); its common name is its etcd user.
    #[arg(long, global = true, env = "OMTD_STORE_CERT", value_name = "FILE")]
    pub store_cert: Option<PathBuf>,
    /// etcd+tls://: the private key (PEM) of --store-cert.
    #[arg(long, global = true, env = "OMTD_STORE_KEY", value_name = "FILE")]
    pub store_key: Option<PathBuf>,
    /// Which cluster's records to use (keys live under /omtd/<cluster>/).
    #[arg(long, global = true, env = "OMTD_CLUSTER", default_value = "default")]
    pub cluster: String,
    /// Key file that seals and opens secrets at rest (credentials, plans); a node's agent
    /// gets its node key. Without one they are stored in the clear (docs/security.md).
    #[arg(long, global = true, env = "OMTD_SECRETS_KEY")]
    pub secrets_key: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update objects from manifests, all or nothing.
    Apply(apply::ApplyArgs),
    /// Show what apply would change (exit 0: nothing, 1: changes, 2: error).
    Diff(diff::DiffArgs),
    /// List objects of a kind (node, nodes, no; credential, cred; volume, vol; cluster, cl; all).
    Get(get::GetArgs),
    /// Show one object in detail.
    Describe(describe::DescribeArgs),
    /// Delete one object.
    Delete(delete::DeleteArgs),
    /// Temporary overrides that end by themselves: `debug editor --ui-access --for 1h`.
    Debug(debug::DebugArgs),
    /// Run the host agent: apply this node's plan, report, heartbeat.
    Agent(agent::AgentArgs),
    /// Run the controllers (one process leads, others stand by), serving /metrics.
    // Boxed: its flags make it several times the size of every other variant (clippy).
    Operator(Box<operator::OperatorArgs>),
    /// What omtd will do to one node: its merged plan as the controllers would write it now.
    Plan(plan::PlanArgs),
    /// List recent events (deduplicated, with counts), oldest first.
    Events(events::EventsArgs),
    /// Show the cluster epoch; `renew` after restoring the store from a snapshot.
    Epoch(epoch::EpochArgs),
    /// Every node, the cluster's conditions and what is pending; --wait until converged.
    Status(status::StatusArgs),
    /// Wait until records meet a condition (--for=condition=Ready) or are gone (--for=delete).
    Wait(wait::WaitArgs),
    /// Run the operator and sim agents for the runbook's cluster, then its classic failures.
    Demo(demo::DemoArgs),
    /// Converge N sim nodes and measure what a change costs (latency, writes, memory).
    Bench(bench::BenchArgs),
    /// The cluster CA and one certificate per identity (agents, operator, admin, etcd).
    Pki(pki::PkiArgs),
    /// Administer the store: `secure` turns on etcd auth with one identity per host.
    Store(store_secure::StoreArgs),
    /// Print a shell completion script (bash, zsh, fish).
    Completions(completions::CompletionsArgs),
    /// Keys for secrets at rest: new-key, node-key, rotate-key, status.
    Secrets(secrets::SecretsArgs),
}

/// `-f FILE|DIR|-`, shared by apply and diff.
#[derive(Debug, Args, Clone)]
pub struct FileArgs {
    /// Manifest file, directory of manifests (.yaml, .yml, .json), or - for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Also read manifests in sub-directories.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Wide,
    Yaml,
    Json,
    /// `KIND/NAME`, one a line (for scripts: `omtd get nodes -l tier=old -o name`).
    Name,
}

/// Parses arguments, runs the command, and turns errors into messages and exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo narrates on stdout; its operator's warnings (a probe failing while the sim
    // hosts boot) would only clutter it, so it logs errors alone unless asked.
    let quiet = matches!(cli.command, Command::Demo(_) | Command::Bench(_));
    init_tracing(cli.global.verbose, quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // diff's contract is kubectl's: 2 means "error", so an error there must not exit 1.
    let error_code = if matches!(cli.command, Command::Diff(_)) {
        2
    } else {
        1
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(error_code)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Completions need no store: answer before opening one (sqlite:// would create a file).
    if let Command::Completions(args) = &cli.command {
        return completions::run(args);
    }
    // The demo picks its own (temporary) store.
    match cli.command {
        Command::Pki(args) => return pki::run(args),
        // Checks the store is etcd before opening it.
        Command::Store(args) => return store_secure::run(&cli.global, args).await,
        Command::Demo(args) => return demo::run(&cli.global, args).await,
        Command::Bench(args) => return bench::run(&cli.global, args).await,
        // Opens the store itself, if at all (new-key and node-key need none).
        Command::Secrets(args) => return secrets::run(&cli.global, args).await,
        _ => {}
    }
    let access = match cli.command {
        Command::Apply(_) | Command::Agent(_) | Command::Operator(_) => Access::Write,
        _ => Access::Read,
    };
    let repo = open_repo(&cli.global, access).await?;
    match cli.command {
        Command::Apply(args) => apply::run(&repo, args).await,
        Command::Diff(args) => diff::run(&repo, args).await,
        Command::Get(args) => get::run(&repo, args).await,
        Command::Describe(args) => describe::run(&repo, args).await,
        Command::Delete(args) => delete::run(&repo, args).await,
        Command::Debug(args) => debug::run(&repo, args).await,
        Command::Agent(args) => agent::run(&repo, args).await,
        Command::Operator(args) => operator::run(&repo, *args).await,
        Command::Plan(args) => plan::run(&repo, args).await,
        Command::Events(args) => events::run(&repo, args).await,
        Command::Epoch(args) => epoch::run(&repo, args).await,
        Command::Status(args) => status::run(&repo, args).await,
        Command::Wait(args) => wait::run(&repo, args).await,
        Command::Store(args) => store_secure::run(&cli.global, args).await,
        Command::Pki(args) => pki::run(args),
        Command::Completions(args) => completions::run(&args),
        Command::Demo(args) => demo::run(&cli.global, args).await,
        Command::Bench(args) => bench::run(&cli.global, args).await,
        Command::Secrets(args) => secrets::run(&cli.global, args).await,
    }
}

/// What a command does with the store. Only writers create a missing SQLite file: a reader
/// on a path with no store says so instead of leaving an empty store behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl GlobalArgs {
    /// The store named by `--store` / `OMTD_STORE`, or the default one.
    pub fn store_url(&self) -> anyhow::Result<StoreUrl> {
        let url: StoreUrl = match &self.store {
            Some(url) => url.parse()?,
            None => StoreUrl::default_sqlite()?,
        };
        Ok(url.with_tls(store::TlsFiles {
            ca: self.store_ca.clone(),
            cert: self.store_cert.clone(),
            key: self.store_key.clone(),
        })?)
    }
}

/// Opens the store named by `--store` / `OMTD_STORE` (or the default) for the cluster's keys,
/// sealing secrets with `--secrets-key`.
pub async fn open_repo(global: &GlobalArgs, access: Access) -> anyhow::Result<Repo> {
    let store = secrets::seal(global, open_store(global, access).await?)?;
    Ok(Repo::new(store, Keys::for_cluster(&global.cluster)))
}

/// The store as the backend holds it (values as stored).
pub async fn open_store(
    global: &GlobalArgs,
    access: Access,
) -> anyhow::Result<Arc<dyn store::Store>> {
    let url = global.store_url()?;
    if !omtd_crds::validate::is_dns_name(&global.cluster) {
        anyhow::bail!(
            "--cluster {:?} is not a valid name: use lower-case letters, digits, '-' and '.'",
            global.cluster
        );
    }
    // The default store's directory is ours to make (private: it holds the store); a path
    // the user named must have its directory already, as a typo should not create one.
    if access == Access::Write && global.store.is_none() {
        if let Some(dir) = url.sqlite_path().and_then(std::path::Path::parent) {
            create_private_dir(dir)?;
        }
    }
    let opened = match access {
        Access::Read => store::open_existing(&url).await,
        Access::Write => store::open(&url).await,
    };
    opened.map_err(|e| anyhow::anyhow!("cannot open store {url}: {e}"))
}

fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| anyhow::anyhow!("cannot create the store directory {}: {e}", dir.display()))
}

fn init_tracing(verbose: u8, quiet: bool) {
    let default = match verbose {
        0 if quiet => "error",
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Logs go to stderr so stdout stays parseable (-o json | jq).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
