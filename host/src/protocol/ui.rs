//! The live web view (`wasmflo run --ui ADDR`): one page showing the running graph (its
//! SVG drawing), per-edge message counts, rates and last packets, every participant's
//! code version, and recent errors. The page gets its live data over the FBP protocol
//! (`network:data`, `network:processerror`) from the runtime's WebSocket; this small HTTP
//! server only serves the page, the drawing and a status snapshot.
//!
//! Routes: `/` (the page), `/graph.svg`, `/status.json`, and `/report` + `/hold`, which
//! let a headless browser's page say it saw counts rise and delay its `load` event until
//! then (the end-to-end test's only hook; harmless for people).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::server::RuntimeHandle;

const PAGE: &str = include_str!("ui.html");

/// Serves the web view on `listener` until `stop` resolves. The page connects to the
/// protocol at `ws_url`, sending `secret` (the read secret, if any) with each message.
pub async fn serve_ui(
    listener: TcpListener,
    handle: RuntimeHandle,
    ws_url: String,
    secret: Option<String>,
    stop: impl std::future::Future<Output = ()>,
) {
    let page: Arc<str> = Arc::from(
        PAGE.replace("__WS_URL__", &json!(ws_url).to_string())
            .replace("__SECRET__", &json!(secret).to_string()),
    );
    let reported = Arc::new(Notify::new());
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let (handle, page, reported) = (handle.clone(), page.clone(), reported.clone());
                    tokio::spawn(async move {
                        if let Err(e) = respond(stream, &handle, &page, &reported).await {
                            tracing::debug!("ui request: {e}");
                        }
                    });
                }
                Err(e) => tracing::warn!("ui listener: {e}"),
            },
        }
    }
}

async fn respond(
    mut stream: TcpStream,
    handle: &RuntimeHandle,
    page: &str,
    reported: &Notify,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let target = text.split_whitespace().nth(1).unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (status, kind, body): (&str, &str, Vec<u8>) = match path {
        "/" | "/index.html" => (
            "200 OK",
            "text/html; charset=utf-8",
            page.as_bytes().to_vec(),
        ),
        "/graph.svg" => match handle.snapshot().await {
            Some(s) => ("200 OK", "image/svg+xml", s.graph.to_svg().into_bytes()),
            None => (
                "503 Service Unavailable",
                "text/plain",
                b"runtime stopped".to_vec(),
            ),
        },
        "/status.json" => match handle.snapshot().await {
            Some(s) => {
                let body = json!({
                    "graph": s.graph_id,
                    "started": s.started,
                    "processes": s.processes,
                });
                ("200 OK", "application/json", body.to_string().into_bytes())
            }
            None => (
                "503 Service Unavailable",
                "text/plain",
                b"runtime stopped".to_vec(),
            ),
        },
        "/report" => {
            tracing::info!("ui: a page saw edge counts rise ({query})");
            reported.notify_waiters();
            reported.notify_one();
            ("204 No Content", "text/plain", Vec::new())
        }
        "/hold" => {
            let _ = tokio::time::timeout(Duration::from_secs(20), reported.notified()).await;
            ("200 OK", "image/gif", PIXEL.to_vec())
        }
        _ => ("404 Not Found", "text/plain", b"not found".to_vec()),
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}

/// A 1x1 transparent GIF.
const PIXEL: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];
