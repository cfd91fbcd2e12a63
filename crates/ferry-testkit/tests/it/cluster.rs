//! A test cluster is a real cluster: every slot served, each key on the node owning its
//! slot, and its snapshot the union of the nodes.

use anyhow::Result;
use ferry_testkit::cluster::slot_ranges;
use ferry_testkit::{Cluster, ServerKind};

#[test]
fn a_cluster_serves_every_slot_and_snapshots_the_union_of_its_nodes() -> Result<()> {
    for (kind, primaries) in [(ServerKind::Valkey81, 3), (ServerKind::Redis70, 2)] {
        let cluster = Cluster::start(kind, primaries)?;
        let ranges = slot_ranges(primaries);
        let keys: Vec<String> = (0..40).map(|i| format!("key:{i}")).collect();
        for key in &keys {
            let slot = cluster.keyslot(key.as_bytes())?;
            let owner = ranges
                .iter()
                .position(|(first, last)| (*first..=*last).contains(&slot))
                .expect("every slot has an owner");
            let mut con = cluster.nodes()[owner].client();
            redis::cmd("SET").arg(key).arg("v").query::<()>(&mut con)?;
            // Any other node redirects.
            let other = (owner + 1) % primaries;
            let refused = redis::cmd("SET")
                .arg(key)
                .arg("v")
                .query::<()>(&mut cluster.nodes()[other].client())
                .expect_err("a node not owning the slot refuses the key");
            assert!(
                refused.to_string().to_uppercase().contains("MOVED"),
                "{kind}: {refused}"
            );
        }
        let snapshot = cluster.snapshot()?;
        assert_eq!(snapshot.key_count(), keys.len(), "{kind}");
        for key in &keys {
            assert!(snapshot.get(0, key.as_bytes()).is_some(), "{kind}: {key}");
        }
    }
    Ok(())
}
