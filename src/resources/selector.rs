//! Label selectors in kubectl's grammar (`-l/--selector`): requirements joined by commas,
//! all of which must hold.
//!
//! | requirement | matches a record whose labels |
//! |---|---|
//! | `key=value`, `key==value` | have `key` with this value |
//! | `key!=value` | lack `key`, or have it with another value |
//! | `key in (a,b)` | have `key` with one of the values |
//! | `key notin (a,b)` | lack `key`, or have it with none of the values |
//! | `key` | have `key` |
//! | `!key` | lack `key` |
//!
//! As in Kubernetes, `!=` and `notin` also match records without the key: "not in the
//! galaxy tier" includes the nodes that have no tier.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// A parsed selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    Absent(String),
}

/// Why a selector does not parse: the requirement at fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError {
    pub selector: String,
    pub requirement: String,
    pub reason: String,
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "--selector {:?}: ", self.selector)?;
        // The requirement at fault, unless it is the whole selector.
        if self.requirement != self.selector.trim() {
            write!(f, "{:?}: ", self.requirement)?;
        }
        write!(
            f,
            "{}; write key=value, key!=value, 'key in (a,b)', 'key notin (a,b)', key or \
             !key, joined by commas",
            self.reason
        )
    }
}

impl std::error::Error for SelectorError {}

impl Selector {
    /// Whether a record with these labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::Absent(k) => !labels.contains_key(k),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut requirements = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            let fail = |reason: &str| SelectorError {
                selector: s.to_owned(),
                requirement: part.to_owned(),
                reason: reason.to_owned(),
            };
            if part.is_empty() {
                if s.trim().is_empty() {
                    continue;
                }
                return Err(fail("an empty requirement (a stray comma)"));
            }
            requirements.push(requirement(part).map_err(|r| fail(&r))?);
        }
        Ok(Selector { requirements })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |vs: &BTreeSet<String>| vs.iter().cloned().collect::<Vec<_>>().join(",");
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| match r {
                Requirement::In(k, vs) if vs.len() == 1 => format!("{k}={}", set(vs)),
                Requirement::In(k, vs) => format!("{k} in ({})", set(vs)),
                Requirement::NotIn(k, vs) if vs.len() == 1 => format!("{k}!={}", set(vs)),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", set(vs)),
                Requirement::Exists(k) => k.clone(),
                Requirement::Absent(k) => format!("!{k}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// The requirements of a selector: split at commas outside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::Absent(key_of(key.trim())?));
    }
    // Set-based: `key in (...)`, `key notin (...)`.
    if let Some(open) = part.find('(') {
        let head = part[..open].trim();
        let Some(values) = part[open + 1..].trim_end().strip_suffix(')') else {
            return Err("a set without its closing parenthesis".into());
        };
        let (key, op) = head
            .rsplit_once(char::is_whitespace)
            .ok_or_else(|| "a set needs `in` or `notin` before it".to_owned())?;
        let key = key_of(key.trim())?;
        let values: BTreeSet<String> = values
            .split(',')
            .map(|v| value_of(v.trim()))
            .collect::<Result<_, _>>()?;
        return match op {
            "in" => Ok(Requirement::In(key, values)),
            "notin" => Ok(Requirement::NotIn(key, values)),
            other => Err(format!("unknown set operator {other:?}")),
        };
    }
    for (op, negated) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = part.split_once(op) {
            let key = key_of(key.trim())?;
            let values = BTreeSet::from([value_of(value.trim())?]);
            return Ok(if negated {
                Requirement::NotIn(key, values)
            } else {
                Requirement::In(key, values)
            });
        }
    }
    if part.contains(char::is_whitespace) {
        return Err("an operator is missing (=, !=, in, notin)".into());
    }
    Ok(Requirement::Exists(key_of(part)?))
}

/// A label key: `[prefix/]name`, letters, digits, `-`, `_`, `.` (validation's own rule
/// for stored labels is the stricter one; this only refuses what cannot be a key).
fn key_of(key: &str) -> Result<String, String> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(key.to_owned())
    } else {
        Err(format!("{key:?} is not a label key"))
    }
}

/// A label value: may be empty; letters, digits, `-`, `_`, `.`.
fn value_of(value: &str) -> Result<String, String> {
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Ok(value.to_owned())
    } else {
        Err(format!("{value:?} is not a label value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn kubectl_requirements_select_as_kubernetes_does() {
        let galaxy = labels(&[("tier", "galaxy"), ("zone", "a")]);
        let mesos = labels(&[("tier", "mesos")]);
        let bare = labels(&[]);
        // (selector, galaxy, mesos, bare)
        let table: [(&str, bool, bool, bool); 12] = [
            ("", true, true, true),
            ("tier=galaxy", true, false, false),
            ("tier==galaxy", true, false, false),
            ("tier!=galaxy", false, true, true),
            ("tier in (galaxy, mesos)", true, true, false),
            ("tier notin (galaxy)", false, true, true),
            ("zone", true, false, false),
            ("!zone", false, true, true),
            ("tier=galaxy,zone=a", true, false, false),
            ("tier in (galaxy,mesos),!zone", false, true, false),
            ("tier=", false, false, false),
            (" tier = mesos ", false, true, false),
        ];
        for (s, g, m, b) in table {
            let sel: Selector = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(
                (
                    sel.matches(&galaxy),
                    sel.matches(&mesos),
                    sel.matches(&bare)
                ),
                (g, m, b),
                "{s:?}"
            );
        }
    }

    #[test]
    fn bad_selectors_name_the_requirement_and_the_fix() {
        for (s, part) in [
            ("tier=galaxy,", ""),
            ("tier in (galaxy", "tier in (galaxy"),
            ("tier within (galaxy)", "tier within (galaxy)"),
            ("tier galaxy", "tier galaxy"),
            ("ti er=galaxy", "ti er=galaxy"),
            ("tier=gal axy", "tier=gal axy"),
            ("(galaxy)", "(galaxy)"),
        ] {
            let e = s.parse::<Selector>().expect_err(s);
            assert_eq!(e.requirement, part, "{s}");
            assert!(e.to_string().contains("write key=value"), "{e}");
        }
    }

    #[test]
    fn shown_back_in_the_same_grammar() {
        let s: Selector = "tier in (mesos,galaxy),zone!=b,!old,gpu".parse().unwrap();
        assert_eq!(s.to_string(), "tier in (galaxy,mesos),zone!=b,!old,gpu");
        assert_eq!(s.to_string().parse::<Selector>().unwrap(), s);
    }
}
