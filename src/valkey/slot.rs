//! Cluster key slots: CRC16/XMODEM of the key (or of its `{hash tag}`) modulo 16384, as
//! Valkey's CLUSTER KEYSLOT computes it.

/// The number of slots of a Valkey cluster.
pub const SLOTS: u16 = 16384;

/// CRC16/XMODEM, as Valkey cluster uses it for key slots.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= (byte as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The cluster slot of a key, honouring `{hash tags}`.
pub fn key_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = key.find('{').and_then(|open| {
        key[open + 1..]
            .find('}')
            .filter(|&len| len > 0)
            .map(|len| &bytes[open + 1..open + 1 + len])
    });
    crc16(tagged.unwrap_or(bytes)) % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_valkey() {
        // Values from CLUSTER KEYSLOT.
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
        assert_eq!(key_slot("123456789"), 12739);
    }
}
