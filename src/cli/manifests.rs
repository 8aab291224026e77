//! Loading manifests for `apply` and `diff`: files, directories, or `-` for stdin; then
//! resolving `fromFile` / `fromEnv` secrets so the store only ever holds values.

use std::io::Read;
use std::path::{Path, PathBuf};

use omtd_crds::{manifest, Object, Secret};

/// Everything wrong with the input, one line each, so it can be fixed in one go.
#[derive(Debug)]
pub struct LoadErrors(pub Vec<String>);

/// Reads and parses every manifest; on any error returns all of them.
pub fn load(paths: &[PathBuf], recursive: bool) -> Result<Vec<Object>, LoadErrors> {
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for p in paths {
        collect_files(p, recursive, &mut files, &mut errors);
    }
    if files.is_empty() && errors.is_empty() {
        errors.push(format!(
            "no manifests found in {}: give .yaml, .yml or .json files",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut objects = Vec::new();
    for file in files {
        let text = if file == Path::new("-") {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map(|_| s)
        } else {
            std::fs::read_to_string(&file)
        };
        let text = match text {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{}: cannot read: {e}", file.display()));
                continue;
            }
        };
        match manifest::parse(&text) {
            Ok(objs) => {
                for mut obj in objs {
                    if let Err(e) = resolve_secret(&mut obj, &file) {
                        errors.push(format!("{}: {}: {e}", file.display(), obj.key()));
                    }
                    objects.push(obj);
                }
            }
            Err(errs) => {
                errors.extend(errs.into_iter().map(|e| format!("{}: {e}", file.display())))
            }
        }
    }
    if errors.is_empty() {
        Ok(objects)
    } else {
        Err(LoadErrors(errors))
    }
}

fn is_manifest(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn collect_files(path: &Path, recursive: bool, files: &mut Vec<PathBuf>, errors: &mut Vec<String>) {
    if path == Path::new("-") {
        files.push(path.to_owned());
        return;
    }
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            errors.push(format!("{}: {e}", path.display()));
            return;
        }
    };
    if !meta.is_dir() {
        files.push(path.to_owned());
        return;
    }
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            errors.push(format!("{}: {e}", path.display()));
            return;
        }
    };
    // Sorted, so the same directory always applies in the same order.
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            if recursive {
                collect_files(&entry, recursive, files, errors);
            }
        } else if is_manifest(&entry) {
            files.push(entry);
        }
    }
}

/// Turns `fromFile` / `fromEnv` into `value`. A relative `fromFile` is relative to the
/// manifest's folder, so a repository of manifests and secret files works from anywhere.
/// One trailing newline is dropped from a file (editors and `echo` add one; Mesos would
/// reject it); any other newline is left for validation to refuse.
fn resolve_secret(obj: &mut Object, manifest: &Path) -> Result<(), String> {
    let Object::Credential(cred) = obj else {
        return Ok(());
    };
    let src = &mut cred.spec.secret;
    // More than one source is a validation error, reported there with the fix.
    if src.value.is_some() || (src.from_file.is_some() && src.from_env.is_some()) {
        return Ok(());
    }
    if let Some(file) = src.from_file.take() {
        let mut path = PathBuf::from(&file);
        if path.is_relative() && manifest != Path::new("-") {
            if let Some(dir) = manifest.parent() {
                path = dir.join(path);
            }
        }
        let mut text = std::fs::read_to_string(&path).map_err(|e| {
            format!("spec.secret.fromFile: cannot read {}: {e} (fix: create the file or correct the path)", path.display())
        })?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        src.value = Some(Secret::new(text));
    } else if let Some(var) = src.from_env.take() {
        let value = std::env::var(&var).map_err(|_| {
            format!("spec.secret.fromEnv: environment variable {var} is not set (fix: export {var}=... before omtd apply)")
        })?;
        src.value = Some(Secret::new(value));
    }
    Ok(())
}
