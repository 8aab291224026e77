//! Setting a few keys of an INI file someone else owns ([`crate::plan::FileRender::IniKeys`]):
//! Galaxy's `galaxy.ini` is the user's file, and omtd owns only the keys it names.
//!
//! The dialect is Python's ConfigParser as Galaxy (Paste) reads it: `[section]` headers,
//! `key = value` (or `key: value`) lines starting in the first column, indented lines
//! continuing the value above, `#` and `;` comments. Everything but the owned keys' lines
//! is kept byte for byte, comments and commented-out keys included.

use std::collections::BTreeMap;

/// `existing` with every key of `keys` set in `[section]`: a key present gets the value
/// (its line is kept as is when the value already matches; continuation lines of its old
/// value go), an absent key is added at the end of the section, an absent section is
/// added at the end of the file. Idempotent: `set_keys(set_keys(x)) == set_keys(x)`.
pub fn set_keys(existing: &str, section: &str, keys: &BTreeMap<String, String>) -> String {
    let lines: Vec<&str> = existing.split_inclusive('\n').collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + keys.len() + 2);
    let mut in_section = false;
    let mut found_section = false;
    let mut seen: Vec<&str> = Vec::new();
    // Where the section's content ends in `out` (after its last non-blank line).
    let mut section_end: Option<usize> = None;
    let mut skipping_continuation = false;
    for line in lines {
        let body = line.trim_end_matches(['\n', '\r']);
        if let Some(name) = header(body) {
            in_section = name == section;
            found_section |= in_section;
            skipping_continuation = false;
            out.push(line.to_owned());
            if in_section {
                section_end = Some(out.len());
            }
            continue;
        }
        if skipping_continuation {
            if body.starts_with([' ', '\t']) && !body.trim().is_empty() {
                continue;
            }
            skipping_continuation = false;
        }
        if in_section {
            if let Some((key, value)) = key_value(body) {
                if let Some(want) = keys.get(key) {
                    if !seen.contains(&key) {
                        seen.push(key);
                    }
                    if value == want {
                        out.push(line.to_owned());
                    } else {
                        out.push(format!("{key} = {want}{}", ending(line)));
                        skipping_continuation = true;
                    }
                    section_end = Some(out.len());
                    continue;
                }
            }
            out.push(line.to_owned());
            if !body.trim().is_empty() {
                section_end = Some(out.len());
            }
            continue;
        }
        out.push(line.to_owned());
    }
    let missing: Vec<String> = keys
        .iter()
        .filter(|(k, _)| !seen.contains(&k.as_str()))
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    if missing.is_empty() && found_section {
        return out.concat();
    }
    match section_end.filter(|_| found_section) {
        Some(at) => {
            // The line before the insertion may lack its newline (the file's last line).
            if let Some(prev) = at.checked_sub(1).and_then(|i| out.get_mut(i)) {
                if !prev.ends_with('\n') {
                    prev.push('\n');
                }
            }
            out.splice(at..at, missing);
        }
        None => {
            if let Some(last) = out.last_mut() {
                if !last.ends_with('\n') {
                    last.push('\n');
                }
                out.push("\n".to_owned());
            }
            out.push(format!("[{section}]\n"));
            out.extend(missing);
        }
    }
    out.concat()
}

/// The section name of a header line.
fn header(body: &str) -> Option<&str> {
    let t = body.trim();
    t.strip_prefix('[')?.strip_suffix(']').map(str::trim)
}

/// `(key, value)` of a `key = value` line starting in the first column.
fn key_value(body: &str) -> Option<(&str, &str)> {
    if body.starts_with([' ', '\t', '#', ';']) || body.is_empty() {
        return None;
    }
    let at = body.find(['=', ':'])?;
    Some((body[..at].trim(), body[at + 1..].trim()))
}

fn ending(line: &str) -> &'static str {
    if line.ends_with("\r\n") {
        "\r\n"
    } else if line.ends_with('\n') {
        "\n"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn table() {
        let k = keys(&[("use_remote_user", "True")]);
        let cases: [(&str, &str, &str); 8] = [
            (
                "other value",
                "[server:main]\nport = 8080\n\n[app:main]\n# comment\nuse_remote_user = False\nadmin_users = a@b\n",
                "[server:main]\nport = 8080\n\n[app:main]\n# comment\nuse_remote_user = True\nadmin_users = a@b\n",
            ),
            (
                "already right: the line is kept as written",
                "[app:main]\nuse_remote_user=True\n",
                "[app:main]\nuse_remote_user=True\n",
            ),
            (
                "absent: added at the section's end, before the blank line",
                "[app:main]\nadmin_users = a@b\n\n[filter:x]\ny = 1\n",
                "[app:main]\nadmin_users = a@b\nuse_remote_user = True\n\n[filter:x]\ny = 1\n",
            ),
            (
                "section absent: added at the end",
                "[server:main]\nport = 8080",
                "[server:main]\nport = 8080\n\n[app:main]\nuse_remote_user = True\n",
            ),
            ("empty file", "", "[app:main]\nuse_remote_user = True\n"),
            (
                "commented-out key kept; the live key added",
                "[app:main]\n#use_remote_user = False\n; note\n",
                "[app:main]\n#use_remote_user = False\n; note\nuse_remote_user = True\n",
            ),
            (
                "same key in another section untouched",
                "[other]\nuse_remote_user = False\n[app:main]\n",
                "[other]\nuse_remote_user = False\n[app:main]\nuse_remote_user = True\n",
            ),
            (
                "an old multi-line value loses its continuation lines",
                "[app:main]\nuse_remote_user = False\n    still false\nx = 1\n",
                "[app:main]\nuse_remote_user = True\nx = 1\n",
            ),
        ];
        for (what, input, want) in cases {
            let got = set_keys(input, "app:main", &k);
            assert_eq!(got, want, "{what}");
            assert_eq!(set_keys(&got, "app:main", &k), got, "{what}: idempotent");
        }
    }

    #[test]
    fn crlf_lines_keep_their_ending() {
        let got = set_keys(
            "[app:main]\r\nuse_remote_user = False\r\n",
            "app:main",
            &keys(&[("use_remote_user", "True")]),
        );
        assert_eq!(got, "[app:main]\r\nuse_remote_user = True\r\n");
    }
}
