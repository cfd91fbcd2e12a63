//! Each rule of the translator on commands in the forms a Redis 8 primary propagates them
//! (see tests/it/propagation.rs for where those forms come from). Over 600 lines: one short
//! test per rule and form reads better in one place than spread over files.

use super::*;
use crate::error::{chain, one_line};
use crate::policy::{HashFieldTtlPolicy, VectorSetPolicy};

fn args(text: &str) -> Vec<Bytes> {
    text.split(' ')
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect()
}

fn apply(texts: &[&str]) -> Translated {
    Translated::Apply(texts.iter().map(|t| args(t)).collect())
}

fn translator(
    profile: &str,
    hash: HashFieldTtlPolicy,
    vector: VectorSetPolicy,
) -> CommandTranslator {
    let policies = Policies {
        hash_field_ttl: hash,
        vector_set: vector,
        ..Policies::default()
    };
    CommandTranslator::new(&policies, &Target::from_profile(profile).unwrap())
}

fn hash(profile: &str, policy: HashFieldTtlPolicy) -> CommandTranslator {
    translator(profile, policy, VectorSetPolicy::Fail)
}

fn error_line(result: Result<Translated, Error>) -> String {
    match result {
        Err(err) => one_line(chain(&err)),
        Ok(t) => panic!("expected an error, got {t:?}"),
    }
}

const TTL_FORMS: [&str; 6] = [
    "HSETEX h PXAT 1700000000000 FIELDS 2 a 1 b 2",
    "HSETEX h FNX PXAT 1700000000000 FIELDS 1 a 1",
    "HSETEX h KEEPTTL FIELDS 1 a 1",
    "HPEXPIREAT h 1700000000000 NX FIELDS 1 a",
    "HPERSIST h FIELDS 2 a b",
    "HGETEX h PX 10 FIELDS 1 a",
];

#[test]
fn other_commands_pass_unchanged_without_copying() {
    let mut t = hash("valkey-8.1", HashFieldTtlPolicy::Fail);
    for text in [
        "SET k v",
        "MULTI",
        "HSET h a 1",
        "hdel h a",
        "EXEC",
        "PEXPIREAT k 4102444800000",
    ] {
        let given = args(text);
        let pointers: Vec<_> = given.iter().map(|a| a.as_ptr()).collect();
        let Translated::Apply(out) = t.translate(0, given).unwrap() else {
            panic!("{text} not applied");
        };
        assert_eq!(out, vec![args(text)]);
        let out_pointers: Vec<_> = out[0].iter().map(|a| a.as_ptr()).collect();
        assert_eq!(out_pointers, pointers, "{text} was copied");
    }
    assert!(t.report().is_empty());
}

#[test]
fn a_target_with_field_ttls_gets_every_form_as_sent() {
    for policy in [
        HashFieldTtlPolicy::Fail,
        HashFieldTtlPolicy::Persist,
        HashFieldTtlPolicy::DropField,
    ] {
        let mut t = hash("valkey-9.1", policy);
        for text in TTL_FORMS {
            assert_eq!(
                t.translate(0, args(text)).unwrap(),
                apply(&[text]),
                "{text}"
            );
        }
        assert!(t.report().is_empty());
    }
}

#[test]
fn fail_stops_on_a_field_ttl_naming_command_key_db_and_flag() {
    let mut t = hash("valkey-8.1", HashFieldTtlPolicy::Fail);
    for (text, command) in [
        ("HSETEX user:1 PXAT 1700000000000 FIELDS 1 a 1", "HSETEX"),
        ("hpexpireat user:1 1700000000000 FIELDS 1 a", "HPEXPIREAT"),
        ("HGETEX user:1 EXAT 1700000000 FIELDS 1 a", "HGETEX"),
    ] {
        let line = error_line(t.translate(3, args(text)));
        assert!(
            line.starts_with(&format!("source sent {command} ")),
            "{line}"
        );
        for part in [
            "\"user:1\"",
            "db 3",
            "valkey-8.1",
            "--hash-field-ttl persist",
        ] {
            assert!(line.contains(part), "{line} lacks {part}");
        }
    }
}

#[test]
fn fail_keeps_what_loses_nothing() {
    let mut t = hash("valkey-8.1", HashFieldTtlPolicy::Fail);
    // No TTL is set: a plain HSET says the same.
    assert_eq!(
        t.translate(0, args("HSETEX h KEEPTTL FIELDS 2 a 1 b 2"))
            .unwrap(),
        apply(&["HSET h a 1 b 2"])
    );
    assert_eq!(
        t.translate(0, args("HSETEX h FXX FIELDS 1 a 1")).unwrap(),
        apply(&["HSET h a 1"])
    );
    // Nothing on the target has a TTL to remove.
    assert!(matches!(
        t.translate(0, args("HPERSIST h FIELDS 1 a")).unwrap(),
        Translated::Skip { .. }
    ));
    assert!(t.report().is_empty());
}

#[test]
fn persist_writes_fields_without_ttl_and_ignores_new_ttls() {
    let mut t = hash("valkey-8.1", HashFieldTtlPolicy::Persist);
    assert_eq!(
        t.translate(0, args("HSETEX h FNX PXAT 1700000000000 FIELDS 2 a 1 b 2"))
            .unwrap(),
        apply(&["HSET h a 1 b 2"])
    );
    assert!(matches!(
        t.translate(0, args("HPEXPIREAT h 1700000000000 FIELDS 3 a b c"))
            .unwrap(),
        Translated::Skip { .. }
    ));
    assert!(matches!(
        t.translate(0, args("HPERSIST h FIELDS 1 a")).unwrap(),
        Translated::Skip { .. }
    ));
    let counts = t.report().hash_field_ttl;
    assert_eq!(counts.fields_written_without_ttl, 2);
    assert_eq!(counts.field_ttls_ignored, 3);
    assert_eq!(counts.persists_skipped, 0);
    assert_eq!(
        t.report().to_string(),
        "--hash-field-ttl persist: 2 fields written without their TTL; the new TTL of 3 \
         fields ignored"
    );
}

#[test]
fn drop_field_deletes_fields_that_get_a_ttl() {
    let mut t = hash("valkey-8.1", HashFieldTtlPolicy::DropField);
    assert_eq!(
        t.translate(0, args("HSETEX h PXAT 1700000000000 FIELDS 2 a 1 b 2"))
            .unwrap(),
        apply(&["HDEL h a b"])
    );
    assert_eq!(
        t.translate(0, args("HPEXPIREAT h 1700000000000 GT FIELDS 1 c"))
            .unwrap(),
        apply(&["HDEL h c"])
    );
    assert_eq!(
        t.translate(0, args("HGETEX h EX 10 FIELDS 1 d")).unwrap(),
        apply(&["HDEL h d"])
    );
    // The value of a dropped field is gone; making it persistent cannot bring it back.
    assert!(matches!(
        t.translate(0, args("HPERSIST h FIELDS 2 a b")).unwrap(),
        Translated::Skip { .. }
    ));
    assert!(matches!(
        t.translate(0, args("HGETEX h PERSIST FIELDS 1 a")).unwrap(),
        Translated::Skip { .. }
    ));
    // Writing without a TTL makes the field persistent: it exists on the target again.
    assert_eq!(
        t.translate(0, args("HSETEX h FIELDS 1 a 5")).unwrap(),
        apply(&["HSET h a 5"])
    );
    let counts = t.report().hash_field_ttl;
    assert_eq!(counts.fields_dropped, 4);
    assert_eq!(counts.persists_skipped, 2);
    let line = t.report().to_string();
    assert!(
        line.starts_with("--hash-field-ttl drop-field: 4 fields deleted"),
        "{line}"
    );
    assert!(line.contains("2 HPERSISTs skipped"), "{line}");
}

#[test]
fn hgetdel_becomes_hdel_everywhere() {
    for profile in ["valkey-8.1", "valkey-9.1"] {
        let mut t = hash(profile, HashFieldTtlPolicy::Fail);
        assert_eq!(
            t.translate(0, args("HGETDEL h FIELDS 2 a b")).unwrap(),
            apply(&["HDEL h a b"])
        );
    }
}

#[test]
fn hgetex_without_options_only_reads() {
    let mut t = hash("valkey-8.1", HashFieldTtlPolicy::Fail);
    assert!(matches!(
        t.translate(0, args("HGETEX h FIELDS 1 a")).unwrap(),
        Translated::Skip { .. }
    ));
}

#[test]
fn vector_commands_follow_the_vector_set_policy() {
    let writes = [
        "VADD v VALUES 2 1 0 e1",
        "vadd v VALUES 2 1 0 e2 CAS",
        "VREM v e1",
        "VSETATTR v e2 {}",
    ];
    let mut fail = translator(
        "valkey-9.1",
        HashFieldTtlPolicy::Fail,
        VectorSetPolicy::Fail,
    );
    let line = error_line(fail.translate(2, args(writes[1])));
    assert_eq!(
        line,
        "source sent VADD for vector set \"v\" in db 2, and valkey-9.1 has no vector sets; \
         pass --vector-set skip or --vector-set export=PATH"
    );

    let mut skip = translator(
        "valkey-8.1",
        HashFieldTtlPolicy::Fail,
        VectorSetPolicy::Skip,
    );
    for text in writes {
        assert!(matches!(
            skip.translate(0, args(text)).unwrap(),
            Translated::Skip { .. }
        ));
    }
    assert_eq!(
        skip.report().to_string(),
        "--vector-set skip: 4 vector-set commands skipped (VADD 2, VREM 1, VSETATTR 1)"
    );

    let mut export = translator(
        "valkey-8.1",
        HashFieldTtlPolicy::Fail,
        VectorSetPolicy::Export("v.jsonl".into()),
    );
    assert!(matches!(
        export.translate(0, args(writes[0])).unwrap(),
        Translated::Skip { .. }
    ));
    let line = export.report().to_string();
    assert!(line.starts_with("--vector-set export=v.jsonl: 1 vector-set command skipped"));
    assert!(line.contains("as of the full sync"), "{line}");

    // A Redis 8 target has them.
    let mut keep = translator("redis-8.0", HashFieldTtlPolicy::Fail, VectorSetPolicy::Fail);
    assert_eq!(
        keep.translate(0, args(writes[0])).unwrap(),
        apply(&[writes[0]])
    );
}

#[test]
fn commands_missing_from_the_target_list_are_refused_by_name() {
    let mut t = hash("valkey-8.1", HashFieldTtlPolicy::Fail)
        .with_target_commands(["set", "MULTI", "Exec", "hset", "hdel"]);
    assert_eq!(
        t.translate(0, args("set a 1")).unwrap(),
        apply(&["set a 1"])
    );
    assert_eq!(t.translate(0, args("MULTI")).unwrap(), apply(&["MULTI"]));
    assert_eq!(
        error_line(t.translate(0, args("xackdel s g IDS 1 1-1"))),
        "source sent XACKDEL, which valkey-8.1 lacks"
    );
    // Translated commands are checked by their rules, not by the list.
    assert_eq!(
        t.translate(0, args("HGETDEL h FIELDS 1 a")).unwrap(),
        apply(&["HDEL h a"])
    );
}

#[test]
fn unreadable_commands_are_errors_not_guesses() {
    let mut t = hash("valkey-8.1", HashFieldTtlPolicy::Persist);
    for text in [
        "HSETEX h PXAT 1 a 1",
        "HSETEX h PXAT 1 FIELDS 2 a 1",
        "HPEXPIREAT h",
        "HPERSIST",
        "HGETDEL h FIELDS 3 a",
    ] {
        let line = error_line(t.translate(0, args(text)));
        assert!(
            line.contains("in a form ferry cannot read"),
            "{text}: {line}"
        );
    }
    assert!(t.translate(0, Vec::new()).is_err());
    // A command that cannot be read is refused on every target alike.
    let mut t = hash("valkey-9.1", HashFieldTtlPolicy::Persist);
    assert!(t.translate(0, args("HSETEX h FIELDS 2 a 1")).is_err());
}

#[test]
fn the_report_serializes_its_policies_and_counts() {
    let mut t = translator(
        "valkey-8.1",
        HashFieldTtlPolicy::Persist,
        VectorSetPolicy::Skip,
    );
    t.translate(0, args("HSETEX h PXAT 1 FIELDS 1 a 1"))
        .unwrap();
    t.translate(0, args("VREM v e")).unwrap();
    let json = serde_json::to_value(t.report()).unwrap();
    assert_eq!(json["policies"]["hash_field_ttl"], "persist");
    assert_eq!(json["hash_field_ttl"]["fields_written_without_ttl"], 1);
    assert_eq!(json["vector_sets"]["commands_skipped"]["VREM"], 1);
    assert_eq!(
        hash("valkey-8.1", HashFieldTtlPolicy::Fail)
            .report()
            .to_string(),
        "policies: no replicated command needed changing"
    );
}

fn at_a_million_ms() -> i64 {
    1_000_000
}

fn clocked() -> CommandTranslator {
    hash("valkey-8.1", HashFieldTtlPolicy::Fail).with_clock(at_a_million_ms)
}

#[test]
fn relative_key_ttls_become_absolute_on_arrival() {
    let mut t = clocked();
    for (given, sent) in [
        ("SET k v EX 10", "SET k v PXAT 1010000"),
        ("set k v NX px 500", "set k v NX PXAT 1005000"),
        ("SETEX k 10 v", "SET k v PXAT 1010000"),
        ("psetex k 10 v", "SET k v PXAT 1005000"),
        ("EXPIRE k 10", "PEXPIREAT k 1010000"),
        ("PEXPIRE k 10 GT", "PEXPIREAT k 1005000 GT"),
        ("EXPIRE k -1", "PEXPIREAT k 1005000"),
        ("GETEX k EX 1", "PEXPIREAT k 1005000"),
        ("GETEX k PX 1", "PEXPIREAT k 1005000"),
        ("GETEX k EXAT 5", "PEXPIREAT k 1005000"),
        ("GETEX k EXAT 2000", "PEXPIREAT k 2000000"),
        ("GETEX k PXAT 5", "PEXPIREAT k 1005000"),
        ("GETEX k PERSIST", "PERSIST k"),
        (
            "RESTORE k 100 payload",
            "RESTORE k 1005000 payload REPLACE ABSTTL",
        ),
        (
            "RESTORE k 9000 payload",
            "RESTORE k 1009000 payload REPLACE ABSTTL",
        ),
        (
            "RESTORE k 100 payload REPLACE IDLETIME 5",
            "RESTORE k 1005000 payload REPLACE IDLETIME 5 ABSTTL",
        ),
        (
            "RESTORE-ASKING k 0 payload REPLACE",
            "RESTORE k 0 payload REPLACE",
        ),
        (
            "restore-asking k 100 payload",
            "RESTORE k 1005000 payload REPLACE ABSTTL",
        ),
    ] {
        assert_eq!(
            t.translate(0, args(given)).unwrap(),
            apply(&[sent]),
            "{given}"
        );
    }
    assert!(t.report().is_empty());
}

#[test]
fn absolute_ttls_due_soon_are_held_for_the_sources_del() {
    // The clock says 1,000,000 ms: nothing may fall due before 1,005,000 on the target.
    let mut t = clocked();
    for (given, sent) in [
        ("SET k v EXAT 5", "SET k v PXAT 1005000"),
        ("SET k v PXAT 5 GET", "SET k v PXAT 1005000 GET"),
        ("SET k v PXAT 2000000", "SET k v PXAT 2000000"),
        (
            "RESTORE k 5000 payload ABSTTL",
            "RESTORE k 1005000 payload REPLACE ABSTTL",
        ),
        (
            "RESTORE k 3000000 payload ABSTTL",
            "RESTORE k 3000000 payload REPLACE ABSTTL",
        ),
        ("EXPIREAT k 5", "PEXPIREAT k 1005000"),
        ("EXPIREAT k 3000", "PEXPIREAT k 3000000"),
        ("PEXPIREAT k 5", "PEXPIREAT k 1005000"),
        ("PEXPIREAT k 1004999", "PEXPIREAT k 1005000"),
        ("PEXPIREAT k 1005001", "PEXPIREAT k 1005001"),
    ] {
        assert_eq!(
            t.translate(0, args(given)).unwrap(),
            apply(&[sent]),
            "{given}"
        );
    }
}

#[test]
fn missing_ttls_are_left_alone() {
    let mut t = clocked();
    for text in [
        "SET k v",
        "SET k v KEEPTTL",
        // A comparison value that looks like an option is a value.
        "SET k v IFEQ EX",
        "RESTORE k 0 payload REPLACE",
    ] {
        assert_eq!(
            t.translate(0, args(text)).unwrap(),
            apply(&[text]),
            "{text}"
        );
    }
    assert!(matches!(
        t.translate(0, args("GETEX k")).unwrap(),
        Translated::Skip { .. }
    ));
}

#[test]
fn unreadable_ttls_are_errors() {
    let mut t = clocked();
    for text in [
        "SET k v EX ten",
        "SET k v EX",
        "SET k v EX 9223372036854775807",
        "SETEX k 10",
        "EXPIRE k",
        "GETEX k EX",
        "GETEX k LATER 5",
        "RESTORE k 5",
    ] {
        let line = error_line(t.translate(0, args(text)));
        assert!(
            line.contains("in a form ferry cannot read"),
            "{text}: {line}"
        );
    }
}

#[test]
fn renames_check_on_the_target_only_when_a_policy_leaves_keys_out() {
    let script_for = |t: &mut CommandTranslator, text: &str| match t.translate(0, args(text)) {
        Ok(Translated::Apply(commands)) => commands,
        other => panic!("{text}: {other:?}"),
    };
    // Nothing left out: renames pass as they are.
    for mut t in [
        hash("valkey-8.1", HashFieldTtlPolicy::Persist),
        translator(
            "valkey-9.1",
            HashFieldTtlPolicy::DropField,
            VectorSetPolicy::Fail,
        ),
    ] {
        assert_eq!(script_for(&mut t, "RENAME a b"), vec![args("RENAME a b")]);
    }
    for mut t in [
        hash("valkey-8.1", HashFieldTtlPolicy::DropField),
        translator(
            "valkey-9.1",
            HashFieldTtlPolicy::Fail,
            VectorSetPolicy::Skip,
        ),
    ] {
        for text in ["RENAME a b", "renamenx a b"] {
            let commands = script_for(&mut t, text);
            assert_eq!(commands.len(), 1);
            let command = &commands[0];
            assert_eq!(command[0], "EVAL");
            assert_eq!(command[2..], args("2 a b")[..], "{text}");
            let script = std::str::from_utf8(&command[1]).unwrap();
            let name = text.split(' ').next().unwrap().to_uppercase();
            assert!(script.contains(&format!("'{name}'")), "{script}");
        }
    }
}

/// A DUMP payload of hash `h` as Redis 8.0 writes it, with field `a` expiring at `ttl_ms`
/// (and `b` without TTL unless `all_volatile`).
fn redis8_hash_payload(all_volatile: bool) -> Bytes {
    use ferry_codec::{HashField, KeyHeader, Kind, ValuePart};
    let field = |name: &str, ttl: Option<i64>| HashField {
        field: Bytes::copy_from_slice(name.as_bytes()),
        value: Bytes::from_static(b"v"),
        expire_at_ms: ttl,
    };
    let header = KeyHeader {
        db: 0,
        key: Bytes::from_static(b"h"),
        expire_at_ms: None,
        idle_secs: None,
        freq: None,
        kind: Kind::Hash,
        encoding: 25,
        len: Some(2),
    };
    let second = all_volatile.then_some(4_000_000_000_000);
    let parts = vec![ValuePart::HashFields(vec![
        field("a", Some(4_000_000_000_000)),
        field("b", second),
    ])];
    let format = ferry_codec::Format::from_profile("redis-8.0").unwrap();
    Bytes::from(ferry_codec::dump::encode(format, &header, &parts).unwrap())
}

fn restore_asking(payload: &Bytes) -> Vec<Bytes> {
    let mut command = args("RESTORE-ASKING h 0");
    command.push(payload.clone());
    command
}

#[test]
fn a_restore_payload_the_target_cannot_load_is_encoded_again_under_the_policies() {
    let payload = redis8_hash_payload(false);
    assert_eq!(
        ferry_codec::dump::split_payload(&payload).unwrap().version,
        12
    );

    let mut persist = hash("valkey-8.1", HashFieldTtlPolicy::Persist);
    let Translated::Apply(sent) = persist.translate(0, restore_asking(&payload)).unwrap() else {
        panic!("not applied");
    };
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0][0], "RESTORE");
    assert_eq!(sent[0][4], "REPLACE");
    let recoded = &sent[0][3];
    assert_eq!(
        ferry_codec::dump::split_payload(recoded).unwrap().version,
        11
    );
    let (header, parts) = ferry_codec::dump::decode(Bytes::from_static(b"h"), recoded).unwrap();
    assert_eq!(header.kind, ferry_codec::Kind::Hash);
    let fields: Vec<(Bytes, Option<i64>)> = parts
        .into_iter()
        .flat_map(|part| match part {
            ferry_codec::ValuePart::HashFields(fields) => fields,
            other => panic!("{other:?}"),
        })
        .map(|f| (f.field, f.expire_at_ms))
        .collect();
    assert_eq!(
        fields,
        vec![(Bytes::from("a"), None), (Bytes::from("b"), None)]
    );
    assert!(
        persist.report_lines().iter().any(|l| l.contains("persist")),
        "{:?}",
        persist.report_lines()
    );

    // Every field volatile and dropped: the key is left out, and an older copy deleted.
    let mut drop = hash("valkey-8.1", HashFieldTtlPolicy::DropField);
    assert_eq!(
        drop.translate(0, restore_asking(&redis8_hash_payload(true)))
            .unwrap(),
        apply(&["DEL h"])
    );

    // The default policy refuses, in one line naming the key.
    let mut fail = hash("valkey-8.1", HashFieldTtlPolicy::Fail);
    let line = error_line(fail.translate(0, restore_asking(&payload)));
    assert!(line.contains("--hash-field-ttl"), "{line}");

    // A target that loads it takes it as it is.
    let mut same = hash("redis-8.0", HashFieldTtlPolicy::Fail);
    let Translated::Apply(sent) = same.translate(0, restore_asking(&payload)).unwrap() else {
        panic!("not applied");
    };
    assert_eq!(sent[0][3], payload);
}
