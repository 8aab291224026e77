//! Input strategies for the "parsers never panic" properties (`tests/parsers_never_panic.rs`
//! and the in-crate `never_panic` modules that reach private parsers), so both draw inputs
//! the same way.
//!
//! Three shapes of input:
//! - **arbitrary**: any bytes / any text, mostly noise that dies on the first byte;
//! - **near-valid**: a real sample (a fixture, a document omtd wrote) with a few edits, which
//!   is what reaches the deep paths of a parser (a number out of range, a missing field, a
//!   stray marker line, a duplicated key);
//! - **truncated**: a strict prefix of a sample whose top level is a JSON object or array.
//!   Such a prefix is never a complete document, so a parser that returns `Result` must say
//!   `Err`: this is the "garbage is an error, not a silent default" half of the property.

use proptest::prelude::*;
use proptest::sample::Index;

/// Fragments that mean something to one of the formats: JSON and YAML syntax, numbers at
/// the edge of their types, the managed-block markers, fstab escapes, lvm separators.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "|",
    "\n",
    "\r\n",
    "\t",
    " ",
    "#",
    "\\",
    "'",
    "-",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1e999",
    "18446744073709551616",
    "-9223372036854775809",
    "0.5",
    "\\u0000",
    "\\ud800",
    "\u{0}",
    "\u{feff}",
    "é",
    "日本",
    "---\n",
    "...\n",
    "&a ",
    "*a",
    "!!binary ",
    "? ",
    "- ",
    "<<: *a\n",
    "~",
    "%YAML 1.2\n",
    "# BEGIN omtd managed lines: change the desired state, not these lines\n",
    "# END omtd managed lines\n",
    "\\040",
    "\\011",
    "\\134",
    "UUID=",
    "(",
    ")",
    "=",
    ": ",
    ": Moved: ",
    "%",
    ".00",
    "@",
    "//",
    "zk://",
    "http://",
    "json.info_",
    "/tcp",
];

/// One edit of a sample. Positions are `Index`es, resolved against the current length.
#[derive(Debug, Clone)]
pub enum Edit {
    Delete(Index, u8),
    Insert(Index, String),
    SetByte(Index, u8),
    Duplicate(Index, u8),
    Truncate(Index),
}

fn insertion() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(TOKENS).prop_map(str::to_owned),
        1 => any::<String>().prop_map(|s| s.chars().take(8).collect()),
    ]
}

pub fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<Index>(), 1u8..16).prop_map(|(i, n)| Edit::Delete(i, n)),
        4 => (any::<Index>(), insertion()).prop_map(|(i, s)| Edit::Insert(i, s)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::SetByte(i, b)),
        1 => (any::<Index>(), 1u8..64).prop_map(|(i, n)| Edit::Duplicate(i, n)),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

/// `bytes` after `edits`, in order.
pub fn apply(bytes: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for e in edits {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
        match e {
            Edit::Delete(i, n) => {
                let start = at(i, b.len()).min(b.len());
                let end = (start + usize::from(*n)).min(b.len());
                b.drain(start..end);
            }
            Edit::Insert(i, s) => {
                let pos = at(i, b.len());
                b.splice(pos..pos, s.bytes());
            }
            Edit::SetByte(i, v) => {
                if !b.is_empty() {
                    let pos = i.index(b.len());
                    b[pos] = *v;
                }
            }
            Edit::Duplicate(i, n) => {
                let start = at(i, b.len()).min(b.len());
                let end = (start + usize::from(*n)).min(b.len());
                let copy = b[start..end].to_vec();
                b.splice(end..end, copy);
            }
            Edit::Truncate(i) => {
                let pos = at(i, b.len());
                b.truncate(pos);
            }
        }
    }
    b
}

/// A sample from `samples` with one to six edits, as bytes (may be invalid UTF-8).
pub fn near_bytes(samples: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::sample::select(samples),
        proptest::collection::vec(edit(), 1..7),
    )
        .prop_map(|(s, edits)| apply(s.as_bytes(), &edits))
}

/// [`near_bytes`] as text (invalid UTF-8 replaced), for parsers that take `&str`.
pub fn near_text(samples: &'static [&'static str]) -> impl Strategy<Value = String> {
    near_bytes(samples).prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// A strict, non-empty prefix of a sample, cut before its last non-blank character (so
/// the closing bracket of the top-level object or array is always missing).
pub fn truncated(samples: &'static [&'static str]) -> impl Strategy<Value = String> {
    (proptest::sample::select(samples), any::<Index>()).prop_map(|(s, i)| {
        let body = s.trim_end();
        let mut cut = 1 + i.index(body.len().max(2) - 1);
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body[..cut].to_owned()
    })
}

/// Any text, biased towards the format's own tokens so it gets past the first byte.
pub fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(insertion(), 0..24).prop_map(|v| v.concat()),
    ]
}

/// Any bytes, biased the same way.
pub fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        any_text().prop_map(String::into_bytes),
    ]
}
