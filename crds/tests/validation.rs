//! Every validation rule, as a table: start from the runbook's cluster (which must be
//! clean), break one thing, and check the diagnostic names the object, the field, and
//! does not leak a secret.

use omtd_crds::validate::{has_errors, validate_set};
use omtd_crds::{manifest, Diagnostic, Object, Severity};

const EXAMPLE: &str = include_str!("../../deploy/examples/cluster.yaml");

fn example() -> Vec<Object> {
    manifest::parse(EXAMPLE).expect("example parses")
}

fn with_extra(extra: &str) -> Vec<Object> {
    let mut objs = example();
    objs.extend(manifest::parse(extra).expect("extra parses"));
    objs
}

/// Replaces the object of the same kind and name with the one in `yaml`.
fn replacing(yaml: &str) -> Vec<Object> {
    let new = manifest::parse(yaml).expect("replacement parses").remove(0);
    let mut objs = example();
    let i = objs
        .iter()
        .position(|o| o.key() == new.key())
        .expect("object to replace exists");
    objs[i] = new;
    objs
}

fn errors(objs: &[Object]) -> Vec<Diagnostic> {
    validate_set(objs)
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .collect()
}

#[track_caller]
fn expect_error(objs: &[Object], object: &str, field: &str, words: &str) {
    let errs = errors(objs);
    assert!(
        errs.iter().any(|d| d.object.to_string() == object
            && d.field == field
            && d.message.contains(words)
            && !d.fix.is_empty()),
        "expected an error on {object} {field} containing {words:?}, got:\n{}",
        errs.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_runbook_cluster_is_valid_without_warnings() {
    let diags = validate_set(&example());
    assert!(diags.is_empty(), "{diags:#?}");
}

#[test]
fn bad_addresses() {
    for addr in ["10.0.0.300", "10.0.0", "not a host", "-bad.example"] {
        let objs = replacing(&format!(
            "apiVersion: omtd/v1\nkind: Node\nmetadata: {{name: node1.omtd}}\nspec: {{address: '{addr}', roles: [worker], credential: node1.omtd}}\n"
        ));
        expect_error(&objs, "node/node1.omtd", "spec.address", addr);
    }
    for ok in ["10.0.0.99", "fd00::21", "node1.example.org"] {
        let objs = replacing(&format!(
            "apiVersion: omtd/v1\nkind: Node\nmetadata: {{name: node1.omtd}}\nspec: {{address: '{ok}', roles: [worker], credential: node1.omtd}}\n"
        ));
        assert!(!has_errors(&validate_set(&objs)), "{ok} should be accepted");
    }
}

#[test]
fn bad_names() {
    for name in ["Node1", "node_1", "-node", "node1.", "a..b"] {
        let objs = with_extra(&format!(
            "apiVersion: omtd/v1\nkind: Node\nmetadata: {{name: '{name}'}}\nspec: {{address: 10.0.0.77, roles: [worker], credential: x}}\n"
        ));
        let errs = errors(&objs);
        assert!(
            errs.iter()
                .any(|d| d.field == "metadata.name" && d.message.contains(name)),
            "{name}: {errs:#?}"
        );
    }
}

#[test]
fn duplicate_principals() {
    let objs = with_extra(
        "apiVersion: omtd/v1\nkind: Credential\nmetadata: {name: node4.omtd}\nspec: {principal: node1.omtd, secret: {value: s4}, use: mesos-agent}\n",
    );
    expect_error(
        &objs,
        "credential/node4.omtd",
        "spec.principal",
        "node1.omtd",
    );
    // A Chronos framework principal clashing with an agent's: same master file.
    let objs = replacing(
        "apiVersion: omtd/v1\nkind: Credential\nmetadata: {name: chronos-framework}\nspec: {principal: node2.omtd, secret: {value: x}, use: chronos-framework}\n",
    );
    assert!(
        errors(&objs).iter().any(|d| d.field == "spec.principal"),
        "{:#?}",
        errors(&objs)
    );
}

#[test]
fn worker_without_credential() {
    let objs = replacing("apiVersion: omtd/v1\nkind: Node\nmetadata: {name: node2.omtd}\nspec: {address: 10.0.0.22, roles: [worker]}\n");
    expect_error(
        &objs,
        "node/node2.omtd",
        "spec.credential",
        "worker needs a credential",
    );
}

#[test]
fn unused_credential_is_a_warning_only() {
    let objs = with_extra(
        "apiVersion: omtd/v1\nkind: Credential\nmetadata: {name: node9.omtd}\nspec: {principal: node9.omtd, secret: {value: s9}, use: mesos-agent}\n",
    );
    let diags = validate_set(&objs);
    assert!(!has_errors(&diags), "{diags:#?}");
    assert!(diags.iter().any(
        |d| d.severity == Severity::Warning && d.object.to_string() == "credential/node9.omtd"
    ));
}

#[test]
fn references_to_missing_objects() {
    let objs = replacing(
        "apiVersion: omtd/v1\nkind: Node\nmetadata: {name: node3.omtd}\nspec: {address: 10.0.0.23, roles: [worker], credential: node33.omtd}\n",
    );
    expect_error(&objs, "node/node3.omtd", "spec.credential", "node33.omtd");
    let objs = with_extra("apiVersion: omtd/v1\nkind: Volume\nmetadata: {name: extra}\nspec: {node: ghost.omtd, device: /dev/vdd, volumeGroup: nfsstore}\n");
    expect_error(&objs, "volume/extra", "spec.node", "ghost.omtd");
    let objs = replacing("apiVersion: omtd/v1\nkind: Cluster\nmetadata: {name: omtd}\nspec: {roles: {monitor: ghost.omtd}}\n");
    expect_error(&objs, "cluster/omtd", "spec.roles.monitor", "ghost.omtd");
    // A worker pointing at a Chronos credential is a wrong reference too.
    let objs = replacing(
        "apiVersion: omtd/v1\nkind: Node\nmetadata: {name: node3.omtd}\nspec: {address: 10.0.0.23, roles: [worker], credential: chronos-http}\n",
    );
    expect_error(
        &objs,
        "node/node3.omtd",
        "spec.credential",
        "not for a Mesos agent",
    );
}

#[test]
fn secrets_empty_or_with_newline_do_not_leak() {
    for (secret, words) in [
        ("''", "empty"),
        ("\"s3cr3t-value\\n\"", "newline"),
        ("\"s3cr3t\\r\\nvalue\"", "newline"),
    ] {
        let objs = replacing(&format!(
            "apiVersion: omtd/v1\nkind: Credential\nmetadata: {{name: node1.omtd}}\nspec: {{principal: node1.omtd, secret: {{value: {secret}}}, use: mesos-agent}}\n"
        ));
        expect_error(&objs, "credential/node1.omtd", "spec.secret.value", words);
        for d in validate_set(&objs) {
            assert!(!d.to_string().contains("s3cr3t"), "secret leaked: {d}");
        }
    }
    let objs = replacing(
        "apiVersion: omtd/v1\nkind: Credential\nmetadata: {name: node1.omtd}\nspec: {principal: node1.omtd, secret: {value: a, fromEnv: B}, use: mesos-agent}\n",
    );
    expect_error(&objs, "credential/node1.omtd", "spec.secret", "exactly one");
}

#[test]
fn relative_and_dotdot_paths() {
    for (mp, words) in [
        ("srv/db", "relative"),
        ("/srv/../etc", "'..'"),
        ("/srv//db", "//"),
        ("/srv/db/", "ends with"),
    ] {
        let objs = replacing(&format!(
            "apiVersion: omtd/v1\nkind: Volume\nmetadata: {{name: nfsstore-vdb}}\nspec: {{node: executor.omtd, device: /dev/vdb, volumeGroup: nfsstore, logicalVolume: nfs_logical, filesystem: ext4, mountPoint: '{mp}'}}\n"
        ));
        expect_error(&objs, "volume/nfsstore-vdb", "spec.mountPoint", words);
    }
    let objs = replacing("apiVersion: omtd/v1\nkind: Cluster\nmetadata: {name: omtd}\nspec: {paths: {executor: ../srv/executor}}\n");
    expect_error(&objs, "cluster/omtd", "spec.paths.executor", "relative");
}

#[test]
fn two_managers() {
    let objs = with_extra("apiVersion: omtd/v1\nkind: Node\nmetadata: {name: manager2.omtd}\nspec: {address: 10.0.0.50, roles: [manager]}\n");
    let errs = errors(&objs);
    assert!(
        errs.iter().any(|d| d.field == "spec.roles"
            && d.message.contains("node/manager.omtd")
            && d.message.contains("node/manager2.omtd")),
        "{errs:#?}"
    );
    // Naming a second manager through the Cluster record counts too.
    let objs = replacing("apiVersion: omtd/v1\nkind: Cluster\nmetadata: {name: omtd}\nspec: {roles: {manager: editor.omtd}}\n");
    assert!(
        errors(&objs).iter().any(|d| d.message.contains("managers")),
        "{:#?}",
        errors(&objs)
    );
}

#[test]
fn duplicates_and_shared_credentials() {
    let objs = with_extra("apiVersion: omtd/v1\nkind: Node\nmetadata: {name: node1.omtd}\nspec: {address: 10.0.0.21, roles: [worker], credential: node1.omtd}\n");
    expect_error(&objs, "node/node1.omtd", "metadata.name", "given twice");
    let objs = with_extra("apiVersion: omtd/v1\nkind: Node\nmetadata: {name: node4.omtd}\nspec: {address: 10.0.0.24, roles: [worker], credential: node1.omtd}\n");
    expect_error(
        &objs,
        "node/node4.omtd",
        "spec.credential",
        "already node/node1.omtd's",
    );
    let objs = with_extra("apiVersion: omtd/v1\nkind: Node\nmetadata: {name: node4.omtd}\nspec: {address: 10.0.0.21, roles: [editor]}\n");
    assert!(errors(&objs).iter().any(|d| d.field == "spec.address"));
}

#[test]
fn volumes_of_one_logical_volume_must_agree() {
    let objs = replacing(
        "apiVersion: omtd/v1\nkind: Volume\nmetadata: {name: nfsstore-vdc}\nspec: {node: executor.omtd, device: /dev/vdc, volumeGroup: nfsstore, logicalVolume: nfs_logical, filesystem: ext4, mountPoint: /srv/other}\n",
    );
    expect_error(&objs, "volume/nfsstore-vdc", "spec.mountPoint", "disagree");
    let objs = replacing(
        "apiVersion: omtd/v1\nkind: Volume\nmetadata: {name: nfsstore-vdc}\nspec: {node: executor.omtd, device: /dev/vdb, volumeGroup: nfsstore}\n",
    );
    expect_error(&objs, "volume/nfsstore-vdc", "spec.device", "/dev/vdb");
}

#[test]
fn the_operator_credential_is_one_and_its_principal_unique_among_mesos_principals() {
    const OP: &str = "apiVersion: omtd/v1\nkind: Credential\nmetadata: {name: operator}\nspec: {principal: omtd-operator, secret: {value: op-s}, use: operator}\n";
    assert!(
        errors(&with_extra(OP)).is_empty(),
        "one operator credential is fine"
    );
    // Two: the second is refused, naming the field and the fix.
    let two = with_extra(&format!(
        "{OP}---\napiVersion: omtd/v1\nkind: Credential\nmetadata: {{name: operator2}}\nspec: {{principal: omtd-op2, secret: {{value: op-t}}, use: operator}}\n"
    ));
    expect_error(
        &two,
        "credential/operator2",
        "spec.use",
        "already the operator credential; the operator uses only one",
    );
    // Its principal shares the master's credentials.json with the agents'.
    let clash = with_extra(
        "apiVersion: omtd/v1\nkind: Credential\nmetadata: {name: operator}\nspec: {principal: node1.omtd, secret: {value: op-s}, use: operator}\n",
    );
    expect_error(
        &clash,
        "credential/operator",
        "spec.principal",
        "the Mesos master's credentials",
    );
}

/// A real certificate and its key for `names`, as YAML double-quoted scalars.
fn tls_pair(names: &[String]) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(names.to_vec())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let quoted = |pem: String| pem.replace('\n', "\\n");
    (quoted(cert.pem()), quoted(key.serialize_pem()))
}

/// Every node address of the example: the front doors' names when the Cluster sets none.
fn example_addresses() -> Vec<String> {
    example()
        .iter()
        .filter_map(|o| match o {
            Object::Node(n) => Some(n.spec.address.clone()),
            _ => None,
        })
        .collect()
}

thread_local! {
    static PAIR: (String, String) = tls_pair(&example_addresses());
}

fn cert() -> String {
    PAIR.with(|p| p.0.clone())
}

fn tls_credential(extra: &str) -> String {
    let key = PAIR.with(|p| p.1.clone());
    format!(
        "apiVersion: omtd/v1\nkind: Credential\nmetadata: {{name: front-tls}}\nspec: {{principal: omtd-front-doors, secret: {{value: \"{key}\"}}, use: tls{extra}}}\n"
    )
}

fn cluster_with(front_doors: &str) -> String {
    format!("apiVersion: omtd/v1\nkind: Cluster\nmetadata: {{name: omtd}}\nspec: {{frontDoors: {front_doors}}}\n")
}

#[test]
fn a_tls_credential_named_by_the_cluster_is_valid() {
    let mut objs = replacing(&cluster_with("{tls: front-tls}"));
    objs.extend(
        manifest::parse(&tls_credential(&format!(
            ", certificate: \"{}\", ca: \"{}\"",
            cert(),
            cert()
        )))
        .unwrap(),
    );
    let diags = validate_set(&objs);
    assert!(diags.is_empty(), "{diags:#?}");
}

#[test]
fn tls_rules() {
    // use: tls without a certificate, or with one that is not PEM.
    let mut objs = replacing(&cluster_with("{tls: front-tls}"));
    objs.extend(manifest::parse(&tls_credential("")).unwrap());
    expect_error(
        &objs,
        "credential/front-tls",
        "spec.certificate",
        "needs the certificate",
    );
    let mut objs = replacing(&cluster_with("{tls: front-tls}"));
    objs.extend(manifest::parse(&tls_credential(", certificate: not-pem, ca: also-not")).unwrap());
    expect_error(&objs, "credential/front-tls", "spec.certificate", "not PEM");
    expect_error(&objs, "credential/front-tls", "spec.ca", "not PEM");
    // A key that is not PEM is refused without echoing it.
    let objs = with_extra(&format!(
        "apiVersion: omtd/v1\nkind: Credential\nmetadata: {{name: front-tls}}\nspec: {{principal: x, secret: {{value: s3cr3t-key}}, use: tls, certificate: \"{}\"}}\n",
        cert()
    ));
    expect_error(
        &objs,
        "credential/front-tls",
        "spec.secret.value",
        "not PEM",
    );
    assert!(validate_set(&objs)
        .iter()
        .all(|d| !d.to_string().contains("s3cr3t")));
    // A certificate on a credential that is not for TLS.
    let objs = replacing(&format!(
        "apiVersion: omtd/v1\nkind: Credential\nmetadata: {{name: registry-user}}\nspec: {{principal: omtd, secret: {{value: rg}}, use: registry, certificate: \"{}\"}}\n",
        cert()
    ));
    expect_error(
        &objs,
        "credential/registry-user",
        "spec.certificate",
        "only a tls credential",
    );
    // frontDoors.tls names nothing, or a credential for something else.
    let objs = replacing(&cluster_with("{tls: ghost}"));
    expect_error(
        &objs,
        "cluster/omtd",
        "spec.frontDoors.tls",
        "does not exist",
    );
    let objs = replacing(&cluster_with("{tls: registry-user}"));
    expect_error(&objs, "cluster/omtd", "spec.frontDoors.tls", "not tls");
    // A tls credential nobody names is a warning.
    let objs = with_extra(&tls_credential(&format!(", certificate: \"{}\"", cert())));
    assert!(!has_errors(&validate_set(&objs)));
    assert!(
        validate_set(&objs)
            .iter()
            .any(|d| d.object.to_string() == "credential/front-tls"
                && d.severity == Severity::Warning)
    );
}

/// Read for real: a certificate that does not parse, a key of another certificate, a
/// certificate that does not cover a front door's name — each would pass `apache2 -t` and
/// stop Apache at its restart.
#[test]
fn tls_material_is_read_for_real() {
    let bogus = "-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n";
    let mut objs = replacing(&cluster_with("{tls: front-tls}"));
    objs.extend(manifest::parse(&tls_credential(&format!(", certificate: \"{bogus}\""))).unwrap());
    expect_error(
        &objs,
        "credential/front-tls",
        "spec.certificate",
        "not an X.509 certificate",
    );
    // Another certificate's key.
    let (other_cert, _) = tls_pair(&example_addresses());
    let mut objs = replacing(&cluster_with("{tls: front-tls}"));
    objs.extend(
        manifest::parse(&tls_credential(&format!(", certificate: \"{other_cert}\""))).unwrap(),
    );
    expect_error(
        &objs,
        "credential/front-tls",
        "spec.secret",
        "does not belong",
    );
    assert!(validate_set(&objs)
        .iter()
        .all(|d| !d.to_string().contains("PRIVATE KEY")));
    // A name the certificate does not cover, named with the fix.
    let mut objs = replacing(&cluster_with(
        "{tls: front-tls, names: {registry: registry.example.org}}",
    ));
    objs.extend(
        manifest::parse(&tls_credential(&format!(", certificate: \"{}\"", cert()))).unwrap(),
    );
    expect_error(
        &objs,
        "cluster/omtd",
        "spec.frontDoors.tls",
        "does not cover the registry front door's name \"registry.example.org\"",
    );
}

#[test]
fn registry_pull_names_a_registry_credential() {
    let objs = replacing(&cluster_with("{registryPull: chronos-http}"));
    expect_error(
        &objs,
        "cluster/omtd",
        "spec.frontDoors.registryPull",
        "not registry",
    );
    let objs = replacing(&cluster_with("{registryPull: ghost}"));
    expect_error(
        &objs,
        "cluster/omtd",
        "spec.frontDoors.registryPull",
        "does not exist",
    );
    let objs = replacing(&cluster_with("{names: {editor: 'not a name'}}"));
    expect_error(
        &objs,
        "cluster/omtd",
        "spec.frontDoors.names.editor",
        "neither",
    );
}

#[test]
fn two_roles_claiming_one_path_under_one_name_clash() {
    // Executor and monitor on one host, one name: both want `/`.
    let objs = replacing(
        "apiVersion: omtd/v1\nkind: Cluster\nmetadata: {name: omtd}\nspec: {roles: {monitor: executor.omtd}}\n",
    );
    let objs: Vec<Object> = objs
        .into_iter()
        .filter(|o| o.key().to_string() != "node/monitor.omtd")
        .collect();
    expect_error(
        &objs,
        "cluster/omtd",
        "spec.frontDoors.names.monitor",
        "both serve /",
    );
    let errs = errors(&objs);
    let clash = errs
        .iter()
        .find(|d| d.field == "spec.frontDoors.names.monitor")
        .unwrap();
    assert!(clash.message.contains("node/executor.omtd"), "{clash}");
    assert_eq!(
        clash.fix,
        "set spec.frontDoors.names.monitor on the Cluster to a name of its own"
    );
    // A name of its own for the monitor: valid.
    let objs: Vec<Object> = replacing(
        "apiVersion: omtd/v1\nkind: Cluster\nmetadata: {name: omtd}\nspec: {roles: {monitor: executor.omtd}, frontDoors: {names: {monitor: monitor.example.org}}}\n",
    )
    .into_iter()
    .filter(|o| o.key().to_string() != "node/monitor.omtd")
    .collect();
    assert!(
        !has_errors(&validate_set(&objs)),
        "{:#?}",
        validate_set(&objs)
    );
}
