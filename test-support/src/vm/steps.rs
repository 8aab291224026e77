//! The run's step table: every step and repair with its time, printed as it happens and
//! again as one table at the end (also when the test fails half-way, from `Drop`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Steps {
    rows: Mutex<Vec<(String, Duration, String)>>,
    started: Option<Instant>,
}

impl Steps {
    pub fn new() -> Steps {
        Steps {
            rows: Mutex::default(),
            started: Some(Instant::now()),
        }
    }

    /// Records one timed step, with what was checked.
    pub fn record(&self, step: &str, took: Duration, note: &str) {
        eprintln!("[vm] {step}: {:.2} s {note}", took.as_secs_f64());
        if let Ok(mut rows) = self.rows.lock() {
            rows.push((step.to_owned(), took, note.to_owned()));
        }
    }

    pub fn table(&self) -> String {
        let rows = self.rows.lock().map(|r| r.clone()).unwrap_or_default();
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(4).max(4);
        let mut out = format!("{:<width$}  {:>9}  checked\n", "step", "seconds");
        for (step, took, note) in rows {
            out.push_str(&format!(
                "{step:<width$}  {:>9.2}  {note}\n",
                took.as_secs_f64()
            ));
        }
        if let Some(s) = self.started {
            out.push_str(&format!(
                "{:<width$}  {:>9.2}\n",
                "total",
                s.elapsed().as_secs_f64()
            ));
        }
        out
    }
}

impl Drop for Steps {
    fn drop(&mut self) {
        eprintln!("\n[vm] step table\n{}", self.table());
    }
}
