//! Key files: reading them (refusing one others can read, as ssh does) and writing them
//! (atomically, mode 0600).
//!
//! JSON, as `omtd secrets new-key` and `node-key` write it:
//!
//! ```json
//! {"keys": [{"id": "omtd-20250101-3f9a1c", "key": "<base64 of 32 bytes>"},
//!           {"id": "omtd-20240101-77e0b2", "key": "..."}]}
//! ```
//!
//! or text, one key a line (`#` starts a comment): `ID KEY` for a master key,
//! `ID CLUSTER NODE KEY` for a node key. The first master key is the active one (it
//! seals); every key opens. A node key (`{"id", "cluster", "node", "key"}`) opens only
//! that node's plans.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize as _, Zeroizing};

use super::keyring::{Keyring, KeyringError, MasterKey, NodeKey, SecretKey};

/// Errors naming the file, never its contents.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "key file {} is accessible by group or others (mode {mode:03o}); a key must be \
         private to its owner: chmod 600 {}",
        path.display(),
        path.display()
    )]
    Unprotected { path: PathBuf, mode: u32 },
    #[error(
        "key file {} is not a key file ({why}): expected JSON {{\"keys\": [{{\"id\": ID, \
         \"key\": BASE64}}]}} or lines of ID KEY",
        path.display()
    )]
    Parse { path: PathBuf, why: String },
    #[error("key {id} in {} is not 32 bytes in base64", path.display())]
    BadKey { path: PathBuf, id: String },
    #[error("key file {} holds no key", path.display())]
    Empty { path: PathBuf },
    #[error("key file {}: {source}", path.display())]
    Keyring { path: PathBuf, source: KeyringError },
    #[error(
        "{} already exists: a key file is never overwritten (--add puts a new active key \
         in front of its keys)",
        path.display()
    )]
    Exists { path: PathBuf },
    #[error("cannot write key file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One entry of a key file as stored. The key text is wiped once decoded.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node: Option<String>,
    key: String,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJson {
    keys: Vec<Entry>,
}

/// Reads a key file. Refuses one that group or others may access.
pub fn load(path: &Path) -> Result<Keyring, KeyFileError> {
    let read_err = |source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let mode = file.metadata().map_err(read_err)?.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Unprotected {
            path: path.to_owned(),
            mode,
        });
    }
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text).map_err(read_err)?;
    parse(path, &text)
}

/// Parses a key file's text (`path` only names it in errors).
pub fn parse(path: &Path, text: &str) -> Result<Keyring, KeyFileError> {
    let entries = if text.trim_start().starts_with('{') {
        serde_json::from_str::<FileJson>(text)
            .map_err(|e| KeyFileError::Parse {
                path: path.to_owned(),
                // Position only: serde's message may quote a piece of the key.
                why: format!("invalid JSON at line {} column {}", e.line(), e.column()),
            })?
            .keys
    } else {
        parse_text(path, text)?
    };
    if entries.is_empty() {
        return Err(KeyFileError::Empty {
            path: path.to_owned(),
        });
    }
    let mut masters = Vec::new();
    let mut nodes = Vec::new();
    for e in &entries {
        let key = decode_key(path, e)?;
        match (&e.cluster, &e.node) {
            (None, None) => masters.push(MasterKey {
                id: e.id.clone(),
                key,
            }),
            (Some(cluster), Some(node)) => nodes.push(NodeKey {
                id: e.id.clone(),
                cluster: cluster.clone(),
                node: node.clone(),
                key,
            }),
            _ => {
                return Err(KeyFileError::Parse {
                    path: path.to_owned(),
                    why: format!("key {} has a cluster or a node but not both", e.id),
                })
            }
        }
    }
    Keyring::new(masters, nodes).map_err(|source| KeyFileError::Keyring {
        path: path.to_owned(),
        source,
    })
}

fn parse_text(path: &Path, text: &str) -> Result<Vec<Entry>, KeyFileError> {
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let entry = match words.as_slice() {
            [id, key] => Entry {
                id: (*id).to_owned(),
                cluster: None,
                node: None,
                key: (*key).to_owned(),
            },
            [id, cluster, node, key] => Entry {
                id: (*id).to_owned(),
                cluster: Some((*cluster).to_owned()),
                node: Some((*node).to_owned()),
                key: (*key).to_owned(),
            },
            _ => {
                return Err(KeyFileError::Parse {
                    path: path.to_owned(),
                    why: format!(
                        "line {} has {} words, not ID KEY or ID CLUSTER NODE KEY",
                        n + 1,
                        words.len()
                    ),
                })
            }
        };
        entries.push(entry);
    }
    Ok(entries)
}

fn decode_key(path: &Path, e: &Entry) -> Result<SecretKey, KeyFileError> {
    let bad = || KeyFileError::BadKey {
        path: path.to_owned(),
        id: e.id.clone(),
    };
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(e.key.trim())
            .map_err(|_| bad())?,
    );
    let array: [u8; 32] = bytes.as_slice().try_into().map_err(|_| bad())?;
    Ok(SecretKey::from_bytes(array))
}

/// The JSON text of a keyring's keys, masters first (the active one leading).
fn render(ring: &Keyring) -> Zeroizing<String> {
    let encode = |k: &SecretKey| base64::engine::general_purpose::STANDARD.encode(k.bytes());
    let masters = ring.masters().iter().map(|m| Entry {
        id: m.id.clone(),
        cluster: None,
        node: None,
        key: encode(&m.key),
    });
    let nodes = ring.nodes().iter().map(|n| Entry {
        id: n.id.clone(),
        cluster: Some(n.cluster.clone()),
        node: Some(n.node.clone()),
        key: encode(&n.key),
    });
    let file = FileJson {
        keys: masters.chain(nodes).collect(),
    };
    let mut text = serde_json::to_string_pretty(&file).unwrap_or_default();
    text.push('\n');
    Zeroizing::new(text)
}

/// Whether a write may replace an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// A new file: an existing one is an error, never replaced.
    New,
    /// Replace the file (adding a key to it).
    Replace,
}

/// Writes a keyring as a key file, mode 0600, atomically ([`crate::private_file`]); a new
/// one never clobbers an existing file.
pub fn write(path: &Path, ring: &Keyring, how: Write) -> Result<(), KeyFileError> {
    let write_err = |source| KeyFileError::Write {
        path: path.to_owned(),
        source,
    };
    if how == Write::New && path.symlink_metadata().is_ok() {
        return Err(KeyFileError::Exists {
            path: path.to_owned(),
        });
    }
    let replace = how == Write::Replace;
    crate::private_file::write(path, render(ring).as_bytes(), 0o600, replace).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::Exists {
                path: path.to_owned(),
            }
        } else {
            write_err(e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn b64(b: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([b; 32])
    }

    #[test]
    fn json_and_text_read_alike() {
        let p = Path::new("k.json");
        let json = format!(
            r#"{{"keys": [{{"id": "new", "key": "{}"}}, {{"id": "old", "key": "{}"}}]}}"#,
            b64(2),
            b64(1)
        );
        let text = format!(
            "# rotated\nnew {}\n\nold {}  # keep until rotate-key\n",
            b64(2),
            b64(1)
        );
        for t in [json, text] {
            let ring = parse(p, &t).unwrap();
            let ids: Vec<&str> = ring.masters().iter().map(|m| m.id.as_str()).collect();
            assert_eq!(ids, ["new", "old"]);
            assert_eq!(ring.masters()[1].key.bytes(), &[1; 32]);
        }
        let node = parse(p, &format!("k1 prod n1.lab {}\n", b64(3))).unwrap();
        assert!(node.masters().is_empty());
        assert_eq!(node.nodes()[0].node, "n1.lab");
    }

    #[test]
    fn bad_files_say_what_without_echoing_the_key() {
        let p = Path::new("/etc/omtd/k");
        let secretish = "c2VjcmV0LWJ1dC1zaG9ydA==";
        let table: [(String, &str); 6] = [
            (
                format!("k1 {secretish}"),
                "key k1 in /etc/omtd/k is not 32 bytes",
            ),
            (
                format!(r#"{{"keys": [{{"id": "k1", "key": {secretish}}}]}}"#),
                "line 1 column",
            ),
            (String::from("# nothing\n"), "holds no key"),
            (format!("k1 a b c {secretish}"), "line 1 has 5 words"),
            (format!("k1 {}\nk1 {}", b64(1), b64(2)), "k1 appears twice"),
            (
                format!(
                    r#"{{"keys": [{{"id": "k", "node": "n", "key": "{}"}}]}}"#,
                    b64(1)
                ),
                "not both",
            ),
        ];
        for (text, says) in table {
            let e = parse(p, &text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
            assert!(!e.contains(secretish) && !e.contains(&b64(1)), "{e}");
        }
    }

    #[test]
    fn written_private_read_back_never_clobbered_and_refused_when_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("omtd.key");
        let ring = Keyring::new(
            vec![MasterKey {
                id: "k1".into(),
                key: SecretKey::random().unwrap(),
            }],
            vec![],
        )
        .unwrap();
        write(&path, &ring, Write::New).unwrap();
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = load(&path).unwrap();
        assert_eq!(back.masters()[0].key.bytes(), ring.masters()[0].key.bytes());
        let again = write(&path, &ring, Write::New).unwrap_err();
        assert!(matches!(again, KeyFileError::Exists { .. }), "{again}");
        write(&path, &ring, Write::Replace).unwrap();

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("mode 640") && e.contains("chmod 600"), "{e}");
        assert!(e.contains(&path.display().to_string()), "{e}");
        // Nothing left behind but the key file.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }
}
