//! Each controller's declaration matches what it writes: on a fresh and on a healthy
//! example cluster, every condition type, reason and `status` key a controller writes is
//! one it declares for that kind.

mod common;

use common::*;
use omtd_controllers::{declaration, reconcile, CONTROLLERS, DECLARATIONS};

#[test]
fn every_controller_is_declared_once() {
    for name in CONTROLLERS {
        assert_eq!(
            DECLARATIONS.iter().filter(|d| d.name == name).count(),
            1,
            "{name}"
        );
    }
    assert_eq!(DECLARATIONS.len(), CONTROLLERS.len());
}

#[test]
fn controllers_write_only_what_they_declare() {
    let objs = objects();
    let d = desired(&objs);
    for observed in [omtd_controllers::Observed::at(t(100)), healthy(&d, t(100))] {
        for name in CONTROLLERS {
            let decl = declaration(name).expect("declared");
            let out = reconcile(name, &d, &observed, &settings())
                .expect("known")
                .expect("reconciles");
            for (key, status) in &out.statuses {
                let owned: Vec<_> = decl.owns.iter().filter(|o| o.kind == key.kind).collect();
                assert!(!owned.is_empty(), "{name} writes {key} it does not own");
                for c in &status.conditions {
                    assert!(
                        owned
                            .iter()
                            .any(|o| o.conditions.contains(&c.type_.as_str())),
                        "{name}: undeclared condition {} on {key}",
                        c.type_
                    );
                    assert!(
                        decl.reasons.contains(&c.reason.as_str()),
                        "{name}: undeclared reason {} on {key}",
                        c.reason
                    );
                }
                for k in status.extra.keys() {
                    assert!(
                        owned.iter().any(|o| o.status_keys.contains(&k.as_str())),
                        "{name}: undeclared status key {k} on {key}"
                    );
                }
            }
        }
    }
}
