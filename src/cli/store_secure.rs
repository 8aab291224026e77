//! `omtd store secure`: turn on etcd's auth with one user and role per identity
//! (`resources::roles`), idempotently. Run with the admin certificate (CN root); run again
//! after adding a node, once its agent's certificate is issued.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use omtd_crds::Kind;

use super::GlobalArgs;
use crate::resources::{roles, Keys, Repo};
use crate::store::etcd::EtcdStore;
use crate::store::StoreUrl;

#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub action: StoreAction,
}

#[derive(Debug, Subcommand)]
pub enum StoreAction {
    /// Enable etcd auth: users and roles for the operator and every node's agent.
    Secure(SecureArgs),
}

#[derive(Debug, Args)]
pub struct SecureArgs {
    /// A node to make an agent identity for besides the nodes in the store (repeatable).
    #[arg(long = "node")]
    pub nodes: Vec<String>,
}

pub async fn run(global: &GlobalArgs, args: StoreArgs) -> anyhow::Result<ExitCode> {
    let StoreAction::Secure(args) = args.action;
    let url = global.store_url()?;
    let StoreUrl::Etcd { endpoints, tls } = &url else {
        anyhow::bail!(
            "omtd store secure is for etcd; an SQLite store is protected by its file's mode \
             (0600, owned by the user running omtd)"
        );
    };
    if tls.as_ref().is_none_or(|t| t.identity.is_none()) {
        anyhow::bail!(
            "omtd store secure needs etcd+tls:// with the admin certificate \
             (--store-cert/--store-key from `omtd pki issue admin`): once auth is on, etcd \
             knows clients only by their certificates"
        );
    }
    if !omtd_crds::validate::is_dns_name(&global.cluster) {
        anyhow::bail!("--cluster {:?} is not a valid name", global.cluster);
    }
    if let Some(n) = args
        .nodes
        .iter()
        .find(|n| !omtd_crds::validate::is_dns_name(n))
    {
        anyhow::bail!("--node {n:?} is not a valid node name");
    }
    // One connection, as the admin, for reading the Node records and for the auth calls.
    let etcd = EtcdStore::connect_with(endpoints, tls.as_ref()).await?;
    let repo = Repo::new(Arc::new(etcd.clone()), Keys::for_cluster(&global.cluster));
    let mut nodes: Vec<String> = repo
        .snapshot()
        .await?
        .of_kind(Kind::Node)
        .map(|s| s.object.meta().name.clone())
        .chain(args.nodes)
        .collect();
    nodes.sort();
    nodes.dedup();
    let done = etcd
        .secure(&roles::cluster(&global.cluster, &nodes))
        .await?;
    for u in &done.users_added {
        println!("user {u} added");
    }
    for r in &done.roles_added {
        println!("role {r} added");
    }
    println!(
        "etcd auth is on: operator {} and {} agent(s) ({})",
        roles::OPERATOR_USER,
        nodes.len(),
        nodes.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
