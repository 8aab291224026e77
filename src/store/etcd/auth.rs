//! etcd v3 auth: the users and roles that give each identity only the keys it needs
//! (`omtd store secure`; which keys each omtd identity gets is `resources::roles`).
//!
//! Users have no password: with `--client-cert-auth` etcd takes the user from the client
//! certificate's common name, so a host proves who it is with the key only it holds.
//! Everything here is idempotent: an existing role or user is kept, a grant given again is
//! a no-op, and enabling auth that is on already succeeds.

use etcd_client as ec;

use super::client::EtcdStore;
use super::grpc::describe;
use crate::store::Result;

/// The user etcd requires before auth can be enabled; it holds the built-in `root` role.
pub const ROOT_USER: &str = "root";

/// One key or key prefix a role may read, or read and write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub key: String,
    /// The grant covers every key starting with `key`.
    pub prefix: bool,
    /// Read and write; otherwise read only.
    pub write: bool,
}

impl Grant {
    pub fn read(key: impl Into<String>) -> Self {
        Grant {
            key: key.into(),
            prefix: false,
            write: false,
        }
    }
    pub fn read_prefix(key: impl Into<String>) -> Self {
        Grant {
            prefix: true,
            ..Grant::read(key)
        }
    }
    pub fn read_write(key: impl Into<String>) -> Self {
        Grant {
            write: true,
            ..Grant::read(key)
        }
    }
    pub fn read_write_prefix(key: impl Into<String>) -> Self {
        Grant {
            prefix: true,
            write: true,
            ..Grant::read(key)
        }
    }
}

/// A user, its one role, and the role's grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub role: String,
    pub grants: Vec<Grant>,
}

/// What `secure` did, for the command's output.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Secured {
    pub users_added: Vec<String>,
    pub roles_added: Vec<String>,
}

impl EtcdStore {
    /// Creates each identity's user and role (if missing), grants the role its keys, and
    /// turns auth on. Call with the root identity (`omtd pki issue admin`): once auth is on,
    /// only root may manage users and roles.
    pub async fn secure(&self, identities: &[Identity]) -> Result<Secured> {
        let mut done = Secured::default();
        if self.add_user(ROOT_USER).await? {
            done.users_added.push(ROOT_USER.to_owned());
        }
        self.grant_role(ROOT_USER, "root").await?;
        for id in identities {
            if self.add_role(&id.role).await? {
                done.roles_added.push(id.role.clone());
            }
            for g in &id.grants {
                self.grant_permission(&id.role, g).await?;
            }
            if self.add_user(&id.user).await? {
                done.users_added.push(id.user.clone());
            }
            self.grant_role(&id.user, &id.role).await?;
        }
        self.enable_auth().await?;
        Ok(done)
    }

    /// Adds a user without a password; false when it exists already.
    async fn add_user(&self, user: &str) -> Result<bool> {
        let res = self
            .send(|| {
                let mut auth = self.auth.clone();
                async move {
                    auth.user_add(user, "", Some(ec::UserAddOptions::new().with_no_pwd()))
                        .await
                }
            })
            .await;
        self.created(
            res,
            format_args!("add user {user}"),
            "user name already exists",
        )
    }

    /// Adds a role; false when it exists already.
    async fn add_role(&self, role: &str) -> Result<bool> {
        let res = self
            .send(|| {
                let mut auth = self.auth.clone();
                async move { auth.role_add(role).await }
            })
            .await;
        self.created(
            res,
            format_args!("add role {role}"),
            "role name already exists",
        )
    }

    async fn grant_permission(&self, role: &str, g: &Grant) -> Result<()> {
        let mut perm = if g.write {
            ec::Permission::read_write(g.key.as_bytes())
        } else {
            ec::Permission::read(g.key.as_bytes())
        };
        if g.prefix {
            perm = perm.with_prefix();
        }
        self.send(|| {
            let mut auth = self.auth.clone();
            let perm = perm.clone();
            async move { auth.role_grant_permission(role, perm).await }
        })
        .await
        .map(drop)
        .map_err(|e| self.fail(format_args!("grant {role} {:?}", g.key), e))
    }

    async fn grant_role(&self, user: &str, role: &str) -> Result<()> {
        self.send(|| {
            let mut auth = self.auth.clone();
            async move { auth.user_grant_role(user, role).await }
        })
        .await
        .map(drop)
        .map_err(|e| self.fail(format_args!("grant role {role} to user {user}"), e))
    }

    /// Turns auth on (etcd 3.4 answers a second enable with success; newer releases may
    /// say it is on already, which is as good).
    async fn enable_auth(&self) -> Result<()> {
        let res = self
            .send(|| {
                let mut auth = self.auth.clone();
                async move { auth.auth_enable().await }
            })
            .await;
        self.created(res, "enable auth", "authentication is already enabled")
            .map(drop)
    }

    /// Ok(true) for success, Ok(false) when etcd says `exists` (idempotent re-runs).
    fn created<T>(
        &self,
        res: std::result::Result<T, super::client::CallError>,
        what: impl std::fmt::Display,
        exists: &str,
    ) -> Result<bool> {
        match res {
            Ok(_) => Ok(true),
            Err(super::client::CallError::Etcd(e)) if describe(&e).contains(exists) => Ok(false),
            Err(e) => Err(self.fail(what, e)),
        }
    }
}
