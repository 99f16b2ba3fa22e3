//! KMS encryption of a session, as the protocol defines it: the client asks KMS for a 64-byte
//! data key (GenerateDataKey, encryption context `aws:ssm:SessionId` and `aws:ssm:TargetId`),
//! hands the agent the encrypted key in its HandshakeResponse, and both ends use AES-256-GCM
//! with the key's two halves: the first 32 bytes encrypt what the agent sends, the last 32
//! what the client sends. Every ciphertext is a fresh 12-byte nonce followed by the sealed
//! bytes (tag included).

use async_trait::async_trait;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretSlice};
use std::collections::BTreeMap;

/// Bytes of the data key the protocol asks KMS for.
pub const DATA_KEY_BYTES: i32 = 64;

/// A data key from KMS: the plaintext (secret) and the blob only KMS can decrypt.
pub struct DataKey {
    pub plaintext: SecretSlice<u8>,
    pub ciphertext: Vec<u8>,
}

/// Why encryption could not be set up or a message could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("KMS {0}")]
    Kms(String),
    #[error("the data key from KMS is {0} bytes, expected 64")]
    KeySize(usize),
    #[error("an encrypted message failed authentication (wrong key or tampered data)")]
    Open,
    #[error("an encrypted message of {0} bytes is shorter than its nonce and tag")]
    Short(usize),
}

/// Where data keys come from: KMS in AWS, a local key in the sandbox.
#[async_trait]
pub trait DataKeys: Send + Sync {
    /// GenerateDataKey of `key_id` with `context`, 64 bytes.
    async fn generate_data_key(
        &self,
        key_id: &str,
        context: &BTreeMap<String, String>,
    ) -> Result<DataKey, CryptoError>;
}

/// The encryption context of a session.
pub fn context(session_id: &str, target_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("aws:ssm:SessionId".to_string(), session_id.to_string()),
        ("aws:ssm:TargetId".to_string(), target_id.to_string()),
    ])
}

/// Which end of the channel a cipher serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Agent,
}

/// The two AES-256-GCM keys of one end.
pub struct SessionCipher {
    seal: LessSafeKey,
    open: LessSafeKey,
    rng: SystemRandom,
}

impl SessionCipher {
    /// Splits a 64-byte data key as `side` uses it.
    pub fn new(plaintext_key: &[u8], side: Side) -> Result<SessionCipher, CryptoError> {
        if plaintext_key.len() != DATA_KEY_BYTES as usize {
            return Err(CryptoError::KeySize(plaintext_key.len()));
        }
        let (agent_to_client, client_to_agent) = plaintext_key.split_at(32);
        let (seal, open) = match side {
            Side::Client => (client_to_agent, agent_to_client),
            Side::Agent => (agent_to_client, client_to_agent),
        };
        let key = |k: &[u8]| {
            UnboundKey::new(&AES_256_GCM, k)
                .map(LessSafeKey::new)
                .map_err(|_| CryptoError::KeySize(k.len()))
        };
        Ok(SessionCipher {
            seal: key(seal)?,
            open: key(open)?,
            rng: SystemRandom::new(),
        })
    }

    /// From a [`DataKey`].
    pub fn from_data_key(key: &DataKey, side: Side) -> Result<SessionCipher, CryptoError> {
        SessionCipher::new(key.plaintext.expose_secret(), side)
    }

    /// nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| CryptoError::Kms("no randomness for a nonce".into()))?;
        let mut buf = plain.to_vec();
        self.seal
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .map_err(|_| CryptoError::Open)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Opens nonce ‖ ciphertext ‖ tag.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(CryptoError::Short(sealed.len()));
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Open)?;
        let mut buf = rest.to_vec();
        let plain = self
            .open
            .open_in_place(nonce, Aad::empty(), &mut buf)
            .map_err(|_| CryptoError::Open)?;
        Ok(plain.to_vec())
    }
}

/// KMS through aws-sdk-kms.
pub struct KmsDataKeys {
    pub client: aws_sdk_kms::Client,
}

#[async_trait]
impl DataKeys for KmsDataKeys {
    async fn generate_data_key(
        &self,
        key_id: &str,
        context: &BTreeMap<String, String>,
    ) -> Result<DataKey, CryptoError> {
        let mut req = self
            .client
            .generate_data_key()
            .key_id(key_id)
            .number_of_bytes(DATA_KEY_BYTES);
        for (k, v) in context {
            req = req.encryption_context(k, v);
        }
        let out = req.send().await.map_err(|e| {
            use aws_smithy_types::error::metadata::ProvideErrorMetadata;
            let code = e.code().unwrap_or("error").to_string();
            let msg = e.message().unwrap_or("no message").to_string();
            let hint = if code == "AccessDeniedException" {
                "; the caller needs kms:GenerateDataKey on the cluster's exec KMS key"
            } else {
                ""
            };
            CryptoError::Kms(format!(
                "GenerateDataKey failed: {code}: {}{hint}",
                crate::escape::escape(&msg)
            ))
        })?;
        let plaintext = out
            .plaintext
            .map(|b| b.into_inner())
            .ok_or_else(|| CryptoError::Kms("GenerateDataKey returned no plaintext".into()))?;
        if plaintext.len() != DATA_KEY_BYTES as usize {
            return Err(CryptoError::KeySize(plaintext.len()));
        }
        let ciphertext = out
            .ciphertext_blob
            .map(|b| b.into_inner())
            .ok_or_else(|| CryptoError::Kms("GenerateDataKey returned no ciphertext".into()))?;
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
    fn each_side_opens_what_the_other_seals() {
        let key: Vec<u8> = (0..64).collect();
        let client = SessionCipher::new(&key, Side::Client).unwrap();
        let agent = SessionCipher::new(&key, Side::Agent).unwrap();
        let sealed = agent.seal(b"output").unwrap();
        assert_eq!(sealed.len(), 12 + 6 + 16);
        assert_eq!(client.open(&sealed).unwrap(), b"output");
        assert_eq!(agent.open(&client.seal(b"keys").unwrap()).unwrap(), b"keys");
        // A side cannot open its own direction, and tampering is detected.
        assert_eq!(
            client.open(&client.seal(b"x").unwrap()),
            Err(CryptoError::Open)
        );
        let mut bad = sealed.clone();
        bad[20] ^= 1;
        assert_eq!(client.open(&bad), Err(CryptoError::Open));
        assert_eq!(client.open(&sealed[..10]), Err(CryptoError::Short(10)));
        assert!(matches!(
            SessionCipher::new(&key[..32], Side::Client),
            Err(CryptoError::KeySize(32))
        ));
    }
}
