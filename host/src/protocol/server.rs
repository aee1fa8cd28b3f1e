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

use tokio::task::JoinHandle;

use super::runtime::{FbpRuntime, Snapshot, To};
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

/// A request to the task that owns the runtime.
#[derive(Debug)]
enum Command {
    Protocol(Box<Envelope>, Access, oneshot::Sender<Vec<Outgoing>>),
    Snapshot(oneshot::Sender<Snapshot>),
}

/// A cheap handle to the task that owns an [`FbpRuntime`].
#[derive(Debug, Clone)]
pub struct RuntimeHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<String>,
}

impl RuntimeHandle {
    /// Handles one client message; the runtime's replies for that client.
    pub async fn request(&self, msg: Envelope, access: Access) -> Option<Vec<Outgoing>> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Protocol(Box::new(msg), access, reply))
            .await
            .ok()?;
        answer.await.ok()
    }

    /// The graph and processes now running.
    pub async fn snapshot(&self) -> Option<Snapshot> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Snapshot(reply)).await.ok()?;
        answer.await.ok()
    }

    /// Every broadcast (graph changes, edge data, errors) as frame text.
    pub fn events(&self) -> broadcast::Receiver<String> {
        self.events.subscribe()
    }
}

/// Moves `runtime` into its own task. The task ends, stopping the network, once every
/// handle is dropped.
pub fn spawn_runtime(
    mut runtime: FbpRuntime,
    events: broadcast::Sender<String>,
) -> (RuntimeHandle, JoinHandle<()>) {
    let (commands, mut inbox) = mpsc::channel::<Command>(64);
    let broadcast = events.clone();
    let task = tokio::spawn(async move {
        while let Some(cmd) = inbox.recv().await {
            match cmd {
                Command::Protocol(msg, access, reply) => {
                    let mut direct = Vec::new();
                    for r in runtime.handle(*msg, access).await {
                        match r {
                            To::Sender(o) => direct.push(o),
                            To::All(o) => {
                                let _ = broadcast.send(o.to_text());
                            }
                        }
                    }
                    let _ = reply.send(direct);
                }
                Command::Snapshot(reply) => {
                    let _ = reply.send(runtime.snapshot());
                }
            }
        }
        runtime.shutdown(Duration::from_secs(5)).await;
    });
    (RuntimeHandle { commands, events }, task)
}

/// Serves the protocol on `listener` until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    handle: RuntimeHandle,
    options: ServerOptions,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let handle = handle.clone();
                    let options = options.clone();
                    tokio::spawn(async move {
                        if let Err(e) = client(stream, peer, handle, options).await {
                            tracing::debug!("protocol client {peer}: {e}");
                        }
                    });
                }
                Err(e) => tracing::warn!("protocol listener: {e}"),
            },
        }
    }
}

async fn client(
    stream: TcpStream,
    peer: SocketAddr,
    handle: RuntimeHandle,
    options: ServerOptions,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut events = handle.events();
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
                        match handle.request(msg, access).await {
                            Some(replies) => replies,
                            None => break,
                        }
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
