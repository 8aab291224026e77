//! `omtd pki init|issue`: the cluster CA and one certificate per identity
//! (docs/security.md, "Bootstrap"). Needs no store.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::pki::{Pki, Subject};

#[derive(Debug, Args)]
pub struct PkiArgs {
    /// The PKI directory (CA and certificates; created 0700).
    #[arg(
        long,
        env = "OMTD_PKI_DIR",
        default_value = "/etc/omtd/pki",
        global = true
    )]
    pub dir: PathBuf,
    #[command(subcommand)]
    pub action: PkiAction,
}

#[derive(Debug, Subcommand)]
pub enum PkiAction {
    /// Make the cluster CA (ca.crt, ca.key 0600); keeps an existing one.
    Init,
    /// Issue a certificate signed by the CA: NAME.crt and NAME.key (0600).
    Issue(IssueArgs),
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    #[command(subcommand)]
    pub who: Who,
    /// How long the certificate is valid, in days.
    #[arg(long, default_value_t = 365, global = true)]
    pub days: u32,
    /// Replace an existing certificate and key of that name.
    #[arg(long, global = true)]
    pub renew: bool,
}

#[derive(Debug, Subcommand)]
pub enum Who {
    /// A node's agent (common name agent-NODE): reads only that node's plan.
    Agent { node: String },
    /// The operator (common name omtd-operator): reads and writes its cluster's keys.
    Operator,
    /// The administrator's CLI (common name root): everything, including `store secure`.
    Admin,
    /// etcd's server certificate (also its peer certificate); --san for every name or IP
    /// clients and peers dial.
    EtcdServer {
        #[arg(long = "san", required = true)]
        sans: Vec<String>,
        /// File stem and common name, one per member (e.g. etcd-1); default etcd-server.
        #[arg(long)]
        name: Option<String>,
    },
    /// Apache's HTTPS front doors: a server certificate with --san for every ServerName
    /// (the Cluster's spec.frontDoors.names); put it and its key in a Credential `use: tls`.
    FrontDoor {
        #[arg(long = "san", required = true)]
        sans: Vec<String>,
        /// File stem and common name; default front-doors.
        #[arg(long)]
        name: Option<String>,
    },
}

/// A `--name` becomes a file stem and a common name: a DNS label's characters only.
fn check_stem(name: Option<&str>) -> anyhow::Result<()> {
    match name {
        Some(n) if !omtd_crds::validate::is_dns_name(n) => {
            anyhow::bail!("--name {n:?}: use lower-case letters, digits and '-'")
        }
        _ => Ok(()),
    }
}

pub fn run(args: PkiArgs) -> anyhow::Result<ExitCode> {
    let pki = Pki::at(&args.dir);
    match args.action {
        PkiAction::Init => {
            if pki.init()? {
                println!("made the cluster CA: {}", pki.ca_cert().display());
            } else {
                println!(
                    "the cluster CA exists already: {} (kept)",
                    pki.ca_cert().display()
                );
            }
        }
        PkiAction::Issue(issue) => {
            let subject = match issue.who {
                Who::Agent { node } => {
                    if !omtd_crds::validate::is_dns_name(&node) {
                        anyhow::bail!("{node:?} is not a valid node name");
                    }
                    Subject::Agent(node)
                }
                Who::Operator => Subject::Operator,
                Who::Admin => Subject::Admin,
                Who::EtcdServer { sans, name } => {
                    check_stem(name.as_deref())?;
                    Subject::EtcdServer { sans, name }
                }
                Who::FrontDoor { sans, name } => {
                    check_stem(name.as_deref())?;
                    Subject::FrontDoor { sans, name }
                }
            };
            let issued = pki.issue(&subject, issue.days, issue.renew)?;
            println!(
                "issued {} (CN {}), key {}",
                issued.cert.display(),
                issued.common_name,
                issued.key.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
