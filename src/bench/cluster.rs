//! The bench's cluster: the runbook's five service nodes and as many workers as asked,
//! each with its credential, as records.

/// At most this many nodes (with their credentials) go in one of [`batches`]' applies (the
/// real-agent fleet applies in batches; the bench applies [`manifests`] at once, staged).
pub const BATCH_NODES: usize = 1000;

/// Manifests for `nodes` nodes in all (at least the five service nodes and one worker).
pub fn manifests(nodes: usize) -> String {
    batches(nodes).concat()
}

/// [`manifests`] in applies of at most [`BATCH_NODES`] nodes, the cluster and the service
/// nodes in the first (each worker with its credential, so every apply is valid alone).
pub fn batches(nodes: usize) -> Vec<String> {
    let mut s =
        String::from("apiVersion: omtd/v1\nkind: Cluster\nmetadata: {name: bench}\nspec: {}\n");
    for (name, addr, role) in [
        ("executor", "10.0.0.10", "executor"),
        ("editor", "10.0.0.11", "editor"),
        ("manager", "10.0.0.12", "manager"),
        ("registry", "10.0.0.13", "registry"),
        ("monitor", "10.0.0.14", "monitor"),
    ] {
        s.push_str(&format!(
            "---\napiVersion: omtd/v1\nkind: Node\nmetadata: {{name: {name}.omtd}}\nspec: {{address: {addr}, roles: [{role}]}}\n"
        ));
    }
    s.push_str(
        "---\napiVersion: omtd/v1\nkind: Credential\nmetadata: {name: chronos-framework}\n\
         spec: {principal: chronos.omtd, secret: {value: bench-chronos-secret}, use: chronos-framework}\n\
         ---\napiVersion: omtd/v1\nkind: Credential\nmetadata: {name: chronos-http}\n\
         spec: {principal: galaxy, secret: {value: bench-http-secret}, use: chronos-http}\n\
         ---\napiVersion: omtd/v1\nkind: Credential\nmetadata: {name: registry-user}\n\
         spec: {principal: omtd, secret: {value: bench-registry-secret}, use: registry}\n",
    );
    let mut batches = Vec::new();
    let mut in_batch = 5;
    for i in 1..=nodes.saturating_sub(5).max(1) {
        if in_batch == BATCH_NODES {
            batches.push(std::mem::take(&mut s));
            in_batch = 0;
        }
        s.push_str(&worker(i, None));
        in_batch += 1;
    }
    batches.push(s);
    batches
}

/// Worker `i` (`node<i>.omtd`, address in 10.1.0.0/16) and its credential, with a `bench`
/// label when given (a change the bench times).
pub fn worker(i: usize, label: Option<&str>) -> String {
    let addr = format!("10.1.{}.{}", i / 250, i % 250 + 1);
    let labels = label.map_or(String::new(), |l| format!(", labels: {{bench: \"{l}\"}}"));
    format!(
        "---\napiVersion: omtd/v1\nkind: Node\nmetadata: {{name: node{i}.omtd{labels}}}\n\
         spec: {{address: {addr}, roles: [worker], credential: node{i}.omtd}}\n\
         ---\napiVersion: omtd/v1\nkind: Credential\nmetadata: {{name: node{i}.omtd}}\n\
         spec: {{principal: node{i}.omtd, secret: {{value: bench-secret-{i}}}, use: mesos-agent}}\n"
    )
}

// Manifests are read as the demo reads its records.
pub use crate::demo::records::parse;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_clusters_are_applied_in_batches_of_whole_nodes() {
        assert_eq!(batches(1000).len(), 1);
        let b = batches(10_000);
        assert_eq!(b.len(), 10);
        let nodes = |m: &str| m.matches("kind: Node").count();
        assert!(
            b.iter().all(|m| nodes(m) == BATCH_NODES),
            "{:?}",
            b.iter().map(|m| nodes(m)).collect::<Vec<_>>()
        );
        assert_eq!(
            b.iter()
                .map(|m| m.matches("kind: Credential").count())
                .sum::<usize>(),
            9_995 + 3
        );
        assert_eq!(b.concat(), manifests(10_000));
    }
}
