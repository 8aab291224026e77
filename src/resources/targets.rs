//! What `get`, `describe` and `delete` act on, from their arguments as kubectl takes them:
//! `KIND` (all of it), `KIND NAME...`, `KIND/NAME...`, `kind1,kind2`, `all`, narrowed by a
//! label selector.

use omtd_crds::{Kind, ObjectKey};

use super::selector::Selector;
use super::ObjectsAt;

/// Parsed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// Every record of these kinds (that the selector picks).
    Kinds(Vec<Kind>),
    /// These records, each by kind and name.
    Keys(Vec<ObjectKey>),
}

/// Bad arguments: what is wrong and how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetsError {
    #[error("name a kind: omtd {verb} nodes, omtd {verb} node NAME, omtd {verb} node/NAME")]
    Nothing { verb: &'static str },
    #[error("{0}")]
    Kind(#[from] omtd_crds::object::UnknownKind),
    #[error("{arg:?}: write KIND/NAME (node/node1.omtd)")]
    BadKey { arg: String },
    #[error(
        "{arg:?} is a bare name after KIND/NAME arguments: write every one as KIND/NAME, \
         or give the kind once (omtd {verb} node a b)"
    )]
    Mixed { arg: String, verb: &'static str },
    #[error("names go with one kind: omtd {verb} node NAME..., or KIND/NAME for each")]
    NamesWithManyKinds { verb: &'static str },
    #[error(
        "--selector picks among all records of a kind; give it without names \
         (omtd {verb} nodes -l tier=galaxy)"
    )]
    NamesWithSelector { verb: &'static str },
}

/// `verb` is the command, for the messages.
pub fn parse(
    args: &[String],
    selector: &Selector,
    verb: &'static str,
) -> Result<Targets, TargetsError> {
    let Some(first) = args.first() else {
        return Err(TargetsError::Nothing { verb });
    };
    if first.contains('/') {
        let keys = args
            .iter()
            .map(|a| match a.split_once('/') {
                Some((k, n)) if !n.is_empty() && !n.contains('/') => Ok(ObjectKey {
                    kind: k.parse()?,
                    name: n.to_owned(),
                }),
                Some(_) => Err(TargetsError::BadKey { arg: a.clone() }),
                None => Err(TargetsError::Mixed {
                    arg: a.clone(),
                    verb,
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !selector.is_empty() {
            return Err(TargetsError::NamesWithSelector { verb });
        }
        return Ok(Targets::Keys(dedup(keys)));
    }
    let mut kinds = Vec::new();
    for k in first.split(',') {
        if k.eq_ignore_ascii_case("all") {
            kinds.extend(Kind::ALL);
        } else {
            kinds.push(k.parse::<Kind>()?);
        }
    }
    kinds.dedup();
    let names = &args[1..];
    if names.is_empty() {
        return Ok(Targets::Kinds(kinds));
    }
    if let Some(bad) = names.iter().find(|n| n.contains('/')) {
        return Err(TargetsError::BadKey { arg: bad.clone() });
    }
    let [kind] = kinds[..] else {
        return Err(TargetsError::NamesWithManyKinds { verb });
    };
    if !selector.is_empty() {
        return Err(TargetsError::NamesWithSelector { verb });
    }
    Ok(Targets::Keys(dedup(
        names
            .iter()
            .map(|n| ObjectKey {
                kind,
                name: n.clone(),
            })
            .collect(),
    )))
}

/// In the order given, once each.
fn dedup(keys: Vec<ObjectKey>) -> Vec<ObjectKey> {
    let mut seen = std::collections::BTreeSet::new();
    keys.into_iter()
        .filter(|k| seen.insert(k.clone()))
        .collect()
}

impl Targets {
    /// The kinds these targets touch (for reading sealed records).
    pub fn kinds(&self) -> Vec<Kind> {
        match self {
            Targets::Kinds(k) => k.clone(),
            Targets::Keys(keys) => {
                let mut v: Vec<Kind> = keys.iter().map(|k| k.kind).collect();
                v.sort();
                v.dedup();
                v
            }
        }
    }

    /// "nodes, volumes": the kinds, for messages.
    pub fn plurals(&self) -> String {
        let kinds: Vec<&str> = self.kinds().iter().map(|k| k.plural()).collect();
        kinds.join(", ")
    }

    /// Whether `key` is among them (before the selector).
    pub fn names(&self, key: &ObjectKey) -> bool {
        match self {
            Targets::Kinds(kinds) => kinds.contains(&key.kind),
            Targets::Keys(keys) => keys.contains(key),
        }
    }

    /// One named record (`get node X`: its JSON is the object, not a list).
    pub fn is_single(&self) -> bool {
        matches!(self, Targets::Keys(k) if k.len() == 1)
    }

    /// The records picked in `snapshot`, in kind then name order for kinds, in the order
    /// given for names; `Err` lists the names that are not there.
    pub fn resolve(
        &self,
        snapshot: &ObjectsAt,
        selector: &Selector,
    ) -> Result<Vec<ObjectKey>, Vec<ObjectKey>> {
        match self {
            Targets::Kinds(kinds) => Ok(kinds
                .iter()
                .flat_map(|k| snapshot.of_kind(*k))
                .filter(|s| selector.matches(&s.object.meta().labels))
                .map(|s| s.object.key())
                .collect()),
            Targets::Keys(keys) => {
                let missing: Vec<ObjectKey> = keys
                    .iter()
                    .filter(|k| !snapshot.objects.contains_key(k))
                    .cloned()
                    .collect();
                if missing.is_empty() {
                    Ok(keys.clone())
                } else {
                    Err(missing)
                }
            }
        }
    }
}

/// "node/a, node/b not found (omtd get nodes lists them)".
pub fn not_found(missing: &[ObjectKey]) -> String {
    let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
    let mut kinds: Vec<&str> = missing.iter().map(|k| k.kind.plural()).collect();
    kinds.dedup();
    format!(
        "{} not found (omtd get {} lists them)",
        names.join(", "),
        kinds.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn key(kind: Kind, name: &str) -> ObjectKey {
        ObjectKey {
            kind,
            name: name.to_owned(),
        }
    }

    #[test]
    fn kubectl_argument_forms() {
        let none = Selector::default();
        let p = |s: &str| parse(&args(s), &none, "get");
        assert_eq!(p("nodes"), Ok(Targets::Kinds(vec![Kind::Node])));
        assert_eq!(
            p("no,vol"),
            Ok(Targets::Kinds(vec![Kind::Node, Kind::Volume]))
        );
        assert_eq!(p("all"), Ok(Targets::Kinds(Kind::ALL.to_vec())));
        assert_eq!(
            p("node a b a"),
            Ok(Targets::Keys(vec![
                key(Kind::Node, "a"),
                key(Kind::Node, "b")
            ]))
        );
        assert_eq!(
            p("node/a volume/v"),
            Ok(Targets::Keys(vec![
                key(Kind::Node, "a"),
                key(Kind::Volume, "v")
            ]))
        );
        assert!(matches!(p(""), Err(TargetsError::Nothing { .. })));
        assert!(matches!(p("node/a b"), Err(TargetsError::Mixed { .. })));
        assert!(matches!(p("node/"), Err(TargetsError::BadKey { .. })));
        assert!(matches!(p("node a/b"), Err(TargetsError::BadKey { .. })));
        assert!(matches!(
            p("nodes,volumes a"),
            Err(TargetsError::NamesWithManyKinds { .. })
        ));
        assert!(matches!(p("pods"), Err(TargetsError::Kind(_))));
        assert!(matches!(p("pod/a"), Err(TargetsError::Kind(_))));
        let tier: Selector = "tier=galaxy".parse().unwrap();
        assert!(matches!(
            parse(&args("node a"), &tier, "delete"),
            Err(TargetsError::NamesWithSelector { .. })
        ));
        assert_eq!(
            parse(&args("nodes"), &tier, "delete"),
            Ok(Targets::Kinds(vec![Kind::Node]))
        );
    }
}
