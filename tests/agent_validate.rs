//! Validate before swap (#21 item 7), with the real apache2 (Debian package `apache2`): under
//! a temporary `--root` holding a copy of Debian's `/etc/apache2`, a valid site goes live; a
//! broken one is refused (the report says `Refused` with apache's complaint), its old bytes
//! stay, and a real apache2 serving the root's config answers the same before and after.
//! And a bad `/etc/exports` line is refused before the file changes or `exportfs` runs.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use omtd::agent::Agent;
use omtd_crds::plan::{ExportSpec, PlanSlice, Report, ResourceState, VALIDATE_APACHE};
use omtd_test_support::agent::apache::{apache_root, require_apache2, Apache};
use omtd_test_support::agent::{file, read, state_of, with_timeout, Rig, Running};
use omtd_test_support::poll;
use omtd_test_support::ports::free_port;

const SITE: &str = "/etc/apache2/sites-enabled/omtd.conf";

fn site(rig: &Rig, port: u16, extra: &str) -> String {
    let www = rig.path("/srv/www");
    let www = www.display();
    format!(
        "<VirtualHost 127.0.0.1:{port}>\n    DocumentRoot {www}\n    <Directory {www}>\n        Require all granted\n    </Directory>\n{extra}</VirtualHost>\n"
    )
}

fn slice(content: String, token: i64) -> PlanSlice {
    let mut f = file(SITE, &content, 0o644);
    f.validate = Some(VALIDATE_APACHE.into());
    PlanSlice {
        controller: "node".into(),
        fencing_token: token,
        files: vec![f],
        ..Default::default()
    }
}

/// `GET /` over plain HTTP/1.0: the status line and the body.
fn get(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out.lines().next().unwrap_or_default().to_owned();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default();
    Ok(format!("{status}\n{body}"))
}

fn message_of(r: &Report, id: &str) -> String {
    r.resources
        .iter()
        .find(|x| x.id == id)
        .map(|x| x.message.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_apache_site_is_refused_and_the_old_one_keeps_serving() {
    require_apache2();
    with_timeout(Duration::from_secs(90), async {
        let rig = Rig::new().await;
        let port = free_port();
        apache_root(&rig, port);
        let agent = Agent::new(rig.store.clone(), rig.linux_host(None), rig.config("web1"));
        let running = Running::start(rig.store.clone(), agent);

        // A valid site passes apache2 -t and goes live.
        let good = site(&rig, port, "");
        rig.put_slice("web1", &slice(good.clone(), 1)).await;
        rig.wait_converged("web1").await;
        assert_eq!(read(&rig.path(SITE)), good.as_bytes());

        let _apache = Apache::start(&rig);
        let before = poll::within(Duration::from_secs(20))
            .every(Duration::from_millis(100))
            .until_ok(|| async {
                match get(port) {
                    Ok(a) if a.starts_with("HTTP/1.1 200") => Ok(a),
                    other => Err(other.map_err(|e| e.to_string())),
                }
            })
            .await
            .map(|(a, _)| a)
            .unwrap_or_else(|last| panic!("apache2 never served the site: {last:?}"));
        assert!(before.ends_with("the old site\n"), "{before}");

        // A broken site (an unknown directive) is refused with apache's own words.
        let broken = site(&rig, port, "    BogusDirective on\n");
        rig.put_slice("web1", &slice(broken, 2)).await;
        let id = format!("file:{SITE}");
        let report = rig
            .wait_report("web1", Duration::from_secs(15), |r| {
                state_of(r, &id) == Some(ResourceState::Refused)
            })
            .await;
        let message = message_of(&report, &id);
        assert!(
            message.contains("Invalid command 'BogusDirective'"),
            "{message}"
        );
        assert!(message.contains(SITE), "names the plan path: {message}");
        assert!(!report.converged);
        // The old bytes stay, no candidate is left beside them, and the old site serves on.
        assert_eq!(read(&rig.path(SITE)), good.as_bytes());
        let names: Vec<_> = fs::read_dir(rig.path("/etc/apache2/sites-enabled"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("omtd.conf")]);
        assert_eq!(get(port).unwrap(), before);
        running.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_exports_line_is_refused_and_exportfs_not_run() {
    with_timeout(Duration::from_secs(60), async {
        let rig = Rig::new().await;
        let old = "# /etc/exports\n/srv/other 10.0.0.99(ro,sync)\n";
        fs::create_dir_all(rig.path("/etc")).unwrap();
        fs::write(rig.path("/etc/exports"), old).unwrap();
        let reloads = rig.path("/reloads");
        let reload = reload_cmd(&reloads);
        let agent = Agent::new(
            rig.store.clone(),
            rig.linux_host(Some(reload)),
            rig.config("exe"),
        );
        let running = Running::start(rig.store.clone(), agent);
        // No such directory under the root: exportfs could not export it.
        let export = ExportSpec {
            path: "/srv/executor/database".into(),
            client: "10.0.0.21".into(),
            options: "rw,sync".into(),
        };
        let s = PlanSlice {
            controller: "node".into(),
            fencing_token: 1,
            exports: vec![export],
            ..Default::default()
        };
        rig.put_slice("exe", &s).await;
        let id = "export:/srv/executor/database 10.0.0.21";
        let report = rig
            .wait_report("exe", Duration::from_secs(15), |r| {
                state_of(r, id) == Some(ResourceState::Refused)
            })
            .await;
        let message = message_of(&report, id);
        assert!(
            message.contains("/srv/executor/database 10.0.0.21(rw,sync)")
                && message.contains("not a directory"),
            "{message}"
        );
        assert_eq!(fs::read_to_string(rig.path("/etc/exports")).unwrap(), old);
        assert!(!reloads.exists(), "exportfs ran for a refused change");
        running.stop().await;
    })
    .await;
}

fn reload_cmd(log: &Path) -> Vec<String> {
    vec![
        "sh".to_owned(),
        "-c".to_owned(),
        format!("echo reload >> {}", log.display()),
    ]
}
