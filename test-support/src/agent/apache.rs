//! A real apache2 (Debian package `apache2`) for the agent's tests: Debian's `/etc/apache2`
//! under a rig's root, listening on a loopback port, and a server run on that config.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};

use super::Rig;

/// Fails (never skips) without apache2, saying how to get it.
pub fn require_apache2() {
    let found = Command::new("apache2")
        .arg("-v")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "apache2 is missing or not on PATH (Debian puts it in /usr/sbin): run `scripts/install-deps.sh --test` (Debian: apt-get install -y apache2)"
    );
}

/// Debian's `/etc/apache2` copied under the root, listening on a loopback port only, with
/// no site of its own; a document root the site will serve.
pub fn apache_root(rig: &Rig, port: u16) {
    let etc = rig.path("/etc");
    fs::create_dir_all(&etc).unwrap();
    let ok = Command::new("cp")
        .args(["-a", "/etc/apache2"])
        .arg(&etc)
        .status()
        .unwrap();
    assert!(ok.success(), "copying /etc/apache2");
    let _ = fs::remove_file(rig.path("/etc/apache2/sites-enabled/000-default.conf"));
    fs::write(
        rig.path("/etc/apache2/ports.conf"),
        format!("Listen 127.0.0.1:{port}\n"),
    )
    .unwrap();
    fs::create_dir_all(rig.path("/srv/www")).unwrap();
    fs::write(rig.path("/srv/www/index.html"), "the old site\n").unwrap();
    // apache's workers run as www-data: they must reach the document root in the temp dir.
    fs::set_permissions(rig.root(), fs::Permissions::from_mode(0o755)).unwrap();
}

/// A real apache2 in the foreground (`-X`) on the root's config, killed when dropped.
pub struct Apache {
    child: Child,
    _run: tempfile::TempDir,
}

impl Apache {
    pub fn start(rig: &Rig) -> Apache {
        let run = tempfile::tempdir().unwrap();
        let conf = rig.path("/etc/apache2");
        let r = run.path().display().to_string();
        let child = Command::new("apache2")
            .arg("-X")
            .arg("-d")
            .arg(&conf)
            .arg("-f")
            .arg(conf.join("apache2.conf"))
            .env("APACHE_RUN_DIR", &r)
            .env("APACHE_LOCK_DIR", &r)
            .env("APACHE_LOG_DIR", &r)
            .env("APACHE_PID_FILE", format!("{r}/apache2.pid"))
            .env("APACHE_RUN_USER", "www-data")
            .env("APACHE_RUN_GROUP", "www-data")
            .stdout(Stdio::null())
            .spawn()
            .expect("start apache2");
        Apache { child, _run: run }
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
