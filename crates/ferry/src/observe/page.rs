//! The status page at `/` of `--metrics-addr`: one self-contained HTML file (its styles
//! and script inline, no font or script from elsewhere, so it works on a host without
//! internet access) that polls `/status` every second and `/history` for the plots.
//! It only reads: stopping a run stays with `ferry cutover` and its control token.

/// The page, as served.
pub const STATUS_PAGE: &str = include_str!("page/status.html");

/// What the page may do: its own inline script and styles, and requests to where it came
/// from; nothing else (no frames, no other origin, no plugins).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";
