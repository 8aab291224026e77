//! Sim fstab (foreign and owned lines kept apart) and mount table.

use std::path::PathBuf;

use super::SimHost;
use crate::agent::drivers::linux::fstab;
use crate::agent::drivers::{DriverError, Mounts, Result};

impl Mounts for SimHost {
    fn owned_entries(&mut self) -> Result<Vec<String>> {
        Ok(self.state().fstab_owned.clone())
    }

    fn write_owned_entries(&mut self, lines: &[String]) -> Result<()> {
        let mut st = self.state();
        let targets: Vec<String> = lines.iter().filter_map(|l| fstab::target(l)).collect();
        // Adopt foreign lines for the same mount points, as the linux driver does.
        st.fstab_foreign
            .retain(|l| fstab::target(l).is_none_or(|t| !targets.contains(&t)));
        st.fstab_owned = lines.to_vec();
        st.log.push("write /etc/fstab".into());
        Ok(())
    }

    fn is_mounted(&mut self, target: &str) -> Result<bool> {
        Ok(self.state().mounted.contains(target))
    }

    fn mount(&mut self, target: &str) -> Result<()> {
        let mut st = self.state();
        if !st
            .fstab_owned
            .iter()
            .chain(st.fstab_foreign.iter())
            .any(|l| fstab::target(l).as_deref() == Some(target))
        {
            return Err(DriverError::Other(format!(
                "mount: {target}: can't find in /etc/fstab"
            )));
        }
        st.dirs.insert(target.to_owned());
        st.mounted.insert(target.to_owned());
        st.log.push(format!("mount {target}"));
        Ok(())
    }

    fn unmount(&mut self, target: &str) -> Result<()> {
        let mut st = self.state();
        if st.mounted.remove(target) {
            st.log.push(format!("umount {target}"));
        }
        Ok(())
    }

    fn watch_paths(&self) -> Vec<PathBuf> {
        Vec::new()
    }
}
