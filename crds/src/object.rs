//! Objects of any kind, their envelope, and parsing them from manifests.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kinds::{ClusterSpec, CredentialSpec, NodeSpec, VolumeSpec};
use crate::meta::{ObjectMeta, Status};

/// The only API version so far.
pub const API_VERSION: &str = "omtd/v1";

/// The envelope every object shares: `apiVersion`, `kind`, `metadata`, `spec`, `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resource<S> {
    /// Always `omtd/v1`.
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: S,
    /// Written only by omtd; ignored when applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

pub type Cluster = Resource<ClusterSpec>;
pub type Node = Resource<NodeSpec>;
pub type Credential = Resource<CredentialSpec>;
pub type Volume = Resource<VolumeSpec>;

/// The kinds omtd knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Cluster,
    Credential,
    Node,
    Volume,
}

impl Kind {
    /// In the order objects are applied and listed: what others refer to comes first.
    pub const ALL: [Kind; 4] = [Kind::Cluster, Kind::Credential, Kind::Node, Kind::Volume];

    /// The `kind:` field value, e.g. `Node`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Cluster => "Cluster",
            Kind::Credential => "Credential",
            Kind::Node => "Node",
            Kind::Volume => "Volume",
        }
    }

    /// Lower-case singular, used in store keys and CLI output (`node/node1.omtd`).
    pub fn lower(self) -> &'static str {
        match self {
            Kind::Cluster => "cluster",
            Kind::Credential => "credential",
            Kind::Node => "node",
            Kind::Volume => "volume",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Kind::Cluster => "clusters",
            Kind::Credential => "credentials",
            Kind::Node => "nodes",
            Kind::Volume => "volumes",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Kind::Cluster => "cl",
            Kind::Credential => "cred",
            Kind::Node => "no",
            Kind::Volume => "vol",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown kind name, with the accepted ones in the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind {0:?}: use one of {KIND_NAMES}")]
pub struct UnknownKind(pub String);

const KIND_NAMES: &str = "cluster (clusters, cl), credential (credentials, cred), node (nodes, no), volume (volumes, vol)";

impl FromStr for Kind {
    type Err = UnknownKind;

    /// Accepts the kind (`Node`), singular, plural and short forms, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        Kind::ALL
            .into_iter()
            .find(|k| {
                [k.lower(), k.plural(), k.short()].contains(&lower.as_str())
                    || (*k == Kind::Credential && lower == "creds")
            })
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// An object of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Cluster(Cluster),
    Credential(Credential),
    Node(Node),
    Volume(Volume),
}

/// Calls `$body` with `$r` bound to the inner `Resource<_>` of any variant.
macro_rules! with_resource {
    ($obj:expr, $r:ident => $body:expr) => {
        match $obj {
            Object::Cluster($r) => $body,
            Object::Credential($r) => $body,
            Object::Node($r) => $body,
            Object::Volume($r) => $body,
        }
    };
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Cluster(_) => Kind::Cluster,
            Object::Credential(_) => Kind::Credential,
            Object::Node(_) => Kind::Node,
            Object::Volume(_) => Kind::Volume,
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        with_resource!(self, r => &r.metadata)
    }

    pub fn meta_mut(&mut self) -> &mut ObjectMeta {
        with_resource!(self, r => &mut r.metadata)
    }

    pub fn name(&self) -> &str {
        &self.meta().name
    }

    pub fn status(&self) -> Option<&Status> {
        with_resource!(self, r => r.status.as_ref())
    }

    pub fn set_status(&mut self, status: Option<Status>) {
        with_resource!(self, r => r.status = status)
    }

    /// `node/node1.omtd`, as the CLI prints it.
    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            kind: self.kind(),
            name: self.name().to_owned(),
        }
    }

    /// The spec alone, as JSON (for comparing specs to decide whether generation moves).
    pub fn spec_value(&self) -> serde_json::Value {
        // Serializing plain data structs to a JSON value cannot fail.
        with_resource!(self, r => serde_json::to_value(&r.spec).unwrap_or(serde_json::Value::Null))
    }

    /// The whole object as JSON.
    pub fn to_value(&self) -> serde_json::Value {
        with_resource!(self, r => serde_json::to_value(r).unwrap_or(serde_json::Value::Null))
    }

    /// Parses one object from a JSON value (as stored), checking apiVersion and kind.
    pub fn from_value(value: serde_json::Value) -> Result<Object, ParseError> {
        let yaml =
            serde_yaml_ng::to_value(&value).map_err(|e| ParseError::at("", e.to_string()))?;
        Object::from_yaml(yaml)
    }

    /// Parses one manifest document, with field paths in errors.
    pub fn from_yaml(doc: serde_yaml_ng::Value) -> Result<Object, ParseError> {
        let serde_yaml_ng::Value::Mapping(map) = &doc else {
            return Err(ParseError::at(
                "",
                "a document must be a mapping with apiVersion, kind, metadata and spec",
            ));
        };
        let field = |name: &str| map.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        match field("apiVersion") {
            Some(v) if v == API_VERSION => {}
            Some(v) => {
                return Err(ParseError::at(
                    "apiVersion",
                    format!("unsupported apiVersion {v:?}: write apiVersion: {API_VERSION}"),
                ))
            }
            None => {
                return Err(ParseError::at(
                    "apiVersion",
                    format!("missing: add apiVersion: {API_VERSION}"),
                ))
            }
        }
        let kind_name = field("kind").ok_or_else(|| {
            ParseError::at(
                "kind",
                "missing: add kind: Cluster, Credential, Node or Volume",
            )
        })?;
        let kind = Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind_name)
            .ok_or_else(|| {
                ParseError::at(
                    "kind",
                    format!("unknown kind {kind_name:?}: use Cluster, Credential, Node or Volume"),
                )
            })?;
        let obj = match kind {
            Kind::Cluster => Object::Cluster(typed(doc)?),
            Kind::Credential => Object::Credential(typed(doc)?),
            Kind::Node => Object::Node(typed(doc)?),
            Kind::Volume => Object::Volume(typed(doc)?),
        };
        Ok(obj)
    }
}

fn typed<S: serde::de::DeserializeOwned>(
    doc: serde_yaml_ng::Value,
) -> Result<Resource<S>, ParseError> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ParseError::at(path, e.into_inner().to_string())
    })
}

impl Serialize for Object {
    fn serialize<Ser: serde::Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        with_resource!(self, r => r.serialize(s))
    }
}

/// `kind/name`, e.g. `node/node1.omtd`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: Kind,
    pub name: String,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.lower(), self.name)
    }
}

/// A manifest document that is not a valid object: where (field path) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct ParseError {
    /// Dotted field path, e.g. `spec.roles[1]`; empty for the document itself.
    pub path: String,
    pub message: String,
}

impl ParseError {
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        ParseError {
            path: path.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Object, ParseError> {
        Object::from_yaml(serde_yaml_ng::from_str(text).unwrap())
    }

    #[test]
    fn kind_aliases() {
        for s in ["node", "nodes", "no", "Node", "NODES"] {
            assert_eq!(s.parse::<Kind>().unwrap(), Kind::Node);
        }
        assert_eq!("cred".parse::<Kind>().unwrap(), Kind::Credential);
        assert_eq!("creds".parse::<Kind>().unwrap(), Kind::Credential);
        assert_eq!("vol".parse::<Kind>().unwrap(), Kind::Volume);
        let err = "pods".parse::<Kind>().unwrap_err().to_string();
        assert!(err.contains("node (nodes, no)"), "{err}");
    }

    #[test]
    fn unknown_field_names_path_and_expected_fields() {
        let err = parse(
            "apiVersion: omtd/v1\nkind: Node\nmetadata: {name: n1}\nspec: {adress: 10.0.0.1}\n",
        )
        .unwrap_err();
        assert_eq!(err.path, "spec.adress");
        assert!(
            err.message.contains("unknown field `adress`"),
            "{}",
            err.message
        );
        assert!(err.message.contains("`address`"), "{}", err.message);
    }

    #[test]
    fn unknown_role_lists_roles() {
        let err = parse("apiVersion: omtd/v1\nkind: Node\nmetadata: {name: n1}\nspec: {address: 10.0.0.1, roles: [worker, master]}\n")
            .unwrap_err();
        assert_eq!(err.path, "spec.roles[1]");
        assert!(err.message.contains("manager"), "{}", err.message);
    }

    #[test]
    fn wrong_api_version_and_kind() {
        let err =
            parse("apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nspec: {address: 10.0.0.1}\n")
                .unwrap_err();
        assert_eq!(err.path, "apiVersion");
        let err =
            parse("apiVersion: omtd/v1\nkind: Pod\nmetadata: {name: n1}\nspec: {}\n").unwrap_err();
        assert!(err.message.contains("Cluster, Credential, Node or Volume"));
    }

    #[test]
    fn non_string_secret_is_not_echoed() {
        let err = parse(
            "apiVersion: omtd/v1\nkind: Credential\nmetadata: {name: c}\nspec: {principal: p, use: mesos-agent, secret: {value: 987654321}}\n",
        )
        .unwrap_err();
        assert_eq!(err.path, "spec.secret.value");
        assert!(!err.to_string().contains("987654321"), "{err}");
        assert!(err.message.contains("quote it"), "{err}");
    }

    #[test]
    fn round_trips_through_json() {
        let obj = parse("apiVersion: omtd/v1\nkind: Volume\nmetadata: {name: v}\nspec: {node: n, device: /dev/vdb, volumeGroup: vg}\n").unwrap();
        let back = Object::from_value(obj.to_value()).unwrap();
        assert_eq!(obj, back);
    }
}
