//! `omtd completions bash|zsh|fish`: a script for each shell, written without touching any
//! store, and (for bash, which every Debian host has) one the shell accepts.

use std::process::Command;

const OMTD: &str = env!("CARGO_BIN_EXE_omtd");

fn completions(shell: &str, dir: &std::path::Path) -> String {
    let out = Command::new(OMTD)
        .args(["completions", shell])
        .env("OMTD_STORE", format!("sqlite://{}/omtd.db", dir.display()))
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_shell_gets_a_script_naming_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let script = completions(shell, dir.path());
        for word in ["status", "apply", "completions", "store"] {
            assert!(script.contains(word), "{shell}: no {word:?} in the script");
        }
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "completions must not open (and so create) the store"
    );
}

#[test]
fn bash_accepts_its_script() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("omtd.bash");
    std::fs::write(&path, completions("bash", dir.path())).unwrap();
    let out = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = Command::new(OMTD)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
