//! The Explorer with a banner: `berth-check explore` serves Stateright's
//! Explorer behind a small proxy that adds, at the top of its page, what
//! the run found — the violated property and the one sentence that says
//! what broke — so that the first screen of the counterexample URL says it,
//! whatever the window's size. Everything else (the UI's files, the states
//! it fetches) passes through unchanged; Stateright's own UI is not
//! modified, only the page it serves gets one element more.

use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// What the banner says.
#[derive(Clone, Debug)]
pub struct Banner {
    /// The first line, e.g. "variant no-fencing, --scenario failover".
    pub title: String,
    /// The violated property and its explanation, if the run found one.
    pub violation: Option<(String, String)>,
    /// One more line of context (the counterexample's length, or why
    /// there is none).
    pub note: String,
}

impl Banner {
    /// The banner as an HTML element (with the script that records where
    /// it is drawn, for tests: `data-bottom` is its bottom edge in pixels).
    pub fn html(&self) -> String {
        let body = match &self.violation {
            Some((property, explanation)) => format!(
                "<div style=\"font-size:1.15em;font-weight:bold\">VIOLATED `{}`</div>\
                 <div>{}</div>",
                escape(property),
                escape(explanation)
            ),
            None => "<div style=\"font-weight:bold\">No always-property is violated by the run; \
                     a state that violates one says so at the top of its view.</div>"
                .to_owned(),
        };
        let color = if self.violation.is_some() {
            "#8b1a1a"
        } else {
            "#1f4d2b"
        };
        format!(
            "<div id=\"berth-banner\" style=\"position:sticky;top:0;z-index:1000;\
             background:{color};color:#fff;padding:8px 14px;font-family:sans-serif;\
             font-size:14px;line-height:1.35\">\
             <div style=\"opacity:0.85\">berth-check explore: {}</div>{body}\
             <div style=\"opacity:0.85\">{}</div></div>\
             <script>addEventListener('load',function(){{var b=document.getElementById('berth-banner');\
             var r=b.getBoundingClientRect();b.setAttribute('data-top',Math.round(r.top));\
             b.setAttribute('data-bottom',Math.round(r.bottom));\
             b.setAttribute('data-viewport',innerWidth+'x'+innerHeight);}});</script>",
            escape(&self.title),
            escape(&self.note)
        )
    }
}

/// `text` safe inside HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inserts `banner` right after the page's `<body ...>` tag (or at its
/// start if it has none).
pub fn inject(page: &str, banner: &str) -> String {
    let at = page
        .find("<body")
        .and_then(|start| page[start..].find('>').map(|end| start + end + 1))
        .unwrap_or(0);
    format!("{}{banner}{}", &page[..at], &page[at..])
}

/// Serves on `public` a proxy of the Explorer at `inner` whose page carries
/// `banner`. Runs until the process stops.
pub fn serve(
    public: SocketAddr,
    inner: SocketAddr,
    inner_running: impl Fn() -> bool,
    banner: &Banner,
) -> Result<()> {
    let server = tiny_http::Server::http(public)
        .map_err(|error| anyhow::anyhow!("cannot serve the Explorer on {public}: {error}"))?;
    let banner = banner.html();
    wait_until_listening(inner, inner_running)?;
    loop {
        let mut request = match server.recv() {
            Ok(request) => request,
            Err(error) => return Err(error).context("the Explorer's server stopped"),
        };
        let mut body = Vec::new();
        request.as_reader().read_to_end(&mut body).ok();
        let method = request.method().as_str().to_owned();
        let url = request.url().to_owned();
        let response = match forward(inner, &method, &url, &body) {
            Ok((status, content_type, mut data)) => {
                if method == "GET" && url == "/" {
                    data = inject(&String::from_utf8_lossy(&data), &banner).into_bytes();
                }
                let mut response = tiny_http::Response::from_data(data).with_status_code(status);
                if let Some(content_type) = content_type {
                    if let Ok(header) =
                        tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes())
                    {
                        response = response.with_header(header);
                    }
                }
                response
            }
            Err(error) => tiny_http::Response::from_data(format!("{error:#}").into_bytes())
                .with_status_code(502),
        };
        request.respond(response).ok();
    }
}

/// Waits until the inner Explorer accepts connections. Its thread ending
/// first is an error at once; a busy machine may take long to start it, so
/// the only time bound is a hang guard of five minutes.
fn wait_until_listening(inner: SocketAddr, inner_running: impl Fn() -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        match TcpStream::connect(inner) {
            Ok(_) => return Ok(()),
            Err(error) if !inner_running() => {
                return Err(error)
                    .with_context(|| format!("the Explorer at {inner} stopped before it served"))
            }
            Err(error) if Instant::now() >= deadline => {
                return Err(error).with_context(|| format!("the Explorer at {inner} did not start"))
            }
            // Polling: the inner server starts on another thread and has
            // no readiness signal.
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// One HTTP/1.0 exchange with the inner Explorer: its status, content type
/// and body.
fn forward(
    inner: SocketAddr,
    method: &str,
    url: &str,
    body: &[u8],
) -> Result<(u16, Option<String>, Vec<u8>)> {
    let mut stream = TcpStream::connect(inner).context("the inner Explorer does not answer")?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "{method} {url} HTTP/1.0\r\nHost: {inner}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply)?;
    let split = reply
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .context("the inner Explorer sent no header")?;
    let head = String::from_utf8_lossy(&reply[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(502);
    let content_type = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-type")
            .then(|| value.trim().to_owned())
    });
    Ok((status, content_type, reply[split + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the banner goes right after the body tag, escaped.
    #[test]
    fn the_banner_opens_the_body() {
        let banner = Banner {
            title: "variant no-fencing".into(),
            violation: Some((
                "no lost confirmed booking".into(),
                "a <lost> booking".into(),
            )),
            note: "10 steps".into(),
        };
        let page = inject(
            "<html><body class=\"x\"><main>m</main></body></html>",
            &banner.html(),
        );
        let body = page.find("<body class=\"x\">").unwrap();
        let banner_at = page.find("berth-banner").unwrap();
        let main = page.find("<main>").unwrap();
        assert!(body < banner_at && banner_at < main, "{page}");
        assert!(page.contains("a &lt;lost&gt; booking"));
        assert!(page.contains("VIOLATED `no lost confirmed booking`"));
    }
}
