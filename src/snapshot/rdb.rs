//! Downloading a node's RDB over the replication protocol, as `valkey-cli --rdb` does:
//! AUTH, `REPLCONF capa eof`, `REPLCONF rdb-only 1`, `SYNC`, then either `$<len>` followed by
//! that many bytes (disk-based sync) or `$EOF:<40-byte mark>` followed by the payload and the
//! mark again (diskless sync). The file is written 0600; its header (`REDIS`/`VALKEY` and a
//! version) and its CRC-64 trailer (Jones polynomial, as Redis/Valkey compute it) are checked
//! while it streams.

use secrecy::{ExposeSecret, SecretString};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);
const MARK_LEN: usize = 40;

/// What was downloaded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Downloaded {
    pub bytes: u64,
    /// The CRC-64 from the file's trailer (0: the server has `rdbchecksum no`).
    pub crc64: u64,
    /// `len` (disk-based) or `eof` (diskless).
    pub form: &'static str,
    pub header: String,
    pub millis: u64,
}

fn err(what: impl std::fmt::Display) -> String {
    crate::escape::escape_capped(what.to_string(), 300)
}

fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

async fn line<R: AsyncBufReadExt + Unpin>(r: &mut R, timeout: Duration) -> Result<String, String> {
    let mut buf = Vec::new();
    match tokio::time::timeout(timeout, r.read_until(b'\n', &mut buf)).await {
        Ok(Ok(0)) => Err("the server closed the connection".into()),
        Ok(Ok(_)) => Ok(String::from_utf8_lossy(&buf).trim_end().to_string()),
        Ok(Err(e)) => Err(err(e)),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// Downloads the RDB of the plain-TCP node at `host:port` into `path`.
pub async fn download(
    host: &str,
    port: u16,
    username: Option<&str>,
    password: Option<&SecretString>,
    path: &Path,
    timeout: Duration,
    progress: &(dyn Fn(u64, Option<u64>) + Send + Sync),
) -> Result<Downloaded, String> {
    let started = Instant::now();
    let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| format!("connect to {host}:{port}: no answer within {timeout:?}"))?
        .map_err(|e| format!("connect to {host}:{port}: {}", err(e)))?;
    let mut r = BufReader::with_capacity(1 << 20, stream);
    let step = Duration::from_secs(10);
    if let Some(p) = password {
        let cmd = match username {
            Some(u) => resp(&[b"AUTH", u.as_bytes(), p.expose_secret().as_bytes()]),
            None => resp(&[b"AUTH", p.expose_secret().as_bytes()]),
        };
        r.get_mut().write_all(&cmd).await.map_err(err)?;
        let answer = line(&mut r, step).await?;
        if !answer.starts_with("+OK") {
            // The server's words, never the password.
            return Err(format!("AUTH refused: {}", err(answer)));
        }
    }
    for args in [
        &[&b"REPLCONF"[..], b"capa", b"eof"][..],
        &[&b"REPLCONF"[..], b"rdb-only", b"1"][..],
    ] {
        r.get_mut().write_all(&resp(args)).await.map_err(err)?;
        // An older server may refuse rdb-only: the download works without it.
        let _ = line(&mut r, step).await?;
    }
    r.get_mut()
        .write_all(&resp(&[b"SYNC"]))
        .await
        .map_err(err)?;
    // Newlines are keep-alives while the server prepares the RDB.
    let header = loop {
        let l = line(&mut r, timeout).await?;
        if l.is_empty() {
            continue;
        }
        break l;
    };
    let (form, len, mark): (&'static str, Option<u64>, Option<Vec<u8>>) =
        if let Some(m) = header.strip_prefix("$EOF:") {
            if m.len() != MARK_LEN {
                return Err(format!("unexpected EOF mark in `{}`", err(&header)));
            }
            ("eof", None, Some(m.as_bytes().to_vec()))
        } else if let Some(n) = header.strip_prefix('$') {
            let n: u64 = n
                .parse()
                .map_err(|_| format!("unexpected reply `{}`", err(&header)))?;
            ("len", Some(n), None)
        } else {
            return Err(format!("SYNC refused: {}", err(&header)));
        };
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("create {}: {}", path.display(), err(e)))?;
        tokio::fs::File::from_std(f)
    };
    // Hold back the bytes that may be the trailer (8 bytes of CRC, plus the mark when
    // diskless) until the stream ends.
    let hold = 8 + mark.as_ref().map_or(0, |m| m.len());
    let mut digest = CRC64.digest();
    let mut pending: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut total: u64 = 0;
    let mut first: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let deadline = Instant::now() + timeout;
    let mut last_report = Instant::now();
    loop {
        let want = match len {
            Some(n) => (n - total).min(buf.len() as u64) as usize,
            None => buf.len(),
        };
        if want == 0 {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let n = match tokio::time::timeout(left.min(step * 3), r.read(&mut buf[..want])).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(err(e)),
            Err(_) => return Err(format!("the RDB stopped arriving after {total} bytes")),
        };
        if n == 0 {
            if len.is_some() {
                return Err(format!("the connection closed after {total} bytes"));
            }
            return Err(format!(
                "the connection closed after {total} bytes without the EOF mark"
            ));
        }
        total += n as u64;
        if first.len() < 9 {
            first.extend_from_slice(&buf[..n.min(9 - first.len())]);
        }
        pending.extend_from_slice(&buf[..n]);
        if let Some(m) = &mark
            && pending.len() >= m.len()
            && pending.ends_with(m)
        {
            break;
        }
        if pending.len() > hold + (1 << 20) {
            let flush = pending.len() - hold;
            digest.update(&pending[..flush]);
            file.write_all(&pending[..flush])
                .await
                .map_err(|e| format!("write {}: {}", path.display(), err(e)))?;
            pending.drain(..flush);
        }
        if last_report.elapsed() > Duration::from_millis(200) {
            progress(total, len);
            last_report = Instant::now();
        }
    }
    if let Some(m) = &mark {
        pending.truncate(pending.len() - m.len());
        total -= m.len() as u64;
    }
    if pending.len() < 8 {
        return Err(format!("the RDB is too short ({total} bytes)"));
    }
    let body = pending.len() - 8;
    digest.update(&pending[..body]);
    let trailer = u64::from_le_bytes(
        pending[body..]
            .try_into()
            .map_err(|_| "short trailer".to_string())?,
    );
    file.write_all(&pending)
        .await
        .map_err(|e| format!("write {}: {}", path.display(), err(e)))?;
    file.sync_all()
        .await
        .map_err(|e| format!("write {}: {}", path.display(), err(e)))?;
    let head = String::from_utf8_lossy(&first).to_string();
    if !(head.starts_with("REDIS") || head.starts_with("VALKEY")) {
        return Err(format!("not an RDB file: it starts with `{}`", err(&head)));
    }
    let computed = digest.finalize();
    if trailer != 0 && trailer != computed {
        return Err(format!(
            "CRC-64 mismatch: the trailer says {trailer:016x}, the content gives {computed:016x}"
        ));
    }
    progress(total, Some(total));
    Ok(Downloaded {
        bytes: total,
        crc64: trailer,
        form,
        header: head,
        millis: started.elapsed().as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crc_is_the_jones_polynomial_redis_uses() {
        // The check value of CRC-64/REDIS ("123456789"), as in Redis's crc64.c self-test.
        assert_eq!(CRC64.checksum(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn commands_are_resp_arrays() {
        assert_eq!(resp(&[b"SYNC"]), b"*1\r\n$4\r\nSYNC\r\n");
    }
}
