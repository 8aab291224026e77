//! The operator's counters as the bench reads them from its `/metrics`: reconciles and
//! the time they took, per controller, and store writes.

use std::collections::BTreeMap;

/// One reading of `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    /// `omtd_reconciles_total`, all results, by controller.
    pub reconciles: BTreeMap<String, f64>,
    /// `omtd_reconcile_duration_seconds_sum` (reconcile plus its write), by controller.
    pub seconds: BTreeMap<String, f64>,
    /// `omtd_store_writes_total`.
    pub writes: f64,
}

/// What one controller cost between two readings.
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerCost {
    pub controller: String,
    pub reconciles: f64,
    pub seconds: f64,
}

impl Scrape {
    /// Reads a Prometheus text exposition; unknown lines are skipped.
    pub fn parse(text: &str) -> Scrape {
        let mut s = Scrape::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            let controller = label(labels, "controller");
            match (name, controller) {
                ("omtd_reconciles_total", Some(c)) => {
                    *s.reconciles.entry(c.to_owned()).or_default() += value;
                }
                ("omtd_reconcile_duration_seconds_sum", Some(c)) => {
                    *s.seconds.entry(c.to_owned()).or_default() += value;
                }
                ("omtd_store_writes_total", _) => s.writes += value,
                _ => {}
            }
        }
        s
    }

    pub fn total_reconciles(&self) -> f64 {
        self.reconciles.values().sum()
    }

    /// Per controller: what it cost from `earlier` to `self`.
    pub fn since(&self, earlier: &Scrape) -> Vec<ControllerCost> {
        self.reconciles
            .iter()
            .map(|(c, n)| ControllerCost {
                controller: c.clone(),
                reconciles: n - earlier.reconciles.get(c).copied().unwrap_or(0.0),
                seconds: self.seconds.get(c).copied().unwrap_or(0.0)
                    - earlier.seconds.get(c).copied().unwrap_or(0.0),
            })
            .collect()
    }
}

/// The value of `name="..."` in a label set (`a="x",b="y"}`).
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &labels[start..];
    Some(&rest[..rest.find('"')?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counters_and_sums_by_controller() {
        let text = "# TYPE omtd_reconciles counter\n\
            omtd_reconciles_total{controller=\"node\",result=\"ok\"} 3\n\
            omtd_reconciles_total{controller=\"node\",result=\"error\"} 1\n\
            omtd_reconcile_duration_seconds_sum{controller=\"node\"} 0.5\n\
            omtd_reconcile_duration_seconds_count{controller=\"node\"} 4\n\
            omtd_store_writes_total 7\n";
        let s = Scrape::parse(text);
        assert_eq!(s.reconciles["node"], 4.0);
        assert_eq!(s.seconds["node"], 0.5);
        assert_eq!(s.writes, 7.0);
        let cost = s.since(&Scrape::default());
        assert_eq!(
            cost,
            vec![ControllerCost {
                controller: "node".into(),
                reconciles: 4.0,
                seconds: 0.5
            }]
        );
    }
}
