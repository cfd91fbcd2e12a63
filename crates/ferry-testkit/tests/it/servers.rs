//! The servers are what their names say, and the dataset produces the encodings it claims.

use anyhow::Result;
use ferry_testkit::{dataset, servers_manifest, Server, ServerKind};

#[test]
fn every_server_reports_its_series() -> Result<()> {
    let manifest = servers_manifest()?;
    for kind in ServerKind::all() {
        let entry = manifest.entry(kind)?;
        let (major, minor) = kind.series();
        assert!(
            entry.version.starts_with(&format!("{major}.{minor}.")),
            "{kind} runs {}",
            entry.version
        );
        let server = Server::start(kind)?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut server.client())?;
        let field = if kind.is_valkey() {
            "valkey_version:"
        } else {
            "redis_version:"
        };
        assert!(
            info.lines()
                .any(|line| line == format!("{field}{}", entry.version)),
            "{kind}: INFO does not say {field}{}",
            entry.version
        );
    }
    Ok(())
}

fn has_command(server: &Server, name: &str) -> Result<bool> {
    let reply: Vec<redis::Value> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg(name)
        .query(&mut server.client())?;
    Ok(!matches!(reply.first(), None | Some(redis::Value::Nil)))
}

#[test]
fn kind_abilities_match_the_real_servers() -> Result<()> {
    for kind in ServerKind::all() {
        let server = Server::start(kind)?;
        assert_eq!(
            has_command(&server, "FUNCTION")?,
            kind.is_redis7_or_later(),
            "{kind}"
        );
        assert_eq!(
            has_command(&server, "HSETEX")?,
            kind.has_hash_field_ttl(),
            "{kind}"
        );
        assert_eq!(
            has_command(&server, "VADD")?,
            kind.has_vector_sets(),
            "{kind}"
        );
    }
    Ok(())
}

#[test]
fn start_with_rdb_reports_a_refused_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let rdb = dir.path().join("garbage.rdb");
    std::fs::write(&rdb, b"REDIS0011 this is not an RDB file")?;
    let error = Server::start_with_rdb(ServerKind::Valkey81, &rdb)
        .err()
        .expect("a server loaded a garbage RDB");
    let message = format!("{error:#}");
    assert!(message.contains("exited during startup"), "{message}");
    assert!(
        message.contains("RDB") || message.contains("rdb"),
        "{message}"
    );
    Ok(())
}

#[test]
fn dropping_a_server_stops_it_and_removes_its_folder() -> Result<()> {
    let server = Server::start(ServerKind::Redis70)?;
    let (port, dir) = (server.port(), server.dir().to_path_buf());
    drop(server);
    assert!(!dir.exists(), "{} still exists", dir.display());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    Ok(())
}

fn encoding(server: &Server, db: u32, key: &str) -> Result<String> {
    let mut con = server.client();
    redis::cmd("SELECT").arg(db).query::<()>(&mut con)?;
    Ok(redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(key)
        .query(&mut con)?)
}

#[test]
fn dataset_has_the_encodings_each_server_can_produce() -> Result<()> {
    for kind in ServerKind::all() {
        let server = Server::start(kind)?;
        dataset::populate(&server)?;
        let modern = kind != ServerKind::Redis60;
        // Redis 7.2 introduced listpack lists and sets; before, small lists are quicklists.
        let listpack_lists = kind.has_set_listpack();
        let mut expected: Vec<(&str, &str)> = vec![
            ("str:int:small", "int"),
            ("str:2mb", "raw"),
            (
                "list:small",
                if listpack_lists {
                    "listpack"
                } else {
                    "quicklist"
                },
            ),
            ("list:quicklist", "quicklist"),
            ("set:intset:64", "intset"),
            (
                "set:small-strings",
                if kind.has_set_listpack() {
                    "listpack"
                } else {
                    "hashtable"
                },
            ),
            ("set:hashtable", "hashtable"),
            ("zset:small", if modern { "listpack" } else { "ziplist" }),
            ("zset:skiplist", "skiplist"),
            ("hash:small", if modern { "listpack" } else { "ziplist" }),
            ("hash:hashtable", "hashtable"),
            ("hash:long-value", "hashtable"),
            ("stream:main", "stream"),
        ];
        if kind == ServerKind::Redis80 {
            expected.push(("hash:fttl:small", "listpackex"));
        }
        if kind.has_hash_field_ttl() {
            expected.push(("hash:fttl:big", "hashtable"));
        }
        for (key, want) in expected {
            assert_eq!(encoding(&server, 0, key)?, want, "{kind} {key}");
        }
        assert_eq!(encoding(&server, 5, "big:list")?, "quicklist", "{kind}");
    }
    Ok(())
}
