//! The binary message of the Session Manager data channel (`AgentMessage` in the agent,
//! `ClientMessage` in the plugin), encoded and decoded with every length checked.
//!
//! Layout, big-endian, as both ends write it:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | header length (always 116: the offset of the payload-length field) |
//! | 4 | 32 | message type, ASCII, padded with spaces |
//! | 36 | 4 | schema version |
//! | 40 | 8 | created date, milliseconds since the epoch |
//! | 48 | 8 | sequence number (signed) |
//! | 56 | 8 | flags (1 = SYN on the first stream message, 3 on acknowledgements) |
//! | 64 | 16 | message id: a UUID with its two 8-byte halves swapped |
//! | 80 | 32 | SHA-256 of the payload |
//! | 112 | 4 | payload type |
//! | 116 | 4 | payload length |
//! | 120 | n | payload |

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The header length field's value: everything before the payload-length field.
pub const HEADER_LENGTH: u32 = 116;
/// Where the payload starts.
pub const PAYLOAD_OFFSET: usize = 120;
const TYPE_LEN: usize = 32;
/// The largest payload accepted. The agent sends at most 1024 bytes of output per message
/// (plus 28 bytes of AES-GCM framing when encrypted); handshake JSON stays far below this.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// Message types.
pub mod kind {
    pub const INPUT: &str = "input_stream_data";
    pub const OUTPUT: &str = "output_stream_data";
    pub const ACK: &str = "acknowledge";
    pub const CHANNEL_CLOSED: &str = "channel_closed";
    pub const START_PUBLICATION: &str = "start_publication";
    pub const PAUSE_PUBLICATION: &str = "pause_publication";
}

/// Payload types of stream messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum PayloadType {
    /// Terminal bytes: output from the agent, keystrokes from the client.
    Output = 1,
    Error = 2,
    /// Terminal size (`{"cols":..,"rows":..}`), client to agent.
    Size = 3,
    Parameter = 4,
    HandshakeRequest = 5,
    HandshakeResponse = 6,
    HandshakeComplete = 7,
    EncChallengeRequest = 8,
    EncChallengeResponse = 9,
    Flag = 10,
    StdErr = 11,
    ExitCode = 12,
}

impl PayloadType {
    pub fn from_u32(v: u32) -> Option<PayloadType> {
        use PayloadType::*;
        Some(match v {
            1 => Output,
            2 => Error,
            3 => Size,
            4 => Parameter,
            5 => HandshakeRequest,
            6 => HandshakeResponse,
            7 => HandshakeComplete,
            8 => EncChallengeRequest,
            9 => EncChallengeResponse,
            10 => Flag,
            11 => StdErr,
            12 => ExitCode,
            _ => return None,
        })
    }
}

/// Why a received frame was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is shorter than the 120-byte header")]
    Short(usize),
    #[error("frame header length is {0}, expected 116")]
    HeaderLength(u32),
    #[error("frame says its payload is {declared} bytes but carries {actual}")]
    PayloadLength { declared: u32, actual: usize },
    #[error("frame payload of {0} bytes is over the {MAX_PAYLOAD}-byte limit")]
    TooLarge(usize),
    #[error("frame message type is not printable ASCII text")]
    MessageType,
    #[error("payload digest mismatch on {kind} seq {seq}: the frame was corrupted in transit")]
    Digest { kind: String, seq: i64 },
    #[error("frame has no created date")]
    CreatedDate,
}

/// One data-channel message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub message_type: String,
    pub schema_version: u32,
    pub created_ms: u64,
    pub sequence: i64,
    pub flags: u64,
    pub message_id: Uuid,
    pub payload_type: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A new message with a random id, created now, schema version 1.
    pub fn new(
        message_type: &str,
        sequence: i64,
        flags: u64,
        payload_type: u32,
        payload: Vec<u8>,
    ) -> Frame {
        Frame {
            message_type: message_type.to_string(),
            schema_version: 1,
            created_ms: now_ms(),
            sequence,
            flags,
            message_id: Uuid::new_v4(),
            payload_type,
            payload,
        }
    }

    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PAYLOAD_OFFSET + self.payload.len());
        out.extend_from_slice(&HEADER_LENGTH.to_be_bytes());
        let mut ty = [b' '; TYPE_LEN];
        let name = self.message_type.as_bytes();
        let n = name.len().min(TYPE_LEN);
        ty[..n].copy_from_slice(&name[..n]);
        out.extend_from_slice(&ty);
        out.extend_from_slice(&self.schema_version.to_be_bytes());
        out.extend_from_slice(&self.created_ms.to_be_bytes());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        let id = self.message_id.as_bytes();
        out.extend_from_slice(&id[8..16]);
        out.extend_from_slice(&id[0..8]);
        out.extend_from_slice(&Sha256::digest(&self.payload));
        out.extend_from_slice(&self.payload_type.to_be_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// Decodes and checks one frame: header and payload lengths, size cap, payload digest.
    /// Publication messages carry no payload and are accepted without a digest check, as
    /// both ends do.
    pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
        if bytes.len() < PAYLOAD_OFFSET {
            return Err(FrameError::Short(bytes.len()));
        }
        let header = be_u32(bytes, 0);
        if header != HEADER_LENGTH {
            return Err(FrameError::HeaderLength(header));
        }
        let declared = be_u32(bytes, 116);
        let actual = bytes.len() - PAYLOAD_OFFSET;
        if actual > MAX_PAYLOAD {
            return Err(FrameError::TooLarge(actual));
        }
        if declared as usize != actual {
            return Err(FrameError::PayloadLength { declared, actual });
        }
        let raw_type = &bytes[4..4 + TYPE_LEN];
        // Printable ASCII padded with spaces (or NULs): a control byte here is no message
        // type, and would reach error lines and logs.
        if !raw_type
            .iter()
            .all(|b| b.is_ascii_graphic() || *b == b' ' || *b == 0)
        {
            return Err(FrameError::MessageType);
        }
        let message_type = String::from_utf8_lossy(raw_type)
            .trim_matches(|c: char| c == ' ' || c == '\0')
            .to_string();
        let mut id = [0u8; 16];
        id[8..16].copy_from_slice(&bytes[64..72]);
        id[0..8].copy_from_slice(&bytes[72..80]);
        let frame = Frame {
            message_type,
            schema_version: be_u32(bytes, 36),
            created_ms: be_u64(bytes, 40),
            sequence: be_u64(bytes, 48) as i64,
            flags: be_u64(bytes, 56),
            message_id: Uuid::from_bytes(id),
            payload_type: be_u32(bytes, 112),
            payload: bytes[PAYLOAD_OFFSET..].to_vec(),
        };
        let publication = frame.message_type == kind::START_PUBLICATION
            || frame.message_type == kind::PAUSE_PUBLICATION;
        if !publication {
            if frame.created_ms == 0 {
                return Err(FrameError::CreatedDate);
            }
            if Sha256::digest(&frame.payload).as_slice() != &bytes[80..112] {
                return Err(FrameError::Digest {
                    kind: frame.message_type.clone(),
                    seq: frame.sequence,
                });
            }
        }
        Ok(frame)
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1)
}

/// The JSON of an acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AckContent {
    #[serde(rename = "AcknowledgedMessageType")]
    pub message_type: String,
    #[serde(rename = "AcknowledgedMessageId")]
    pub message_id: String,
    #[serde(rename = "AcknowledgedMessageSequenceNumber")]
    pub sequence: i64,
    #[serde(rename = "IsSequentialMessage")]
    pub sequential: bool,
}

/// The acknowledgement of `frame`: sequence 0, flags 3, as both ends send it.
pub fn ack_for(frame: &Frame) -> Frame {
    let content = AckContent {
        message_type: frame.message_type.clone(),
        message_id: frame.message_id.hyphenated().to_string(),
        sequence: frame.sequence,
        sequential: true,
    };
    let payload = serde_json::to_vec(&content).unwrap_or_default();
    Frame::new(kind::ACK, 0, 3, 0, payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_field() {
        let f = Frame::new(
            kind::OUTPUT,
            42,
            1,
            PayloadType::Output as u32,
            b"hello".to_vec(),
        );
        let bytes = f.encode();
        assert_eq!(bytes.len(), 125);
        assert_eq!(&bytes[0..4], &116u32.to_be_bytes());
        assert_eq!(&bytes[4..22], b"output_stream_data");
        assert!(bytes[22..36].iter().all(|b| *b == b' '));
        assert_eq!(Frame::decode(&bytes), Ok(f));
    }

    #[test]
    fn message_id_halves_are_swapped_on_the_wire() {
        let mut f = Frame::new(kind::ACK, 0, 3, 0, vec![]);
        f.message_id = Uuid::from_bytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
        let bytes = f.encode();
        assert_eq!(
            &bytes[64..80],
            &[9, 10, 11, 12, 13, 14, 15, 16, 1, 2, 3, 4, 5, 6, 7, 8]
        );
    }

    #[test]
    fn corrupt_frames_are_errors_not_panics() {
        let f = Frame::new(kind::OUTPUT, 3, 0, 1, b"payload".to_vec());
        let good = f.encode();
        let mut bad = good.clone();
        *bad.last_mut().unwrap_or(&mut 0) ^= 0xff;
        assert_eq!(
            Frame::decode(&bad),
            Err(FrameError::Digest {
                kind: "output_stream_data".into(),
                seq: 3
            })
        );
        assert_eq!(Frame::decode(&good[..50]), Err(FrameError::Short(50)));
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            Frame::decode(&long),
            Err(FrameError::PayloadLength {
                declared: 7,
                actual: 8
            })
        ));
        let mut header = good.clone();
        header[3] = 0;
        assert_eq!(Frame::decode(&header), Err(FrameError::HeaderLength(0)));
        let mut huge = Frame::new(kind::OUTPUT, 0, 0, 1, vec![0; MAX_PAYLOAD + 1]).encode();
        assert_eq!(
            Frame::decode(&huge),
            Err(FrameError::TooLarge(MAX_PAYLOAD + 1))
        );
        huge.truncate(0);
        assert_eq!(Frame::decode(&huge), Err(FrameError::Short(0)));
    }

    #[test]
    fn acks_name_the_message_they_acknowledge() {
        let f = Frame::new(kind::OUTPUT, 9, 0, 1, b"x".to_vec());
        let ack = ack_for(&f);
        assert_eq!(
            (ack.sequence, ack.flags, ack.message_type.as_str()),
            (0, 3, kind::ACK)
        );
        let content: AckContent =
            serde_json::from_slice(&ack.payload).unwrap_or_else(|_| panic!("json"));
        assert_eq!(content.sequence, 9);
        assert_eq!(content.message_id, f.message_id.hyphenated().to_string());
    }
}
