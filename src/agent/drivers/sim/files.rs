//! Sim files: exact bytes and modes in a map. A `validate` command cannot run here: the
//! sim accepts every candidate.

use std::path::PathBuf;

use omtd_crds::plan::FileSpec;

use super::SimHost;
use crate::agent::drivers::{FileState, Files, Result};

impl Files for SimHost {
    fn read(&mut self, path: &str) -> Result<Option<FileState>> {
        Ok(self.state().files.get(path).cloned())
    }

    fn write(&mut self, spec: &FileSpec, mode: u32) -> Result<()> {
        let mut st = self.state();
        st.files.insert(
            spec.path.clone(),
            FileState {
                content: spec.content.as_bytes().to_vec(),
                mode,
                owner: spec.owner.clone().unwrap_or_else(|| "root".into()),
                group: spec.group.clone().unwrap_or_else(|| "root".into()),
            },
        );
        st.log.push(format!("write {}", spec.path));
        Ok(())
    }

    fn remove(&mut self, path: &str) -> Result<()> {
        let mut st = self.state();
        if st.files.remove(path).is_some() {
            st.log.push(format!("remove {path}"));
        }
        Ok(())
    }

    fn enforces_ownership(&self) -> bool {
        true
    }

    fn host_path(&self, _path: &str) -> Option<PathBuf> {
        None
    }
}
