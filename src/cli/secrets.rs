//! `omtd secrets new-key|node-key|rotate-key|status`: the keys that seal secrets at rest
//! (see `crate::store::sealed` and docs/security.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use super::{Access, GlobalArgs};
use crate::resources::Keys;
use crate::store::sealed::keyfile::{self, Write};
use crate::store::sealed::keyring::{MasterKey, SecretKey};
use crate::store::sealed::{
    is_envelope, scope_of, sealed_prefixes, Envelope, Keyring, Scope, SealedStore,
};
use crate::store::{Compare, CompareOp, Op, Store, Txn};

#[derive(Debug, Args)]
pub struct SecretsArgs {
    #[command(subcommand)]
    pub command: SecretsCommand,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Write a new random master key to a file (mode 0600). Never overwrites a file;
    /// --add puts the new key in front of an existing file's keys (rotation).
    NewKey {
        /// The key file to write.
        #[arg(long)]
        out: PathBuf,
        /// Add the new key to FILE as its active key; its other keys still open.
        #[arg(long)]
        add: bool,
        /// The new key's id (default: omtd-YYYYMMDD-<random>).
        #[arg(long)]
        id: Option<String>,
    },
    /// Write NODE's plan key, derived from the master key file given by --secrets-key: it
    /// opens that node's plans and nothing else. Give it to the node's agent.
    NodeKey {
        /// The node (as named in its Node record).
        node: String,
        /// The key file to write (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Re-seal every credential and plan of the cluster with the active key (also seals
    /// values stored in the clear). A value written meanwhile is left to its writer.
    RotateKey,
    /// How many values are sealed with which key, and how many are stored in the clear.
    Status,
}

/// The keyring named by `--secrets-key` / `OMTD_SECRETS_KEY`; empty without one.
pub fn keyring(global: &GlobalArgs) -> anyhow::Result<Keyring> {
    match &global.secrets_key {
        Some(path) => Ok(keyfile::load(path)?),
        None => Ok(Keyring::empty()),
    }
}

/// The store as every command uses it: sealing and opening with the given keys (with none,
/// envelopes are still recognised; see `crate::store::sealed`).
pub fn seal(global: &GlobalArgs, store: Arc<dyn Store>) -> anyhow::Result<Arc<dyn Store>> {
    Ok(Arc::new(SealedStore::new(store, keyring(global)?)))
}

pub async fn run(global: &GlobalArgs, args: SecretsArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        SecretsCommand::NewKey { out, add, id } => new_key(&out, add, id),
        SecretsCommand::NodeKey { node, out } => node_key(global, &node, &out),
        SecretsCommand::RotateKey => rotate_key(global).await,
        SecretsCommand::Status => status(global).await,
    }
}

fn new_key(out: &Path, add: bool, id: Option<String>) -> anyhow::Result<ExitCode> {
    let id = match id {
        Some(id) => id,
        None => default_key_id()?,
    };
    let key = MasterKey {
        id: id.clone(),
        key: SecretKey::random()?,
    };
    if add {
        let old = keyfile::load(out)?;
        if old.masters().is_empty() {
            bail!(
                "{} holds node keys only: --add adds to a master key file",
                out.display()
            );
        }
        let mut masters = vec![key];
        masters.extend(old.masters().iter().cloned());
        let ring = Keyring::new(masters, old.nodes().to_vec())?;
        keyfile::write(out, &ring, Write::Replace)?;
        println!(
            "added key {id} to {} as its active key; the others still open. Next: restart \
             the operator with it, re-issue node keys (omtd secrets node-key), then \
             omtd secrets rotate-key",
            out.display()
        );
    } else {
        let ring = Keyring::new(vec![key], vec![])?;
        keyfile::write(out, &ring, Write::New)?;
        println!(
            "wrote key {id} to {} (mode 0600); pass it as --secrets-key (or OMTD_SECRETS_KEY) \
             to the operator and the admin's omtd, then run omtd secrets rotate-key to seal \
             what is stored",
            out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `omtd-YYYYMMDD-xxxxxx`: sorts by creation day, and unique without coordination.
fn default_key_id() -> anyhow::Result<String> {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let day: String = now.chars().take(10).filter(char::is_ascii_digit).collect();
    let mut random = [0u8; 3];
    getrandom::fill(&mut random)
        .map_err(|e| anyhow::anyhow!("the operating system's random number generator: {e}"))?;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("omtd-{day}-{hex}"))
}

fn node_key(global: &GlobalArgs, node: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let Some(master_file) = &global.secrets_key else {
        bail!("omtd secrets node-key derives from the master key: pass --secrets-key FILE");
    };
    // The key is bound to both names: a typo would make a key that opens nothing.
    if !omtd_crds::validate::is_dns_name(node) {
        bail!("{node:?} is not a node name");
    }
    if !omtd_crds::validate::is_dns_name(&global.cluster) {
        bail!("--cluster {:?} is not a valid name", global.cluster);
    }
    let ring = keyfile::load(master_file)?;
    if ring.masters().is_empty() {
        bail!(
            "{} holds node keys only: a node key derives from a master key file",
            master_file.display()
        );
    }
    let keys = ring.derive_node_keys(&global.cluster, node);
    let ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
    keyfile::write(out, &Keyring::new(vec![], keys)?, Write::New)?;
    println!(
        "wrote the plan key of {node} in cluster {} (from key {}) to {} (mode 0600): give \
         it to that node's agent as --secrets-key; it opens that node's plans only",
        global.cluster,
        ids.join(", "),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The store with the given keys, and the raw store underneath.
async fn open(global: &GlobalArgs) -> anyhow::Result<(SealedStore, Keys)> {
    // Read access: a store that does not exist is an error, never a new empty one.
    let raw = super::open_store(global, Access::Read).await?;
    Ok((
        SealedStore::new(raw, keyring(global)?),
        Keys::for_cluster(&global.cluster),
    ))
}

/// Which key a stored value is sealed with; `None` for a value stored in the clear.
fn sealed_with(value: &[u8]) -> Option<String> {
    if !is_envelope(value) {
        return None;
    }
    Some(match Envelope::parse(value) {
        Ok(e) => e.key_id.to_owned(),
        Err(_) => "<damaged>".to_owned(),
    })
}

/// Every value of the cluster that belongs sealed, as stored (not opened).
async fn stored_secrets(
    store: &SealedStore,
    keys: &Keys,
) -> anyhow::Result<Vec<crate::store::KeyValue>> {
    let mut found = Vec::new();
    for prefix in sealed_prefixes(keys.prefix()) {
        let listed = store
            .inner()
            .list(&prefix, None)
            .await
            .with_context(|| format!("cannot list {prefix}"))?;
        found.extend(
            listed
                .kvs
                .into_iter()
                .filter(|kv| scope_of(&kv.key).is_some()),
        );
    }
    Ok(found)
}

async fn rotate_key(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let (store, keys) = open(global).await?;
    let Some(active) = store.keyring().active().map(|k| k.id.clone()) else {
        bail!(
            "omtd secrets rotate-key seals with the active master key: pass the master key \
             file with --secrets-key (a node key cannot)"
        );
    };
    let (mut resealed, mut already, mut raced) = (0usize, 0usize, 0usize);
    let mut unopened: BTreeMap<String, usize> = BTreeMap::new();
    for kv in stored_secrets(&store, &keys).await? {
        let was = sealed_with(&kv.value);
        if was.as_deref() == Some(active.as_str()) {
            already += 1;
            continue;
        }
        let opened = store.open_stored(kv.clone());
        if is_envelope(&opened.value) {
            *unopened.entry(was.unwrap_or_default()).or_default() += 1;
            continue;
        }
        // Only if nobody wrote it since the read: a concurrent write is newer and wins.
        let txn = Txn::new()
            .when(Compare::mod_revision(
                kv.key.clone(),
                CompareOp::Equal,
                kv.mod_revision,
            ))
            .then(Op::Put {
                key: kv.key.clone(),
                value: opened.value,
                lease: kv.lease,
            });
        let done = store
            .txn(txn)
            .await
            .with_context(|| format!("cannot re-seal {}", kv.key))?;
        if done.succeeded {
            resealed += 1;
        } else {
            raced += 1;
        }
    }
    println!(
        "re-sealed {resealed} value(s) of cluster {} with key {active}; {already} already \
         sealed with it",
        global.cluster
    );
    if raced > 0 {
        println!("{raced} value(s) changed meanwhile and were left to their writer: run it again to check");
    }
    if unopened.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for (id, n) in &unopened {
        eprintln!(
            "error: {n} value(s) are sealed with key {id}, which this process was not given: \
             left as they are (add that key to the --secrets-key file, behind the active one)"
        );
    }
    Ok(ExitCode::from(1))
}

#[derive(Default)]
struct Count {
    credentials: usize,
    plans: usize,
}

async fn status(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let (store, keys) = open(global).await?;
    let mut by_key: BTreeMap<Option<String>, Count> = BTreeMap::new();
    for kv in stored_secrets(&store, &keys).await? {
        let count = by_key.entry(sealed_with(&kv.value)).or_default();
        match scope_of(&kv.key) {
            Some(Scope::Credential) => count.credentials += 1,
            Some(Scope::Plan { .. }) => count.plans += 1,
            None => {}
        }
    }
    let ring = store.keyring();
    let active = ring.active().map(|k| k.id.as_str());
    let mut rows = Vec::new();
    for (id, count) in &by_key {
        let (name, held) = match id {
            Some(id) if Some(id.as_str()) == active => (id.clone(), "active"),
            Some(id) if ring.holds(id) => (id.clone(), "held"),
            Some(id) => (id.clone(), "not given"),
            None => ("<plain>".to_owned(), "-"),
        };
        rows.push(vec![
            name,
            count.credentials.to_string(),
            count.plans.to_string(),
            held.to_owned(),
        ]);
    }
    // Keys of the file that seal nothing yet (a new active key before rotate-key).
    for m in ring.masters() {
        if !by_key.contains_key(&Some(m.id.clone())) {
            let held = if Some(m.id.as_str()) == active {
                "active"
            } else {
                "held"
            };
            rows.push(vec![m.id.clone(), "0".into(), "0".into(), held.into()]);
        }
    }
    println!(
        "{}",
        crate::table::table(&["KEY", "CREDENTIALS", "PLANS", "THIS PROCESS"], rows)
    );
    let plain = by_key.get(&None).map_or(0, |c| c.credentials + c.plans);
    let old = by_key
        .keys()
        .flatten()
        .filter(|id| Some(id.as_str()) != active)
        .count();
    match active {
        None if plain > 0 => println!(
            "{plain} value(s) stored in the clear: encryption is off (omtd secrets new-key, \
             then --secrets-key FILE and omtd secrets rotate-key)"
        ),
        Some(_) if plain > 0 || old > 0 => {
            println!("not every value is sealed with the active key: omtd secrets rotate-key")
        }
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}
