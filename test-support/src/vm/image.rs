//! The Debian image the VMs boot, built by `scripts/vm/build-image.sh` and cached outside
//! the repository under `${OMTD_VM_CACHE:-/var/cache/omtd-vm}/bookworm-<hash>`, where the
//! hash is of the build script itself (the recipe): change the script and the next run
//! rebuilds; leave it and every run reuses the image. `OMTD_VM_REBUILD=1` forces a build.
//!
//! Missing tools are a failure with the command that installs them, never a skip: a suite
//! that skipped its real hosts would pass while proving nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub const INSTALL_HINT: &str = "install the VM rig's tools with `scripts/install-deps.sh --test` \
(debootstrap, e2fsprogs, openssh-client, qemu-utils, and qemu-system-x86 from \
bookworm-backports; see docs/testing.md)";

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/vm/build-image.sh");

pub struct Image {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The private key root logs in with.
    pub key: PathBuf,
}

impl Image {
    fn at(dir: PathBuf) -> Image {
        Image {
            root: dir.join("root.img"),
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd"),
            key: dir.join("id_ed25519"),
            dir,
        }
    }

    fn complete(&self) -> bool {
        [&self.root, &self.kernel, &self.initrd, &self.key]
            .iter()
            .all(|p| p.is_file())
    }
}

/// Whether the image was built by this run or found in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Built,
    Cached,
}

pub fn cache_root() -> PathBuf {
    std::env::var_os("OMTD_VM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/omtd-vm"))
}

fn have(program: &str) -> bool {
    // Look in sbin too: debootstrap and mkfs live there and a user's PATH may lack it.
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .any(|d| Path::new(d).join(program).is_file());
    found
}

/// Fails with the install command when a tool the rig needs is missing.
pub fn require_tools(build: bool) {
    let mut needed = vec!["qemu-system-x86_64", "qemu-img", "ssh"];
    if build {
        needed.extend(["debootstrap", "mkfs.ext4", "ssh-keygen"]);
    }
    let missing: Vec<&str> = needed.into_iter().filter(|p| !have(p)).collect();
    assert!(
        missing.is_empty(),
        "the VM test rig needs {}: {INSTALL_HINT}",
        missing.join(", ")
    );
}

/// The recipe's hash: the first 16 hex digits of the build script's SHA-256.
pub fn recipe_hash() -> String {
    let script = std::fs::read(SCRIPT).unwrap_or_else(|e| panic!("read {SCRIPT}: {e}"));
    let digest = Sha256::digest(&script);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The cached image, built first when missing. Concurrent runs wait for one build (a lock
/// file in the cache), and a build that did not finish leaves nothing the next run uses.
pub fn ensure() -> (Image, Source, Duration) {
    let start = Instant::now();
    let root = cache_root();
    std::fs::create_dir_all(&root)
        .unwrap_or_else(|e| panic!("cannot create the VM image cache {}: {e}", root.display()));
    let name = format!("bookworm-{}", recipe_hash());
    let image = Image::at(root.join(&name));
    let rebuild = std::env::var("OMTD_VM_REBUILD").is_ok_and(|v| v == "1");
    if image.complete() && !rebuild {
        require_tools(false);
        return (image, Source::Cached, start.elapsed());
    }
    require_tools(true);
    let lock_file = std::fs::File::create(root.join(".lock")).expect("cache lock file");
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("cannot lock the VM image cache: {e}"));
    // Another run may have built it while we waited for the lock.
    if image.complete() && !rebuild {
        return (image, Source::Cached, start.elapsed());
    }
    eprintln!(
        "[vm] building the Debian image into {} (a few minutes; cached afterwards)",
        image.dir.display()
    );
    let status = Command::new("bash")
        .arg(SCRIPT)
        .arg(&image.dir)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {SCRIPT}: {e}"));
    assert!(
        status.success() && image.complete(),
        "building the VM image failed ({status}); it needs root, network access to the \
         Debian mirror, and: {INSTALL_HINT}"
    );
    // Images of older recipes are dead weight (about 1 GB each): drop them.
    if let Ok(entries) = std::fs::read_dir(&root) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("bookworm-") && n != name && !n.contains(".tmp.") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    (image, Source::Built, start.elapsed())
}
