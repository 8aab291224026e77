//! The agent against a real etcd, on real files under a temporary `--root`: files appear
//! byte-exact with their modes, fstab and exports keep foreign lines, and a hand edit is
//! repaired through inotify — the repair latency is measured and printed.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use omtd::agent::Agent;
use omtd_crds::plan::{Ensure, ExportSpec, MountSpec, PlanSlice};
use omtd_test_support::agent::{file, read, state_of, with_timeout, Rig, Running};
use omtd_test_support::poll;

const FSTAB_FOREIGN: &str = "# /etc/fstab: static file system information.\n\
UUID=0b4c-root / ext4 errors=remount-ro 0 1\n\
executor:/srv/executor/database /srv/executor/database nfs defaults 0 0\n\
tmpfs /tmp tmpfs defaults 0 0";
const EXPORTS_FOREIGN: &str = "# /etc/exports\n/srv/other 10.0.0.99(ro,sync)\n";

fn slice() -> PlanSlice {
    let mut secret = file(
        "/etc/mesos-slave/store/credentials.json",
        r#"{"principal":"node1.omtd","secret":"s3cr3t"}"#,
        0o644,
    );
    secret.secret = true;
    PlanSlice {
        controller: "node".into(),
        fencing_token: 1,
        files: vec![
            file("/etc/mesos/zk", "zk://10.0.0.5:2181/mesos", 0o644),
            file("/etc/mesos-slave/containerizers", "docker,mesos", 0o644),
            file("/etc/chronos/conf/http_port", "8080", 0o640),
            secret,
        ],
        mounts: vec![MountSpec {
            source: "10.0.0.5:/srv/executor/database".into(),
            target: "/srv/executor/database".into(),
            fstype: "nfs".into(),
            options: "defaults".into(),
            dump: 0,
            pass: 0,
            ensure: Ensure::Present,
        }],
        exports: vec![ExportSpec {
            path: "/srv/executor/database".into(),
            client: "10.0.0.21".into(),
            options: "rw,sync,no_subtree_check,no_root_squash".into(),
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_fstab_exports_converge_and_drift_is_repaired_fast() {
    with_timeout(Duration::from_secs(60), async {
        let rig = Rig::new().await;
        fs::create_dir_all(rig.path("/etc")).unwrap();
        fs::write(rig.path("/etc/fstab"), FSTAB_FOREIGN).unwrap();
        fs::write(rig.path("/etc/exports"), EXPORTS_FOREIGN).unwrap();
        let reloads = rig.path("/reloads");
        let reload_cmd = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            format!("echo reload >> {}", reloads.display()),
        ];
        let mut config = rig.config("node1");
        // Long periods: only inotify can explain a fast repair.
        config.resync = Duration::from_secs(60);
        config.service_check = Duration::from_secs(60);
        // This test edits one file many times in a row to measure latency; the repair
        // limiter (which would back off the 6th repair within 30 s) is tested elsewhere.
        config.repair.burst = 50;
        let agent = Agent::new(rig.store.clone(), rig.linux_host(Some(reload_cmd)), config);
        let running = Running::start(rig.store.clone(), agent);
        rig.put_slice("node1", &slice()).await;
        let report = rig.wait_converged("node1").await;
        assert_eq!(report.applied.get("node"), Some(&1));

        // Files: exact bytes (no newline added), modes, secrets 0600.
        assert_eq!(read(&rig.path("/etc/mesos/zk")), b"zk://10.0.0.5:2181/mesos");
        assert_eq!(read(&rig.path("/etc/mesos-slave/containerizers")), b"docker,mesos");
        let mode = |p: &str| fs::metadata(rig.path(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode("/etc/chronos/conf/http_port"), 0o640);
        assert_eq!(mode("/etc/mesos-slave/store/credentials.json"), 0o600);
        let report_json = serde_json::to_string(&report).unwrap();
        assert!(!report_json.contains("s3cr3t"), "secret in the report");

        // fstab: foreign lines byte for byte and in order; the playbook's own line for the
        // same mount point adopted; the mount point made and "mounted" (the test hook).
        let fstab = fs::read_to_string(rig.path("/etc/fstab")).unwrap();
        assert!(fstab.starts_with(
            "# /etc/fstab: static file system information.\nUUID=0b4c-root / ext4 errors=remount-ro 0 1\ntmpfs /tmp tmpfs defaults 0 0\n# BEGIN omtd"
        ), "{fstab}");
        assert!(fstab.contains(
            "\n10.0.0.5:/srv/executor/database /srv/executor/database nfs defaults 0 0\n# END omtd"
        ));
        assert!(!fstab.contains("executor:/srv"), "adopted line dropped");
        assert!(rig.path("/srv/executor/database").is_dir());
        assert_eq!(
            fs::read_to_string(rig.path("/run/omtd/mounts")).unwrap(),
            "/srv/executor/database\n"
        );
        // exports: foreign kept, one line per client with no space before the options,
        // reloaded once.
        let exports = fs::read_to_string(rig.path("/etc/exports")).unwrap();
        assert!(exports.starts_with(EXPORTS_FOREIGN), "{exports}");
        assert!(exports.contains(
            "\n/srv/executor/database 10.0.0.21(rw,sync,no_subtree_check,no_root_squash)\n"
        ));
        assert_eq!(fs::read_to_string(&reloads).unwrap(), "reload\n");

        // Drift: edit by hand, measure until the agent has put the bytes back.
        let zk = rig.path("/etc/mesos/zk");
        let mut latencies = Vec::new();
        for i in 0..5 {
            fs::write(&zk, format!("zk://localhost:2181/mesos{i}\n")).unwrap();
            let took = poll::within(Duration::from_secs(5))
.every(Duration::from_millis(1))
.until(|| {
                read(&zk) == b"zk://10.0.0.5:2181/mesos"
            })
.await
            .expect("a hand edit was not repaired within 5 s");
            latencies.push(took);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // An editor's way: write a new file and rename it over.
        let tmp = rig.path("/etc/mesos/.zk.swp");
        fs::write(&tmp, "vim was here").unwrap();
        fs::rename(&tmp, &zk).unwrap();
        latencies.push(
            poll::within(Duration::from_secs(5))
.every(Duration::from_millis(1))
.until(|| read(&zk) == b"zk://10.0.0.5:2181/mesos")
.await
                .expect("rename over not repaired"),
        );
        // A mode change.
        let port = rig.path("/etc/chronos/conf/http_port");
        fs::set_permissions(&port, fs::Permissions::from_mode(0o666)).unwrap();
        latencies.push(
            poll::within(Duration::from_secs(5))
.every(Duration::from_millis(1))
.until(|| {
                fs::metadata(&port).map(|m| m.mode() & 0o7777).ok() == Some(0o640)
            })
.await
            .expect("chmod not repaired"),
        );
        // A deleted file.
        fs::remove_file(rig.path("/etc/mesos-slave/containerizers")).unwrap();
        latencies.push(
            poll::within(Duration::from_secs(5))
.every(Duration::from_millis(1))
.until(|| {
                read(&rig.path("/etc/mesos-slave/containerizers")) == b"docker,mesos"
            })
.await
            .expect("deleted file not restored"),
        );
        // Someone removes omtd's fstab block by hand.
        let fstab_path = rig.path("/etc/fstab");
        fs::write(&fstab_path, FSTAB_FOREIGN).unwrap();
        latencies.push(
            poll::within(Duration::from_secs(5))
.every(Duration::from_millis(1))
.until(|| {
                fs::read_to_string(&fstab_path)
                    .unwrap_or_default()
                    .contains("10.0.0.5:/srv/executor/database")
            })
.await
            .expect("fstab not repaired"),
        );
        let ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        let mut sorted = ms.clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "drift repair latency (inotify) over {} edits: min {:.1} ms, median {:.1} ms, max {:.1} ms; all: {:?}",
            ms.len(),
            sorted[0],
            sorted[sorted.len() / 2],
            sorted[sorted.len() - 1],
            ms.iter().map(|m| format!("{m:.1}")).collect::<Vec<_>>()
        );
        assert!(
            sorted[sorted.len() - 1] < 1000.0,
            "repairs must be well under 1 s: {ms:?}"
        );
        let fstab = fs::read_to_string(&fstab_path).unwrap();
        assert!(fstab.starts_with(FSTAB_FOREIGN.replace("executor:/srv/executor/database /srv/executor/database nfs defaults 0 0\n", "").as_str()));

        // Repairs are counted as corrective, the plan's own changes as intentional.
        let r = rig
            .wait_report("node1", Duration::from_secs(5), |r| {
                r.corrective_changes >= 9 && r.converged
            })
            .await;
        assert!(r.intentional_changes >= 6, "{r:?}");
        assert_eq!(state_of(&r, "file:/etc/mesos/zk"), Some(omtd_crds::plan::ResourceState::Converged));

        // The agent's own writes did not wake it into a loop: a quiet second shows no pass.
        let passes = running.stats.passes.load(std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            running.stats.passes.load(std::sync::atomic::Ordering::Relaxed),
            passes,
            "passes without any drift"
        );
        // No leftovers of atomic writes.
        let leftovers: Vec<_> = fs::read_dir(rig.path("/etc/mesos"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".omtd-"))
            .collect();
        assert!(leftovers.is_empty());
        running.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_escaping_the_root_are_refused() {
    with_timeout(Duration::from_secs(30), async {
        let rig = Rig::new().await;
        std::os::unix::fs::symlink("/etc", rig.path("/evil")).unwrap();
        let agent = Agent::new(rig.store.clone(), rig.linux_host(None), rig.config("node2"));
        let running = Running::start(rig.store.clone(), agent);
        let s = PlanSlice {
            controller: "node".into(),
            fencing_token: 1,
            files: vec![
                file("/evil/omtd-should-not-exist", "x", 0o644),
                file("/ok", "y", 0o644),
            ],
            ..Default::default()
        };
        rig.put_slice("node2", &s).await;
        let r = rig
            .wait_report("node2", Duration::from_secs(10), |r| {
                state_of(r, "file:/ok") == Some(omtd_crds::plan::ResourceState::Converged)
            })
            .await;
        let evil = r
            .resources
            .iter()
            .find(|x| x.id == "file:/evil/omtd-should-not-exist")
            .unwrap();
        assert_eq!(evil.state, omtd_crds::plan::ResourceState::Failed);
        assert!(evil.message.contains("escapes"), "{}", evil.message);
        assert!(!std::path::Path::new("/etc/omtd-should-not-exist").exists());
        running.stop().await;
    })
    .await;
}

/// A file that cannot be written (its owner does not exist on the host) fails with the
/// reason, and once its retries back off the report still says what keeps failing, not
/// that the host keeps drifting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_keeps_failing_says_why_while_backed_off() {
    with_timeout(Duration::from_secs(30), async {
        let rig = Rig::new().await;
        let mut config = rig.config("node3");
        config.resync = Duration::from_millis(50);
        config.repair = omtd::agent::repair_limit::RepairPolicy {
            burst: 2,
            window: Duration::from_secs(60),
            base: Duration::from_secs(30),
            max: Duration::from_secs(60),
        };
        let agent = Agent::new(rig.store.clone(), rig.linux_host(None), config);
        let running = Running::start(rig.store.clone(), agent);
        let mut owned = file("/etc/galaxy/job_conf.xml", "<job_conf/>", 0o640);
        owned.owner = Some("omtd-no-such-user".into());
        let s = PlanSlice {
            controller: "credentials".into(),
            fencing_token: 1,
            files: vec![owned],
            ..Default::default()
        };
        rig.put_slice("node3", &s).await;
        let r = rig
            .wait_report("node3", Duration::from_secs(20), |r| {
                r.resources.iter().any(|x| {
                    x.id == "file:/etc/galaxy/job_conf.xml" && x.message.contains("keeps failing")
                })
            })
            .await;
        let res = r
            .resources
            .iter()
            .find(|x| x.id == "file:/etc/galaxy/job_conf.xml")
            .unwrap();
        assert_eq!(res.state, omtd_crds::plan::ResourceState::Failed);
        assert!(res.message.contains("omtd-no-such-user"), "{}", res.message);
        assert!(!res.message.contains("drifting"), "{}", res.message);
        running.stop().await;
    })
    .await;
}

/// A leftover Apache site beside omtd's is reported, never removed; Debian's default site
/// (planned absent) goes; a file that is not a site (`*.conf`) is not Apache's and not
/// listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leftover_apache_site_is_reported_and_left_alone() {
    with_timeout(Duration::from_secs(30), async {
        let rig = Rig::new().await;
        let sites = rig.path("/etc/apache2/sites-enabled");
        fs::create_dir_all(&sites).unwrap();
        fs::write(
            sites.join("old-galaxy.conf"),
            "<VirtualHost *:80>\n</VirtualHost>\n",
        )
        .unwrap();
        fs::write(sites.join("000-default.conf"), "# Debian's\n").unwrap();
        fs::write(sites.join("README"), "notes\n").unwrap();
        let agent = Agent::new(rig.store.clone(), rig.linux_host(None), rig.config("node4"));
        let running = Running::start(rig.store.clone(), agent);
        let mut default_site = file("/etc/apache2/sites-enabled/000-default.conf", "", 0o644);
        default_site.ensure = Ensure::Absent;
        let s = PlanSlice {
            controller: "node".into(),
            fencing_token: 1,
            files: vec![
                file("/etc/apache2/sites-enabled/omtd.conf", "# omtd's\n", 0o644),
                default_site,
            ],
            ..Default::default()
        };
        rig.put_slice("node4", &s).await;
        let r = rig
            .wait_report("node4", Duration::from_secs(10), |r| r.converged)
            .await;
        assert_eq!(r.unmanaged, ["/etc/apache2/sites-enabled/old-galaxy.conf"]);
        assert!(sites.join("old-galaxy.conf").exists(), "left alone");
        assert!(
            !sites.join("000-default.conf").exists(),
            "planned absent: removed"
        );
        running.stop().await;
    })
    .await;
}

/// omtd's marked blocks in a user's YAML file: the user's lines stay through the agent's
/// write, a hand edit inside a block is undone, one outside is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_blocks_keep_the_users_yaml() {
    use omtd_crds::plan::FileRender;
    use omtd_crds::yaml_blocks::{begin_marker, YamlBlock};
    with_timeout(Duration::from_secs(30), async {
        let rig = Rig::new().await;
        let path = "/etc/prometheus/prometheus.yml";
        fs::create_dir_all(rig.path("/etc/prometheus")).unwrap();
        let users = "global: {}\nrule_files:\n  - /etc/prometheus/site.yml\nscrape_configs:\n  - job_name: site\n";
        fs::write(rig.path(path), users).unwrap();
        let agent = Agent::new(rig.store.clone(), rig.linux_host(None), rig.config("node5"));
        let running = Running::start(rig.store.clone(), agent);
        let mut cfg = file(path, "scrape_configs:\n", 0o644);
        cfg.render = Some(FileRender::YamlBlocks {
            blocks: vec![YamlBlock {
                key: "scrape_configs".into(),
                lines: "- job_name: omtd-workers\n".into(),
            }],
        });
        let s = PlanSlice {
            controller: "node".into(),
            fencing_token: 1,
            files: vec![cfg],
            ..Default::default()
        };
        rig.put_slice("node5", &s).await;
        rig.wait_report("node5", Duration::from_secs(10), |r| r.converged)
            .await;
        let made = String::from_utf8(read(&rig.path(path))).unwrap();
        assert!(made.contains("  - /etc/prometheus/site.yml\n") && made.contains("  - job_name: site\n"));
        assert!(made.contains(&begin_marker("scrape_configs")) && made.contains("  - job_name: omtd-workers\n"));
        // A hand edit inside the block is drift: undone. One outside is the user's: kept.
        let edited = made
            .replace("job_name: omtd-workers", "job_name: hijacked")
            .replace("job_name: site", "job_name: site2");
        fs::write(rig.path(path), &edited).unwrap();
        poll::within(Duration::from_secs(10))
            .until(|| {
                let now = String::from_utf8_lossy(&read(&rig.path(path))).into_owned();
                now.contains("job_name: omtd-workers") && now.contains("job_name: site2")
            })
            .await
            .expect("the block is put back and the user's edit kept");
        running.stop().await;
    })
    .await;
}

/// omtd's key in the user's `galaxy.ini` (`FileRender::IniKeys`): the agent sets only
/// `use_remote_user` in `[app:main]`, keeps every other line, puts the key back after a hand
/// edit, and refuses to remove the file (it is the user's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ini_keys_set_one_key_in_the_users_galaxy_ini() {
    use std::collections::BTreeMap;

    use omtd_crds::plan::{FileRender, ResourceState};
    with_timeout(Duration::from_secs(30), async {
        let rig = Rig::new().await;
        let path = "/srv/editor/config/galaxy.ini";
        fs::create_dir_all(rig.path("/srv/editor/config")).unwrap();
        let users = "[server:main]\nport = 8080\n\n[app:main]\n# the site's own\ndatabase_connection = sqlite:///db.sqlite\nuse_remote_user = False\n";
        fs::write(rig.path(path), users).unwrap();
        let agent = Agent::new(rig.store.clone(), rig.linux_host(None), rig.config("node6"));
        let running = Running::start(rig.store.clone(), agent);
        let mut ini = file(path, "", 0o644);
        ini.render = Some(FileRender::IniKeys {
            section: "app:main".into(),
            keys: BTreeMap::from([("use_remote_user".into(), "True".into())]),
        });
        let slice = |ini: omtd_crds::plan::FileSpec, token| PlanSlice {
            controller: "node".into(),
            fencing_token: token,
            files: vec![ini],
            ..Default::default()
        };
        rig.put_slice("node6", &slice(ini.clone(), 1)).await;
        rig.wait_report("node6", Duration::from_secs(10), |r| r.converged)
            .await;
        let text = || String::from_utf8_lossy(&read(&rig.path(path))).into_owned();
        let made = text();
        assert_eq!(
            made,
            users.replace("use_remote_user = False", "use_remote_user = True"),
            "only the key changed"
        );
        // A hand edit of the key is drift: put back, the rest kept.
        fs::write(rig.path(path), made.replace("= True", "= False").replace("8080", "8081")).unwrap();
        poll::within(Duration::from_secs(10))
            .until(|| {
                let now = text();
                now.contains("use_remote_user = True") && now.contains("port = 8081")
            })
            .await
            .expect("the key is put back and the user's edit kept");
        // Asked to remove it: refused, the file stays.
        ini.ensure = Ensure::Absent;
        rig.put_slice("node6", &slice(ini, 2)).await;
        let r = rig
            .wait_report("node6", Duration::from_secs(10), |r| {
                state_of(r, &format!("file:{path}")) == Some(ResourceState::Refused)
            })
            .await;
        assert!(!r.converged);
        assert!(rig.path(path).exists(), "the user's file is never removed");
        running.stop().await;
    })
    .await;
}
