//! Plain-text tables, kubectl style: printed by the CLI, the demo and `omtd status`, so
//! kept below all three.

use comfy_table::presets::NOTHING;
use comfy_table::{ContentArrangement, Table};

/// A borderless, kubectl-looking table.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_style(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    for r in rows {
        t.add_row(r);
    }
    // comfy-table pads every line with a leading space under the NOTHING preset: trim it so
    // columns start at the margin as kubectl's do.
    t.to_string()
        .lines()
        .map(|l| l.trim_end().strip_prefix(' ').unwrap_or(l).to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}
