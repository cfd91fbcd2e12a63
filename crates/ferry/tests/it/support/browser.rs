//! A real headless Chromium driven over WebDriver (the fantoccini client, chromedriver on a
//! free loopback port), for tests of what a page shows: text, attributes, script results,
//! screenshots under build/screenshots/, and the browser console's errors.
//!
//! The calls block (each runs on the browser's own single-thread runtime) and panic on
//! failure, like the rest of the test support.

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use super::tools::tools;

/// A phone-sized window (CSS pixels).
pub const NARROW: (u32, u32) = (390, 844);
/// A laptop-sized window.
pub const WIDE: (u32, u32) = (1280, 800);

/// How long to wait for chromedriver to listen and for an element to appear.
const PATIENCE: Duration = Duration::from_secs(20);

/// One headless Chromium session; dropping it closes the browser and stops chromedriver.
pub struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    /// chromedriver's output, read when it fails to start; a temporary folder.
    _scratch: tempfile::TempDir,
}

/// One line of the browser's console (or an uncaught exception).
#[derive(Debug, Clone)]
pub struct ConsoleEntry {
    /// "SEVERE", "WARNING", "INFO", …
    pub level: String,
    /// "console-api" for `console.*`, "javascript" for uncaught exceptions, "network" for
    /// failed loads.
    pub source: String,
    pub message: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a `width` x `height` window.
    pub fn start((width, height): (u32, u32)) -> Browser {
        let tools = tools();
        let scratch = tempfile::tempdir().expect("a scratch folder");
        let port = free_port();
        let log = scratch.path().join("chromedriver.log");
        let mut driver = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(File::create(&log).expect("chromedriver's log"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {} ({err})", tools.chromedriver.display()));
        wait_listening(port, &mut driver, &log);

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the WebDriver client");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tools.chromium,
                // --no-sandbox: the suite runs as root, where Chromium's sandbox refuses to
                // start; the pages are our own.
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    format!("--window-size={width},{height}"),
                ],
            },
            // Makes chromedriver keep the console for the log endpoint (console_errors).
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object")
        };
        let client = runtime
            .block_on(
                ClientBuilder::new(HttpConnector::new())
                    .capabilities(capabilities)
                    .connect(&format!("http://127.0.0.1:{port}/")),
            )
            .unwrap_or_else(|err| {
                panic!(
                    "cannot open a Chromium session ({err}); chromedriver said:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        Browser {
            runtime,
            client: Some(client),
            driver,
            _scratch: scratch,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("an open session")
    }

    /// Loads `url` and waits for the page's load event.
    pub fn goto(&self, url: &str) {
        self.runtime
            .block_on(self.client().goto(url))
            .unwrap_or_else(|err| panic!("cannot load {url} ({err})"));
    }

    /// The rendered text of the first element matching `css`, once there is one.
    pub fn text_of(&self, css: &str) -> String {
        self.runtime.block_on(async {
            let element = self.find(css).await;
            element
                .text()
                .await
                .unwrap_or_else(|err| panic!("cannot read the text of {css} ({err})"))
        })
    }

    /// Attribute `name` of the first element matching `css`, once there is one.
    pub fn attribute(&self, css: &str, name: &str) -> Option<String> {
        self.runtime.block_on(async {
            let element = self.find(css).await;
            element
                .attr(name)
                .await
                .unwrap_or_else(|err| panic!("cannot read {name} of {css} ({err})"))
        })
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client()
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("no element matches {css} ({err})"))
    }

    /// Runs `script` (a function body: `return …` gives the result) in the page.
    pub fn execute(&self, script: &str) -> Value {
        self.runtime
            .block_on(self.client().execute(script, Vec::new()))
            .unwrap_or_else(|err| panic!("script failed ({err}): {script}"))
    }

    /// Resizes the window (CSS pixels), e.g. to [`NARROW`] or [`WIDE`].
    pub fn set_window_size(&self, (width, height): (u32, u32)) {
        self.runtime
            .block_on(self.client().set_window_size(width, height))
            .unwrap_or_else(|err| panic!("cannot resize the window ({err})"));
    }

    /// Writes a PNG of the window to build/screenshots/`name`.png and returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .runtime
            .block_on(self.client().screenshot())
            .unwrap_or_else(|err| panic!("cannot take a screenshot ({err})"));
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|err| panic!("cannot create {} ({err})", dir.display()));
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)
            .unwrap_or_else(|err| panic!("cannot write {} ({err})", path.display()));
        path
    }

    /// The console's errors (and uncaught exceptions, failed loads) since the last call.
    pub fn console_errors(&self) -> Vec<ConsoleEntry> {
        self.console()
            .into_iter()
            .filter(|entry| entry.level == "SEVERE")
            .collect()
    }

    /// Every console entry since the last call: chromedriver hands each out once.
    pub fn console(&self) -> Vec<ConsoleEntry> {
        let entries = self
            .runtime
            .block_on(self.client().issue_cmd(BrowserLog))
            .unwrap_or_else(|err| panic!("cannot read the browser's console ({err})"));
        let text = |entry: &Value, field: &str| entry[field].as_str().unwrap_or("").to_string();
        entries
            .as_array()
            .unwrap_or_else(|| panic!("the console log is not a list: {entries}"))
            .iter()
            .map(|entry| ConsoleEntry {
                level: text(entry, "level"),
                source: text(entry, "source"),
                message: text(entry, "message"),
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Ending the session makes chromedriver end Chromium and its children.
            let _ = self.runtime.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// chromedriver's log endpoint (not in the W3C standard, so not in fantoccini): the browser
/// console's entries, kept because the session asked for `goog:loggingPrefs`.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.expect("a session");
        base_url.join(&format!("session/{session}/se/log"))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": "browser" }).to_string()),
        )
    }
}

/// This workspace's build/screenshots, where screenshots are kept for review.
pub fn screenshots_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../build/screenshots")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free loopback port");
    listener.local_addr().expect("its address").port()
}

fn wait_listening(port: u16, driver: &mut Child, log: &Path) {
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        if let Ok(Some(status)) = driver.try_wait() {
            panic!(
                "chromedriver exited ({status}) before listening on port {port}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver is not listening on port {port} after {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
