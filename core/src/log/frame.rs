//! One record's bytes: framing, CRC and the hash that chains records.

use sha2::{Digest, Sha256};

use super::MAX_PAYLOAD;

pub type Hash = [u8; 32];

/// Every segment file starts with these bytes.
pub const MAGIC: &[u8; 8] = b"MADOLOG1";
/// len + crc + seq + prev.
pub const HEADER_LEN: usize = 4 + 4 + 8 + 32;

/// A record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub prev: Hash,
    pub payload: Vec<u8>,
}

impl Record {
    /// The link the next record must carry as its `prev`.
    pub fn hash(&self) -> Hash {
        record_hash(self.seq, &self.prev, &self.payload)
    }

    /// Length of the framed record in bytes.
    pub fn framed_len(&self) -> u64 {
        (HEADER_LEN + self.payload.len()) as u64
    }
}

pub fn record_hash(seq: u64, prev: &Hash, payload: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(seq.to_le_bytes());
    h.update(prev);
    h.update(payload);
    h.finalize().into()
}

fn crc(seq: u64, prev: &Hash, payload: &[u8]) -> u32 {
    let mut c = crc32fast::Hasher::new();
    c.update(&seq.to_le_bytes());
    c.update(prev);
    c.update(payload);
    c.finalize()
}

/// Appends the framed record to `buf` and returns its hash.
pub fn encode(buf: &mut Vec<u8>, seq: u64, prev: &Hash, payload: &[u8]) -> Hash {
    frame(buf, seq, prev, payload);
    record_hash(seq, prev, payload)
}

/// Appends the framed record to `buf` without hashing it (a copy of a
/// record whose hash the reader has already checked).
pub fn frame(buf: &mut Vec<u8>, seq: u64, prev: &Hash, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc(seq, prev, payload).to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(prev);
    buf.extend_from_slice(payload);
}

/// Why bytes are not a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bad {
    /// The bytes end before the record does.
    Short,
    /// The length field is beyond any record we write.
    Length(u32),
    /// The CRC does not match.
    Crc,
}

/// Decodes the record at the start of `bytes`.
pub(crate) fn decode(bytes: &[u8]) -> Result<Record, Bad> {
    if bytes.len() < HEADER_LEN {
        return Err(Bad::Short);
    }
    let word = |i: usize| [bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]];
    let len = u32::from_le_bytes(word(0));
    if len > MAX_PAYLOAD {
        return Err(Bad::Length(len));
    }
    let stored_crc = u32::from_le_bytes(word(4));
    let mut seq_bytes = [0u8; 8];
    seq_bytes.copy_from_slice(&bytes[8..16]);
    let seq = u64::from_le_bytes(seq_bytes);
    let mut prev = [0u8; 32];
    prev.copy_from_slice(&bytes[16..48]);
    let end = HEADER_LEN + len as usize;
    if bytes.len() < end {
        return Err(Bad::Short);
    }
    let payload = &bytes[HEADER_LEN..end];
    if crc(seq, &prev, payload) != stored_crc {
        return Err(Bad::Crc);
    }
    Ok(Record {
        seq,
        prev,
        payload: payload.to_vec(),
    })
}

impl std::fmt::Display for Bad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bad::Short => f.write_str("the record is cut short"),
            Bad::Length(n) => write!(f, "impossible record length {n}"),
            Bad::Crc => f.write_str("CRC mismatch"),
        }
    }
}
