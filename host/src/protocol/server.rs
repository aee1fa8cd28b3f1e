//! The WebSocket server: accepts clients (offering sub-protocol `noflo`), feeds their
//! messages in order to the task that owns the [`FbpRuntime`], and writes back its
//! replies and broadcasts.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::runtime::{FbpRuntime, To};
use super::{Access, Envelope, Outgoing};

/// Offers `noflo` when the client asks for it; accepts without a sub-protocol otherwise.
#[allow(
    clippy::result_large_err,
    clippy::unnecessary_wraps,
    reason = "the signature tungstenite's handshake callback requires"
)]
fn negotiate(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    let offered = req
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim() == "noflo"));
    if offered {
        resp.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("noflo"));
    }
    Ok(resp)
}

/// Secrets of the server.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Clients must send this secret to change anything.
    pub secret: Option<String>,
    /// Clients sending this secret may watch but not change.
    pub read_secret: Option<String>,
}

type Request_ = (Envelope, Access, oneshot::Sender<Vec<Outgoing>>);

/// Serves the protocol on `listener` until `stop` resolves, then stops the runtime's
/// network. `broadcast` must be the sender the runtime was made with.
pub async fn serve(
    listener: TcpListener,
    mut runtime: FbpRuntime,
    broadcast: broadcast::Sender<String>,
    options: ServerOptions,
    stop: impl std::future::Future<Output = ()>,
) {
    let (requests, mut inbox) = mpsc::channel::<Request_>(64);
    // The owner task: one message at a time, in arrival order.
    let owner_broadcast = broadcast.clone();
    let owner = tokio::spawn(async move {
        while let Some((msg, access, reply)) = inbox.recv().await {
            let mut direct = Vec::new();
            for r in runtime.handle(msg, access).await {
                match r {
                    To::Sender(o) => direct.push(o),
                    To::All(o) => {
                        let _ = owner_broadcast.send(o.to_text());
                    }
                }
            }
            let _ = reply.send(direct);
        }
        runtime.shutdown(Duration::from_secs(5)).await;
    });
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let requests = requests.clone();
                    let events = broadcast.subscribe();
                    let options = options.clone();
                    tokio::spawn(async move {
                        if let Err(e) = client(stream, peer, requests, events, options).await {
                            tracing::debug!("protocol client {peer}: {e}");
                        }
                    });
                }
                Err(e) => tracing::warn!("protocol listener: {e}"),
            },
        }
    }
    drop(requests);
    let _ = owner.await;
}

async fn client(
    stream: TcpStream,
    peer: SocketAddr,
    requests: mpsc::Sender<Request_>,
    mut events: broadcast::Receiver<String>,
    options: ServerOptions,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let ws = tokio_tungstenite::accept_hdr_async(stream, negotiate).await?;
    tracing::debug!("protocol client {peer} connected");
    let (mut tx, mut rx) = ws.split();
    // Broadcasts (graph changes, edge data) reach a client once it has shown a secret.
    let open = options.secret.is_none() && options.read_secret.is_none();
    let mut granted = if open { Access::Full } else { Access::None };
    loop {
        tokio::select! {
            frame = rx.next() => {
                let text = match frame {
                    Some(Ok(Frame::Text(t))) => t.to_string(),
                    Some(Ok(Frame::Close(_))) | None => break,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e),
                };
                let replies = match Envelope::parse(&text) {
                    Ok(msg) => {
                        let access = Access::of(
                            msg.secret.as_deref(),
                            options.secret.as_deref(),
                            options.read_secret.as_deref(),
                        );
                        if access != Access::None && granted != Access::Full {
                            granted = access;
                        }
                        let (reply, answer) = oneshot::channel();
                        if requests.send((msg, access, reply)).await.is_err() {
                            break;
                        }
                        answer.await.unwrap_or_default()
                    }
                    Err(e) => {
                        let protocol = serde_json::from_str::<serde_json::Value>(&text)
                            .ok()
                            .and_then(|v| v.get("protocol").and_then(|p| p.as_str()).map(str::to_string))
                            .unwrap_or_else(|| "runtime".into());
                        vec![Outgoing::error(&protocol, e.to_string())]
                    }
                };
                for r in replies {
                    tx.send(Frame::text(r.to_text())).await?;
                }
            }
            event = events.recv() => match event {
                Ok(text) if granted != Access::None => tx.send(Frame::text(text)).await?,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("protocol client {peer} fell behind; {n} events skipped");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    Ok(())
}
