//! Faults while streaming: the connection to the source cut by a loopback proxy the test
//! owns, and the source restarted. ferry reconnects by itself and ends equal.

mod migrate_support;

use ferry_testkit::snapshot::DiffOptions;
use ferry_testkit::{Server, ServerKind};
use migrate_support::{assert_same, simple_load, wait_applied, Ferry};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Forwards 127.0.0.1:port to an upstream port; `cut` resets every open connection.
struct Proxy {
    port: u16,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let registry = open.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                {
                    let mut open = registry.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                pump(client.try_clone().unwrap(), server.try_clone().unwrap());
                pump(server, client);
            }
        });
        Proxy { port, open }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn cut(&self) {
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

#[test]
fn a_cut_connection_is_resumed_with_a_partial_resync() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let proxy = Proxy::start(source.port());
    redis::cmd("SET")
        .arg("before")
        .arg("start")
        .query::<()>(&mut source.client())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::start(&[
        "--source",
        &proxy.url(),
        "--target",
        &target.url(),
        "--state",
        &state.display().to_string(),
    ]);
    ferry.wait_in_sync();
    simple_load(&source, 1);
    proxy.cut();
    simple_load(&source, 2);
    ferry.wait_for("lost the source", Duration::from_secs(30));
    ferry.wait_for(
        "partial resync accepted (+CONTINUE)",
        Duration::from_secs(30),
    );
    simple_load(&source, 3);
    wait_applied(&source, &state, &ferry);
    assert_same(&source, &target, &DiffOptions::new());
}
