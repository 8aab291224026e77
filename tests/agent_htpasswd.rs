//! The registry's htpasswd, hashed on the host (issue #16 item 5): the agent (linux driver,
//! real files under `--root`) turns the plan's `user:secret` lines into bcrypt lines with
//! random salts that Apache's own `htpasswd -vb` accepts, keeps a line that still verifies
//! across resyncs and restarts, and makes a new one only for a rotated secret.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use omtd::agent::Agent;
use omtd_crds::plan::{FileRender, PlanSlice};
use omtd_test_support::agent::{file, read, with_timeout, Rig, Running};

const HTPASSWD: &str = "/etc/apache2/registry.htpasswd";

fn slice(token: i64, lines: &str) -> PlanSlice {
    let mut f = file(HTPASSWD, lines, 0o600);
    f.secret = true;
    f.render = Some(FileRender::Htpasswd { cost: 4 });
    PlanSlice {
        controller: "credentials".into(),
        fencing_token: token,
        files: vec![f],
        ..Default::default()
    }
}

/// Apache's `htpasswd -vb FILE USER PASSWORD`: whether the file's line verifies.
fn apache_verifies(path: &Path, user: &str, secret: &str) -> bool {
    let out = Command::new("htpasswd")
        .arg("-vb")
        .arg(path)
        .args([user, secret])
        .output()
        .unwrap_or_else(|e| {
            panic!("run htpasswd ({e}): install it with `apt-get update && apt-get install -y apache2-utils`")
        });
    out.status.success()
}

/// Converged on the slice written under `token`.
async fn converged_on(rig: &Rig, token: i64) {
    rig.wait_report("registry", Duration::from_secs(30), |r| {
        r.converged && r.applied.get("credentials") == Some(&token)
    })
    .await;
}

fn hash_of(content: &str, user: &str) -> String {
    content
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{user}:")))
        .unwrap_or_else(|| panic!("no line for {user} in {content:?}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_hashes_with_random_salts_apache_verifies_and_keeps_what_still_verifies() {
    with_timeout(Duration::from_secs(90), async {
        let rig = Rig::new().await;
        let path = rig.path(HTPASSWD);
        let start = |rig: &Rig| {
            let mut config = rig.config("registry");
            config.resync = Duration::from_millis(300);
            Running::start(
                rig.store.clone(),
                Agent::new(rig.store.clone(), rig.linux_host(None), config),
            )
        };
        let running = start(&rig);
        rig.put_slice(
            "registry",
            &slice(1, "omtd:rg-Zx5cV8bN1m\nci:ci-Q3wE5rT7\n"),
        )
        .await;
        converged_on(&rig, 1).await;
        let first = String::from_utf8(read(&path)).expect("utf-8");
        assert!(apache_verifies(&path, "omtd", "rg-Zx5cV8bN1m"), "{first}");
        assert!(apache_verifies(&path, "ci", "ci-Q3wE5rT7"));
        assert!(!apache_verifies(&path, "omtd", "rg-Zx5cV8bN1n"));
        assert!(!first.contains("rg-Zx5cV8bN1m"), "no secret in the file");
        assert!(hash_of(&first, "omtd").starts_with("$2y$04$"));

        // Several resyncs, then a restart: the file stays byte for byte.
        tokio::time::sleep(Duration::from_secs(1)).await;
        running.stop().await;
        let running = start(&rig);
        converged_on(&rig, 1).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(String::from_utf8(read(&path)).unwrap(), first, "no churn");

        // Rotation: only the rotated user's line is new, and it verifies.
        rig.put_slice("registry", &slice(2, "omtd:rg-Rotated9\nci:ci-Q3wE5rT7\n"))
            .await;
        converged_on(&rig, 2).await;
        let rotated = String::from_utf8(read(&path)).unwrap();
        assert!(apache_verifies(&path, "omtd", "rg-Rotated9"));
        assert!(
            !apache_verifies(&path, "omtd", "rg-Zx5cV8bN1m"),
            "old secret refused"
        );
        assert_eq!(hash_of(&rotated, "ci"), hash_of(&first, "ci"), "kept");
        assert_ne!(hash_of(&rotated, "omtd"), hash_of(&first, "omtd"));

        // A fresh host draws other salts for the same secrets.
        std::fs::remove_file(&path).expect("remove");
        rig.put_slice("registry", &slice(3, "omtd:rg-Rotated9\nci:ci-Q3wE5rT7\n"))
            .await;
        converged_on(&rig, 3).await;
        let fresh = String::from_utf8(read(&path)).unwrap();
        assert_ne!(hash_of(&fresh, "ci"), hash_of(&first, "ci"), "random salts");
        assert!(apache_verifies(&path, "ci", "ci-Q3wE5rT7"));
        running.stop().await;
    })
    .await;
}

/// `GET /v2/` with basic auth (`None`: without): the status code.
fn get_v2(port: u16, auth: Option<(&str, &str)>) -> std::io::Result<u16> {
    use base64::Engine;
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let header = auth
        .map(|(u, p)| {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            format!("Authorization: Basic {token}\r\n")
        })
        .unwrap_or_default();
    s.write_all(format!("GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n{header}\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line: {out:?}")))
}

/// The registry's front door with the real apache2: `/v2` behind basic auth on the file
/// the agent made (owned by Apache's user, as the credentials controller plans it), read
/// per request. The registry itself is a static stand-in here: what is checked is that
/// Apache lets the principal in with its secret and nobody else, before and after a
/// rotation. (A real docker-registry behind it on the VM rig is issue #19's.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_apache_lets_the_registry_user_in_with_the_agents_bcrypt_lines() {
    use omtd_test_support::agent::apache::{apache_root, require_apache2, Apache};
    require_apache2();
    with_timeout(Duration::from_secs(90), async {
        let rig = Rig::new().await;
        let port = omtd_test_support::ports::free_port();
        apache_root(&rig, port);
        let www = rig.path("/srv/www");
        std::fs::create_dir_all(www.join("v2")).expect("v2 dir");
        std::fs::write(www.join("v2/index.html"), "{}\n").expect("v2 index");
        let site = format!(
            "<VirtualHost 127.0.0.1:{port}>\n    DocumentRoot {www}\n    <Directory {www}>\n        Require all granted\n    </Directory>\n    <Location /v2>\n        AuthType Basic\n        AuthName \"Docker Registry\"\n        AuthUserFile {htpasswd}\n        Require valid-user\n    </Location>\n</VirtualHost>\n",
            www = www.display(),
            htpasswd = rig.path(HTPASSWD).display(),
        );
        std::fs::write(rig.path("/etc/apache2/sites-enabled/omtd.conf"), site).expect("site");
        let with_owner = |token, lines: &str| {
            let mut s = slice(token, lines);
            s.files[0].owner = Some("www-data".into());
            s
        };
        let running = Running::start(
            rig.store.clone(),
            Agent::new(
                rig.store.clone(),
                rig.linux_host(None),
                rig.config("registry"),
            ),
        );
        rig.put_slice("registry", &with_owner(1, "omtd:rg-Zx5cV8bN1m\n"))
            .await;
        converged_on(&rig, 1).await;

        let _apache = Apache::start(&rig);
        let status = |auth| async move {
            omtd_test_support::poll::within(Duration::from_secs(20))
                .every(Duration::from_millis(100))
                .until_ok(|| async { get_v2(port, auth).map_err(|e| e.to_string()) })
                .await
                .map(|(c, _)| c)
                .unwrap_or_else(|e| panic!("apache2 never answered: {e}"))
        };
        assert_eq!(status(None).await, 401, "no credentials");
        assert_eq!(status(Some(("omtd", "rg-Zx5cV8bN1m"))).await, 200);
        assert_eq!(status(Some(("omtd", "rg-Zx5cV8bN1n"))).await, 401);
        assert_eq!(status(Some(("ci", "rg-Zx5cV8bN1m"))).await, 401);

        // A rotation: Apache takes the new line at the next request, the old secret is out.
        rig.put_slice("registry", &with_owner(2, "omtd:rg-Rotated9\n"))
            .await;
        converged_on(&rig, 2).await;
        assert_eq!(status(Some(("omtd", "rg-Rotated9"))).await, 200);
        assert_eq!(status(Some(("omtd", "rg-Zx5cV8bN1m"))).await, 401);
        running.stop().await;
    })
    .await;
}
