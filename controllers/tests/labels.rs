//! Only the node controller reads labels: the operator wakes no other controller for a
//! relabel (`Wakes::labels`), which is right only if their outputs ignore labels. Checked
//! here on the example cluster, converged and mid-operation, for labels on every kind.

mod common;

use common::*;
use omtd_controllers::crds::Object;
use omtd_controllers::{credentials, declaration, leader_guard, node, storage, Intent};
use omtd_controllers::{Desired, Observed, Settings};

type Run = fn(&Desired, &Observed, &Settings) -> Result<Intent, omtd_controllers::Error>;

fn relabelled(objects: &[Object], salt: usize) -> Vec<Object> {
    let mut out = objects.to_vec();
    for (i, o) in out.iter_mut().enumerate() {
        let labels = &mut o.meta_mut().labels;
        match (i + salt) % 3 {
            0 => {
                labels.insert("team".into(), format!("t{salt}"));
            }
            1 => labels.clear(),
            _ => {
                labels.insert("bench".into(), format!("{i}-{salt}"));
            }
        }
    }
    out
}

#[test]
fn controllers_that_do_not_wake_for_labels_plan_the_same_whatever_the_labels() {
    let controllers: [(&str, Run); 4] = [
        (credentials::NAME, credentials::reconcile),
        (storage::NAME, storage::reconcile),
        (leader_guard::NAME, leader_guard::reconcile),
        (node::NAME, node::reconcile),
    ];
    let base = objects();
    let d = desired(&base);
    // Converged, and with nothing reported yet (every controller mid-way).
    let observations = [healthy(&d, t(100)), Observed::at(t(100))];
    let mut checked = 0;
    for (name, run) in controllers {
        let reads_labels = declaration(name).expect("declared").wakes.labels;
        for observed in &observations {
            let before = run(&d, observed, &settings()).expect("reconcile");
            for salt in 0..6 {
                let after = run(&desired(&relabelled(&base, salt)), observed, &settings())
                    .expect("reconcile");
                if !reads_labels {
                    assert_eq!(before, after, "{name} planned differently after a relabel");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 3 * 2 * 6);
    // And the one that reads them does see them: the workers' scrape-target labels.
    let labelled = relabelled(&base, 0);
    let a = node::reconcile(&d, &observations[0], &settings()).unwrap();
    let b = node::reconcile(&desired(&labelled), &observations[0], &settings()).unwrap();
    assert_ne!(
        a, b,
        "the node controller must plan labels into the targets"
    );
}
