//! The client end of a data channel: opens the WebSocket, sends the opening text frame, and
//! runs the protocol until `channel_closed` or the socket ends. Reliability as the agent
//! expects it: every stream message acknowledged, output delivered in sequence order
//! (out-of-order messages held, up to a cap), duplicates dropped (and acknowledged again, as
//! their first acknowledgement may have been lost), our own input retransmitted until
//! acknowledged, with a growing delay; pause/start publication honoured; a deadline on every
//! read.

use super::crypto::{self, DataKeys, SessionCipher, Side};
use super::frame::{self, Frame, PayloadType, kind};
use futures::{SinkExt, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// What ExecuteCommand returned.
#[derive(Clone)]
pub struct SessionInfo {
    pub session_id: String,
    pub stream_url: String,
    pub token: SecretString,
    /// The target as the encryption context names it (`ecs:<cluster>_<task>_<runtime id>`).
    pub target: String,
}

impl std::fmt::Debug for SessionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionInfo")
            .field("session_id", &self.session_id)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// How the client behaves.
#[derive(Clone)]
pub struct ClientOptions {
    /// Deadline of the WebSocket connection and the opening frame.
    pub connect_timeout: Duration,
    /// No frame (pongs included) for this long ends the session with an error.
    pub idle_timeout: Duration,
    /// A WebSocket ping is sent this often so a quiet session still reads something.
    pub ping_interval: Duration,
    /// Our unacknowledged input is given up after this long.
    pub resend_give_up: Duration,
    /// Bytes of out-of-order output held before further ones are dropped unacknowledged
    /// (the agent sends them again).
    pub max_held_bytes: usize,
    /// KMS, for sessions the agent encrypts.
    pub data_keys: Option<Arc<dyn DataKeys>>,
    /// Terminal size sent first (cols, rows).
    pub size: Option<(u16, u16)>,
    pub client_version: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            ping_interval: Duration::from_secs(20),
            resend_give_up: Duration::from_secs(60),
            max_held_bytes: 8 << 20,
            data_keys: None,
            size: Some((200, 50)),
            client_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// Input for the remote terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Bytes(Vec<u8>),
    Size { cols: u16, rows: u16 },
}

/// Which stream output bytes belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How a session ended (without error).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ended {
    /// `channel_closed` was received (false: the socket ended first).
    pub channel_closed: bool,
    /// The reason `channel_closed` gave, if any.
    pub reason: Option<String>,
    /// The session was encrypted with KMS.
    pub encrypted: bool,
    /// An exit code the agent sent (only sessions with separate output streams do).
    pub exit_code: Option<i32>,
}

/// Why a session failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot open the data channel {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("no message from the agent for {0:?}; the session is presumed dead")]
    Idle(Duration),
    #[error("input was not acknowledged for {0:?}; the agent stopped reading")]
    ResendTimeout(Duration),
    #[error("rejected a message from the agent: {0}")]
    Frame(#[from] frame::FrameError),
    #[error("handshake failed: {0}")]
    Handshake(String),
    #[error("encryption: {0}")]
    Crypto(#[from] crypto::CryptoError),
    #[error("the data channel failed: {0}")]
    Socket(String),
}

#[derive(Serialize)]
struct OpenDataChannel<'a> {
    #[serde(rename = "MessageSchemaVersion")]
    schema: &'a str,
    #[serde(rename = "RequestId")]
    request_id: String,
    #[serde(rename = "TokenValue")]
    token: &'a str,
    #[serde(rename = "ClientId")]
    client_id: String,
    #[serde(rename = "ClientVersion")]
    client_version: &'a str,
}

/// The handshake JSON (fields as the agent names them).
pub mod handshake {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Request {
        #[serde(rename = "AgentVersion", default)]
        pub agent_version: String,
        #[serde(rename = "RequestedClientActions", default)]
        pub actions: Vec<RequestedAction>,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct RequestedAction {
        #[serde(rename = "ActionType")]
        pub action_type: String,
        #[serde(rename = "ActionParameters", default)]
        pub parameters: serde_json::Value,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Response {
        #[serde(rename = "ClientVersion")]
        pub client_version: String,
        #[serde(rename = "ProcessedClientActions")]
        pub actions: Vec<ProcessedAction>,
        #[serde(rename = "Errors", default)]
        pub errors: Option<Vec<String>>,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct ProcessedAction {
        #[serde(rename = "ActionType")]
        pub action_type: String,
        /// 1 success, 2 failed, 3 unsupported.
        #[serde(rename = "ActionStatus")]
        pub status: i32,
        #[serde(rename = "ActionResult", default)]
        pub result: serde_json::Value,
        #[serde(rename = "Error", default)]
        pub error: String,
    }

    /// KMSEncryption's parameters.
    #[derive(Debug, Clone, Serialize, Deserialize, Default)]
    pub struct KmsRequest {
        #[serde(rename = "KMSKeyId", default)]
        pub key_id: String,
        /// Newer agents add a random challenge to the encryption context.
        #[serde(rename = "Challenge", default)]
        pub challenge: String,
    }

    /// KMSEncryption's result; byte fields are base64 in JSON, as Go writes `[]byte`.
    #[derive(Debug, Clone, Serialize, Deserialize, Default)]
    pub struct KmsResponse {
        #[serde(rename = "KMSCipherTextKey", with = "super::b64")]
        pub ciphertext_key: Vec<u8>,
        #[serde(rename = "KMSCipherTextHash", with = "super::b64", default)]
        pub ciphertext_hash: Vec<u8>,
        #[serde(rename = "ChallengeAcknowledgement", default)]
        pub challenge_ack: bool,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Challenge {
        #[serde(rename = "Challenge", with = "super::b64")]
        pub challenge: Vec<u8>,
    }

    #[derive(Debug, Clone, Serialize, Deserialize, Default)]
    pub struct Complete {
        /// Nanoseconds, as Go's `time.Duration` marshals.
        #[serde(rename = "HandshakeTimeToComplete", default)]
        pub time_to_complete: i64,
        #[serde(rename = "CustomerMessage", default)]
        pub customer_message: String,
    }

    #[derive(Debug, Clone, Serialize, Deserialize, Default)]
    pub struct SessionTypeRequest {
        #[serde(rename = "SessionType")]
        pub session_type: String,
        #[serde(rename = "Properties", default)]
        pub properties: serde_json::Value,
    }
}

/// Go's `[]byte` in JSON: base64, `null` for empty.
pub mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if v.is_empty() {
            s.serialize_none()
        } else {
            s.serialize_str(&STANDARD.encode(v))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(Vec::new()),
            Some(s) => STANDARD.decode(s).map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct SizeData {
    cols: u32,
    rows: u32,
}

#[derive(Deserialize, Default)]
struct ChannelClosed {
    #[serde(rename = "Output", default)]
    output: String,
}

/// Without a HandshakeRequest by then, the session has none (agents send it first thing).
const NO_HANDSHAKE_AFTER: Duration = Duration::from_millis(500);

/// One of our input messages waiting for its acknowledgement.
struct Pending {
    seq: i64,
    bytes: Vec<u8>,
    first_sent: Instant,
    last_sent: Instant,
    attempts: u32,
}

/// The retransmission timeout, computed as both ends do (RFC 6298 smoothing, 1 s cap),
/// doubled for each resend of the same message.
struct Rto {
    srtt: f64,
    rttvar: f64,
}

impl Rto {
    const MAX: Duration = Duration::from_secs(1);
    fn new() -> Rto {
        Rto {
            srtt: 0.1,
            rttvar: 0.0,
        }
    }
    fn sample(&mut self, rtt: Duration) {
        let r = rtt.as_secs_f64();
        self.rttvar = 0.75 * self.rttvar + 0.25 * (self.srtt - r).abs();
        self.srtt = 0.875 * self.srtt + 0.125 * r;
    }
    fn base(&self) -> Duration {
        Duration::from_secs_f64(self.srtt + (4.0 * self.rttvar).max(0.01)).min(Self::MAX)
    }
    fn for_attempt(&self, attempts: u32) -> Duration {
        (self.base() * 2u32.saturating_pow(attempts.min(6))).min(Self::MAX * 4)
    }
}

/// Runs one session to its end. Input comes from `input` (its end closes nothing: the
/// session ends when the agent says so); output goes to `output` in order. A slow reader of
/// `output` slows the session down (the agent resends what we have not acknowledged) but
/// never grows memory beyond the held-message cap.
pub async fn run(
    info: &SessionInfo,
    opts: &ClientOptions,
    mut input: mpsc::Receiver<Input>,
    output: mpsc::Sender<(Stream, Vec<u8>)>,
) -> Result<Ended, ClientError> {
    let mut ws_config = WebSocketConfig::default();
    ws_config.max_message_size = Some(frame::PAYLOAD_OFFSET + frame::MAX_PAYLOAD);
    ws_config.max_frame_size = Some(frame::PAYLOAD_OFFSET + frame::MAX_PAYLOAD);
    let connector = tokio_tungstenite::Connector::Rustls(Arc::new(tls_config()));
    let connect = tokio_tungstenite::connect_async_tls_with_config(
        info.stream_url.as_str(),
        Some(ws_config),
        true,
        Some(connector),
    );
    let url = redact_url(&info.stream_url);
    let (mut ws, _) = tokio::time::timeout(opts.connect_timeout, connect)
        .await
        .map_err(|_| ClientError::Connect {
            url: url.clone(),
            detail: format!("timed out after {:?}", opts.connect_timeout),
        })?
        .map_err(|e| ClientError::Connect {
            url: url.clone(),
            detail: e.to_string(),
        })?;
    let open = OpenDataChannel {
        schema: "1.0",
        request_id: uuid::Uuid::new_v4().to_string(),
        token: info.token.expose_secret(),
        client_id: uuid::Uuid::new_v4().to_string(),
        client_version: &opts.client_version,
    };
    let text = serde_json::to_string(&open).map_err(|e| ClientError::Socket(e.to_string()))?;
    tokio::time::timeout(opts.connect_timeout, ws.send(Message::text(text)))
        .await
        .map_err(|_| ClientError::Connect {
            url: url.clone(),
            detail: "timed out sending the opening frame".into(),
        })?
        .map_err(|e| ClientError::Connect {
            url,
            detail: e.to_string(),
        })?;

    let mut st = State {
        expected: 0,
        held: BTreeMap::new(),
        held_bytes: 0,
        next_seq: 0,
        pending: VecDeque::new(),
        queued: VecDeque::new(),
        paused: false,
        rto: Rto::new(),
        cipher: None,
        encrypted: false,
        exit_code: None,
        ready: false,
        handshaking: false,
        opened: Instant::now(),
    };
    if let Some((cols, rows)) = opts.size {
        st.queue_input(PayloadType::Size, size_json(cols, rows));
    }
    let mut input_open = true;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ping = tokio::time::interval(opts.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_read = Instant::now();

    loop {
        st.flush_queue(&mut ws).await?;
        tokio::select! {
            msg = ws.next() => {
                last_read = Instant::now();
                let msg = match msg {
                    None => return Ok(st.ended(false, None)),
                    Some(Err(e)) => return Err(ClientError::Socket(e.to_string())),
                    Some(Ok(m)) => m,
                };
                let bytes = match msg {
                    Message::Binary(b) => b,
                    Message::Close(_) => return Ok(st.ended(false, None)),
                    Message::Text(t) => {
                        tracing::debug!(len = t.len(), "text frame from the data channel ignored");
                        continue;
                    }
                    _ => continue,
                };
                let f = Frame::decode(&bytes)?;
                match f.message_type.as_str() {
                    kind::OUTPUT => st.on_output(f, info, opts, &mut ws, &output).await?,
                    kind::ACK => st.on_ack(&f),
                    kind::CHANNEL_CLOSED => {
                        let closed: ChannelClosed = serde_json::from_slice(&f.payload).unwrap_or_default();
                        let reason = (!closed.output.is_empty()).then_some(closed.output);
                        let _ = ws.close(None).await;
                        return Ok(st.ended(true, reason));
                    }
                    kind::PAUSE_PUBLICATION => st.paused = true,
                    kind::START_PUBLICATION => st.paused = false,
                    other => tracing::debug!(kind = %crate::escape::escape(other), "unknown message type ignored"),
                }
            }
            inp = input.recv(), if input_open => match inp {
                None => input_open = false,
                Some(Input::Bytes(b)) => {
                    for chunk in b.chunks(1024) {
                        st.queue_input(PayloadType::Output, chunk.to_vec());
                    }
                }
                Some(Input::Size { cols, rows }) => st.queue_input(PayloadType::Size, size_json(cols, rows)),
            },
            _ = tick.tick() => {
                if last_read.elapsed() > opts.idle_timeout {
                    return Err(ClientError::Idle(opts.idle_timeout));
                }
                st.resend(&mut ws, opts.resend_give_up).await?;
            }
            _ = ping.tick() => {
                ws.send(Message::Ping(Vec::new().into())).await.map_err(|e| ClientError::Socket(e.to_string()))?;
            }
        }
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct State {
    expected: i64,
    held: BTreeMap<i64, Frame>,
    held_bytes: usize,
    next_seq: i64,
    pending: VecDeque<Pending>,
    /// Input not yet sent (publication paused, or the payload must be encrypted first).
    queued: VecDeque<(PayloadType, Vec<u8>)>,
    paused: bool,
    rto: Rto,
    cipher: Option<SessionCipher>,
    encrypted: bool,
    exit_code: Option<i32>,
    /// Input may flow: the handshake is complete, or output came without one. During a
    /// handshake the agent drops (acknowledged) input that is not part of it.
    ready: bool,
    handshaking: bool,
    opened: Instant,
}

impl State {
    fn ended(&self, channel_closed: bool, reason: Option<String>) -> Ended {
        Ended {
            channel_closed,
            reason,
            encrypted: self.encrypted,
            exit_code: self.exit_code,
        }
    }

    fn queue_input(&mut self, ty: PayloadType, payload: Vec<u8>) {
        self.queued.push_back((ty, payload));
    }

    async fn flush_queue(&mut self, ws: &mut Ws) -> Result<(), ClientError> {
        if !self.ready && !self.handshaking && self.opened.elapsed() > NO_HANDSHAKE_AFTER {
            self.ready = true;
        }
        while self.ready && !self.paused {
            let Some((ty, payload)) = self.queued.pop_front() else {
                break;
            };
            self.send_stream(ws, ty, payload).await?;
        }
        Ok(())
    }

    async fn send_stream(
        &mut self,
        ws: &mut Ws,
        ty: PayloadType,
        payload: Vec<u8>,
    ) -> Result<(), ClientError> {
        let payload = match (&self.cipher, ty) {
            (Some(c), PayloadType::Output) => c.seal(&payload)?,
            _ => payload,
        };
        let f = Frame::new(kind::INPUT, self.next_seq, 0, ty as u32, payload);
        let bytes = f.encode();
        send(ws, bytes.clone()).await?;
        let now = Instant::now();
        self.pending.push_back(Pending {
            seq: self.next_seq,
            bytes,
            first_sent: now,
            last_sent: now,
            attempts: 0,
        });
        self.next_seq += 1;
        Ok(())
    }

    async fn resend(&mut self, ws: &mut Ws, give_up: Duration) -> Result<(), ClientError> {
        if self.paused {
            return Ok(());
        }
        let rto = &self.rto;
        for p in self.pending.iter_mut() {
            if p.first_sent.elapsed() > give_up {
                return Err(ClientError::ResendTimeout(give_up));
            }
            if p.last_sent.elapsed() >= rto.for_attempt(p.attempts) {
                p.attempts += 1;
                p.last_sent = Instant::now();
                tracing::debug!(seq = p.seq, attempt = p.attempts, "resending input");
                send(ws, p.bytes.clone()).await?;
            }
        }
        Ok(())
    }

    fn on_ack(&mut self, f: &Frame) {
        let Ok(ack) = serde_json::from_slice::<frame::AckContent>(&f.payload) else {
            tracing::debug!("unreadable acknowledgement ignored");
            return;
        };
        if let Some(i) = self.pending.iter().position(|p| p.seq == ack.sequence)
            && let Some(p) = self.pending.remove(i)
            && p.attempts == 0
        {
            self.rto.sample(p.last_sent.elapsed());
        }
    }

    async fn on_output(
        &mut self,
        f: Frame,
        info: &SessionInfo,
        opts: &ClientOptions,
        ws: &mut Ws,
        output: &mpsc::Sender<(Stream, Vec<u8>)>,
    ) -> Result<(), ClientError> {
        if f.sequence < self.expected {
            // Seen before: our acknowledgement was probably lost.
            return send(ws, frame::ack_for(&f).encode()).await;
        }
        if f.sequence > self.expected {
            let size = f.payload.len();
            if self.held.contains_key(&f.sequence) {
                return send(ws, frame::ack_for(&f).encode()).await;
            }
            if self.held_bytes + size > opts.max_held_bytes {
                // No room: not acknowledged, so the agent sends it again later.
                return Ok(());
            }
            send(ws, frame::ack_for(&f).encode()).await?;
            self.held_bytes += size;
            self.held.insert(f.sequence, f);
            return Ok(());
        }
        send(ws, frame::ack_for(&f).encode()).await?;
        self.process(f, info, opts, ws, output).await?;
        self.expected += 1;
        while let Some(next) = self.held.remove(&self.expected) {
            self.held_bytes -= next.payload.len();
            self.process(next, info, opts, ws, output).await?;
            self.expected += 1;
        }
        Ok(())
    }

    async fn process(
        &mut self,
        f: Frame,
        info: &SessionInfo,
        opts: &ClientOptions,
        ws: &mut Ws,
        output: &mpsc::Sender<(Stream, Vec<u8>)>,
    ) -> Result<(), ClientError> {
        let ty = PayloadType::from_u32(f.payload_type);
        match ty {
            Some(PayloadType::HandshakeRequest) => {
                self.handshaking = true;
                self.on_handshake(&f, info, opts, ws).await
            }
            Some(PayloadType::EncChallengeRequest) => {
                let req: handshake::Challenge =
                    serde_json::from_slice(&f.payload).map_err(|e| {
                        ClientError::Handshake(format!("unreadable encryption challenge: {e}"))
                    })?;
                let cipher = self.cipher.as_ref().ok_or_else(|| {
                    ClientError::Handshake("encryption challenge before a key was agreed".into())
                })?;
                let plain = cipher.open(&req.challenge)?;
                let resp = handshake::Challenge {
                    challenge: cipher.seal(&plain)?,
                };
                let bytes =
                    serde_json::to_vec(&resp).map_err(|e| ClientError::Handshake(e.to_string()))?;
                self.send_stream(ws, PayloadType::EncChallengeResponse, bytes)
                    .await
            }
            Some(PayloadType::HandshakeComplete) => {
                let c: handshake::Complete = serde_json::from_slice(&f.payload).unwrap_or_default();
                self.handshaking = false;
                self.ready = true;
                if !c.customer_message.is_empty() {
                    tracing::info!(message = %crate::escape::escape(&c.customer_message), "handshake complete");
                }
                Ok(())
            }
            Some(t @ (PayloadType::Output | PayloadType::StdErr | PayloadType::ExitCode)) => {
                let data = match &self.cipher {
                    Some(c) => c.open(&f.payload)?,
                    None => f.payload,
                };
                match t {
                    PayloadType::ExitCode => {
                        self.exit_code = String::from_utf8_lossy(&data).trim().parse().ok();
                        Ok(())
                    }
                    _ => {
                        if !self.handshaking {
                            self.ready = true;
                        }
                        let stream = if t == PayloadType::StdErr {
                            Stream::Stderr
                        } else {
                            Stream::Stdout
                        };
                        if data.is_empty() {
                            return Ok(());
                        }
                        output
                            .send((stream, data))
                            .await
                            .map_err(|_| ClientError::Socket("the output reader went away".into()))
                    }
                }
            }
            _ => {
                tracing::debug!(payload_type = f.payload_type, "payload type ignored");
                Ok(())
            }
        }
    }

    async fn on_handshake(
        &mut self,
        f: &Frame,
        info: &SessionInfo,
        opts: &ClientOptions,
        ws: &mut Ws,
    ) -> Result<(), ClientError> {
        let req: handshake::Request = serde_json::from_slice(&f.payload)
            .map_err(|e| ClientError::Handshake(format!("unreadable HandshakeRequest: {e}")))?;
        let mut actions = Vec::new();
        let mut errors = Vec::new();
        for action in &req.actions {
            let mut done = handshake::ProcessedAction {
                action_type: action.action_type.clone(),
                status: 1,
                result: serde_json::Value::Null,
                error: String::new(),
            };
            match action.action_type.as_str() {
                "SessionType" => {
                    let st: handshake::SessionTypeRequest =
                        serde_json::from_value(action.parameters.clone()).unwrap_or_default();
                    if !matches!(
                        st.session_type.as_str(),
                        "Standard_Stream" | "InteractiveCommands" | "NonInteractiveCommands"
                    ) {
                        done.status = 2;
                        done.error = format!("Unknown session type {}", st.session_type);
                    }
                }
                "KMSEncryption" => {
                    let kms: handshake::KmsRequest =
                        serde_json::from_value(action.parameters.clone()).unwrap_or_default();
                    match &opts.data_keys {
                        None => {
                            done.status = 2;
                            done.error = "this client has no KMS access configured".into();
                        }
                        Some(keys) => {
                            let mut ctx = crypto::context(&info.session_id, &info.target);
                            let challenge = !kms.challenge.is_empty();
                            if challenge {
                                ctx.insert("aws:ssm:RandomChallenge".into(), kms.challenge.clone());
                            }
                            match keys.generate_data_key(&kms.key_id, &ctx).await {
                                Ok(key) => {
                                    self.cipher =
                                        Some(SessionCipher::from_data_key(&key, Side::Client)?);
                                    self.encrypted = true;
                                    done.result = serde_json::to_value(handshake::KmsResponse {
                                        ciphertext_key: key.ciphertext,
                                        ciphertext_hash: Vec::new(),
                                        challenge_ack: challenge,
                                    })
                                    .unwrap_or_default();
                                }
                                Err(e) => {
                                    done.status = 2;
                                    done.error =
                                        format!("Failed to process action KMSEncryption: {e}");
                                }
                            }
                        }
                    }
                }
                other => {
                    done.status = 3;
                    done.error = format!("Unsupported action {other}");
                }
            }
            if !done.error.is_empty() {
                errors.push(done.error.clone());
            }
            actions.push(done);
        }
        let resp = handshake::Response {
            client_version: opts.client_version.clone(),
            actions,
            errors: (!errors.is_empty()).then(|| errors.clone()),
        };
        let bytes = serde_json::to_vec(&resp).map_err(|e| ClientError::Handshake(e.to_string()))?;
        self.send_stream(ws, PayloadType::HandshakeResponse, bytes)
            .await?;
        if let Some(first) = errors.first() {
            return Err(ClientError::Handshake(first.clone()));
        }
        Ok(())
    }
}

async fn send(ws: &mut Ws, bytes: Vec<u8>) -> Result<(), ClientError> {
    ws.send(Message::binary(bytes))
        .await
        .map_err(|e| ClientError::Socket(e.to_string()))
}

fn size_json(cols: u16, rows: u16) -> Vec<u8> {
    serde_json::to_vec(&SizeData {
        cols: cols.into(),
        rows: rows.into(),
    })
    .unwrap_or_default()
}

/// The stream URL without its query (which may carry a signature).
pub fn redact_url(url: &str) -> String {
    crate::escape::escape(url.split('?').next().unwrap_or(url))
}

fn tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kms_response_bytes_are_base64_as_go_writes_them() {
        let r = handshake::KmsResponse {
            ciphertext_key: vec![1, 2, 3],
            ciphertext_hash: vec![],
            challenge_ack: false,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"KMSCipherTextKey":"AQID","KMSCipherTextHash":null,"ChallengeAcknowledgement":false}"#
        );
        let back: handshake::KmsResponse = serde_json::from_str(&json).unwrap();
        assert_eq!(back.ciphertext_key, vec![1, 2, 3]);
    }

    #[test]
    fn retransmission_timeout_grows_and_is_capped() {
        let mut rto = Rto::new();
        let first = rto.for_attempt(0);
        assert!(rto.for_attempt(1) > first);
        assert!(rto.for_attempt(30) <= Duration::from_secs(4));
        for _ in 0..50 {
            rto.sample(Duration::from_millis(2));
        }
        assert!(rto.base() < first, "{:?} !< {first:?}", rto.base());
    }

    #[test]
    fn stream_urls_lose_their_query_in_messages() {
        assert_eq!(
            redact_url(
                "wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/s-1?role=publish_subscribe&X-Amz-Signature=abc"
            ),
            "wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/s-1"
        );
    }
}
