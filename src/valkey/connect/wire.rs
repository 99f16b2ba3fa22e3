//! What came over the wire while logging in: a stream wrapper that counts the bytes read
//! until the first PONG, keeps their first two, and refuses more than [`SETUP_CAP`] of them.
//!
//! The redis crate's errors cannot tell a TLS-only endpoint from a server that dropped the
//! link mid-reply (both are a reset or a closed connection), and it buffers a bulk reply of any
//! size. The evidence kept here can: a TLS record starts `15 03` (alert) or `16 03`
//! (handshake); a reply that had begun before the link dropped was cut mid-reply; and the
//! replies to a login and a PING are a few bytes, so megabytes instead are not Valkey talking
//! (and are not buffered).

use super::error::{ConnectError, Layer};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection's byte stream, plain TCP or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Most bytes accepted before the first PONG. The replies to HELLO/AUTH, CLIENT SETINFO and
/// PING are well under a kilobyte.
pub const SETUP_CAP: u64 = 1 << 20;

/// The evidence, shared by the stream (writing it) and the connector (reading it).
#[derive(Debug, Default)]
pub struct Seen {
    bytes: AtomicU64,
    /// The first two bytes, big-endian, once two have arrived.
    first: AtomicU16,
    over_cap: AtomicBool,
    /// Set after the first PONG: from then on bytes are neither counted nor capped.
    done: AtomicBool,
}

impl Seen {
    pub fn setup_done(&self) {
        self.done.store(true, Ordering::Relaxed);
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Whether what arrived first was a TLS record (an alert or a handshake).
    fn looks_like_tls(&self) -> bool {
        self.bytes() >= 2 && matches!(self.first.load(Ordering::Relaxed), 0x1503 | 0x1603)
    }

    /// Replaces the cause (and, where the wire says more, the detail) of a failure during
    /// login or the first PING of a plain or TLS connection with what the bytes show.
    pub fn explain(&self, err: ConnectError, tls: bool) -> ConnectError {
        if self.over_cap.load(Ordering::Relaxed) {
            return ConnectError {
                layer: Layer::Protocol,
                detail: format!(
                    "more than {} MiB came back in answer to the login and PING, whose replies are a few bytes",
                    SETUP_CAP >> 20
                ),
                likely_cause: Some(
                    "something other than Valkey/Redis answers on that port, or a proxy in between sends something else; check what listens there".into(),
                ),
                code: None,
                ..err
            };
        }
        let received = self.bytes();
        if err.layer == Layer::Timeout && !tls {
            return err.with_cause(if received == 0 {
                "the server accepted the connection and sent nothing: it is stuck or overloaded (a slow command, a fork on a busy host), or the endpoint expects TLS (use rediss://, tls on)"
            } else {
                "a reply began and did not finish: the server is overloaded, or the network in between drops packets"
            });
        }
        if err.layer != Layer::Protocol || err.code.is_some() {
            return err;
        }
        if !tls && self.looks_like_tls() {
            return ConnectError {
                detail: "a TLS record came back instead of a RESP reply".into(),
                ..err
            }
            .with_cause("the endpoint answered with TLS: use rediss:// (tls on)");
        }
        if received == 0 {
            let cause = if tls {
                "the server dropped the connection before answering: it refuses clients (maxclients reached), is restarting, or a proxy in between has no healthy target"
            } else {
                "the server dropped the connection before answering: a TLS-only endpoint (use rediss://, tls on), or a server refusing clients (maxclients reached, restarting, a proxy with no healthy target)"
            };
            return err.with_cause(cause);
        }
        ConnectError {
            detail: format!("{} after {received} bytes of a reply", err.detail),
            ..err
        }
        .with_cause(
            "the server, or something in between, dropped the connection in the middle of a reply (a crash or restart, a client-output-buffer limit, a proxy's size or idle limit); check the server's log",
        )
    }
}

/// A stream that records what it reads into a [`Seen`].
pub struct Watched<S> {
    inner: S,
    seen: Arc<Seen>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, seen: Arc<Seen>) -> Self {
        Watched { inner, seen }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let seen = Arc::clone(&self.seen);
        if seen.done.load(Ordering::Relaxed) {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        if seen.over_cap.load(Ordering::Relaxed) {
            return Poll::Ready(Err(io::Error::other("reply over the login cap")));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let new = &buf.filled()[before..];
            let total = seen.bytes.fetch_add(new.len() as u64, Ordering::Relaxed);
            // The first two bytes, whichever reads they came in.
            if total < 2 && !new.is_empty() {
                let prior = seen.first.load(Ordering::Relaxed);
                let mut both = [(prior >> 8) as u8, prior as u8];
                for (i, b) in new.iter().take(2 - total as usize).enumerate() {
                    both[total as usize + i] = *b;
                }
                seen.first
                    .store(u16::from_be_bytes(both), Ordering::Relaxed);
            }
            if total + new.len() as u64 > SETUP_CAP {
                seen.over_cap.store(true, Ordering::Relaxed);
                // An error hands back nothing: the bytes of this read are dropped.
                buf.set_filled(before);
                return Poll::Ready(Err(io::Error::other("reply over the login cap")));
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A deadline as people read it: `800 ms`, `1.5 s`, `30 s`.
pub fn human(d: std::time::Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        return format!("{} ms", ms.round() as u64);
    }
    let s = format!("{:.1}", ms / 1000.0);
    format!("{} s", s.strip_suffix(".0").unwrap_or(&s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    #[test]
    fn deadlines_read_as_people_write_them() {
        assert_eq!(human(Duration::from_nanos(1_499_921_433)), "1.5 s");
        assert_eq!(human(Duration::from_millis(800)), "800 ms");
        assert_eq!(human(Duration::from_secs(30)), "30 s");
        assert_eq!(human(Duration::from_millis(2_040)), "2 s");
    }

    fn protocol(detail: &str) -> ConnectError {
        ConnectError::new(Layer::Protocol, "127.0.0.1:6379", detail, None)
    }

    async fn read_all(bytes: Vec<u8>) -> (Arc<Seen>, io::Result<Vec<u8>>) {
        let seen = Arc::new(Seen::default());
        let mut w = Watched::new(&bytes[..], Arc::clone(&seen));
        let mut out = Vec::new();
        let r = w.read_to_end(&mut out).await.map(|_| out);
        (seen, r)
    }

    #[tokio::test]
    async fn a_tls_alert_says_use_tls_and_a_cut_reply_says_mid_reply() {
        let (seen, _) = read_all(vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]).await;
        let e = seen.explain(protocol("Connection reset by peer"), false);
        assert_eq!(
            e.likely_cause.as_deref(),
            Some("the endpoint answered with TLS: use rediss:// (tls on)")
        );

        let (seen, _) = read_all(b"$100\r\npartial".to_vec()).await;
        let e = seen.explain(protocol("Connection reset by peer"), false);
        assert_eq!(
            e.detail,
            "Connection reset by peer after 13 bytes of a reply"
        );
        assert!(
            e.likely_cause
                .as_deref()
                .is_some_and(|c| c.contains("in the middle of a reply") && !c.contains("TLS")),
            "{e}"
        );

        let (seen, _) = read_all(Vec::new()).await;
        let e = seen.explain(protocol("connection closed"), false);
        assert!(
            e.likely_cause
                .as_deref()
                .is_some_and(|c| c.contains("rediss://"))
        );
        let e = seen.explain(protocol("connection closed"), true);
        assert!(
            e.likely_cause
                .as_deref()
                .is_some_and(|c| !c.contains("rediss://"))
        );
    }

    #[tokio::test]
    async fn more_than_the_cap_before_the_first_pong_is_refused_and_named() {
        let (seen, r) = read_all(vec![b'x'; (SETUP_CAP + 10) as usize]).await;
        assert!(r.is_err(), "the read is cut at the cap");
        let e = seen.explain(protocol("broken pipe"), false);
        assert_eq!(e.layer, Layer::Protocol);
        assert!(e.detail.starts_with("more than 1 MiB came back"), "{e}");

        // After the first PONG the stream is not capped.
        let seen = Arc::new(Seen::default());
        seen.setup_done();
        let bytes = vec![b'x'; (SETUP_CAP + 10) as usize];
        let mut w = Watched::new(&bytes[..], seen);
        let mut out = Vec::new();
        assert_eq!(w.read_to_end(&mut out).await.ok(), Some(bytes.len()));
    }
}
