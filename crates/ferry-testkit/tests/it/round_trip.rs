//! Each server saves the dataset and loads it back; the two snapshots must be identical.
//! Also checks that the comparison sees changes, and that the dataset has the encodings it
//! claims.

use anyhow::Result;
use ferry_testkit::dataset::{self, BIG_LIST_LEN, FAR_FUTURE_MS};
use ferry_testkit::snapshot::{DiffOptions, Snapshot, Value};
use ferry_testkit::{Server, ServerKind};

/// Populates a server of `kind`, saves it, and starts a second one from the dump.
fn populated_and_copy(kind: ServerKind) -> Result<(Server, Server)> {
    let source = Server::start(kind)?;
    dataset::populate(&source)?;
    let rdb = source.save()?;
    let copy = Server::start_with_rdb(kind, &rdb)?;
    Ok((source, copy))
}

fn assert_round_trip(kind: ServerKind) -> Result<()> {
    let (source, copy) = populated_and_copy(kind)?;
    let before = Snapshot::capture(&source)?;
    let after = Snapshot::capture(&copy)?;

    // The snapshot really saw the dataset, so an empty diff means something.
    assert!(
        before.key_count() > 350,
        "{kind}: only {} keys",
        before.key_count()
    );
    match before.get(5, b"big:list").map(|entry| &entry.value) {
        Some(Value::List(items)) => assert_eq!(items.len(), BIG_LIST_LEN),
        other => panic!("{kind}: big:list is {other:?}"),
    }
    let ttl = before
        .get(0, b"ttl:hash")
        .and_then(|entry| entry.expire_at_ms);
    assert!(
        ttl.is_some_and(|at| at > FAR_FUTURE_MS),
        "{kind}: ttl:hash has {ttl:?}"
    );

    assert_saw_newer_content(kind, &before);

    let differences = before.diff(&after, &DiffOptions::new());
    let listing: Vec<String> = differences.iter().map(ToString::to_string).collect();
    assert!(
        listing.is_empty(),
        "{kind} changed through SAVE + load:\n{}",
        listing.join("\n")
    );
    Ok(())
}

/// The parts of a snapshot that only exist on some servers were really read.
fn assert_saw_newer_content(kind: ServerKind, snapshot: &Snapshot) {
    let Some(Value::Stream(stream)) = snapshot.get(0, b"stream:main").map(|e| &e.value) else {
        panic!("{kind}: stream:main missing");
    };
    assert_eq!(stream.groups.len(), 2, "{kind}");
    let g1 = &stream.groups[&b"g1".to_vec()];
    assert_eq!(
        g1.pending.len(),
        40,
        "{kind}: 50 delivered, 10 acknowledged"
    );
    assert!(
        g1.pending.iter().any(|p| p.delivery_count == 2),
        "{kind}: the claim"
    );
    assert_eq!(
        stream.entries_added.is_some(),
        kind.is_redis7_or_later(),
        "{kind}"
    );

    let libraries = snapshot
        .functions
        .as_ref()
        .map_or(0, |libraries| libraries.len());
    assert_eq!(
        libraries,
        if kind.is_redis7_or_later() { 2 } else { 0 },
        "{kind}"
    );

    if kind.has_hash_field_ttl() {
        let Some(Value::Hash(fields)) = snapshot.get(0, b"hash:fttl:big").map(|e| &e.value) else {
            panic!("{kind}: hash:fttl:big missing");
        };
        let with_ttl = fields.iter().filter(|f| f.expire_at_ms.is_some()).count();
        assert_eq!((fields.len(), with_ttl), (300, 100), "{kind}");
    }
    if kind.has_vector_sets() {
        let Some(Value::Module(module)) = snapshot.get(0, b"vset:q8").map(|e| &e.value) else {
            panic!("{kind}: vset:q8 missing");
        };
        let vectors = module.vector_set.as_ref().expect("vector set content");
        assert_eq!(vectors.elements.len(), 200, "{kind}");
        assert!(
            vectors.elements.values().all(|e| e.embedding.len() == 16),
            "{kind}"
        );
        let with_attributes = vectors.elements.values().filter(|e| e.attributes.is_some());
        assert_eq!(with_attributes.count(), 40, "{kind}");
    }
}

/// Populating two servers of one kind gives the same content: the dataset is seeded.
#[test]
fn dataset_is_deterministic() -> Result<()> {
    let kind = ServerKind::Redis80;
    let (first, second) = (Server::start(kind)?, Server::start(kind)?);
    let started = std::time::Instant::now();
    dataset::populate(&first)?;
    let elapsed = started.elapsed();
    dataset::populate(&second)?;
    let differences =
        Snapshot::capture(&first)?.diff(&Snapshot::capture(&second)?, &DiffOptions::new());
    let listing: Vec<String> = differences.iter().map(ToString::to_string).collect();
    assert!(listing.is_empty(), "{}", listing.join("\n"));
    eprintln!("{kind}: populate took {elapsed:?}");
    Ok(())
}

#[test]
fn redis_6_0_round_trip() -> Result<()> {
    assert_round_trip(ServerKind::Redis60)
}

#[test]
fn redis_7_0_round_trip() -> Result<()> {
    assert_round_trip(ServerKind::Redis70)
}

#[test]
fn redis_8_0_round_trip() -> Result<()> {
    assert_round_trip(ServerKind::Redis80)
}

#[test]
fn valkey_8_0_round_trip() -> Result<()> {
    assert_round_trip(ServerKind::Valkey80)
}

#[test]
fn valkey_8_1_round_trip() -> Result<()> {
    assert_round_trip(ServerKind::Valkey81)
}

#[test]
fn valkey_9_1_round_trip() -> Result<()> {
    assert_round_trip(ServerKind::Valkey91)
}

/// Changes on the copy must each show up, named by key.
#[test]
fn diff_reports_changed_list_ttl_pel_field_ttl_and_vector() -> Result<()> {
    let kind = ServerKind::Redis80;
    let (source, copy) = populated_and_copy(kind)?;
    let mut con = copy.client();
    redis::cmd("LSET")
        .arg("list:quicklist")
        .arg(17)
        .arg("changed")
        .query::<()>(&mut con)?;
    redis::cmd("PEXPIREAT")
        .arg("ttl:hash")
        .arg(FAR_FUTURE_MS + 1)
        .query::<()>(&mut con)?;
    // Acknowledge bob's oldest pending entry: the PEL and bob's pending count change.
    let bob: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg("stream:main")
        .arg("g1")
        .arg("-")
        .arg("+")
        .arg(1)
        .arg("bob")
        .query(&mut con)?;
    let Some((oldest, ..)) = bob.first() else {
        panic!("bob has no pending entries");
    };
    let acked: i64 = redis::cmd("XACK")
        .arg("stream:main")
        .arg("g1")
        .arg(oldest)
        .query(&mut con)?;
    assert_eq!(acked, 1);
    redis::cmd("HPEXPIREAT")
        .arg("hash:fttl:big")
        .arg(FAR_FUTURE_MS + 5)
        .arg("FIELDS")
        .arg(1)
        .arg("f1")
        .query::<()>(&mut con)?;
    redis::cmd("VSETATTR")
        .arg("vset:q8")
        .arg("e3")
        .arg(r#"{"changed":true}"#)
        .query::<()>(&mut con)?;

    let differences =
        Snapshot::capture(&source)?.diff(&Snapshot::capture(&copy)?, &DiffOptions::new());
    let listing: Vec<String> = differences.iter().map(ToString::to_string).collect();
    let about = |key: &[u8]| differences.iter().filter(|d| d.is_about(0, key)).count();
    assert!(
        listing.contains(&r#"db 0 key "list:quicklist": list element 17 differs"#.to_string()),
        "{listing:#?}"
    );
    for key in ["ttl:hash", "stream:main", "hash:fttl:big", "vset:q8"] {
        assert!(
            about(key.as_bytes()) > 0,
            "nothing about {key} in {listing:#?}"
        );
    }
    // The PEL entry and bob's pending count: two differences for the stream.
    assert_eq!(about(b"stream:main"), 2, "{listing:#?}");
    assert_eq!(differences.len(), 6, "{listing:#?}");
    Ok(())
}

/// Excluded keys and a TTL tolerance hide exactly what they should.
#[test]
fn diff_options_exclude_keys_and_tolerate_ttl_drift() -> Result<()> {
    let server = Server::start(ServerKind::Valkey81)?;
    let mut con = server.client();
    redis::cmd("SET")
        .arg("kept")
        .arg("1")
        .query::<()>(&mut con)?;
    redis::cmd("SET")
        .arg("skipped")
        .arg("1")
        .query::<()>(&mut con)?;
    redis::cmd("PEXPIREAT")
        .arg("kept")
        .arg(FAR_FUTURE_MS)
        .query::<()>(&mut con)?;
    let before = Snapshot::capture(&server)?;
    redis::cmd("SET")
        .arg("skipped")
        .arg("2")
        .query::<()>(&mut con)?;
    redis::cmd("PEXPIREAT")
        .arg("kept")
        .arg(FAR_FUTURE_MS + 40)
        .query::<()>(&mut con)?;
    let after = Snapshot::capture(&server)?;

    let strict = before.diff(&after, &DiffOptions::new());
    assert_eq!(strict.len(), 2, "{strict:?}");
    let lenient = DiffOptions::new()
        .exclude_keys(|_, key| key == b"skipped")
        .ttl_tolerance_ms(50);
    assert_eq!(before.diff(&after, &lenient), Vec::new());
    let too_strict = DiffOptions::new().ttl_tolerance_ms(39);
    assert_eq!(before.diff(&after, &too_strict).len(), 2);
    Ok(())
}
