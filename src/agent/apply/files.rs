//! Files: exact bytes, mode (secrets 0600), owner and group where the agent may chown.

use std::borrow::Cow;
use std::collections::BTreeMap;

use omtd_crds::plan::{Ensure, FileRender, FileSpec, ResourceState};

use super::{Pass, ResourceOutcome};
use crate::agent::drift::fingerprint;
use crate::agent::drivers::{DriverError, FileState};
use crate::agent::merge::id;

/// The mode a file gets: secrets are 0600 whatever the plan says.
pub fn effective_mode(spec: &FileSpec) -> u32 {
    if spec.secret {
        0o600
    } else {
        spec.mode & 0o7777
    }
}

fn in_sync(spec: &FileSpec, mode: u32, cur: &FileState, ownership: bool) -> bool {
    cur.content == spec.content.as_bytes()
        && cur.mode == mode
        && (!ownership
            || (spec.owner.as_ref().is_none_or(|o| *o == cur.owner)
                && spec.group.as_ref().is_none_or(|g| *g == cur.group)))
}

/// The live text omtd's part goes into: the host's file, or the plan's starting content
/// when there is none. A file that is not text cannot take a text edit: refused as it is.
fn user_text<'a>(current: Option<&'a FileState>, spec: &'a FileSpec) -> Result<&'a str, String> {
    match current {
        Some(cur) => std::str::from_utf8(&cur.content).map_err(|_| {
            "not UTF-8 text: omtd's part cannot be placed in it; fix or remove the file".into()
        }),
        None => Ok(spec.content.as_str()),
    }
}

/// Whether `live` (a host's file) is what the agent makes of `spec` there: the plan's bytes,
/// or, for a file made on the host, what its render would leave as it is (a check for
/// tests and tools: a hashed or partly-owned file cannot be compared with the plan).
pub fn satisfies(spec: &FileSpec, live: &[u8]) -> bool {
    match &spec.render {
        None => live == spec.content.as_bytes(),
        Some(FileRender::Htpasswd { .. }) => super::htpasswd::satisfies(&spec.content, live),
        Some(render) => std::str::from_utf8(live)
            .is_ok_and(|text| partial_render(render, text).as_bytes() == live),
    }
}

/// The user's file with omtd's part in it (see [`FileRender::YamlBlocks`] and
/// [`FileRender::IniKeys`]).
fn partial_render(render: &FileRender, live: &str) -> String {
    match render {
        FileRender::YamlBlocks { blocks } => omtd_crds::yaml_blocks::render(live, blocks),
        FileRender::IniKeys { section, keys } => omtd_crds::ini::set_keys(live, section, keys),
        FileRender::Htpasswd { .. } => live.to_owned(),
    }
}

impl Pass<'_> {
    pub(super) fn files(&mut self) {
        let plan = self.plan;
        for spec in &plan.files {
            self.file(spec);
        }
    }

    fn file(&mut self, spec: &FileSpec) {
        let rid = id::file(spec);
        let corrective = self.is_corrective(&rid, super::super::memory::spec_hash(spec));
        let mode = effective_mode(spec);
        let current = match self.host.files.read(&spec.path) {
            Ok(c) => c,
            Err(e) => return self.record_failure(rid, spec, corrective, &e),
        };
        // What the file should hold, made on the host when the plan says so.
        let made = match (&spec.render, spec.ensure) {
            (Some(FileRender::Htpasswd { cost }), Ensure::Present) => {
                let live = current.as_ref().map(|c| c.content.as_slice());
                match super::htpasswd::render(&spec.content, live, *cost) {
                    Ok(content) => Cow::Owned(FileSpec {
                        content,
                        ..spec.clone()
                    }),
                    Err(e) => {
                        let e = DriverError::Invalid {
                            path: spec.path.clone(),
                            message: e.to_string(),
                        };
                        return self.record(
                            rid,
                            spec,
                            corrective,
                            ResourceOutcome::Refused(e.to_string()),
                        );
                    }
                }
            }
            // omtd's part of a file the user owns: made from the live text, never removed.
            (
                Some(render @ (FileRender::YamlBlocks { .. } | FileRender::IniKeys { .. })),
                ensure,
            ) => {
                let refuse = |message: String| {
                    DriverError::Invalid {
                        path: spec.path.clone(),
                        message,
                    }
                    .to_string()
                };
                let made = if ensure == Ensure::Absent {
                    Err(refuse(
                        "the file is the user's (omtd owns only its part): never removed; \
                         drop the entry from the plan instead"
                            .into(),
                    ))
                } else {
                    user_text(current.as_ref(), spec)
                        .map(|live| partial_render(render, live))
                        .map_err(refuse)
                };
                match made {
                    Ok(content) => Cow::Owned(FileSpec {
                        content,
                        ..spec.clone()
                    }),
                    Err(why) => {
                        return self.record(rid, spec, corrective, ResourceOutcome::Refused(why))
                    }
                }
            }
            _ => Cow::Borrowed(spec),
        };
        let spec_made: &FileSpec = &made;
        let expected = match spec.ensure {
            Ensure::Present => Some(fingerprint(spec_made.content.as_bytes(), mode)),
            Ensure::Absent => None,
        };
        let needs = match (spec.ensure, &current) {
            (Ensure::Absent, None) => false,
            (Ensure::Absent, Some(_)) => true,
            (Ensure::Present, None) => true,
            (Ensure::Present, Some(cur)) => {
                !in_sync(spec_made, mode, cur, self.host.files.enforces_ownership())
            }
        };
        if !needs {
            self.out.expected_files.push((spec.path.clone(), expected));
            return self.record(
                rid,
                spec,
                corrective,
                ResourceOutcome::InSync(BTreeMap::new()),
            );
        }
        if let Err(pause) = self.may_touch(&rid, corrective) {
            return self.backing_off(rid, pause, ResourceState::Failed);
        }
        let result = match spec.ensure {
            Ensure::Present => self.host.files.write(spec_made, mode),
            Ensure::Absent => self.host.files.remove(&spec.path),
        };
        match result {
            Ok(()) => {
                // Never the content: it may be a secret.
                tracing::info!(path = %spec.path, corrective, "file written");
                self.changed_files.insert(spec.path.clone(), corrective);
                self.out.expected_files.push((spec.path.clone(), expected));
                self.record_changed(rid, spec, corrective);
            }
            // The candidate failed its check: the live file stands, nothing restarts for
            // it, and the plan is what must change, so this is a refusal, not a failure
            // (not retried through the repair limiter; checked again on the next pass).
            Err(e @ DriverError::Invalid { .. }) => {
                tracing::warn!(path = %spec.path, error = %e, "candidate file refused");
                self.record(
                    rid,
                    spec,
                    corrective,
                    ResourceOutcome::Refused(e.to_string()),
                );
            }
            Err(e) => self.record_failure(rid, spec, corrective, &e),
        }
    }
}
