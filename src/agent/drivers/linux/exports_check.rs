//! The check of omtd's `/etc/exports` lines before they go live: `exportfs -ra` given a bad
//! line skips it (unexporting what it named) or fails after exporting the rest, so a line
//! that cannot work is refused first and the old file kept.

use super::root::Root;

/// Why `line` cannot be exported under `root`, or `None` when it can: the path absolute and
/// a directory under the root, at least one client, every client named and its options in
/// one closed parenthesis of non-empty, comma-separated words.
pub fn problem(root: &Root, line: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    let path = words.next()?;
    if !path.starts_with('/') {
        return Some(format!("path {path:?} is not absolute"));
    }
    let clients: Vec<&str> = words.collect();
    if clients.is_empty() {
        return Some(format!("{path}: no client"));
    }
    for c in clients {
        if let Some(why) = client_problem(c) {
            return Some(format!("client {c:?}: {why}"));
        }
    }
    match root.map(path) {
        Ok(dir) if dir.is_dir() => None,
        Ok(_) => Some(format!("{path} is not a directory")),
        Err(e) => Some(e.to_string()),
    }
}

fn client_problem(word: &str) -> Option<&'static str> {
    let (client, options) = match word.split_once('(') {
        None => (word, None),
        Some((client, rest)) => (client, Some(rest)),
    };
    if client.is_empty() {
        return Some("no client before the options");
    }
    let options = options?;
    let Some(options) = options.strip_suffix(')') else {
        return Some("options not closed by ')'");
    };
    if options.contains(['(', ')']) {
        return Some("options nest parentheses");
    }
    let ok = |o: &str| {
        !o.is_empty()
            && o.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_=-/:.@".contains(ch))
    };
    if !options.split(',').all(ok) {
        return Some("options are not comma-separated words");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_and_bad_lines() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("srv/db")).unwrap();
        std::fs::write(d.path().join("srv/file"), "").unwrap();
        let root = Root::new(Some(d.path().to_path_buf())).unwrap();
        let p = |l: &str| problem(&root, l);
        assert_eq!(p("/srv/db 10.0.0.21(rw,sync,no_subtree_check)"), None);
        assert_eq!(p("/srv/db 10.0.0.21(rw) 10.0.0.0/24(ro,fsid=1) host"), None);
        for (line, why) in [
            ("srv/db 10.0.0.21(rw)", "not absolute"),
            ("/srv/db", "no client"),
            ("/srv/db (rw)", "no client before"),
            ("/srv/db 10.0.0.21(rw", "not closed"),
            ("/srv/db 10.0.0.21(rw,,sync)", "comma-separated"),
            ("/srv/db 10.0.0.21(rw)(ro)", "nest"),
            ("/srv/missing 10.0.0.21(rw)", "not a directory"),
            ("/srv/file 10.0.0.21(rw)", "not a directory"),
            (
                "/srv/../../etc 10.0.0.21(rw)",
                "not absolute and normalised",
            ),
        ] {
            let got = p(line).unwrap_or_default();
            assert!(got.contains(why), "{line}: {got}");
        }
    }
}
