//! The credentials controller: one source of truth for every file that holds a secret, each
//! rendered byte for byte (one-line files carry no trailing newline: "I kid you not!").
//!
//! | host | files |
//! |---|---|
//! | manager | `/etc/mesos-master/store/credentials.json` (every member worker, Chronos, the operator), the `credentials`, `acls` and `authenticate_*` flag files, `store/auth_rules`; Chronos's principal and secret-file flags in `conf/` (where its launcher reads them) and at the runbook's paths, the secret file, `conf/http_credentials` |
//! | worker | `/etc/mesos-slave/store/credentials.json`, `/etc/mesos-slave/credential`; with `frontDoors.registryPull`, Docker's `/root/.docker/config.json` (the registry login its engine pulls with) |
//! | registry | Apache's htpasswd: the plan carries `user:secret`, the registry host's agent hashes it (bcrypt, random salt) |
//! | executor | Galaxy's `config/job_conf.xml` (Chronos runner with the HTTP credentials) |
//!
//! One exception: the front doors' TLS key is planned by the node controller, in the slice
//! of the site that names it, because the agent must write it before it checks that site
//! (one slice's files apply in order; nothing orders two slices). TLS credentials never
//! reach `credentials.json` (not Mesos) nor the htpasswd (not registry users).
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
//!
//! The operator's own credential (`use: operator`) is in the master's file like the
//! others, and its rotation is ordered the same way from the other end: the operator
//! presents the store's secret and, while the master refuses it (not restarted yet),
//! keeps presenting the one it last used successfully (`src/operator/mesos_auth.rs`).
//!
//! Chronos's HTTP credential (`use: chronos-http`) has the same shape one step down:
//! Chronos checks it, Galaxy's Chronos runner presents it. `http_credentials` on the
//! manager changes at once (chronos restarts on it); Galaxy's `job_conf.xml` keeps the old
//! secret until the manager's agent reports the new `http_credentials` converged and
//! Chronos converged after it, about the slice stored now. Then job_conf.xml changes and
//! Galaxy restarts on it. Until then the credential is `Ready=False, WaitingForChronos`.

use std::collections::BTreeMap;

use omtd_crds::plan::{FileRender, FileSpec, PlanSlice, ResourceState};
use omtd_crds::Kind;
use omtd_crds::{Credential, CredentialUse};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::declaration::{condition, Declaration, Owned, Plans, Reports, Wakes};
use crate::desired::{credential_key, Desired};
use crate::error::Error;
use crate::memo::{Memo, Printer};
use crate::observed::Observed;
use crate::output::{not_true, slice_of, Cond, Intent, Reconciled, StatusEdit};
use crate::paths::{
    self, AGENT_CREDENTIALS, AGENT_CREDENTIAL_FLAG, CHRONOS_CONF_PRINCIPAL,
    CHRONOS_CONF_SECRET_FILE, CHRONOS_HTTP_CREDENTIALS, CHRONOS_PRINCIPAL, CHRONOS_SECRET,
    CHRONOS_SECRET_FILE, DOCKER_CONFIG, MASTER_ACLS_FLAG, MASTER_AUTH_FLAGS, MASTER_AUTH_RULES,
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
        reason::WAITING_FOR_CHRONOS,
        reason::WAITING_FOR_MASTER,
    ],
    // One report, the manager's (whether mesos-master restarted with the credentials);
    // no heartbeat or probe.
    wakes: Wakes {
        reports: Reports::Manager,
        heartbeats: false,
        probes: false,
        plans: Plans::Own,
        labels: false,
    },
};

/// The reasons of the conditions this controller sets.
pub mod reason {
    pub const RENDERED: &str = "Rendered";
    pub const UNRENDERABLE: &str = "Unrenderable";
    pub const WAITING_FOR_CHRONOS: &str = "WaitingForChronos";
    pub const WAITING_FOR_MASTER: &str = "WaitingForMaster";
}

pub fn reconcile(desired: &Desired, observed: &Observed, settings: &Settings) -> Reconciled {
    reconcile_with(&mut State::default(), desired, observed, settings)
}

/// What the credentials controller keeps between passes (see [`crate::memo`]): the master's
/// `credentials.json` and the registry's htpasswd as indexed sets, one entry per credential
/// under the print of its record, so a rotation or a new worker re-renders one entry, not
/// the whole file.
#[derive(Debug, Clone, Default)]
pub struct State {
    master: Memo<String>,
    /// Each registry credential's `user:secret` line, or why it has none. An error is kept
    /// like a line (it is derived from the record alone) and reported on every pass that
    /// finds it, as a pass from scratch would.
    htpasswd: Memo<Result<String, Error>>,
}

/// [`reconcile`] with the state kept from the last pass: the same outcome as from scratch.
pub fn reconcile_with(
    state: &mut State,
    desired: &Desired,
    observed: &Observed,
    settings: &Settings,
) -> Reconciled {
    let mut out = Intent::default();
    let mut slices: BTreeMap<String, PlanSlice> = BTreeMap::new();
    let applied = master_applied(desired, observed);
    // Credential name → why it is not (yet) fully in place.
    let mut pending: BTreeMap<String, Cond> = BTreeMap::new();
    // Whether Chronos runs with the HTTP credentials planned now (Galaxy's job_conf.xml
    // follows it: see the module's rotation order).
    let mut chronos_http_applied = false;

    if let Some(manager) = desired.manager() {
        let m = &manager.metadata.name;
        let mut files = master_files(desired, &mut state.master);
        if let Some(c) = desired.credential_for(CredentialUse::ChronosFramework) {
            let (chronos, held) = hold(observed, m, chronos_framework_files(c), applied);
            files.extend(chronos);
            if held {
                pending.insert(c.metadata.name.clone(), waiting_for_master(m, "Chronos"));
            }
        }
        if let Some(c) = desired.credential_for(CredentialUse::ChronosHttp) {
            match chronos_http_file(c) {
                Ok(f) => {
                    chronos_http_applied = chronos_http_applied_by(observed, m, &f);
                    files.push(f);
                }
                Err(e) => {
                    pending.insert(c.metadata.name.clone(), unrenderable(&e));
                }
            }
        }
        slice(&mut slices, m).files.extend(files);
    } else {
        // No manager, no credentials.json: forget the kept entries (they hold secrets).
        state.master.sweep();
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
            if pull_credential(desired).is_some() {
                slice(&mut slices, w).files.push(absent_file(DOCKER_CONFIG));
            }
            continue;
        }
        let Some(c) = desired.worker_credential(w) else {
            continue; // validation reports the missing reference on the node
        };
        let (mut files, held) = hold(observed, w, agent_files(c), applied);
        // The registry login is Docker's, not Mesos': it never waits for the master.
        files.extend(docker_login_file(desired));
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
        let (f, errors) = htpasswd_file(&mut state.htpasswd, desired, settings);
        pending.extend(errors);
        if let Some(f) = f {
            slice(&mut slices, &registry.metadata.name).files.push(f);
        }
    } else {
        // No registry, no htpasswd: forget the kept lines (they hold secrets).
        state.htpasswd.sweep();
    }

    if let (Some(executor), Some(c)) = (
        desired.executor(),
        desired.credential_for(CredentialUse::ChronosHttp),
    ) {
        if let Some(f) = job_conf_file(desired, c, settings) {
            let e = &executor.metadata.name;
            let (files, held) = hold(observed, e, vec![f], chronos_http_applied);
            if held {
                let m = desired.manager().map_or("", |m| m.metadata.name.as_str());
                pending.insert(c.metadata.name.clone(), waiting_for_chronos(m, e));
            }
            slice(&mut slices, e).files.extend(files);
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

fn waiting_for_chronos(manager: &str, executor: &str) -> Cond {
    Cond::no(
        condition::READY,
        reason::WAITING_FOR_CHRONOS,
        format!(
            "the new Chronos HTTP credential reaches Galaxy's job_conf.xml on {executor} once \
             Chronos on {manager} has restarted with it (Galaxy's runner would be refused by \
             a Chronos still on the old one: Chronos goes first)"
        ),
    )
}

/// Whether the manager's agent applied `http_credentials` as planned now and Chronos
/// restarted with it: the stored slice holds this very file, the agent's report is about
/// the stored slices (so about this content, not the one before), and both the file and
/// the chronos service are converged there (the file is in chronos's `restart_on`, so a
/// converged service after the file changed is one that restarted).
fn chronos_http_applied_by(observed: &Observed, manager: &str, planned: &FileSpec) -> bool {
    let stored = observed
        .stored_slice(manager, NAME)
        .is_some_and(|s| s.files.iter().any(|f| f == planned));
    let converged = |id: &str| {
        observed
            .resource(manager, id)
            .is_some_and(|r| r.state == ResourceState::Converged)
    };
    stored
        && observed.report_is_current(manager)
        && converged(&format!("file:{CHRONOS_HTTP_CREDENTIALS}"))
        && converged("service:chronos")
}

fn unrenderable(e: &Error) -> Cond {
    Cond::no(condition::READY, reason::UNRENDERABLE, e.to_string())
}

/// The Mesos credentials the master holds, in file order: member workers' agent
/// credentials by principal, then Chronos's framework credential, then the operator's.
pub fn master_credentials(desired: &Desired) -> Vec<&Credential> {
    let mut agents: Vec<&Credential> = desired
        .member_workers(RemovalPhase::Cleanup)
        .filter_map(|w| desired.worker_credential(&w.metadata.name))
        .collect();
    agents.sort_by(|a, b| a.spec.principal.cmp(&b.spec.principal));
    agents.dedup_by(|a, b| a.metadata.name == b.metadata.name);
    agents.extend(desired.credential_for(CredentialUse::ChronosFramework));
    agents.extend(desired.credential_for(CredentialUse::Operator));
    agents
}

#[derive(Serialize)]
struct PrincipalSecret<'a> {
    principal: &'a str,
    secret: &'a str,
}

fn principal_secret(c: &Credential) -> PrincipalSecret<'_> {
    PrincipalSecret {
        principal: &c.spec.principal,
        secret: c.spec.secret.value.as_ref().map_or("", |s| s.expose()),
    }
}

/// `{"credentials":[{"principal":"...","secret":"..."},...]}`: compact, no newline.
pub fn master_credentials_json(desired: &Desired) -> String {
    master_credentials_json_from(&mut Memo::default(), desired)
}

/// [`master_credentials_json`] from an indexed set of entries kept in `entries`: the file
/// is the kept entries joined, the bytes `serde_json` makes of the whole list
/// (`tests/credentials.rs` pins them).
fn master_credentials_json_from(entries: &mut Memo<String>, desired: &Desired) -> String {
    let mut file = String::from("{\"credentials\":[");
    for (i, c) in master_credentials(desired).into_iter().enumerate() {
        let print = Printer::new().record(c).finish();
        if i > 0 {
            file.push(',');
        }
        file.push_str(entries.get(&c.metadata.name, print, || agent_credentials_json(c)));
    }
    file.push_str("]}");
    entries.sweep();
    file
}

/// `{"principal":"...","secret":"..."}`: compact, no newline.
pub fn agent_credentials_json(c: &Credential) -> String {
    serde_json::to_string(&principal_secret(c)).unwrap_or_default()
}

/// The master's ACLs (`--acls`): Chronos registers frameworks in any role, and the
/// operator's own principal (`use: operator`) may read the state and run maintenance.
///
/// The file sets no `permissive`, so Mesos's default (`true`) stands: a request no rule
/// matches is allowed, as before the operator's rules existed. The operator's rules grant
/// it explicitly what it calls, so it keeps working if `permissive` is ever turned off;
/// they change nothing for any other principal. Only ACLs Mesos 1.4 knows are written
/// (`acls.proto` of 1.4: `mark_agents_gone` and `view_agents` came later, and an unknown
/// field would fail the master's flag parsing).
pub fn auth_rules(desired: &Desired) -> String {
    let principals: Vec<&str> = desired
        .credentials_for(CredentialUse::ChronosFramework)
        .map(|c| c.spec.principal.as_str())
        .collect();
    let mut rules = serde_json::json!({
        "register_frameworks": [{
            "principals": {"values": principals},
            "roles": {"values": ["*"]}
        }]
    });
    if let (Some(op), Some(map)) = (
        desired.credential_for(CredentialUse::Operator),
        rules.as_object_mut(),
    ) {
        let me = serde_json::json!({"values": [op.spec.principal]});
        let any = serde_json::json!({"type": "ANY"});
        // /master/maintenance/{schedule,status}, /machine/{down,up}.
        for acl in OPERATOR_MACHINE_ACLS {
            map.insert(
                acl.to_owned(),
                serde_json::json!([{"principals": me, "machines": any}]),
            );
        }
        // /master/state lists frameworks and tasks only to who may view them (a drain
        // waits for the tasks it sees).
        for acl in OPERATOR_VIEW_ACLS {
            map.insert(
                acl.to_owned(),
                serde_json::json!([{"principals": me, "users": any}]),
            );
        }
    }
    rules.to_string()
}

/// Mesos 1.4 ACLs over machines the operator's drains need.
pub const OPERATOR_MACHINE_ACLS: [&str; 5] = [
    "get_maintenance_schedules",
    "update_maintenance_schedules",
    "start_maintenances",
    "stop_maintenances",
    "get_maintenance_statuses",
];

/// Mesos 1.4 ACLs over what `/master/state` shows that the operator reads.
pub const OPERATOR_VIEW_ACLS: [&str; 2] = ["view_frameworks", "view_tasks"];

fn master_files(desired: &Desired, entries: &mut Memo<String>) -> Vec<FileSpec> {
    let mut files = vec![
        secret_file(
            MASTER_CREDENTIALS,
            master_credentials_json_from(entries, desired),
        ),
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

/// The registry's htpasswd: the plan carries `user:secret` lines (a secret file for the
/// registry host alone) and the agent hashes them with bcrypt and a random salt (see
/// `FileRender::Htpasswd`), with per-credential errors for what cannot be hashed.
fn htpasswd_file(
    entries: &mut Memo<Result<String, Error>>,
    desired: &Desired,
    settings: &Settings,
) -> (Option<FileSpec>, BTreeMap<String, Cond>) {
    let mut users: Vec<&Credential> = desired.credentials_for(CredentialUse::Registry).collect();
    users.sort_by(|a, b| a.spec.principal.cmp(&b.spec.principal));
    let mut lines = String::new();
    let mut errors = BTreeMap::new();
    for c in users {
        // The entry reads the record alone (its name, principal and secret).
        let print = Printer::new().record(c).finish();
        let entry = entries.get(&c.metadata.name, print, || {
            let secret = c.spec.secret.value.as_ref().map_or("", |s| s.expose());
            htpasswd_entry(&c.metadata.name, &c.spec.principal, secret)
        });
        match entry {
            Ok(line) => {
                lines.push_str(line);
                lines.push('\n');
            }
            Err(e) => {
                errors.insert(c.metadata.name.clone(), unrenderable(e));
            }
        }
    }
    entries.sweep();
    let mut f = secret_file(REGISTRY_HTPASSWD, lines);
    // Apache's workers read the file per request, as their own user.
    f.owner = Some(settings.apache_user.clone());
    f.render = Some(FileRender::Htpasswd {
        cost: settings.bcrypt_cost,
    });
    (Some(f), errors)
}

/// The registry credential the Cluster names for the workers' Docker engines.
fn pull_credential(desired: &Desired) -> Option<&Credential> {
    let name = desired
        .spec
        .front_doors
        .as_ref()?
        .registry_pull
        .as_deref()?;
    desired
        .credentials
        .get(name)
        .filter(|c| c.spec.usage == CredentialUse::Registry)
}

/// A worker's Docker client login to the registry, `{"auths":{"<registry>":{"auth":
/// "<base64 user:secret>"}}}`: what `docker login` writes for root, and what the docker
/// client reads when the Mesos agent (root) pulls a task's image. Needs a registry and
/// `frontDoors.registryPull`.
pub fn docker_login_file(desired: &Desired) -> Option<FileSpec> {
    let c = pull_credential(desired)?;
    let registry = desired.registry_name()?;
    let secret = c.spec.secret.value.as_ref().map_or("", |s| s.expose());
    let auth = base64(format!("{}:{secret}", c.spec.principal).as_bytes());
    let json = serde_json::json!({"auths": {registry: {"auth": auth}}});
    Some(secret_file(DOCKER_CONFIG, json.to_string()))
}

/// Standard base64 with padding (RFC 4648), as Docker's `auth` field wants.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// bcrypt reads at most this many bytes of a secret; more would be cut silently.
const BCRYPT_MAX_SECRET: usize = 72;

/// One plan line, `principal:secret`, for the agent to hash. Refuses what the file format
/// or bcrypt cannot hold, naming neither the secret nor its bytes.
pub fn htpasswd_entry(credential: &str, principal: &str, secret: &str) -> Result<String, Error> {
    let problem = if principal.contains(':') || principal.contains('\n') {
        Some("a registry user must not contain ':' or a newline (htpasswd is user:hash)".into())
    } else if secret.contains('\n') {
        Some("a registry secret must not contain a newline".into())
    } else if secret.len() > BCRYPT_MAX_SECRET {
        Some(format!(
            "a registry secret is hashed with bcrypt, which reads at most \
             {BCRYPT_MAX_SECRET} bytes: this one has {}; use a shorter secret",
            secret.len()
        ))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Error::Unrenderable {
            credential: credential.to_owned(),
            problem,
        }),
        None => Ok(format!("{principal}:{secret}")),
    }
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
    fn base64_as_rfc_4648() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("omtd:rg-Zx5cV8bN1m", "b210ZDpyZy1aeDVjVjhiTjFt"),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn htpasswd_refuses_what_bcrypt_would_cut_without_echoing_it() {
        let long = "x".repeat(80);
        let err = htpasswd_entry("reg", "omtd", &long).unwrap_err();
        assert!(matches!(err, Error::Unrenderable { .. }));
        assert!(!err.to_string().contains(&long));
        assert!(err.to_string().contains("72 bytes"), "{err}");
        assert!(htpasswd_entry("reg", "a:b", "s").is_err());
        assert!(htpasswd_entry("reg", "omtd", "two\nlines").is_err());
        assert_eq!(
            htpasswd_entry("reg", "omtd", "s3cret").unwrap(),
            "omtd:s3cret"
        );
    }
}
