//! The sandbox's ECS Exec agent: the agent end of the data channel (and the one thing the
//! Session Manager service adds: `channel_closed` when the agent is done), serving one
//! session on a loopback WebSocket. It behaves as amazon-ssm-agent does for an ECS Exec
//! (InteractiveCommands) session: no handshake unless the session is KMS-encrypted; then
//! HandshakeRequest → HandshakeResponse → encryption challenge → HandshakeComplete; output
//! from a pseudo-terminal in messages of at most 1024 bytes, sequence numbers from 0 (the
//! first flagged SYN), every message kept until acknowledged and resent on a timeout;
//! input that arrives before the terminal is ready is left unacknowledged (the client
//! resends it); pause/start publication honoured.
//!
//! [`Faults`] make it hostile on purpose for tests: tiny messages, pairs swapped, every
//! message twice, acknowledgements lost, a corrupted digest.

use crate::ecsexec::client::handshake;
use crate::ecsexec::crypto::{self, CryptoError, DataKey, DataKeys, SessionCipher, Side};
use crate::ecsexec::frame::{self, Frame, PayloadType, kind};
use async_trait::async_trait;
use futures::{SinkExt, StreamExt};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// The most output bytes the agent puts in one message.
pub const MAX_OUTPUT_PER_MESSAGE: usize = 1024;
/// Unacknowledged messages the agent keeps before it stops reading the terminal.
const WINDOW: usize = 2000;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// Ways to make the agent misbehave, for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Output in messages of at most this many bytes (instead of 1024).
    pub split: Option<usize>,
    /// Send each pair of output messages from this sequence number on in the wrong order
    /// (`Some(0)`: 1 before 0, 3 before 2, …).
    pub reorder: Option<i64>,
    /// Send every output message twice.
    pub duplicate: bool,
    /// Lose every `n`th acknowledgement in each direction: the client's acks of output are
    /// ignored, and input is left unacknowledged the first time (both sides must resend).
    pub drop_acks: Option<u32>,
    /// Corrupt the payload of the output message with this sequence number (digest mismatch).
    pub corrupt_seq: Option<i64>,
}

impl Faults {
    /// Parses `split=3,reorder[=FROM],duplicate,drop-acks=3,corrupt=5` (the sandbox's
    /// `CACHEDECK_SANDBOX_EXEC_FAULTS`).
    pub fn parse(s: &str) -> Result<Faults, String> {
        let mut f = Faults::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .map_or((part, None), |(k, v)| (k, Some(v)));
            let num = |v: Option<&str>| -> Result<u64, String> {
                v.ok_or(format!("`{k}` needs a number, e.g. {k}=3"))?
                    .parse::<u64>()
                    .map_err(|_| format!("`{part}`: not a number"))
            };
            match k {
                "split" => f.split = Some(num(v)?.max(1) as usize),
                "reorder" => f.reorder = Some(v.map(|_| num(v)).transpose()?.unwrap_or(0) as i64),
                "duplicate" => f.duplicate = true,
                "drop-acks" => f.drop_acks = Some(num(v)?.max(2) as u32),
                "corrupt" => f.corrupt_seq = Some(num(v)? as i64),
                _ => {
                    return Err(format!(
                        "unknown fault `{part}` (known: split=N, reorder[=SEQ], duplicate, drop-acks=N, corrupt=SEQ)"
                    ));
                }
            }
        }
        Ok(f)
    }
}

/// KMS on the agent's side: the key id to ask for and a way to decrypt the data key.
#[derive(Clone)]
pub struct AgentKms {
    pub key_id: String,
    pub kms: Arc<LocalKms>,
    /// Send a random challenge for the encryption context, as current agents do.
    pub random_challenge: bool,
}

/// One session to serve.
#[derive(Clone)]
pub struct AgentSpec {
    pub session_id: String,
    pub token: SecretString,
    /// `ecs:<cluster>_<task>_<runtime id>`: the encryption context's target.
    pub target: String,
    /// The command line as ExecuteCommand got it (split like the agent does, shell quoting).
    pub command: String,
    /// The container's environment (nothing else is inherited).
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    pub kms: Option<AgentKms>,
    pub faults: Faults,
    /// The real agent waits a second before it first reads the terminal; zero here unless set.
    pub initial_wait: Duration,
    /// Deadline for the client to connect and open the channel.
    pub accept_timeout: Duration,
    /// Deadline of the whole session.
    pub session_timeout: Duration,
}

/// How a served session went (for tests and the sandbox's log).
#[derive(Debug, Default, Clone)]
pub struct AgentReport {
    pub output_messages: i64,
    pub resent: u64,
    pub input_bytes: usize,
    pub encrypted: bool,
    pub exit_status: Option<u32>,
    pub error: Option<String>,
}

/// Binds a loopback port and serves `spec` on it in a task; returns the stream URL and the
/// task's handle.
pub async fn start(
    spec: AgentSpec,
) -> std::io::Result<(String, tokio::task::JoinHandle<AgentReport>)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    let url = format!(
        "ws://127.0.0.1:{port}/v1/data-channel/{}?role=publish_subscribe",
        spec.session_id
    );
    let handle = tokio::spawn(async move {
        let deadline = spec.session_timeout;
        match tokio::time::timeout(deadline, serve(listener, spec)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => AgentReport {
                error: Some(e),
                ..AgentReport::default()
            },
            Err(_) => AgentReport {
                error: Some(format!("session timed out after {deadline:?}")),
                ..AgentReport::default()
            },
        }
    });
    Ok((url, handle))
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn serve(listener: TcpListener, spec: AgentSpec) -> Result<AgentReport, String> {
    let (tcp, _) = tokio::time::timeout(spec.accept_timeout, listener.accept())
        .await
        .map_err(|_| "no client connected".to_string())?
        .map_err(|e| e.to_string())?;
    drop(listener);
    let path_ok = format!("/v1/data-channel/{}", spec.session_id);
    #[allow(clippy::result_large_err)]
    let check =
        move |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
              resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
            if req.uri().path() == path_ok {
                Ok(resp)
            } else {
                let mut r = tokio_tungstenite::tungstenite::handshake::server::ErrorResponse::new(
                    Some("unknown session".to_string()),
                );
                *r.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::NOT_FOUND;
                Err(r)
            }
        };
    let mut ws = tokio::time::timeout(
        spec.accept_timeout,
        tokio_tungstenite::accept_hdr_async(tcp, check),
    )
    .await
    .map_err(|_| "WebSocket handshake timed out".to_string())?
    .map_err(|e| e.to_string())?;
    // The opening frame: a JSON text with the token. WebSocket pings may come first (the
    // plugin starts its keep-alive pings as soon as the socket is open, racing its opening
    // frame): they are control frames, not messages, and are skipped.
    let open = tokio::time::timeout(spec.accept_timeout, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Text(open))) => return Ok(open),
                _ => return Err("the first message was not the opening text frame".to_string()),
            }
        }
    })
    .await
    .map_err(|_| "no opening frame".to_string())??;
    let open: serde_json::Value = serde_json::from_str(open.as_str()).map_err(|e| e.to_string())?;
    let token = open
        .get("TokenValue")
        .and_then(|t| t.as_str())
        .unwrap_or("");
    if !constant_time_eq(token.as_bytes(), spec.token.expose_secret().as_bytes()) {
        // MGS answers a bad token by not opening the channel; the client waits in vain.
        let _ = ws.close(None).await;
        return Err("bad token".into());
    }
    let mut agent = Agent::new(spec);
    let result = agent.run(&mut ws).await;
    let mut report = agent.report;
    if let Err(e) = result {
        report.error = Some(e);
    }
    Ok(report)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    Process,
    Drop,
    NotReady,
}

struct Outgoing {
    seq: i64,
    bytes: Vec<u8>,
    last_sent: Instant,
    attempts: u32,
}

enum PtyEvent {
    Data(Vec<u8>),
    Eof,
}

struct Pty {
    master: Box<dyn portable_pty::MasterPty + Send>,
    input: std::sync::mpsc::Sender<Vec<u8>>,
    output: mpsc::Receiver<PtyEvent>,
    exit: Option<tokio::sync::oneshot::Receiver<u32>>,
}

struct Agent {
    spec: AgentSpec,
    report: AgentReport,
    next_seq: i64,
    outgoing: VecDeque<Outgoing>,
    expected: i64,
    held: BTreeMap<i64, Frame>,
    paused: bool,
    cipher: Option<SessionCipher>,
    held_back: Option<Vec<u8>>,
    acks_seen: u32,
    inputs_seen: u32,
    corrupted: bool,
    size: (u16, u16),
    pty: Option<Pty>,
    handshake_response: Option<handshake::Response>,
    challenge_response: Option<Vec<u8>>,
    handshaking: bool,
}

impl Agent {
    fn new(spec: AgentSpec) -> Agent {
        Agent {
            spec,
            report: AgentReport::default(),
            next_seq: 0,
            outgoing: VecDeque::new(),
            expected: 0,
            held: BTreeMap::new(),
            paused: false,
            cipher: None,
            held_back: None,
            acks_seen: 0,
            inputs_seen: 0,
            corrupted: false,
            size: (80, 24),
            pty: None,
            handshake_response: None,
            challenge_response: None,
            handshaking: false,
        }
    }

    async fn run(&mut self, ws: &mut Ws) -> Result<(), String> {
        if let Some(kms) = self.spec.kms.clone() {
            self.handshaking = true;
            let done = self.handshake(ws, &kms).await;
            self.handshaking = false;
            if let Err(e) = done {
                self.report.error = Some(e.clone());
                self.close(ws).await?;
                return Err(e);
            }
        }
        tokio::time::sleep(self.spec.initial_wait).await;
        let pty = match spawn_pty(&self.spec, self.size) {
            Ok(p) => p,
            Err(e) => {
                // As the agent: "Unable to start command" goes to its log, not to the
                // session; the service closes the channel.
                tracing::info!(error = %e, "sandbox exec: unable to start command");
                self.report.error = Some(format!("Unable to start command: {e}"));
                return self.close(ws).await;
            }
        };
        self.pty = Some(pty);
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut pty_done = false;
        // When the command has exited, its output is read until the terminal says EOF, or
        // until it has been quiet a moment: a process elsewhere that inherited the
        // terminal must not keep the session open.
        let mut exited: Option<Instant> = None;
        let mut last_data = Instant::now();
        let mut exit_rx = self.pty.as_mut().and_then(|p| p.exit.take());
        loop {
            let can_read = !pty_done && !self.paused && self.outgoing.len() < WINDOW;
            let waiting_exit = exited.is_none() && exit_rx.is_some();
            tokio::select! {
                st = wait_exit(&mut exit_rx), if waiting_exit => {
                    self.report.exit_status = st;
                    exited = Some(Instant::now());
                }
                ev = recv_pty(&mut self.pty), if can_read => match ev {
                    PtyEvent::Data(d) => {
                        last_data = Instant::now();
                        self.send_output(ws, d).await?
                    }
                    PtyEvent::Eof => {
                        pty_done = true;
                        self.flush_held_back(ws).await?;
                    }
                },
                msg = ws.next() => {
                    let Some(msg) = msg else { return Err("the client went away".into()) };
                    match msg.map_err(|e| e.to_string())? {
                        Message::Binary(b) => self.on_frame(ws, &b).await?,
                        Message::Close(_) => return Err("the client closed the socket".into()),
                        _ => {}
                    }
                }
                _ = tick.tick() => {
                    // Quiet counts only while the terminal is being read: with the window
                    // full (a slow client) or the client's pause, what the command wrote last
                    // waits in the terminal and must not be cut off.
                    if !pty_done && (self.paused || self.outgoing.len() >= WINDOW) {
                        last_data = Instant::now();
                    }
                    if let Some(at) = exited
                        && !pty_done
                        && at.elapsed() > Duration::from_millis(300)
                        && last_data.elapsed() > Duration::from_millis(300)
                    {
                        pty_done = true;
                    }
                    // A held-back message does not wait for a partner that may never come.
                    self.flush_held_back(ws).await?;
                    self.resend(ws).await?;
                    if pty_done {
                        break;
                    }
                }
            }
        }
        // PrepareToCloseChannel: give the client time to acknowledge what is outstanding
        // (as long as it keeps making progress), then report the end, and the service
        // closes the channel.
        let mut last_progress = Instant::now();
        let mut left = self.outgoing.len();
        while !self.outgoing.is_empty() && last_progress.elapsed() < Duration::from_secs(2) {
            tokio::select! {
                msg = ws.next() => match msg {
                    Some(Ok(Message::Binary(b))) => self.on_frame(ws, &b).await?,
                    Some(Ok(_)) => {}
                    _ => return Err("the client went away before the end".into()),
                },
                _ = tick.tick() => self.resend(ws).await?,
            }
            if self.outgoing.len() < left {
                left = self.outgoing.len();
                last_progress = Instant::now();
            }
        }
        if exited.is_none()
            && let Some(rx) = exit_rx.as_mut()
        {
            self.report.exit_status = tokio::time::timeout(Duration::from_secs(2), rx)
                .await
                .ok()
                .and_then(Result::ok);
        }
        self.close(ws).await
    }

    async fn close(&mut self, ws: &mut Ws) -> Result<(), String> {
        let closed = serde_json::json!({
            "MessageId": uuid::Uuid::new_v4().to_string(),
            "CreatedDate": time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            "DestinationId": self.spec.target,
            "SessionId": self.spec.session_id,
            "MessageType": kind::CHANNEL_CLOSED,
            "SchemaVersion": 1,
            "Output": "",
        });
        let f = Frame::new(
            kind::CHANNEL_CLOSED,
            0,
            3,
            0,
            closed.to_string().into_bytes(),
        );
        let _ = ws.send(Message::binary(f.encode())).await;
        let _ = ws.close(None).await;
        // A closing handshake, not a dropped socket: acknowledgements still on their way
        // are read until the client answers the close (or a second passes), so the kernel
        // never answers them with a reset that would discard what the client has not read.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
        Ok(())
    }

    async fn handshake(&mut self, ws: &mut Ws, kms: &AgentKms) -> Result<(), String> {
        let started = Instant::now();
        let challenge = if kms.random_challenge {
            random_b64(16)
        } else {
            String::new()
        };
        let request = serde_json::json!({
            "AgentVersion": "3.3.0.0",
            "RequestedClientActions": [
                {"ActionType": "SessionType", "ActionParameters": {
                    "SessionType": "InteractiveCommands",
                    "Properties": {"commands": self.spec.command, "runAsElevated": false}}},
                {"ActionType": "KMSEncryption", "ActionParameters": {
                    "KMSKeyId": kms.key_id, "Challenge": challenge}},
            ]
        });
        self.send_stream(
            ws,
            PayloadType::HandshakeRequest,
            request.to_string().into_bytes(),
        )
        .await?;
        let resp = self
            .wait_for(ws, started, |a| a.handshake_response.take())
            .await
            .map_err(|_| {
                "Handshake timed out. Please ensure that you have the latest version of the session manager plugin.".to_string()
            })?;
        for action in &resp.actions {
            if action.status != 1 {
                return Err(format!(
                    "{} failed on client with status {} error: {}",
                    action.action_type, action.status, action.error
                ));
            }
            if action.action_type == "KMSEncryption" {
                let r: handshake::KmsResponse =
                    serde_json::from_value(action.result.clone()).map_err(|e| e.to_string())?;
                let mut ctx = crypto::context(&self.spec.session_id, &self.spec.target);
                if r.challenge_ack && !challenge.is_empty() {
                    ctx.insert("aws:ssm:RandomChallenge".into(), challenge.clone());
                }
                let key = kms
                    .kms
                    .decrypt(&kms.key_id, &r.ciphertext_key, &ctx)
                    .map_err(|e| format!("Fetching data key failed: {e}"))?;
                self.cipher = Some(
                    SessionCipher::new(key.expose_secret(), Side::Agent)
                        .map_err(|e| e.to_string())?,
                );
            }
        }
        let cipher = self
            .cipher
            .as_ref()
            .ok_or("the client did not process KMSEncryption")?;
        let challenge_bytes = random_bytes(64);
        let sealed = cipher.seal(&challenge_bytes).map_err(|e| e.to_string())?;
        let req = handshake::Challenge { challenge: sealed };
        self.send_stream(
            ws,
            PayloadType::EncChallengeRequest,
            serde_json::to_vec(&req).map_err(|e| e.to_string())?,
        )
        .await?;
        let answer = self
            .wait_for(ws, Instant::now(), |a| a.challenge_response.take())
            .await
            .map_err(|_| "Timed out waiting for encryption challenge.".to_string())?;
        if answer != challenge_bytes {
            return Err("Encryption challenge does not match!".into());
        }
        self.report.encrypted = true;
        let complete = serde_json::json!({
            "HandshakeTimeToComplete": started.elapsed().as_nanos() as i64,
            "CustomerMessage": "This session is encrypted using AWS KMS.",
        });
        self.send_stream(
            ws,
            PayloadType::HandshakeComplete,
            complete.to_string().into_bytes(),
        )
        .await
    }

    async fn wait_for<T>(
        &mut self,
        ws: &mut Ws,
        since: Instant,
        mut take: impl FnMut(&mut Agent) -> Option<T>,
    ) -> Result<T, ()> {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            if let Some(v) = take(self) {
                return Ok(v);
            }
            if since.elapsed() > HANDSHAKE_TIMEOUT {
                return Err(());
            }
            tokio::select! {
                msg = ws.next() => match msg {
                    Some(Ok(Message::Binary(b))) => self.on_frame(ws, &b).await.map_err(|_| ())?,
                    Some(Ok(_)) => {}
                    _ => return Err(()),
                },
                _ = tick.tick() => self.resend(ws).await.map_err(|_| ())?,
            }
        }
    }

    async fn send_output(&mut self, ws: &mut Ws, data: Vec<u8>) -> Result<(), String> {
        let size = self
            .spec
            .faults
            .split
            .unwrap_or(MAX_OUTPUT_PER_MESSAGE)
            .min(MAX_OUTPUT_PER_MESSAGE);
        for chunk in data.chunks(size) {
            let payload = match &self.cipher {
                Some(c) => c.seal(chunk).map_err(|e| e.to_string())?,
                None => chunk.to_vec(),
            };
            self.report.output_messages += 1;
            self.send_stream(ws, PayloadType::Output, payload).await?;
        }
        Ok(())
    }

    async fn send_stream(
        &mut self,
        ws: &mut Ws,
        ty: PayloadType,
        payload: Vec<u8>,
    ) -> Result<(), String> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let flags = u64::from(seq == 0);
        let bytes = Frame::new(kind::OUTPUT, seq, flags, ty as u32, payload).encode();
        self.outgoing.push_back(Outgoing {
            seq,
            bytes: bytes.clone(),
            last_sent: Instant::now(),
            attempts: 0,
        });
        let mut wire = bytes;
        if self.spec.faults.corrupt_seq == Some(seq) && !self.corrupted {
            self.corrupted = true;
            if let Some(last) = wire.last_mut() {
                *last ^= 0x5a;
            }
        }
        if self.paused {
            return Ok(());
        }
        let reorder_from = self.spec.faults.reorder.filter(|from| seq >= *from);
        if let Some(from) = reorder_from
            && ty == PayloadType::Output
        {
            match self.held_back.take() {
                None if (seq - from) % 2 == 0 => {
                    self.held_back = Some(wire);
                    return Ok(());
                }
                None => {}
                Some(earlier) => {
                    self.put(ws, wire).await?;
                    return self.put(ws, earlier).await;
                }
            }
        }
        self.put(ws, wire).await
    }

    async fn flush_held_back(&mut self, ws: &mut Ws) -> Result<(), String> {
        if let Some(b) = self.held_back.take() {
            self.put(ws, b).await?;
        }
        Ok(())
    }

    async fn put(&mut self, ws: &mut Ws, bytes: Vec<u8>) -> Result<(), String> {
        if self.spec.faults.duplicate {
            ws.feed(Message::binary(bytes.clone()))
                .await
                .map_err(|e| e.to_string())?;
        }
        ws.send(Message::binary(bytes))
            .await
            .map_err(|e| e.to_string())
    }

    async fn resend(&mut self, ws: &mut Ws) -> Result<(), String> {
        if self.paused {
            return Ok(());
        }
        let mut due = Vec::new();
        let held = self.held_back_seq();
        for o in self.outgoing.iter_mut() {
            let rto = Duration::from_millis(200) * 2u32.pow(o.attempts.min(3));
            if o.last_sent.elapsed() >= rto && held != Some(o.seq) {
                o.attempts += 1;
                o.last_sent = Instant::now();
                due.push(o.bytes.clone());
                if due.len() >= 64 {
                    break;
                }
            }
        }
        for b in due {
            self.report.resent += 1;
            ws.send(Message::binary(b))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn held_back_seq(&self) -> Option<i64> {
        self.held_back
            .as_ref()
            .and_then(|b| Frame::decode(b).ok().map(|f| f.sequence))
    }

    async fn on_frame(&mut self, ws: &mut Ws, bytes: &[u8]) -> Result<(), String> {
        let f = match Frame::decode(bytes) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(error = %e, "sandbox exec: invalid message ignored");
                return Ok(());
            }
        };
        match f.message_type.as_str() {
            kind::ACK => {
                self.acks_seen += 1;
                if let Some(n) = self.spec.faults.drop_acks
                    && self.acks_seen.is_multiple_of(n)
                {
                    return Ok(());
                }
                if let Ok(ack) = serde_json::from_slice::<frame::AckContent>(&f.payload)
                    && let Some(i) = self.outgoing.iter().position(|o| o.seq == ack.sequence)
                {
                    self.outgoing.remove(i);
                }
                self.paused = false;
            }
            kind::INPUT => self.on_input(ws, f).await?,
            kind::PAUSE_PUBLICATION => self.paused = true,
            kind::START_PUBLICATION => self.paused = false,
            kind::CHANNEL_CLOSED => return Err("the client closed the channel".into()),
            _ => {}
        }
        Ok(())
    }

    async fn on_input(&mut self, ws: &mut Ws, f: Frame) -> Result<(), String> {
        self.paused = false;
        if f.sequence < self.expected {
            return ws
                .send(Message::binary(frame::ack_for(&f).encode()))
                .await
                .map_err(|e| e.to_string());
        }
        if f.sequence > self.expected {
            ws.send(Message::binary(frame::ack_for(&f).encode()))
                .await
                .map_err(|e| e.to_string())?;
            self.held.entry(f.sequence).or_insert(f);
            return Ok(());
        }
        let admit = self.admit(&f);
        if admit == Admit::NotReady {
            // The terminal is not there yet: not handled, not acknowledged; the client
            // resends.
            return Ok(());
        }
        self.inputs_seen += 1;
        if let Some(n) = self.spec.faults.drop_acks
            && self.inputs_seen.is_multiple_of(n)
        {
            return Ok(());
        }
        if admit == Admit::Process {
            self.process_input(&f)?;
        }
        ws.send(Message::binary(frame::ack_for(&f).encode()))
            .await
            .map_err(|e| e.to_string())?;
        self.expected += 1;
        while let Some(next) = self.held.remove(&self.expected) {
            match self.admit(&next) {
                Admit::NotReady => {
                    self.held.insert(next.sequence, next);
                    break;
                }
                Admit::Drop => {}
                Admit::Process => self.process_input(&next)?,
            }
            self.expected += 1;
        }
        Ok(())
    }

    /// What the agent does with the next input in sequence: during the handshake only
    /// handshake payloads count (others are acknowledged and dropped); after it, input
    /// waits for the terminal.
    fn admit(&self, f: &Frame) -> Admit {
        let handshake_payload = matches!(
            PayloadType::from_u32(f.payload_type),
            Some(PayloadType::HandshakeResponse | PayloadType::EncChallengeResponse)
        );
        match (handshake_payload, self.handshaking, self.pty.is_some()) {
            (true, _, _) | (false, false, true) => Admit::Process,
            (false, true, _) => Admit::Drop,
            (false, false, false) => Admit::NotReady,
        }
    }

    fn process_input(&mut self, f: &Frame) -> Result<(), String> {
        match PayloadType::from_u32(f.payload_type) {
            Some(PayloadType::HandshakeResponse) => {
                let r: handshake::Response =
                    serde_json::from_slice(&f.payload).map_err(|e| e.to_string())?;
                self.handshake_response = Some(r);
            }
            Some(PayloadType::EncChallengeResponse) => {
                let c: handshake::Challenge =
                    serde_json::from_slice(&f.payload).map_err(|e| e.to_string())?;
                let cipher = self
                    .cipher
                    .as_ref()
                    .ok_or("challenge response without a key")?;
                self.challenge_response =
                    Some(cipher.open(&c.challenge).map_err(|e| e.to_string())?);
            }
            Some(PayloadType::Output) => {
                let data = match &self.cipher {
                    Some(c) => c.open(&f.payload).map_err(|e| e.to_string())?,
                    None => f.payload.clone(),
                };
                self.report.input_bytes += data.len();
                if let Some(pty) = &self.pty {
                    let _ = pty.input.send(data);
                }
            }
            Some(PayloadType::Size) => {
                #[derive(serde::Deserialize)]
                struct Size {
                    cols: u16,
                    rows: u16,
                }
                if let Ok(s) = serde_json::from_slice::<Size>(&f.payload) {
                    self.size = (s.cols.max(1), s.rows.max(1));
                    if let Some(pty) = &self.pty {
                        let _ = pty.master.resize(portable_pty::PtySize {
                            rows: self.size.1,
                            cols: self.size.0,
                            pixel_width: 0,
                            pixel_height: 0,
                        });
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

async fn wait_exit(rx: &mut Option<tokio::sync::oneshot::Receiver<u32>>) -> Option<u32> {
    match rx {
        Some(r) => r.await.ok(),
        None => std::future::pending().await,
    }
}

async fn recv_pty(pty: &mut Option<Pty>) -> PtyEvent {
    match pty {
        Some(p) => p.output.recv().await.unwrap_or(PtyEvent::Eof),
        None => std::future::pending().await,
    }
}

fn spawn_pty(spec: &AgentSpec, size: (u16, u16)) -> Result<Pty, String> {
    let argv = shell_words::split(&spec.command)
        .map_err(|e| format!("Failed to parse commands input: {e}"))?;
    let argv = if argv.is_empty() {
        vec!["sh".to_string()]
    } else {
        argv
    };
    let program = resolve(&argv[0], &spec.env)
        .ok_or_else(|| format!("exec: \"{}\": executable file not found in $PATH", argv[0]))?;
    let pair = portable_pty::native_pty_system()
        .openpty(portable_pty::PtySize {
            rows: size.1,
            cols: size.0,
            pixel_width: 0,
            pixel_height: 0,
        })
        .map_err(|e| e.to_string())?;
    let mut cmd = portable_pty::CommandBuilder::new(program);
    cmd.args(&argv[1..]);
    cmd.env_clear();
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    if let Some(dir) = &spec.cwd {
        cmd.cwd(dir);
    }
    let mut child = pair.slave.spawn_command(cmd).map_err(|e| e.to_string())?;
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().map_err(|e| e.to_string())?;
    let mut writer = pair.master.take_writer().map_err(|e| e.to_string())?;
    let (out_tx, out_rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; MAX_OUTPUT_PER_MESSAGE];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = out_tx.blocking_send(PtyEvent::Eof);
                    break;
                }
                Ok(n) => {
                    if out_tx
                        .blocking_send(PtyEvent::Data(buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    let (in_tx, in_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        while let Ok(data) = in_rx.recv() {
            if writer
                .write_all(&data)
                .and_then(|_| writer.flush())
                .is_err()
            {
                break;
            }
        }
    });
    let (exit_tx, exit_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let status = child.wait().map(|s| s.exit_code()).unwrap_or(u32::MAX);
        let _ = exit_tx.send(status);
    });
    Ok(Pty {
        master: pair.master,
        input: in_tx,
        output: out_rx,
        exit: Some(exit_rx),
    })
}

/// Finds `program` on the container's PATH (the agent's exec.Command does the same).
fn resolve(program: &str, env: &[(String, String)]) -> Option<PathBuf> {
    if program.contains('/') {
        return Path::new(program).exists().then(|| PathBuf::from(program));
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/usr/local/bin:/usr/bin:/bin");
    std::env::split_paths(path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn random_bytes(n: usize) -> Vec<u8> {
    use aws_lc_rs::rand::SecureRandom;
    let mut v = vec![0u8; n];
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut v);
    v
}

fn random_b64(n: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(random_bytes(n))
}

/// The sandbox's KMS: one local master key that wraps data keys with AES-256-GCM, bound to
/// the key id and the encryption context (as KMS binds them): a data key only decrypts with
/// the same key id and context it was generated with.
pub struct LocalKms {
    master: SessionCipher,
}

impl LocalKms {
    /// A KMS whose master key lives in `path` (0600, created on first use).
    pub fn open(path: &Path) -> std::io::Result<LocalKms> {
        let key = match std::fs::read(path) {
            Ok(k) if k.len() == 64 => k,
            _ => {
                let k = random_bytes(64);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(path)?;
                f.write_all(&k)?;
                k
            }
        };
        Ok(LocalKms::from_key(&key))
    }

    /// A KMS with an in-memory key (tests).
    pub fn ephemeral() -> LocalKms {
        LocalKms::from_key(&random_bytes(64))
    }

    fn from_key(key: &[u8]) -> LocalKms {
        let mut k = [0u8; 64];
        let n = key.len().min(64);
        k[..n].copy_from_slice(&key[..n]);
        // Both halves equal so that sealing and opening use the same key.
        let mut both = [0u8; 64];
        both[..32].copy_from_slice(&k[..32]);
        both[32..].copy_from_slice(&k[..32]);
        #[allow(clippy::expect_used)]
        let master = SessionCipher::new(&both, Side::Agent).expect("a 64-byte key is valid");
        LocalKms { master }
    }

    fn bound(key_id: &str, context: &BTreeMap<String, String>, data: &[u8]) -> Vec<u8> {
        let mut v = serde_json::to_vec(&(key_id, context)).unwrap_or_default();
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    /// Decrypt: the data key, if `blob` was made for this key id and context.
    pub fn decrypt(
        &self,
        key_id: &str,
        blob: &[u8],
        context: &BTreeMap<String, String>,
    ) -> Result<SecretSlice<u8>, CryptoError> {
        let plain = self.master.open(blob).map_err(|_| {
            CryptoError::Kms(
                "Decrypt failed: InvalidCiphertextException (wrong key or encryption context)"
                    .into(),
            )
        })?;
        let header = serde_json::to_vec(&(key_id, context)).unwrap_or_default();
        if plain.len() != header.len() + 4 + 64 || !plain.starts_with(&header) {
            return Err(CryptoError::Kms(
                "Decrypt failed: InvalidCiphertextException (wrong key or encryption context)"
                    .into(),
            ));
        }
        Ok(SecretSlice::from(plain[header.len() + 4..].to_vec()))
    }
}

#[async_trait]
impl DataKeys for LocalKms {
    async fn generate_data_key(
        &self,
        key_id: &str,
        context: &BTreeMap<String, String>,
    ) -> Result<DataKey, CryptoError> {
        let plaintext = random_bytes(64);
        let ciphertext = self
            .master
            .seal(&Self::bound(key_id, context, &plaintext))?;
        Ok(DataKey {
            plaintext: SecretSlice::from(plaintext),
            ciphertext,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_and_reject_unknown_ones() {
        assert_eq!(
            Faults::parse("split=3, reorder,duplicate,drop-acks=4,corrupt=5"),
            Ok(Faults {
                split: Some(3),
                reorder: Some(0),
                duplicate: true,
                drop_acks: Some(4),
                corrupt_seq: Some(5),
            })
        );
        assert_eq!(Faults::parse("reorder=1").map(|f| f.reorder), Ok(Some(1)));
        assert!(
            Faults::parse("explode")
                .unwrap_err()
                .contains("unknown fault")
        );
        assert!(
            Faults::parse("split")
                .unwrap_err()
                .contains("needs a number")
        );
    }

    #[tokio::test]
    async fn local_kms_binds_data_keys_to_key_id_and_context() {
        let kms = LocalKms::ephemeral();
        let ctx = crypto::context("s-1", "ecs:c_t_r");
        let key = kms.generate_data_key("alias/exec", &ctx).await.unwrap();
        let back = kms.decrypt("alias/exec", &key.ciphertext, &ctx).unwrap();
        assert_eq!(back.expose_secret(), key.plaintext.expose_secret());
        let other = crypto::context("s-2", "ecs:c_t_r");
        assert!(kms.decrypt("alias/exec", &key.ciphertext, &other).is_err());
        assert!(kms.decrypt("alias/other", &key.ciphertext, &ctx).is_err());
    }
}
