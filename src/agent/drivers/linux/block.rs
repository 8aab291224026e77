//! Lines owned by omtd inside a file other tools also edit (`/etc/fstab`, `/etc/exports`).
//!
//! omtd's lines live in one block between two marker comments; every other line is foreign
//! and kept byte for byte, in order. A foreign line that describes the same thing as an owned
//! line (the same mount target, the same export path and client: what the Ansible playbooks
//! wrote before omtd took over) is adopted: `adopt` says whether to keep it, drop it, or
//! rewrite it without the adopted part. A begin marker without its end marker is treated as
//! a foreign comment, so a hand-damaged block never makes omtd delete foreign lines.

pub const BEGIN: &str = "# BEGIN omtd managed lines: change the desired state, not these lines";
pub const END: &str = "# END omtd managed lines";

/// What to do with a foreign line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Foreign {
    Keep,
    Drop,
    Replace(String),
}

/// The owned lines in `text` (without their newline).
pub fn owned(text: &str) -> Vec<String> {
    match find_block(text) {
        Some((start, end)) => text
            .split_inclusive('\n')
            .skip(start + 1)
            .take(end - start - 1)
            .map(|l| l.trim_end_matches('\n').to_owned())
            .collect(),
        None => Vec::new(),
    }
}

/// `text` with its owned lines replaced by `lines`. Foreign lines pass through `adopt`.
pub fn render(text: &str, lines: &[String], adopt: impl Fn(&str) -> Foreign) -> String {
    let all: Vec<&str> = text.split_inclusive('\n').collect();
    let block = find_block(text);
    let mut out = String::with_capacity(text.len() + 64 * lines.len());
    let mut placed = false;
    let mut i = 0;
    while i < all.len() {
        if let Some((start, end)) = block {
            if i == start {
                push_block(&mut out, lines);
                placed = true;
                i = end + 1;
                continue;
            }
        }
        let line = all[i];
        let body = line.trim_end_matches('\n');
        let is_comment = body.trim_start().starts_with('#') || body.trim().is_empty();
        match if is_comment {
            Foreign::Keep
        } else {
            adopt(body)
        } {
            Foreign::Keep => out.push_str(line),
            Foreign::Drop => {}
            Foreign::Replace(new) => {
                out.push_str(&new);
                out.push('\n');
            }
        }
        i += 1;
    }
    if !placed && !lines.is_empty() {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        push_block(&mut out, lines);
    }
    out
}

fn push_block(out: &mut String, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    out.push_str(BEGIN);
    out.push('\n');
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
}

/// Line indexes of the begin and end markers of the first complete block. A begin marker
/// followed by another one before any end marker is a stray (foreign) comment: the block
/// starts at the begin marker nearest its end, so foreign lines after a stray marker are
/// never read as owned (and dropped on the next render).
fn find_block(text: &str) -> Option<(usize, usize)> {
    let mut start = None;
    for (i, line) in text.split('\n').enumerate() {
        let l = line.trim_end();
        match start {
            _ if l == BEGIN => start = Some(i),
            Some(s) if l == END => return Some((s, i)),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_a_block_and_keeps_foreign_lines() {
        let text = "# static\nUUID=1 / ext4 defaults 0 1\n";
        let out = render(text, &["a b nfs defaults 0 0".into()], |_| Foreign::Keep);
        assert_eq!(
            out,
            format!("# static\nUUID=1 / ext4 defaults 0 1\n{BEGIN}\na b nfs defaults 0 0\n{END}\n")
        );
        assert_eq!(owned(&out), vec!["a b nfs defaults 0 0"]);
        // Rewriting in place keeps the order of foreign lines around the block.
        let with_tail = format!("{out}tmpfs /tmp tmpfs defaults 0 0");
        let again = render(&with_tail, &["x y nfs defaults 0 0".into()], |_| {
            Foreign::Keep
        });
        assert_eq!(
            again,
            format!("# static\nUUID=1 / ext4 defaults 0 1\n{BEGIN}\nx y nfs defaults 0 0\n{END}\ntmpfs /tmp tmpfs defaults 0 0")
        );
        // No owned lines: the block goes, the rest stays.
        assert_eq!(
            render(&again, &[], |_| Foreign::Keep),
            "# static\nUUID=1 / ext4 defaults 0 1\ntmpfs /tmp tmpfs defaults 0 0"
        );
    }

    #[test]
    fn adoption_and_a_broken_block() {
        let text = format!("{BEGIN}\nold line\nkeep me\n");
        // No END marker: nothing is owned, every line is foreign.
        assert!(owned(&text).is_empty());
        let out = render(&text, &["new".into()], |l| {
            if l == "old line" {
                Foreign::Drop
            } else {
                Foreign::Keep
            }
        });
        assert_eq!(out, format!("{BEGIN}\nkeep me\n{BEGIN}\nnew\n{END}\n"));
    }

    #[test]
    fn a_stray_begin_marker_never_makes_foreign_lines_owned() {
        // Found by tests/parsers_never_panic.rs: the block used to run from the stray marker
        // to the new block's end, so the second pass dropped `keep me`.
        let text = format!("{BEGIN}\nkeep me\n");
        let once = render(&text, &["new".into()], |_| Foreign::Keep);
        assert_eq!(owned(&once), vec!["new".to_owned()]);
        let twice = render(&once, &["new".into()], |_| Foreign::Keep);
        assert_eq!(twice, once);
    }
}
