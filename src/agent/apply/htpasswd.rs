//! The registry's htpasswd, made on the host ([`FileRender::Htpasswd`]): the plan carries
//! `principal:secret` lines (a secret file only the registry host can read, like its other
//! secret files), and the file gets `principal:$2y$<cost>$<salt><hash>` with a random salt.
//! A line already in the file that still verifies for its user's secret is kept as it is,
//! so the file changes only when a user or a secret does, and a restart or resync does not
//! rewrite it.
//!
//! [`FileRender::Htpasswd`]: omtd_crds::plan::FileRender::Htpasswd

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};

/// Why a file could not be made. Never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    #[error("htpasswd line {line} of the plan is not `principal:secret`")]
    Malformed { line: usize },
    #[error("htpasswd user {user}: {reason}")]
    Hash { user: String, reason: String },
}

/// Bound of the memo of verified lines.
const VERIFIED_MAX: usize = 1024;

/// Digests of (hash line, secret) pairs that verified: bcrypt is slow on purpose and every
/// pass looks at the file, so a pair is checked once per process. Holds no secret.
fn verified() -> &'static Mutex<HashMap<[u8; 32], ()>> {
    static MEMO: OnceLock<Mutex<HashMap<[u8; 32], ()>>> = OnceLock::new();
    MEMO.get_or_init(|| Mutex::new(HashMap::new()))
}

fn verifies(secret: &str, hash: &str) -> bool {
    let mut h = Sha256::new();
    h.update(hash.as_bytes());
    h.update([0]);
    h.update(secret.as_bytes());
    let key: [u8; 32] = h.finalize().into();
    let mut memo = verified().lock().unwrap_or_else(|e| e.into_inner());
    if memo.contains_key(&key) {
        return true;
    }
    // A hash that does not parse simply does not verify: the line is made anew.
    let ok = bcrypt::verify(secret, hash).unwrap_or(false);
    if ok {
        if memo.len() >= VERIFIED_MAX {
            memo.clear();
        }
        memo.insert(key, ());
    }
    ok
}

/// The file for `plan` (`principal:secret` lines) given what the host has now (`live`).
pub fn render(plan: &str, live: Option<&[u8]>, cost: u32) -> Result<String, HtpasswdError> {
    let live = live.map(String::from_utf8_lossy).unwrap_or_default();
    let existing: HashMap<&str, &str> = live.lines().filter_map(|l| l.split_once(':')).collect();
    let mut out = String::new();
    for (i, line) in plan.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let (user, secret) = line
            .split_once(':')
            .ok_or(HtpasswdError::Malformed { line: i + 1 })?;
        let hash = match existing.get(user) {
            Some(h) if verifies(secret, h) => (*h).to_owned(),
            _ => bcrypt::non_truncating_hash_with_result(secret, cost)
                .map_err(|e| HtpasswdError::Hash {
                    user: user.to_owned(),
                    // bcrypt's errors name lengths and costs, never the input.
                    reason: e.to_string(),
                })?
                // Apache's `htpasswd -B` writes $2y$; the registry's Go bcrypt takes it too.
                .format_for_version(bcrypt::Version::TwoY),
        };
        out.push_str(user);
        out.push(':');
        out.push_str(&hash);
        out.push('\n');
    }
    Ok(out)
}

/// Whether `live` is what [`render`] makes of `plan`: one verifying line per planned user,
/// in the plan's order, and nothing else (a check for tests and tools, which cannot compare
/// bytes: the salts are random).
pub fn satisfies(plan: &str, live: &[u8]) -> bool {
    render(plan, Some(live), 4).is_ok_and(|made| made.as_bytes() == live)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = "alice:al-Secret1\nbob:bo-Secret2\n";

    fn hash_of<'a>(file: &'a str, user: &str) -> &'a str {
        file.lines()
            .find_map(|l| l.strip_prefix(&format!("{user}:")))
            .expect("a line for the user")
    }

    #[test]
    fn salts_are_random_lines_verify_and_name_no_secret() {
        let a = render(PLAN, None, 4).expect("render");
        let b = render(PLAN, None, 4).expect("render");
        assert_ne!(a, b, "a fresh file draws fresh salts");
        assert!(bcrypt::verify("al-Secret1", hash_of(&a, "alice")).unwrap());
        assert!(bcrypt::verify("bo-Secret2", hash_of(&a, "bob")).unwrap());
        assert!(hash_of(&a, "alice").starts_with("$2y$04$"));
        assert!(!a.contains("Secret"));
        // Same secret, two users: different salts, different lines.
        let same = render("u1:x-Same\nu2:x-Same\n", None, 4).expect("render");
        assert_ne!(hash_of(&same, "u1"), hash_of(&same, "u2"));
    }

    #[test]
    fn a_line_that_still_verifies_is_kept_a_rotated_one_is_made_anew() {
        let first = render(PLAN, None, 4).expect("render");
        let again = render(PLAN, Some(first.as_bytes()), 4).expect("render");
        assert_eq!(
            again, first,
            "nothing changed: the file stays byte for byte"
        );
        let rotated = render(
            "alice:al-Secret1\nbob:bo-Rotated\n",
            Some(first.as_bytes()),
            4,
        )
        .expect("render");
        assert_eq!(hash_of(&rotated, "alice"), hash_of(&first, "alice"));
        assert_ne!(hash_of(&rotated, "bob"), hash_of(&first, "bob"));
        assert!(bcrypt::verify("bo-Rotated", hash_of(&rotated, "bob")).unwrap());
        // A user removed from the plan leaves the file; a hand-added line does not stay.
        let fewer = render("alice:al-Secret1\n", Some(b"mallory:$2y$04$x\n"), 4).unwrap();
        assert_eq!(fewer.lines().count(), 1);
    }

    #[test]
    fn bad_plan_lines_and_overlong_secrets_are_errors_without_the_secret() {
        let e = render("no-colon-here\n", None, 4).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let long = "s".repeat(80);
        let e = render(&format!("carol:{long}\n"), None, 4).unwrap_err();
        assert!(!e.to_string().contains(&long), "{e}");
        assert!(e.to_string().contains("carol"), "{e}");
    }
}
