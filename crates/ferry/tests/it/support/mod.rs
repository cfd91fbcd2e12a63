//! Shared by the test modules: here, running the built ferry to its end, its HTTP listener,
//! and small helpers; `migrate` runs ferry as a child process to watch and compares
//! servers, `cutover` and `relay` build on it, `observer` reads what a primary
//! propagates, `browser` drives a headless Chromium and `promtool` lints Prometheus text
//! (both with the programs `tools` finds).

pub mod browser;
pub mod cutover;
pub mod migrate;
pub mod observer;
pub mod promtool;
pub mod relay;
pub mod tools;

use ferry::url::ServerUrl;
use ferry_testkit::Server;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The ferry binary this test run built.
pub const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// Runs `ferry <args>` to its end (no stdin; stdout and stderr captured).
pub fn ferry<S: AsRef<OsStr>>(args: &[S]) -> Output {
    ferry_with_env(args, &[])
}

/// [`ferry`] with more environment variables (passwords by `-env`, say).
pub fn ferry_with_env<S: AsRef<OsStr>>(args: &[S], env: &[(&str, &str)]) -> Output {
    Command::new(FERRY)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run ferry")
}

/// [`ferry`] in `dir`: the relative paths in `args` are `dir`'s.
pub fn ferry_in(args: &[&str], dir: &Path) -> Output {
    Command::new(FERRY)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run ferry")
}

/// The names in `dir`, sorted.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A path as a command-line argument.
pub fn path(p: &Path) -> String {
    p.display().to_string()
}

/// The server's URL as ferry's library takes it.
pub fn server_url(server: &Server) -> ServerUrl {
    ServerUrl::parse(&server.url()).expect("server URL")
}

/// Makes the server require `password` (requirepass).
pub fn require_password(server: &Server, password: &str) {
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(password)
        .query::<()>(&mut server.client())
        .unwrap();
}

/// `INFO <section>` of the server.
pub fn server_info(server: &Server, section: &str) -> String {
    let mut con = server.client();
    redis::cmd("INFO").arg(section).query(&mut con).unwrap()
}

/// The value of `name` in INFO text.
pub fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_owned())
}

/// A number in `INFO <section>` of the server (0 when absent).
pub fn info_number(server: &Server, section: &str, name: &str) -> u64 {
    info_field(&server_info(server, section), name)
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// Calls of `command` (lower case) the server counted, by `INFO commandstats`.
pub fn command_calls(server: &Server, command: &str) -> u64 {
    // Module commands (vector sets) are listed in upper case.
    server_info(server, "commandstats")
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix(&format!("cmdstat_{command}:calls="))
                .map(str::to_owned)
        })
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// A size field (`VmHWM`, `VmRSS`) of process `pid`'s `/proc/<pid>/status`, in kB; `None`
/// once the process is gone.
pub fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `method path` with `headers` (name, value) to a run's --metrics-addr listener: the whole
/// response (head and body).
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut socket = TcpStream::connect(addr).expect("connect to --metrics-addr");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Content-Length: 0\r\n\r\n");
    socket.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).unwrap();
    response
}

/// A `GET path` to a run's --metrics-addr listener: the status code and the body.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    code_and_body(&http(addr, "GET", path, &[]))
}

/// A `POST path` with `headers` (name, value) to a run's --metrics-addr listener: the
/// status code and the body.
pub fn http_post(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    code_and_body(&http(addr, "POST", path, headers))
}

fn code_and_body(response: &str) -> (u16, String) {
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (code, body.to_owned())
}

/// A count as ferry's pages write it (en-US grouping: 1,234,567).
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
