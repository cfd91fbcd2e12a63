//! `assess` with a scope counts only what a migration with the same flags would move:
//! live (SCAN of a real Redis 7.0) and from that server's RDB file alike.

use crate::filters_migrate::seed;
use crate::support::{ferry, path};
use ferry_testkit::{Server, ServerKind};

fn source_facts(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["assess", "--to", "valkey-8.1", "--format", "json"];
    all.extend_from_slice(args);
    let output = ferry(&all);
    assert!(
        output.status.success() || output.status.code() == Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    report["source"].clone()
}

#[test]
fn assess_counts_only_the_kept_keys() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    seed(&source);
    let rdb = source.save().unwrap();
    let scope = ["--match", "app:*", "--exclude", "app:tmp:*", "--db", "0"];
    // db 0 of the seed: app:1 app:r app:set app:list app:mv app:mv2 app:c app:h.
    let kept = 8;
    for from in [
        vec!["--source", &source.url()][..].to_vec(),
        vec!["--rdb", &path(&rdb)],
    ] {
        let mut args = from.clone();
        args.extend_from_slice(&scope);
        let facts = source_facts(&args);
        assert_eq!(facts["keys"], kept, "{from:?}: {facts}");
        assert_eq!(
            facts["databases"],
            serde_json::json!({ "0": kept }),
            "{from:?}: {facts}"
        );
        let everything = source_facts(&from);
        assert!(everything["keys"].as_u64().unwrap() > kept, "{everything}");
    }
}
