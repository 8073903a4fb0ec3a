//! Content digests (`sha256:<hex>`) and readers/writers that hash what flows through them.
//!
//! Only sha256 exists in practice for images; other algorithms are refused with a clear error
//! rather than half-supported.

use std::{
    fmt,
    io::{self, Read, Write},
    str::FromStr,
};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::error::{ImageError, Result};

/// A sha256 content digest, written `sha256:<64 lower-case hex digits>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest([u8; 32]);

impl Digest {
    /// Parses `sha256:<hex>`; `field` names where the value came from, for the error message.
    pub fn parse(value: &str, field: &str) -> Result<Self> {
        let invalid = || ImageError::InvalidDigest { field: field.to_owned(), value: value.to_owned() };
        let Some((algorithm, hex)) = value.split_once(':') else {
            return Err(invalid());
        };
        if algorithm != "sha256" {
            return Err(ImageError::Unsupported {
                what: format!("digest algorithm {algorithm:?} in {field}"),
                detail: "medos only handles sha256 digests; export the image with sha256".to_owned(),
            });
        }
        Self::from_hex(hex).ok_or_else(invalid)
    }

    /// Parses 64 lower-case hex digits (a blob's file name); `None` if they are not that.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex, &mut bytes).ok()?;
        Some(Digest(bytes))
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }

    /// The digest a finished hasher computed.
    pub(crate) fn from_hasher(hasher: Sha256) -> Self {
        Digest(hasher.finalize().into())
    }

    /// The 64 hex digits, as used in file names.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A short form for logs and tables: the first 12 hex digits.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self> {
        Digest::parse(s, "digest")
    }
}

impl TryFrom<String> for Digest {
    type Error = ImageError;

    fn try_from(value: String) -> Result<Self> {
        Digest::parse(&value, "digest")
    }
}

impl From<Digest> for String {
    fn from(digest: Digest) -> Self {
        digest.to_string()
    }
}

/// Hashes and counts everything written to it (a sink for decoders).
#[derive(Default)]
pub(crate) struct HashingWriter {
    hasher: Sha256,
    bytes: u64,
}

impl HashingWriter {
    /// The digest and length of everything written so far.
    pub(crate) fn finish(self) -> (Digest, u64) {
        (Digest(self.hasher.finalize().into()), self.bytes)
    }
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Hashes and counts everything read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new(), bytes: 0 }
    }

    /// Reads the rest of the stream (so the digest covers all of it) and returns digest and length.
    pub(crate) fn drain(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest(self.hasher.finalize().into()), self.bytes))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_prints_sha256() {
        let d = Digest::parse(EMPTY, "test").unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d, Digest::of(b""));
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{EMPTY}\""));
        assert_eq!(serde_json::from_str::<Digest>(&format!("\"{EMPTY}\"")).unwrap(), d);
    }

    #[test]
    fn refuses_malformed_digests_naming_the_field() {
        for bad in ["", "sha256:", "sha256:abc", &EMPTY.to_uppercase(), &EMPTY.replace(':', "")] {
            let err = Digest::parse(bad, "layers[0].digest").unwrap_err();
            assert!(err.to_string().contains("layers[0].digest"), "{bad}: {err}");
        }
        let err = Digest::parse(&format!("sha512:{}", "a".repeat(128)), "config.digest").unwrap_err();
        assert!(matches!(err, ImageError::Unsupported { .. }), "{err}");
    }

    #[test]
    fn hashing_reader_covers_the_whole_stream() {
        let mut reader = HashingReader::new(&b"hello world"[..]);
        let mut first = [0u8; 5];
        reader.read_exact(&mut first).unwrap();
        let (digest, len) = reader.drain().unwrap();
        assert_eq!((digest, len), (Digest::of(b"hello world"), 11));
    }
}
