//! omtd's managed parts of a user's YAML file ([`FileRender::YamlBlocks`]): a block of list
//! entries under one top-level key, fenced by two marker comments, so that omtd owns its
//! entries and nothing else. Prometheus 2.42 (Debian bookworm) has no `scrape_config_files`,
//! so the only way to add omtd's jobs without owning `prometheus.yml` whole is to put them
//! inside the user's `scrape_configs:` list; the markers let the agent find and replace
//! exactly what it wrote last time, while the user's own jobs, `rule_files` and comments stay.
//!
//! The rendering is text, not a YAML round trip: a parse and re-serialisation would drop
//! the user's comments and reorder keys. The result is checked by the file's `validate`
//! command (`promtool check config`) before it goes live, so a user's file that does not
//! parse is refused, never half rewritten.
//!
//! [`FileRender::YamlBlocks`]: crate::plan::FileRender::YamlBlocks

use serde::{Deserialize, Serialize};

/// One managed block: `lines` (YAML list entries written at indentation 0, e.g.
/// `- job_name: x\n  static_configs: ...`) under the top-level `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct YamlBlock {
    pub key: String,
    #[serde(default)]
    pub lines: String,
}

/// The comment that opens `key`'s block.
pub fn begin_marker(key: &str) -> String {
    format!("# >>> omtd {key} (managed by omtd: edits between these markers are undone)")
}

/// The comment that closes `key`'s block.
pub fn end_marker(key: &str) -> String {
    format!("# <<< omtd {key}")
}

/// Indentation of list items when the key has none yet (Prometheus's own examples').
const DEFAULT_INDENT: usize = 2;

/// `text` with every block in place: an existing block's lines replaced, a missing block
/// inserted first under its key (the key appended at the end when the file has none).
/// Idempotent: rendering the result again gives the same text.
pub fn render(text: &str, blocks: &[YamlBlock]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for block in blocks {
        place(&mut lines, block);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

fn place(lines: &mut Vec<String>, block: &YamlBlock) {
    let begin = begin_marker(&block.key);
    let end = end_marker(&block.key);
    let open = lines.iter().position(|l| l.trim() == begin);
    let close = open.and_then(|o| {
        lines[o + 1..]
            .iter()
            .position(|l| l.trim() == end)
            .map(|c| o + 1 + c)
    });
    if let (Some(open), Some(close)) = (open, close) {
        let indent = leading_spaces(&lines[open]);
        let body = fenced(block, indent);
        lines.splice(open..=close, body);
        return;
    }
    // A lone marker (the user deleted its partner) is dropped: the block is placed afresh.
    lines.retain(|l| l.trim() != begin && l.trim() != end);
    match key_line(lines, &block.key) {
        Some(at) => {
            // `key: []` or `key: null` holds no entries; it becomes a block list.
            lines[at] = format!("{}:", block.key);
            let indent = item_indent(lines, at).unwrap_or(DEFAULT_INDENT);
            let body = fenced(block, indent);
            lines.splice(at + 1..at + 1, body);
        }
        None => {
            if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                lines.push(String::new());
            }
            lines.push(format!("{}:", block.key));
            lines.extend(fenced(block, DEFAULT_INDENT));
        }
    }
}

/// The markers and the block's lines at `indent`.
fn fenced(block: &YamlBlock, indent: usize) -> Vec<String> {
    let pad = " ".repeat(indent);
    let mut out = vec![format!("{pad}{}", begin_marker(&block.key))];
    out.extend(block.lines.lines().map(|l| {
        if l.is_empty() {
            String::new()
        } else {
            format!("{pad}{l}")
        }
    }));
    out.push(format!("{pad}{}", end_marker(&block.key)));
    out
}

/// The top-level line `key:` (with nothing after it but `[]`, `null`, `~` or a comment).
fn key_line(lines: &[String], key: &str) -> Option<usize> {
    lines.iter().position(|l| {
        let Some(rest) = l.strip_prefix(key).and_then(|r| r.strip_prefix(':')) else {
            return false;
        };
        let value = rest.split('#').next().unwrap_or("").trim();
        matches!(value, "" | "[]" | "null" | "~")
    })
}

/// How far the key's existing list items are indented (the first `- ` line after it).
fn item_indent(lines: &[String], key_at: usize) -> Option<usize> {
    for l in &lines[key_at + 1..] {
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        return t.starts_with('-').then(|| leading_spaces(l));
    }
    None
}

fn leading_spaces(l: &str) -> usize {
    l.len() - l.trim_start_matches(' ').len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str) -> YamlBlock {
        YamlBlock {
            key: "scrape_configs".into(),
            lines: format!("- job_name: {name}\n  static_configs:\n    - targets: ['a:1']\n"),
        }
    }

    const USER: &str = "global:\n  scrape_interval: 15s\n# the user's rules\nrule_files:\n  - /etc/prometheus/rules/*.yml\nscrape_configs:\n  - job_name: mine\n    static_configs:\n      - targets: ['localhost:9090']\n";

    #[test]
    fn a_block_goes_under_its_key_at_the_items_indent_and_keeps_the_rest() {
        let out = render(USER, &[job("omtd-workers")]);
        assert!(out.contains("# the user's rules\nrule_files:\n  - /etc/prometheus/rules/*.yml\n"));
        assert!(out.contains("  - job_name: mine\n"), "{out}");
        assert!(
            out.contains(&format!(
                "scrape_configs:\n  {}\n  - job_name: omtd-workers\n    static_configs:\n      - targets: ['a:1']\n  {}\n",
                begin_marker("scrape_configs"),
                end_marker("scrape_configs")
            )),
            "{out}"
        );
    }

    #[test]
    fn rendering_again_changes_nothing_and_a_new_block_replaces_the_old() {
        let once = render(USER, &[job("omtd-workers")]);
        assert_eq!(render(&once, &[job("omtd-workers")]), once);
        let changed = render(&once, &[job("omtd-new")]);
        assert!(changed.contains("omtd-new") && !changed.contains("omtd-workers"));
        assert!(changed.contains("job_name: mine"));
    }

    #[test]
    fn an_edit_inside_the_block_is_undone_and_one_outside_is_kept() {
        let once = render(USER, &[job("omtd-workers")]);
        let edited = once
            .replace("targets: ['a:1']", "targets: ['evil:1']")
            .replace("job_name: mine", "job_name: theirs");
        let again = render(&edited, &[job("omtd-workers")]);
        assert!(again.contains("targets: ['a:1']") && !again.contains("evil"));
        assert!(again.contains("job_name: theirs"));
    }

    #[test]
    fn a_missing_or_empty_key_gets_the_block() {
        let out = render("global: {}\nrule_files: []\n", &[job("x")]);
        assert!(out.starts_with("global: {}\nrule_files: []\n\nscrape_configs:\n  # >>> omtd"));
        let rules = YamlBlock {
            key: "rule_files".into(),
            lines: "- /etc/prometheus/omtd/omtd-alerts.yml\n".into(),
        };
        let out = render("global: {}\nrule_files: []\n", &[rules]);
        assert!(
            out.contains("rule_files:\n  # >>> omtd rule_files")
                && out.contains("  - /etc/prometheus/omtd/omtd-alerts.yml\n"),
            "{out}"
        );
    }

    #[test]
    fn an_empty_block_keeps_only_its_markers() {
        let once = render(USER, &[job("omtd-workers")]);
        let off = YamlBlock {
            key: "scrape_configs".into(),
            lines: String::new(),
        };
        let out = render(&once, &[off]);
        assert!(!out.contains("omtd-workers") && out.contains("job_name: mine"));
        assert!(out.contains(&begin_marker("scrape_configs")));
    }

    #[test]
    fn a_lone_marker_is_dropped_and_the_block_placed_once() {
        let once = render(USER, &[job("omtd-workers")]);
        let broken = once.replace(&end_marker("scrape_configs"), "");
        let out = render(&broken, &[job("omtd-workers")]);
        assert_eq!(out.matches(&begin_marker("scrape_configs")).count(), 1);
        assert_eq!(out.matches(&end_marker("scrape_configs")).count(), 1);
    }

    #[test]
    fn items_at_column_zero_are_matched() {
        let out = render("scrape_configs:\n- job_name: mine\n", &[job("o")]);
        assert!(out.contains("scrape_configs:\n# >>> omtd"), "{out}");
        assert!(out.contains("\n- job_name: o\n"));
    }
}
