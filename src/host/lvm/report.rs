//! Parsing `pvs`/`vgs`/`lvs` reports, in both shapes lvm2 can print them.
//!
//! - JSON (lvm2 >= 2.02.158): `--reportformat json --units b --nosuffix` prints
//!   `{"report":[{"pv":[{...}]}]}` where ALL values are strings, some padded (`"0 "`).
//! - Columns (any lvm2): `--noheadings --separator '|' --units b --nosuffix -o f1,f2,...`
//!   prints one `|`-separated line per row, indented, in the order of `-o`.
//!
//! Both are turned into the same [`Row`]s, then into typed [`Pv`], [`Vg`], [`Lv`], so the
//! callers never know which one the host spoke.

use std::collections::BTreeMap;

use serde::Serialize;

/// Which report shape a host's lvm2 supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Json,
    Columns,
}

/// The reports omtd reads: which command, which JSON key, which fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    Pv,
    Vg,
    Lv,
    /// `lvs -a` with the `devices` segment field: one row per segment, hidden LVs
    /// included. Used to find an interrupted pvmove (its LV has attr `p...`).
    Segment,
}

impl ReportKind {
    pub fn command(self) -> &'static str {
        match self {
            ReportKind::Pv => "pvs",
            ReportKind::Vg => "vgs",
            ReportKind::Lv | ReportKind::Segment => "lvs",
        }
    }

    /// The key of the row array inside `report[0]`.
    pub fn json_key(self) -> &'static str {
        match self {
            ReportKind::Pv => "pv",
            ReportKind::Vg => "vg",
            ReportKind::Lv | ReportKind::Segment => "lv",
        }
    }

    pub fn fields(self) -> &'static [&'static str] {
        match self {
            ReportKind::Pv => &[
                "pv_name",
                "vg_name",
                "pv_size",
                "pv_free",
                "pv_used",
                "pv_pe_count",
                "pv_pe_alloc_count",
                "pv_attr",
            ],
            ReportKind::Vg => &[
                "vg_name",
                "vg_size",
                "vg_free",
                "vg_extent_size",
                "vg_extent_count",
                "vg_free_count",
            ],
            ReportKind::Lv => &["vg_name", "lv_name", "lv_size", "lv_path", "lv_attr"],
            ReportKind::Segment => &["vg_name", "lv_name", "lv_attr", "devices"],
        }
    }
}

/// A report that did not have the shape we asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("{command} printed JSON we cannot read: {reason}")]
    Json {
        command: &'static str,
        reason: String,
    },
    #[error("{command} report has no field {field:?} in a row")]
    MissingField {
        command: &'static str,
        field: &'static str,
    },
    #[error("{command} report: {field} = {value:?} is not a whole number of bytes/extents")]
    BadNumber {
        command: &'static str,
        field: &'static str,
        value: String,
    },
    #[error("{command} report line has {got} fields, expected {expected}: {line:?}")]
    BadLine {
        command: &'static str,
        line: String,
        expected: usize,
        got: usize,
    },
}

/// One report row: field name to trimmed value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Row(pub BTreeMap<String, String>);

impl Row {
    fn text(&self, kind: ReportKind, field: &'static str) -> Result<&str, ReportError> {
        self.0
            .get(field)
            .map(|v| v.trim())
            .ok_or(ReportError::MissingField {
                command: kind.command(),
                field,
            })
    }

    fn number(&self, kind: ReportKind, field: &'static str) -> Result<u64, ReportError> {
        let v = self.text(kind, field)?;
        // With --units b --nosuffix sizes are whole bytes, but lvm2 prints them through its
        // size formatter, which some versions end with ".00"; accept that, nothing else.
        let whole = v.strip_suffix(".00").unwrap_or(v);
        whole.parse().map_err(|_| ReportError::BadNumber {
            command: kind.command(),
            field,
            value: v.to_owned(),
        })
    }
}

/// Parses a JSON report into rows. Every value is taken as a string and trimmed.
pub fn parse_json(kind: ReportKind, stdout: &str) -> Result<Vec<Row>, ReportError> {
    let bad = |reason: String| ReportError::Json {
        command: kind.command(),
        reason,
    };
    // Tolerate anything printed before the document (a stray warning on stdout).
    let start = stdout
        .find('{')
        .ok_or_else(|| bad("no JSON object in the output".into()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&stdout[start..]).map_err(|e| bad(e.to_string()))?;
    let reports = doc
        .get("report")
        .and_then(|r| r.as_array())
        .ok_or_else(|| bad("no \"report\" array".into()))?;
    let mut rows = Vec::new();
    // Normally one report object; with several (lvm's report/command log) take every one
    // that holds our key.
    for report in reports {
        let Some(items) = report.get(kind.json_key()) else {
            continue;
        };
        let items = items
            .as_array()
            .ok_or_else(|| bad(format!("{:?} is not an array", kind.json_key())))?;
        for item in items {
            let obj = item
                .as_object()
                .ok_or_else(|| bad("a row is not an object".into()))?;
            let mut row = BTreeMap::new();
            for (k, v) in obj {
                let text = match v {
                    serde_json::Value::String(s) => s.trim().to_owned(),
                    // json_std output (lvm2 >= 2.03.x with report/json_std) uses numbers.
                    other => other.to_string(),
                };
                row.insert(k.clone(), text);
            }
            rows.push(Row(row));
        }
    }
    Ok(rows)
}

/// Parses `--noheadings --separator '|'` output into rows, with the fields of `kind`.
pub fn parse_columns(kind: ReportKind, stdout: &str) -> Result<Vec<Row>, ReportError> {
    let fields = kind.fields();
    let mut rows = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let values: Vec<&str> = line.split('|').collect();
        if values.len() != fields.len() {
            return Err(ReportError::BadLine {
                command: kind.command(),
                line: line.to_owned(),
                expected: fields.len(),
                got: values.len(),
            });
        }
        let row = fields
            .iter()
            .zip(values)
            .map(|(f, v)| ((*f).to_owned(), v.trim().to_owned()))
            .collect();
        rows.push(Row(row));
    }
    Ok(rows)
}

/// Parses either shape.
pub fn parse(
    kind: ReportKind,
    format: ReportFormat,
    stdout: &str,
) -> Result<Vec<Row>, ReportError> {
    match format {
        ReportFormat::Json => parse_json(kind, stdout),
        ReportFormat::Columns => parse_columns(kind, stdout),
    }
}

/// A physical volume. Sizes in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pv {
    pub name: String,
    /// `None` for a PV in no volume group (an "orphan").
    pub vg: Option<String>,
    pub size: u64,
    pub free: u64,
    pub used: u64,
    pub pe_count: u64,
    pub pe_alloc_count: u64,
    /// New extents may be allocated on it (`pv_attr` starts with `a`; `pvchange -x n`
    /// clears it). Free extents of a non-allocatable PV cannot take moved data.
    pub allocatable: bool,
    /// lvm2 cannot see the device (`pv_attr` third letter `m`).
    pub missing: bool,
}

impl Pv {
    /// Extents not allocated to any LV.
    pub fn free_extents(&self) -> u64 {
        self.pe_count.saturating_sub(self.pe_alloc_count)
    }
}

/// A volume group. Sizes in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vg {
    pub name: String,
    pub size: u64,
    pub free: u64,
    pub extent_size: u64,
    pub extent_count: u64,
    pub free_count: u64,
}

/// A logical volume (hidden ones excluded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lv {
    pub vg: String,
    pub name: String,
    pub size: u64,
    /// `/dev/VG/LV`.
    pub path: String,
    pub attr: String,
}

/// One segment row of `lvs -a -o ...,devices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub vg: String,
    /// Hidden LVs are bracketed by lvm2 (`[pvmove0]`); the brackets are kept.
    pub lv: String,
    pub attr: String,
    /// `/dev/vdd(0),/dev/vdb(1200)`: PV and first extent of each area.
    pub devices: String,
}

impl Segment {
    /// An in-flight pvmove's temporary mirror (lv_attr volume type `p`).
    pub fn is_pvmove(&self) -> bool {
        self.attr.starts_with('p')
    }

    /// Whether one of this segment's areas is on `pv`.
    pub fn uses_pv(&self, pv: &str) -> bool {
        self.devices
            .split(',')
            .any(|d| d.split('(').next() == Some(pv))
    }
}

pub fn pvs(rows: &[Row]) -> Result<Vec<Pv>, ReportError> {
    let k = ReportKind::Pv;
    rows.iter()
        .map(|r| {
            let vg = r.text(k, "vg_name")?;
            let attr = r.text(k, "pv_attr")?;
            Ok(Pv {
                name: r.text(k, "pv_name")?.to_owned(),
                vg: (!vg.is_empty()).then(|| vg.to_owned()),
                size: r.number(k, "pv_size")?,
                free: r.number(k, "pv_free")?,
                used: r.number(k, "pv_used")?,
                pe_count: r.number(k, "pv_pe_count")?,
                pe_alloc_count: r.number(k, "pv_pe_alloc_count")?,
                allocatable: attr.starts_with('a'),
                missing: attr.chars().nth(2) == Some('m'),
            })
        })
        .collect()
}

pub fn vgs(rows: &[Row]) -> Result<Vec<Vg>, ReportError> {
    let k = ReportKind::Vg;
    rows.iter()
        .map(|r| {
            Ok(Vg {
                name: r.text(k, "vg_name")?.to_owned(),
                size: r.number(k, "vg_size")?,
                free: r.number(k, "vg_free")?,
                extent_size: r.number(k, "vg_extent_size")?,
                extent_count: r.number(k, "vg_extent_count")?,
                free_count: r.number(k, "vg_free_count")?,
            })
        })
        .collect()
}

pub fn lvs(rows: &[Row]) -> Result<Vec<Lv>, ReportError> {
    let k = ReportKind::Lv;
    rows.iter()
        .map(|r| {
            let vg = r.text(k, "vg_name")?.to_owned();
            let name = r.text(k, "lv_name")?.to_owned();
            let path = match r.text(k, "lv_path")? {
                "" => format!("/dev/{vg}/{name}"),
                p => p.to_owned(),
            };
            Ok(Lv {
                size: r.number(k, "lv_size")?,
                attr: r.text(k, "lv_attr")?.to_owned(),
                vg,
                name,
                path,
            })
        })
        .collect()
}

pub fn segments(rows: &[Row]) -> Result<Vec<Segment>, ReportError> {
    let k = ReportKind::Segment;
    rows.iter()
        .map(|r| {
            Ok(Segment {
                vg: r.text(k, "vg_name")?.to_owned(),
                lv: r.text(k, "lv_name")?.to_owned(),
                attr: r.text(k, "lv_attr")?.to_owned(),
                devices: r.text(k, "devices")?.to_owned(),
            })
        })
        .collect()
}

/// The `LVM version:` of `lvm version` output, as (major, minor, patch).
pub fn lvm_version(stdout: &str) -> Option<(u32, u32, u32)> {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("LVM version:"))?;
    let v = line.split(':').nth(1)?.trim();
    // "2.03.16(2) (2022-05-18)" -> "2.03.16"
    let v = v.split(|c: char| c == '(' || c.is_whitespace()).next()?;
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

/// The first lvm2 with `--reportformat json`.
pub const JSON_SINCE: (u32, u32, u32) = (2, 2, 158);

#[cfg(test)]
mod tests {
    use super::*;

    // Real outputs of lvm2 2.03.16 on loop devices: VG fxvg of two 60 MiB PVs filled by
    // one LV (created metadata-only with --driverloaded n), and an orphan PV.
    const PVS_JSON: &str = include_str!("fixtures/pvs.json");
    const PVS_TXT: &str = include_str!("fixtures/pvs.txt");
    const VGS_JSON: &str = include_str!("fixtures/vgs.json");
    const VGS_TXT: &str = include_str!("fixtures/vgs.txt");
    const LVS_JSON: &str = include_str!("fixtures/lvs.json");
    const LVS_TXT: &str = include_str!("fixtures/lvs.txt");
    const LVS_EMPTY_JSON: &str = include_str!("fixtures/lvs_empty.json");
    const LVS_EMPTY_TXT: &str = include_str!("fixtures/lvs_empty.txt");
    const SEG_JSON: &str = include_str!("fixtures/segments.json");
    const SEG_TXT: &str = include_str!("fixtures/segments.txt");
    const VERSION: &str = include_str!("fixtures/lvm_version.txt");

    fn both<T: PartialEq + std::fmt::Debug>(
        kind: ReportKind,
        json: &str,
        txt: &str,
        conv: fn(&[Row]) -> Result<Vec<T>, ReportError>,
    ) -> Vec<T> {
        let a = conv(&parse_json(kind, json).unwrap()).unwrap();
        let b = conv(&parse_columns(kind, txt).unwrap()).unwrap();
        assert_eq!(a, b, "JSON and column reports disagree");
        a
    }

    #[test]
    fn real_pvs_parse_the_same_from_json_and_columns() {
        let pvs = both(ReportKind::Pv, PVS_JSON, PVS_TXT, pvs);
        assert_eq!(pvs.len(), 3);
        assert_eq!(
            pvs[0],
            Pv {
                name: "/dev/loop0".into(),
                vg: Some("fxvg".into()),
                size: 62914560,
                free: 0,
                used: 62914560,
                pe_count: 15,
                pe_alloc_count: 15,
                allocatable: true,
                missing: false,
            }
        );
        assert_eq!(pvs[2].vg, None);
        assert!(!pvs[2].allocatable);
        assert_eq!(pvs[2].pe_count, 0);
    }

    #[test]
    fn real_vgs_lvs_and_segments_parse_the_same_from_both() {
        let vgs = both(ReportKind::Vg, VGS_JSON, VGS_TXT, vgs);
        assert_eq!(
            vgs,
            [Vg {
                name: "fxvg".into(),
                size: 125829120,
                free: 0,
                extent_size: 4194304,
                extent_count: 30,
                free_count: 0,
            }]
        );
        let lvs = both(ReportKind::Lv, LVS_JSON, LVS_TXT, lvs);
        assert_eq!(lvs.len(), 1);
        assert_eq!(lvs[0].path, "/dev/fxvg/lv1");
        assert_eq!(lvs[0].size, 125829120);
        assert!(both(ReportKind::Lv, LVS_EMPTY_JSON, LVS_EMPTY_TXT, super::lvs).is_empty());
        let segs = both(ReportKind::Segment, SEG_JSON, SEG_TXT, segments);
        assert_eq!(segs.len(), 2);
        assert!(segs[1].uses_pv("/dev/loop1"));
        assert!(!segs[1].uses_pv("/dev/loop"));
        assert!(!segs[0].is_pvmove());
    }

    #[test]
    fn padded_values_like_zero_space_are_trimmed() {
        let json = r#"{"report":[{"pv":[{"pv_name":"/dev/vdd ", "vg_name":"nfsstore",
            "pv_size":"214748364800", "pv_free":"0 ", "pv_used":"214748364800",
            "pv_pe_count":"51200", "pv_pe_alloc_count":"51200", "pv_attr":"a--"}]}]}"#;
        let pv = &pvs(&parse_json(ReportKind::Pv, json).unwrap()).unwrap()[0];
        assert_eq!(pv.name, "/dev/vdd");
        assert_eq!(pv.free, 0);
        assert_eq!(pv.free_extents(), 0);
    }

    #[test]
    fn json_with_a_command_log_and_leading_noise_still_parses() {
        let out = "  WARNING: something\n{\"report\":[{\"vg\":[{\"vg_name\":\"a\",\"vg_size\":\"8\",\
            \"vg_free\":\"0\",\"vg_extent_size\":\"4\",\"vg_extent_count\":\"2\",\"vg_free_count\":\"0\"}]}],\
            \"log\":[{\"log_seq_num\":\"1\"}]}";
        assert_eq!(
            vgs(&parse_json(ReportKind::Vg, out).unwrap()).unwrap()[0].name,
            "a"
        );
    }

    #[test]
    fn malformed_reports_are_errors_not_guesses() {
        assert!(matches!(
            parse_columns(ReportKind::Vg, "  a|1|2\n"),
            Err(ReportError::BadLine { got: 3, .. })
        ));
        let rows = parse_columns(ReportKind::Vg, "a|1|x|4|2|0\n").unwrap();
        assert!(matches!(
            vgs(&rows),
            Err(ReportError::BadNumber {
                field: "vg_free",
                ..
            })
        ));
        assert!(matches!(
            parse_json(ReportKind::Pv, "{\"nope\":1}"),
            Err(ReportError::Json { .. })
        ));
        let rows = parse_json(ReportKind::Vg, r#"{"report":[{"vg":[{"vg_name":"a"}]}]}"#).unwrap();
        assert!(matches!(vgs(&rows), Err(ReportError::MissingField { .. })));
    }

    #[test]
    fn version_is_read_and_compared() {
        assert_eq!(lvm_version(VERSION), Some((2, 3, 16)));
        assert!(lvm_version(VERSION).unwrap() >= JSON_SINCE);
        let old = "  LVM version:     2.02.133(2) (2015-10-30)\n";
        assert!(lvm_version(old).unwrap() < JSON_SINCE);
        assert_eq!(lvm_version("garbage"), None);
    }
}
