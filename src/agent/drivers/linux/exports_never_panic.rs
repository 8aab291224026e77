//! Parsers never panic (issue #21 item 9): `/etc/exports` lines and their managed block,
//! with the adoption of foreign lines for owned (path, client) pairs, on arbitrary and
//! near-valid files. A child of `exports` because `pairs` and `adopt` are private to it; the
//! fstab side is in `tests/parsers_never_panic.rs`.

use omtd_test_support::never_panic as support;

use proptest::prelude::*;

use super::{adopt, pairs};
use crate::agent::drivers::linux::block::{self, Foreign};
use support::{any_text, near_text};

const EXPORTS: &[&str] = &[
    "/srv/executor/database 10.0.0.11(rw,sync,no_root_squash) 10.0.0.12(ro)\n/srv/other *(ro)\n# BEGIN omtd managed lines: change the desired state, not these lines\n/srv/executor/database 10.0.0.13(rw)\n# END omtd managed lines\n",
    "# /etc/exports: the access control list\n/srv/a\t10.0.0.0/24(rw,fsid=0) host.omtd(ro,sync)\n",
];

const LINES: &[&str] = &[
    "/srv/executor/database 10.0.0.11(rw,sync,no_root_squash)",
    "/srv/editor/galaxy 10.0.0.10(rw)",
];

/// One owned line per entry, never a newline or a marker (as `ExportSpec::line` renders).
fn lines() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        prop_oneof![near_text(LINES), any_text()].prop_map(|s| {
            s.replace(['\n', '\r'], " ")
                .replace(block::BEGIN, "")
                .replace(block::END, "")
        }),
        0..4,
    )
}

/// What `LinuxExports::write_owned_lines` does to the file's text, and its invariants:
/// the owned lines read back are the ones written, and adoption only ever removes clients
/// of an owned (path, client) pair.
fn write(text: &str, lines: &[String]) -> Result<(), TestCaseError> {
    let owned: Vec<(String, String)> = lines.iter().flat_map(|l| pairs(l)).collect();
    for l in text.lines() {
        let _ = pairs(l);
        match adopt(l, &owned) {
            Foreign::Keep => {}
            Foreign::Drop => prop_assert!(!owned.is_empty(), "dropped {:?} for no owner", l),
            Foreign::Replace(new) => {
                prop_assert!(new.split_whitespace().count() < l.split_whitespace().count())
            }
        }
    }
    let out = block::render(text, lines, |l| adopt(l, &owned));
    if !lines.is_empty() {
        prop_assert_eq!(&block::owned(&out), lines, "rendered:\n{}", out);
    }
    Ok(())
}

proptest! {
    #[test]
    fn exports_any(text in any_text(), lines in lines()) {
        write(&text, &lines)?;
    }

    #[test]
    fn exports_near(text in near_text(EXPORTS), lines in lines()) {
        write(&text, &lines)?;
    }
}
