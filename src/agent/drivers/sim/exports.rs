//! Sim `/etc/exports`: the owned lines and a count of reloads.

use std::path::PathBuf;

use super::SimHost;
use crate::agent::drivers::{Exports, Result};

impl Exports for SimHost {
    fn owned_lines(&mut self) -> Result<Vec<String>> {
        Ok(self.state().exports_owned.clone())
    }

    fn write_owned_lines(&mut self, lines: &[String]) -> Result<()> {
        let mut st = self.state();
        if st.exports_owned != lines {
            st.exports_owned = lines.to_vec();
            st.exports_reloads += 1;
            st.log.push("exportfs -ra".into());
        }
        Ok(())
    }

    fn reload_if_pending(&mut self) -> Result<bool> {
        Ok(false)
    }

    fn watch_paths(&self) -> Vec<PathBuf> {
        Vec::new()
    }
}
