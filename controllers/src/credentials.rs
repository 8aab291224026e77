//! The credentials controller: one source of truth for every file that holds a secret, each
//! rendered byte for byte (one-line files carry no trailing newline: "I kid you not!").
//!
//! | host | files |
//! |---|---|
//! | manager | `/etc/mesos-master/store/credentials.json` (every member worker + Chronos), the `credentials`, `acls` and `authenticate_*` flag files, `store/auth_rules`; Chronos's principal and secret-file flags in `conf/` (where its launcher reads them) and at the runbook's paths, the secret file, `conf/http_credentials` |
//! | worker | `/etc/mesos-slave/store/credentials.json`, `/etc/mesos-slave/credential` |
//! | registry | Apache's htpasswd (bcrypt, deterministic salt) |
//! | executor | Galaxy's `config/job_conf.xml` (Chronos runner with the HTTP credentials) |
//!
//! ## Rotation order
//!
//! Mesos 1.4 reads its credentials at start only and keeps one secret per principal, so a
//! rotated secret cannot be valid on both sides at once: some window of mismatch is
//! unavoidable, and the aim is to keep it to one restart. The master goes first: its file
//! is written at once and its restart token carries a fingerprint of the credentials it
//! holds (names and generations, no secret). An agent's (or Chronos's) new credential is
//! *held back* — its slice keeps the previous content — until the manager's agent reports
//! mesos-master restarted with that fingerprint. Then the worker's file changes and its
//! agent restarts (`restart_on`). The pair is mismatched only between the master's restart
//! and the agent's: one restart, never longer, however late either host is (a late master
//! keeps the old secret on both sides). Agents wait for the master only, not for Chronos:
//! an agent's authentication never involves Chronos.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};

use omtd_crds::plan::{FileSpec, PlanSlice};
use omtd_crds::Kind;
use omtd_crds::{Credential, CredentialUse};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::declaration::{condition, Declaration, Owned, Plans, Reports, Wakes};
use crate::desired::{credential_key, Desired};
use crate::error::Error;
use crate::observed::Observed;
use crate::output::{not_true, slice_of, Cond, Intent, Reconciled, StatusEdit};
use crate::paths::{
    self, AGENT_CREDENTIALS, AGENT_CREDENTIAL_FLAG, CHRONOS_CONF_PRINCIPAL,
    CHRONOS_CONF_SECRET_FILE, CHRONOS_HTTP_CREDENTIALS, CHRONOS_PRINCIPAL, CHRONOS_SECRET,
    CHRONOS_SECRET_FILE, MASTER_ACLS_FLAG, MASTER_AUTH_FLAGS, MASTER_AUTH_RULES,
    MASTER_CREDENTIALS, MASTER_CREDENTIALS_FLAG, REGISTRY_HTPASSWD,
};
use crate::removal::RemovalPhase;
use crate::render::{absent_file, file, secret_file, xml_escape};
use crate::settings::Settings;

pub const NAME: &str = "credentials";

/// What this controller owns and what wakes it.
pub const DECLARATION: Declaration = Declaration {
    name: NAME,
    owns: &[Owned {
        kind: Kind::Credential,
        conditions: &[condition::READY],
        status_keys: &[],
    }],
    reasons: &[
        reason::RENDERED,
        reason::UNRENDERABLE,
        reason::WAITING_FOR_MASTER,
    ],
    // One report, the manager's (whether mesos-master restarted with the credentials);
    // no heartbeat or probe.
    wakes: Wakes {
        reports: Reports::Manager,
        heartbeats: false,
        probes: false,
        plans: Plans::Own,
    },
};

/// The reasons of the conditions this controller sets.
pub mod reason {
    pub const RENDERED: &str = "Rendered";
    pub const UNRENDERABLE: &str = "Unrenderable";
    pub const WAITING_FOR_MASTER: &str = "WaitingForMaster";
}

pub fn reconcile(desired: &Desired, observed: &Observed, settings: &Settings) -> Reconciled {
    let mut out = Intent::default();
    let mut slices: BTreeMap<String, PlanSlice> = BTreeMap::new();
    let applied = master_applied(desired, observed);
    // Credential name → why it is not (yet) fully in place.
    let mut pending: BTreeMap<String, Cond> = BTreeMap::new();

    if let Some(manager) = desired.manager() {
        let m = &manager.metadata.name;
        let mut files = master_files(desired);
        if let Some(c) = desired.credential_for(CredentialUse::ChronosFramework) {
            let (chronos, held) = hold(observed, m, chronos_framework_files(c), applied);
            files.extend(chronos);
            if held {
                pending.insert(c.metadata.name.clone(), waiting_for_master(m, "Chronos"));
            }
        }
        if let Some(c) = desired.credential_for(CredentialUse::ChronosHttp) {
            match chronos_http_file(c) {
                Ok(f) => files.push(f),
                Err(e) => {
                    pending.insert(c.metadata.name.clone(), unrenderable(&e));
                }
            }
        }
        slice(&mut slices, m).files.extend(files);
    }

    for worker in desired.workers() {
        let w = &worker.metadata.name;
        let retired = desired
            .removal_phase(w)
            .is_some_and(|p| p >= RemovalPhase::Cleanup);
        if retired {
            slice(&mut slices, w).files.extend(
                [AGENT_CREDENTIALS, AGENT_CREDENTIAL_FLAG]
                    .into_iter()
                    .map(absent_file),
            );
            continue;
        }
        let Some(c) = desired.worker_credential(w) else {
            continue; // validation reports the missing reference on the node
        };
        let (files, held) = hold(observed, w, agent_files(c), applied);
        if held {
            let m = desired.manager().map_or("", |m| m.metadata.name.as_str());
            pending.insert(
                c.metadata.name.clone(),
                waiting_for_master(m, &format!("the agent on {w}")),
            );
        }
        slice(&mut slices, w).files.extend(files);
    }

    if let Some(registry) = desired.registry() {
        let (f, errors) = htpasswd_file(desired, settings);
        pending.extend(errors);
        if let Some(f) = f {
            slice(&mut slices, &registry.metadata.name).files.push(f);
        }
    }

    if let (Some(executor), Some(c)) = (
        desired.executor(),
        desired.credential_for(CredentialUse::ChronosHttp),
    ) {
        if let Some(f) = job_conf_file(desired, c, settings) {
            slice(&mut slices, &executor.metadata.name).files.push(f);
        }
    }

    for c in desired.credentials.values() {
        let name = &c.metadata.name;
        let cond = pending.remove(name).unwrap_or_else(|| {
            Cond::yes(
                condition::READY,
                reason::RENDERED,
                format!("written where {} needs it", c.spec.usage),
            )
        });
        let mut edit = StatusEdit::new(desired, credential_key(name), observed.now);
        edit.set(cond);
        edit.finish(&mut out, not_true);
    }

    out.slices = slices;
    Ok(out)
}

fn slice<'a>(slices: &'a mut BTreeMap<String, PlanSlice>, node: &str) -> &'a mut PlanSlice {
    slice_of(slices, node, NAME)
}

fn waiting_for_master(manager: &str, who: &str) -> Cond {
    Cond::no(
        condition::READY,
        reason::WAITING_FOR_MASTER,
        format!(
            "the new credential reaches {who} once mesos-master on {manager} has restarted \
             with it (Mesos keeps one secret per principal: the master goes first)"
        ),
    )
}

fn unrenderable(e: &Error) -> Cond {
    Cond::no(condition::READY, reason::UNRENDERABLE, e.to_string())
}

/// The Mesos credentials the master holds, in file order: member workers' agent
/// credentials by principal, then Chronos's framework credential.
pub fn master_credentials(desired: &Desired) -> Vec<&Credential> {
    let mut agents: Vec<&Credential> = desired
        .member_workers(RemovalPhase::Cleanup)
        .filter_map(|w| desired.worker_credential(&w.metadata.name))
        .collect();
    agents.sort_by(|a, b| a.spec.principal.cmp(&b.spec.principal));
    agents.dedup_by(|a, b| a.metadata.name == b.metadata.name);
    agents.extend(desired.credential_for(CredentialUse::ChronosFramework));
    agents
}

#[derive(Serialize)]
struct PrincipalSecret<'a> {
    principal: &'a str,
    secret: &'a str,
}

#[derive(Serialize)]
struct CredentialsFile<'a> {
    credentials: Vec<PrincipalSecret<'a>>,
}

fn principal_secret(c: &Credential) -> PrincipalSecret<'_> {
    PrincipalSecret {
        principal: &c.spec.principal,
        secret: c.spec.secret.value.as_ref().map_or("", |s| s.expose()),
    }
}

/// `{"credentials":[{"principal":"...","secret":"..."},...]}`: compact, no newline.
pub fn master_credentials_json(desired: &Desired) -> String {
    let file = CredentialsFile {
        credentials: master_credentials(desired)
            .into_iter()
            .map(principal_secret)
            .collect(),
    };
    // Serializing plain strings cannot fail.
    serde_json::to_string(&file).unwrap_or_default()
}

/// `{"principal":"...","secret":"..."}`: compact, no newline.
pub fn agent_credentials_json(c: &Credential) -> String {
    serde_json::to_string(&principal_secret(c)).unwrap_or_default()
}

/// Only Chronos may register frameworks, in any role.
pub fn auth_rules(desired: &Desired) -> String {
    let principals: Vec<&str> = desired
        .credentials_for(CredentialUse::ChronosFramework)
        .map(|c| c.spec.principal.as_str())
        .collect();
    serde_json::json!({
        "register_frameworks": [{
            "principals": {"values": principals},
            "roles": {"values": ["*"]}
        }]
    })
    .to_string()
}

fn master_files(desired: &Desired) -> Vec<FileSpec> {
    let mut files = vec![
        secret_file(MASTER_CREDENTIALS, master_credentials_json(desired)),
        file(MASTER_CREDENTIALS_FLAG, MASTER_CREDENTIALS),
        file(MASTER_ACLS_FLAG, MASTER_AUTH_RULES),
        file(MASTER_AUTH_RULES, auth_rules(desired)),
    ];
    files.extend(MASTER_AUTH_FLAGS.iter().map(|p| file(*p, "true")));
    files
}

fn chronos_framework_files(c: &Credential) -> Vec<FileSpec> {
    let principal = c.spec.principal.as_str();
    let secret = c.spec.secret.value.as_ref().map_or("", |s| s.expose());
    vec![
        file(CHRONOS_CONF_PRINCIPAL, principal),
        file(CHRONOS_CONF_SECRET_FILE, CHRONOS_SECRET),
        file(CHRONOS_PRINCIPAL, principal),
        file(CHRONOS_SECRET_FILE, CHRONOS_SECRET),
        secret_file(CHRONOS_SECRET, secret),
    ]
}

fn chronos_http_file(c: &Credential) -> Result<FileSpec, Error> {
    if c.spec.principal.contains(':') {
        return Err(Error::Unrenderable {
            credential: c.metadata.name.clone(),
            problem: "the Chronos HTTP user must not contain ':' (http_credentials is \
                      user:password)"
                .into(),
        });
    }
    let secret = c.spec.secret.value.as_ref().map_or("", |s| s.expose());
    Ok(secret_file(
        CHRONOS_HTTP_CREDENTIALS,
        format!("{}:{}", c.spec.principal, secret),
    ))
}

fn agent_files(c: &Credential) -> Vec<FileSpec> {
    vec![
        secret_file(AGENT_CREDENTIALS, agent_credentials_json(c)),
        file(AGENT_CREDENTIAL_FLAG, AGENT_CREDENTIALS),
    ]
}

/// A fingerprint of what the master's credentials file holds: names, principals and
/// generations (a rotation bumps the generation), never a secret. It goes in
/// mesos-master's restart token, so the master's report tells which credentials it runs.
pub fn master_fingerprint(desired: &Desired) -> String {
    let mut h = Sha256::new();
    for c in master_credentials(desired) {
        h.update(c.metadata.name.as_bytes());
        h.update([0]);
        h.update(c.spec.principal.as_bytes());
        h.update([0]);
        h.update(c.metadata.generation.to_string().as_bytes());
        h.update([b'\n']);
    }
    let digest = h.finalize();
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The credentials part of mesos-master's restart token (the leader guard, which owns the
/// service, joins it with its recovery part).
pub fn master_token_part(desired: &Desired) -> String {
    format!("c={}", master_fingerprint(desired))
}

/// Whether the manager's agent reported mesos-master (re)started with the credentials the
/// desired state holds now.
pub fn master_applied(desired: &Desired, observed: &Observed) -> bool {
    let Some(m) = desired.manager() else {
        return false;
    };
    let part = master_token_part(desired);
    observed
        .service_token(&m.metadata.name, "mesos-master")
        .is_some_and(|t| t.split(';').any(|p| p == part))
}

/// Holds a group of files at their stored content until the master has the credentials.
/// Returns the files to plan and whether they were held back. The group moves together
/// (a principal never changes without its secret); with no stored content to hold (a new
/// host, or a first plan) the new content goes out at once.
fn hold(
    observed: &Observed,
    node: &str,
    files: Vec<FileSpec>,
    master_applied: bool,
) -> (Vec<FileSpec>, bool) {
    if master_applied {
        return (files, false);
    }
    let Some(stored) = observed.stored_slice(node, NAME) else {
        return (files, false);
    };
    let previous: Option<Vec<FileSpec>> = files
        .iter()
        .map(|f| {
            stored
                .files
                .iter()
                .find(|s| s.path == f.path && s.ensure == f.ensure)
                .cloned()
        })
        .collect();
    match previous {
        Some(prev) if prev != files => (prev, true),
        _ => (files, false),
    }
}

/// The registry's htpasswd: `user:$2y$...` lines by user, with per-credential errors.
fn htpasswd_file(
    desired: &Desired,
    settings: &Settings,
) -> (Option<FileSpec>, BTreeMap<String, Cond>) {
    let mut users: Vec<&Credential> = desired.credentials_for(CredentialUse::Registry).collect();
    users.sort_by(|a, b| a.spec.principal.cmp(&b.spec.principal));
    let mut lines = String::new();
    let mut errors = BTreeMap::new();
    for c in users {
        let secret = c.spec.secret.value.as_ref().map_or("", |s| s.expose());
        match htpasswd_line(
            &c.metadata.name,
            &c.spec.principal,
            secret,
            settings.bcrypt_cost,
        ) {
            Ok(line) => {
                lines.push_str(&line);
                lines.push('\n');
            }
            Err(e) => {
                errors.insert(c.metadata.name.clone(), unrenderable(&e));
            }
        }
    }
    let mut f = secret_file(REGISTRY_HTPASSWD, lines);
    // Apache's workers read the file per request, as their own user.
    f.owner = Some(settings.apache_user.clone());
    (Some(f), errors)
}

/// Bound of the memo of htpasswd lines.
const HTPASSWD_MEMO_MAX: usize = 1024;

type HtpasswdMemo = Mutex<HashMap<([u8; 32], u32), String>>;

fn htpasswd_memo() -> &'static HtpasswdMemo {
    static MEMO: OnceLock<HtpasswdMemo> = OnceLock::new();
    MEMO.get_or_init(|| Mutex::new(HashMap::new()))
}

/// One htpasswd line, `principal:$2y$<cost>$<salt><hash>`. The salt is the first 16 bytes
/// of SHA-256("omtd-htpasswd\0" principal "\0" secret): a pure function cannot draw a
/// random one, and a fixed salt per (principal, secret) keeps the plan from churning. Two
/// users with the same secret still get different salts (the principal is in it).
pub fn htpasswd_line(
    credential: &str,
    principal: &str,
    secret: &str,
    cost: u32,
) -> Result<String, Error> {
    if principal.contains(':') {
        return Err(Error::Unrenderable {
            credential: credential.to_owned(),
            problem: "a registry user must not contain ':' (htpasswd is user:hash)".into(),
        });
    }
    let mut h = Sha256::new();
    h.update(b"omtd-htpasswd\0");
    h.update(principal.as_bytes());
    h.update([0]);
    h.update(secret.as_bytes());
    let digest = h.finalize();
    let mut key = [0u8; 32];
    key.copy_from_slice(&digest);
    // The line is a pure function of (principal, secret, cost), and bcrypt is slow on
    // purpose (~60 ms at cost 10, far more in debug builds): remember it, so a reconcile
    // does not pay for it again while nothing changed. The memo holds hashes, not secrets.
    if let Some(line) = htpasswd_memo()
        .lock()
        .ok()
        .and_then(|m| m.get(&(key, cost)).cloned())
    {
        return Ok(line);
    }
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&digest[..16]);
    let parts = bcrypt::non_truncating_hash_with_salt(secret, cost, salt).map_err(|e| {
        Error::Htpasswd {
            credential: credential.to_owned(),
            // bcrypt's errors name lengths and costs, never the input.
            reason: e.to_string(),
        }
    })?;
    // Apache's `htpasswd -B` writes $2y$; the registry's Go bcrypt accepts it too.
    let line = format!(
        "{principal}:{}",
        parts.format_for_version(bcrypt::Version::TwoY)
    );
    if let Ok(mut memo) = htpasswd_memo().lock() {
        // A handful of registry users in practice; the bound only guards against churn.
        if memo.len() >= HTPASSWD_MEMO_MAX {
            memo.clear();
        }
        memo.insert((key, cost), line.clone());
    }
    Ok(line)
}

/// Galaxy's job configuration: every job goes to Chronos with the HTTP credentials.
fn job_conf_file(desired: &Desired, c: &Credential, settings: &Settings) -> Option<FileSpec> {
    let manager = desired.manager()?;
    let secret = c.spec.secret.value.as_ref().map_or("", |s| s.expose());
    let db = desired.database_path();
    let content = format!(
        r#"<?xml version="1.0"?>
<!-- Managed by omtd (credentials controller). Changes here are overwritten. -->
<job_conf>
    <plugins>
        <plugin id="chronos" type="runner" load="galaxy.jobs.runners.chronos:ChronosJobRunner">
            <param id="chronos">{host}:{port}</param>
            <param id="username">{user}</param>
            <param id="password">{password}</param>
            <param id="owner">{owner}</param>
            <param id="insecure">true</param>
        </plugin>
    </plugins>
    <destinations default="chronos_dest">
        <destination id="chronos_dest" runner="chronos">
            <param id="docker_enabled">true</param>
            <param id="volumes">{db}:{db}:RW</param>
        </destination>
    </destinations>
</job_conf>
"#,
        host = xml_escape(&manager.spec.address),
        port = desired.spec.ports.chronos_http,
        user = xml_escape(&c.spec.principal),
        password = xml_escape(secret),
        owner = xml_escape(&settings.chronos_job_owner),
        db = xml_escape(&db),
    );
    let mut f = secret_file(paths::job_conf_path(desired), content);
    f.owner = Some(settings.galaxy_user.clone());
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htpasswd_is_deterministic_and_verifies() {
        let a = htpasswd_line("r", "omtd", "rg-Zx5cV8bN1m", 4).unwrap();
        let b = htpasswd_line("r", "omtd", "rg-Zx5cV8bN1m", 4).unwrap();
        assert_eq!(a, b, "same input, same line: the plan does not churn");
        let (user, hash) = a.split_once(':').unwrap();
        assert_eq!(user, "omtd");
        assert!(hash.starts_with("$2y$04$"), "{hash}");
        assert!(bcrypt::verify("rg-Zx5cV8bN1m", hash).unwrap());
        assert!(!bcrypt::verify("wrong", hash).unwrap());
        let other = htpasswd_line("r", "omtd2", "rg-Zx5cV8bN1m", 4).unwrap();
        assert_ne!(
            other.split_once(':').unwrap().1,
            hash,
            "the principal is in the salt"
        );
    }

    #[test]
    fn htpasswd_refuses_what_bcrypt_would_cut_without_echoing_it() {
        let long = "x".repeat(80);
        let err = htpasswd_line("reg", "omtd", &long, 4).unwrap_err();
        assert!(matches!(err, Error::Htpasswd { .. }));
        assert!(!err.to_string().contains(&long));
        assert!(htpasswd_line("reg", "a:b", "s", 4).is_err());
    }
}
