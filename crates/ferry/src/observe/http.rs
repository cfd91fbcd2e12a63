//! A tiny HTTP/1.1 listener: `GET /` (the status page, [`super::page`]), `GET /metrics`
//! (Prometheus text), `GET /status` (JSON), `GET /history?since=T` (the last hour's
//! samples, JSON) and `POST /stop` (what `ferry cutover` uses to end the run once the
//! target is live: the run drains and exits as on SIGTERM); anything else is 404. One
//! request per connection, then close. The page polls; nothing here needs more than
//! that (no keep-alive, no streaming), so no HTTP library is brought in for it.
//!
//! While it serves, it samples the run once a second for the history.
//!
//! The reads are open. `POST /stop` changes the migration, so it needs the run's control
//! token (`Authorization: Bearer …`, [`crate::control`]) and is refused from a browser
//! page of another origin (its `Origin` header is not this listener's). A run without a
//! token refuses it altogether.

use super::stats::Stats;
use super::status::HistoryPage;
use crate::control::ControlToken;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request head larger than this is refused: the listener answers two fixed paths.
const MAX_REQUEST: usize = 8 << 10;
/// A client that does not finish its request in this time is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds `addr` (port 0 picks a free port) and serves in the background. `control` is
/// the token `POST /stop` needs; `None` refuses it.
pub async fn serve(
    addr: SocketAddr,
    stats: Arc<Stats>,
    control: Option<ControlToken>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let control = Arc::new(control);
    tokio::spawn(sample_every_second(stats.clone()));
    accept_forever(listener, move |socket| {
        let (stats, control) = (stats.clone(), control.clone());
        async move { answer(socket, &stats, control.as_ref().as_ref()).await }
    });
    Ok(bound)
}

/// Answers each connection `listener` takes with `answer`, on a task of its own and for at
/// most [`REQUEST_TIMEOUT`], in the background.
fn accept_forever<F, A>(listener: TcpListener, answer: F)
where
    F: Fn(TcpStream) -> A + Send + 'static,
    A: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                // Out of descriptors and the like: pause rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let answered = answer(socket);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(REQUEST_TIMEOUT, answered).await;
            });
        }
    });
}

/// Feeds the history the status page plots, for as long as the run lives.
async fn sample_every_second(stats: Arc<Stats>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        stats.sample();
    }
}

/// A read-only page and its `/status` document, served by [`serve_site`]: what a
/// listener other than a run's own shows (`ferry fleet`'s page of all its pairs).
pub trait Site: Send + Sync + 'static {
    /// The self-contained HTML of `/` (under [`super::page::CONTENT_SECURITY_POLICY`]).
    fn page(&self) -> &'static str;
    /// The JSON document of `/status`, as it is now.
    fn status_json(&self) -> String;
}

/// Binds `addr` (port 0 picks a free port) and serves `site` in the background: `GET /`
/// and `GET /status`, nothing that changes anything.
pub async fn serve_site(addr: SocketAddr, site: Arc<dyn Site>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    accept_forever(listener, move |socket| {
        let site = site.clone();
        async move { answer_site(socket, site.as_ref()).await }
    });
    Ok(bound)
}

async fn answer_site(mut socket: TcpStream, site: &dyn Site) -> std::io::Result<()> {
    let Some(head) = read_head(&mut socket).await? else {
        return Ok(());
    };
    let (method, path, _) = request_line(&head);
    match (method.as_str(), path.as_str()) {
        ("GET", "/") => page(&mut socket, site.page()).await,
        ("GET", "/status") => {
            let body = site.status_json();
            respond(&mut socket, "200 OK", "application/json", &body).await
        }
        ("GET", _) => respond(&mut socket, "404 Not Found", "text/plain", "not found\n").await,
        _ => respond(&mut socket, "405 Method Not Allowed", "text/plain", "").await,
    }
}

/// The request head up to its blank line; `None` once a too-large head was refused.
async fn read_head(socket: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = socket.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..read]);
        if head.len() > MAX_REQUEST {
            respond(
                socket,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            )
            .await?;
            return Ok(None);
        }
    }
    Ok(Some(head))
}

/// Method, path and query of the request line.
fn request_line(head: &[u8]) -> (String, String, String) {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or_default();
    let target = words.next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    (method.to_owned(), path.to_owned(), query.to_owned())
}

/// An HTML page under the status page's content security policy.
async fn page(socket: &mut TcpStream, html: &str) -> std::io::Result<()> {
    let head = [
        ("Content-Type", "text/html; charset=utf-8"),
        (
            "Content-Security-Policy",
            super::page::CONTENT_SECURITY_POLICY,
        ),
        ("Cache-Control", "no-store"),
    ];
    respond_with(socket, "200 OK", &head, html).await
}

async fn answer(
    mut socket: TcpStream,
    stats: &Stats,
    control: Option<&ControlToken>,
) -> std::io::Result<()> {
    let Some(head) = read_head(&mut socket).await? else {
        return Ok(());
    };
    let (method, path, query) = request_line(&head);
    let query = query.as_str();
    match (method.as_str(), path.as_str()) {
        ("GET", "/") => page(&mut socket, super::page::STATUS_PAGE).await,
        ("GET", "/metrics") => {
            let body = super::prometheus::render(&stats.status());
            respond(&mut socket, "200 OK", "text/plain; version=0.0.4", &body).await
        }
        ("GET", "/history") => {
            let page = HistoryPage {
                samples: stats.history_since(since(query)),
            };
            let body = serde_json::to_string(&page).unwrap_or_default();
            respond(&mut socket, "200 OK", "application/json", &body).await
        }
        ("GET", "/status") => {
            let body = serde_json::to_string_pretty(&stats.status()).unwrap_or_default();
            respond(&mut socket, "200 OK", "application/json", &body).await
        }
        ("POST", "/stop") => {
            let own = socket.local_addr()?;
            match authorize_stop(&head, own, control) {
                Ok(()) => {
                    stats.request_stop();
                    respond(&mut socket, "202 Accepted", "text/plain", "stopping\n").await
                }
                Err(refusal) => {
                    let body = format!("{}\n", refusal.reason());
                    respond(&mut socket, refusal.status(), "text/plain", &body).await
                }
            }
        }
        ("GET", _) => respond(&mut socket, "404 Not Found", "text/plain", "not found\n").await,
        _ => respond(&mut socket, "405 Method Not Allowed", "text/plain", "").await,
    }
}

/// Why a `POST /stop` was refused. The reasons name the flags, never a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopRefusal {
    /// The run has no control token: nobody may stop it over HTTP.
    NoTokenConfigured,
    /// An `Origin` other than this listener's: a page of another site posting.
    ForeignOrigin,
    /// No `Authorization: Bearer …`, or not the run's token.
    BadToken,
}

impl StopRefusal {
    fn status(self) -> &'static str {
        match self {
            StopRefusal::NoTokenConfigured | StopRefusal::ForeignOrigin => "403 Forbidden",
            StopRefusal::BadToken => "401 Unauthorized",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            StopRefusal::NoTokenConfigured => {
                "POST /stop is off: start the run with --control-token-file or --control-token-env"
            }
            StopRefusal::ForeignOrigin => "POST /stop refused: cross-origin request",
            StopRefusal::BadToken => {
                "POST /stop refused: not the run's control token (cutover and rollback send \
                 it as Authorization: Bearer from --control-token-file or --control-token-env)"
            }
        }
    }
}

/// Checks a `POST /stop` request head: origin first (a browser's cross-site post is
/// refused whatever it carries), then the token.
fn authorize_stop(
    head: &[u8],
    own: SocketAddr,
    control: Option<&ControlToken>,
) -> Result<(), StopRefusal> {
    if let Some(origin) = header(head, "origin") {
        if !is_own_origin(origin, own) {
            return Err(StopRefusal::ForeignOrigin);
        }
    }
    let Some(token) = control else {
        return Err(StopRefusal::NoTokenConfigured);
    };
    let presented = header(head, "authorization")
        .and_then(|value| strip_prefix_ignore_case(value, b"bearer "))
        .map(|value| value.trim_ascii())
        .unwrap_or_default();
    if token.matches(presented) {
        Ok(())
    } else {
        Err(StopRefusal::BadToken)
    }
}

/// `http://` and the address the request came in on. Compared with the socket's own
/// address, not with the `Host` header, which a DNS-rebinding page controls.
fn is_own_origin(origin: &[u8], own: SocketAddr) -> bool {
    let origin = String::from_utf8_lossy(origin);
    let origin = origin.trim().trim_end_matches('/');
    let mut allowed = vec![format!("http://{own}")];
    if own.ip().is_loopback() {
        allowed.push(format!("http://localhost:{}", own.port()));
    }
    allowed.iter().any(|a| origin.eq_ignore_ascii_case(a))
}

/// The value of the first header named `name` (lower case), without surrounding spaces.
fn header<'a>(head: &'a [u8], name: &str) -> Option<&'a [u8]> {
    head.split(|b| *b == b'\n').skip(1).find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|b| *b == b':')?;
        let (field, value) = line.split_at(colon);
        field
            .eq_ignore_ascii_case(name.as_bytes())
            .then(|| value[1..].trim_ascii())
    })
}

fn strip_prefix_ignore_case<'a>(value: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

/// `since=T` of a query string: unix seconds, 0 (everything) when absent or unreadable.
fn since(query: &str) -> f64 {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("since="))
        .and_then(|value| value.parse::<f64>().ok())
        .filter(|value| value.is_finite())
        .unwrap_or(0.0)
}

async fn respond(
    socket: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    respond_with(socket, status, &[("Content-Type", content_type)], body).await
}

async fn respond_with(
    socket: &mut TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body.as_bytes()).await?;
    socket.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "a-long-enough-control-token";

    fn token() -> ControlToken {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, TOKEN).unwrap();
        crate::control::ControlTokenArgs {
            control_token_file: Some(path),
            control_token_env: None,
        }
        .token()
        .unwrap()
        .unwrap()
    }

    fn check(head: &str, control: Option<&ControlToken>) -> Result<(), StopRefusal> {
        let own: SocketAddr = "127.0.0.1:9121".parse().unwrap();
        authorize_stop(head.as_bytes(), own, control)
    }

    #[test]
    fn stop_needs_the_token_and_this_origin() {
        let token = token();
        let good = format!("POST /stop HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
        assert_eq!(check(&good, Some(&token)), Ok(()));
        let lower = format!("POST /stop HTTP/1.1\r\nauthorization: bearer {TOKEN}\r\n\r\n");
        assert_eq!(check(&lower, Some(&token)), Ok(()));
        assert_eq!(check(&good, None), Err(StopRefusal::NoTokenConfigured));
        let none = "POST /stop HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(check(none, Some(&token)), Err(StopRefusal::BadToken));
        let wrong =
            "POST /stop HTTP/1.1\r\nAuthorization: Bearer a-long-enough-control-tokeN\r\n\r\n";
        assert_eq!(check(wrong, Some(&token)), Err(StopRefusal::BadToken));
        for origin in ["http://127.0.0.1:9121", "http://localhost:9121/"] {
            let same = format!(
                "POST /stop HTTP/1.1\r\nOrigin: {origin}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
            );
            assert_eq!(check(&same, Some(&token)), Ok(()), "{origin}");
        }
        for origin in ["http://evil.example", "null", "http://127.0.0.1:9122"] {
            let foreign = format!(
                "POST /stop HTTP/1.1\r\nOrigin: {origin}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
            );
            assert_eq!(
                check(&foreign, Some(&token)),
                Err(StopRefusal::ForeignOrigin),
                "{origin}"
            );
        }
    }

    #[test]
    fn refusals_name_the_flags_not_the_token() {
        for refusal in [
            StopRefusal::NoTokenConfigured,
            StopRefusal::ForeignOrigin,
            StopRefusal::BadToken,
        ] {
            assert!(!refusal.reason().contains(TOKEN));
            assert!(refusal.status().starts_with('4'));
        }
        assert!(StopRefusal::NoTokenConfigured
            .reason()
            .contains("--control-token-file"));
    }

    #[test]
    fn history_queries_read_since() {
        assert_eq!(since("since=1700000000.5"), 1_700_000_000.5);
        assert_eq!(since("x=1&since=12"), 12.0);
        assert_eq!(since(""), 0.0);
        assert_eq!(since("since=NaN"), 0.0);
    }
}
