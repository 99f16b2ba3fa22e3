//! A connection whose replies are read in place: one buffer, and frames that are ranges into
//! it (`redis_protocol`'s RESP2 range decoder), so a reply of thousands of key names costs no
//! value per key. The keyspace walk of a snapshot's sample reads a million names through it;
//! everything else uses the redis crate's connections.
//!
//! One request at a time, each under the command deadline; a reply may not exceed
//! [`REPLY_CAP`]. Server errors are escaped and carry no secret.

use super::error::{ConnectError, Layer};
use super::wire::{Stream, human};
use crate::domain::Endpoint;
use redis_protocol::resp2::decode::decode_range;
pub use redis_protocol::resp2::types::RangeFrame;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest reply read: a SCAN page of key names is far below it, and a server that sends
/// more is not answering what was asked.
pub const REPLY_CAP: usize = 256 << 20;

pub struct RawConnection {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
    /// Bytes of `buf` that belong to the reply handed out last.
    used: usize,
    endpoint: Endpoint,
    secret: Option<SecretString>,
    timeout: Duration,
}

/// One reply: a frame of ranges, and the bytes they index.
pub struct Reply<'a> {
    pub frame: RangeFrame,
    pub bytes: &'a [u8],
}

impl Reply<'_> {
    pub fn slice(&self, range: &(usize, usize)) -> &[u8] {
        &self.bytes[range.0..range.1]
    }

    /// The server's error, if the reply is one.
    pub fn error(&self) -> Option<String> {
        match &self.frame {
            RangeFrame::Error(r) => Some(String::from_utf8_lossy(self.slice(r)).into_owned()),
            _ => None,
        }
    }
}

impl RawConnection {
    pub(super) fn new(
        stream: Box<dyn Stream>,
        endpoint: Endpoint,
        secret: Option<SecretString>,
        timeout: Duration,
    ) -> RawConnection {
        RawConnection {
            stream,
            buf: Vec::with_capacity(64 << 10),
            used: 0,
            endpoint,
            secret,
            timeout,
        }
    }

    fn error(&self, layer: Layer, detail: impl AsRef<str>) -> ConnectError {
        ConnectError::new(
            layer,
            self.endpoint.address(),
            detail,
            self.secret.as_ref().map(|s| s.expose_secret()),
        )
    }

    /// AUTH (with `username` for an ACL user) when there is a password, then PING.
    pub(super) async fn login(&mut self, username: Option<&str>) -> Result<(), ConnectError> {
        if let Some(password) = self.secret.clone() {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = username {
                auth.arg(user);
            }
            auth.arg(password.expose_secret());
            let refused = self.call(&auth).await?.error();
            if let Some(e) = refused {
                return Err(self.error(Layer::Auth, e).with_cause(
                    "wrong user or password for this cache (check the env var / SSM parameter it comes from)",
                ));
            }
        }
        let answer = {
            let reply = self.call(&redis::cmd("PING")).await?;
            match &reply.frame {
                RangeFrame::SimpleString(r) if reply.slice(r) == b"PONG" => None,
                _ => Some(
                    reply
                        .error()
                        .unwrap_or_else(|| "PING was not answered with PONG".into()),
                ),
            }
        };
        match answer {
            None => Ok(()),
            Some(detail) => Err(self.error(Layer::Protocol, detail)),
        }
    }

    /// Sends `cmd` and reads its reply, both under the command deadline.
    pub async fn call(&mut self, cmd: &redis::Cmd) -> Result<Reply<'_>, ConnectError> {
        // The previous reply's bytes are done with; normally nothing follows them.
        self.buf.drain(..self.used);
        self.used = 0;
        let packed = cmd.get_packed_command();
        let timeout = self.timeout;
        let sent = tokio::time::timeout(timeout, self.stream.write_all(&packed)).await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(self.error(Layer::Protocol, e.to_string())),
            Err(_) => {
                return Err(self.error(
                    Layer::Timeout,
                    format!("no room to send within {}", human(timeout)),
                ));
            }
        }
        let (frame, used) = match tokio::time::timeout(timeout, self.read_frame()).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(self.error(
                    Layer::Timeout,
                    format!("no complete reply within {}", human(timeout)),
                ));
            }
        };
        self.used = used;
        Ok(Reply {
            frame,
            bytes: &self.buf[..used],
        })
    }

    /// Reads until the buffer holds one whole frame. The decoder starts over on each try, so
    /// while bytes keep arriving it tries again only once the buffer has doubled (a long reply
    /// costs a bounded number of passes), and it always tries before waiting for more: it
    /// never waits on bytes a whole reply already in the buffer does not need.
    async fn read_frame(&mut self) -> Result<(RangeFrame, usize), ConnectError> {
        use futures::FutureExt;
        let mut tried_at = 0;
        let mut next_try = 0;
        loop {
            self.make_room()?;
            // Whatever has arrived already, without waiting.
            match self.stream.read_buf(&mut self.buf).now_or_never() {
                Some(Ok(0)) => return Err(self.error(Layer::Protocol, "the link closed mid-reply")),
                Some(Ok(_)) if self.buf.len() < next_try => continue,
                Some(Ok(_)) | None => {}
                Some(Err(e)) => return Err(self.error(Layer::Protocol, e.to_string())),
            }
            if self.buf.len() > tried_at {
                tried_at = self.buf.len();
                match decode_range(&self.buf) {
                    Ok(Some((frame, used))) => return Ok((frame, used)),
                    Ok(None) => next_try = self.buf.len() * 2,
                    Err(e) => {
                        return Err(self
                            .error(Layer::Protocol, format!("the reply is not RESP: {e:?}"))
                            .with_cause(super::transport::NOT_RESP));
                    }
                }
            }
            // Every byte here has been tried: wait for more.
            self.make_room()?;
            let n = self
                .stream
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| self.error(Layer::Protocol, e.to_string()))?;
            if n == 0 {
                return Err(self.error(Layer::Protocol, "the link closed mid-reply"));
            }
        }
    }

    /// Room in the buffer for the next read, within [`REPLY_CAP`].
    fn make_room(&mut self) -> Result<(), ConnectError> {
        if self.buf.len() >= REPLY_CAP {
            return Err(self.error(
                Layer::Protocol,
                format!("a reply of more than {} MiB", REPLY_CAP >> 20),
            ));
        }
        if self.buf.capacity() - self.buf.len() < 16 << 10 {
            self.buf.reserve(self.buf.capacity().max(64 << 10));
        }
        Ok(())
    }

    /// One SCAN page from `cursor`: each key name goes to `each`; returns the next cursor and
    /// how many names came.
    pub async fn scan_page(
        &mut self,
        cursor: u64,
        count: usize,
        each: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<(u64, usize), ConnectError> {
        let outcome = {
            let reply = self
                .call(redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(count))
                .await?;
            scan_reply(&reply, each)
        };
        outcome.map_err(|(layer, detail)| self.error(layer, detail))
    }
}

/// A SCAN reply's next cursor, each key name handed to `each`, and how many came.
fn scan_reply(
    reply: &Reply<'_>,
    each: &mut (dyn FnMut(&[u8]) + Send),
) -> Result<(u64, usize), (Layer, String)> {
    if let Some(e) = reply.error() {
        return Err((Layer::Server, format!("SCAN failed: {e}")));
    }
    let unexpected = |what: &str| (Layer::Protocol, format!("SCAN returned {what}"));
    let RangeFrame::Array(parts) = &reply.frame else {
        return Err(unexpected("an unexpected reply"));
    };
    let [cursor, keys] = parts.as_slice() else {
        return Err(unexpected("an unexpected reply"));
    };
    let next = match cursor {
        RangeFrame::BulkString(r) | RangeFrame::SimpleString(r) => {
            std::str::from_utf8(reply.slice(r))
                .ok()
                .and_then(|t| t.parse().ok())
        }
        _ => None,
    }
    .ok_or_else(|| unexpected("no cursor"))?;
    let RangeFrame::Array(keys) = keys else {
        return Err(unexpected("no key list"));
    };
    let mut n = 0;
    for k in keys {
        if let RangeFrame::BulkString(r) = k {
            each(reply.slice(r));
            n += 1;
        }
    }
    Ok((next, n))
}
