//! A failed `ferry migrate` and the target's import mode (Valkey 8.1+): a target in import
//! mode keeps keys past their expiry, invisible but never freed, so a run that fails must
//! not leave it that way unknowingly. Before ferry owns any data on the target, the
//! setting it found is restored; after, the error line says the target is left in import
//! mode and how to end it.

use crate::support::migrate::Ferry;
use ferry_testkit::{dataset, Server, ServerKind};
use std::time::Duration;

fn import_mode(server: &Server) -> String {
    let reply: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("import-mode")
        .query(&mut server.client())
        .unwrap();
    reply[1].clone()
}

fn run_to_exit(args: &[&str]) -> (i32, String) {
    let mut ferry = Ferry::start(args);
    let status = ferry.wait_exit(Duration::from_secs(60));
    (status.code().unwrap_or(-1), ferry.output())
}

/// The error line: the last `ferry: …` line of the output.
fn error_line(output: &str) -> &str {
    output
        .lines()
        .rev()
        .find(|l| l.starts_with("ferry: "))
        .unwrap_or_else(|| panic!("no error line in:\n{output}"))
}

#[test]
fn a_run_that_fails_before_owning_data_restores_import_mode() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    // A source user that may read INFO but not replicate: the run fails at PSYNC, after
    // import mode was turned on and before anything was written.
    redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "reader",
            "on",
            ">reader-pw",
            "~*",
            "+@all",
            "-psync",
            "-sync",
        ])
        .query::<()>(&mut source.client())
        .unwrap();
    let source_url = format!("redis://reader:reader-pw@127.0.0.1:{}", source.port());
    assert_eq!(import_mode(&target), "no");

    let (code, output) = run_to_exit(&["--source", &source_url, "--target", &target.url()]);
    assert_eq!(code, 1, "{output}");
    assert!(error_line(&output).contains("source"), "{output}");
    assert_eq!(import_mode(&target), "no", "{output}");
}

#[test]
fn a_run_that_fails_after_writing_says_the_target_is_left_in_import_mode() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    dataset::populate(&source).unwrap();
    // About 8 MB the target has no room for: the full sync fails part-way with OOM.
    let mut pipe = redis::pipe();
    for i in 0..2000 {
        pipe.cmd("SET")
            .arg(format!("big:{i}"))
            .arg(vec![b'x'; 4000])
            .ignore();
    }
    pipe.query::<()>(&mut source.client()).unwrap();
    let target = Server::start_with_args(
        ServerKind::Valkey81,
        &["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let state_arg = state.display().to_string();

    let (code, output) = run_to_exit(&[
        "--source",
        &source.url(),
        "--target",
        &target.url(),
        "--state",
        &state_arg,
    ]);
    assert_eq!(code, 1, "{output}");
    let line = error_line(&output);
    assert!(line.contains("OOM") || line.contains("memory"), "{output}");
    assert!(line.contains("left in import mode"), "{output}");
    assert!(line.contains("CONFIG SET import-mode no"), "{output}");
    assert_eq!(import_mode(&target), "yes", "{output}");
}
