//! COMPRESS=DEFLATE (RFC 4978): raw DEFLATE (RFC 1951, no zlib header) in both directions of
//! one connection. Sans-IO: the caller hands in bytes and gets bytes back.
//!
//! Output: every [`Deflate::deflate`] call ends with a sync flush, so the peer can decode each
//! batch of responses as soon as it arrives. Input: [`Deflate::inflate`] produces at most
//! [`INFLATE_CHUNK`] octets per call, so a small compressed input (DEFLATE expands up to about
//! 1000:1) never becomes a large buffer; the caller feeds the rest of the input on later calls.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Most plain octets one [`Deflate::inflate`] call appends.
pub const INFLATE_CHUNK: usize = 16 * 1024;

/// Why a stream cannot go on; the connection has to close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The peer's input is not a valid DEFLATE stream.
    Corrupt,
    /// The peer sent bytes after a final block (the stream of an IMAP connection never ends).
    AfterEnd,
    /// The compressor refused to go on (not expected with the flushes used here).
    Compressor,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Error::Corrupt => "corrupt DEFLATE data",
            Error::AfterEnd => "data after the end of the DEFLATE stream",
            Error::Compressor => "DEFLATE compressor error",
        })
    }
}

impl std::error::Error for Error {}

/// The compressor for what we send and the decompressor for what we receive.
pub struct Deflate {
    compress: Compress,
    decompress: Decompress,
    /// The last inflate filled its chunk: the decompressor may hold more output.
    more_output: bool,
    /// The peer sent a final block.
    ended: bool,
}

impl Default for Deflate {
    fn default() -> Self {
        Deflate::new()
    }
}

impl Deflate {
    /// Both directions fresh, at zlib's default level (6, as Dovecot uses).
    pub fn new() -> Deflate {
        Deflate {
            compress: Compress::new(Compression::default(), false),
            decompress: Decompress::new(false),
            more_output: false,
            ended: false,
        }
    }

    /// Compresses all of `plain` onto `out`, ending with a sync flush (an empty stored block),
    /// so everything written so far can be decoded by the peer now.
    pub fn deflate(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let mut rest = plain;
        loop {
            // Room for incompressible input plus block overhead; the loop adds more if needed.
            out.reserve(rest.len() + rest.len() / 64 + 64);
            let before = self.compress.total_in();
            self.compress
                .compress_vec(rest, out, FlushCompress::Sync)
                .map_err(|_| Error::Compressor)?;
            let consumed = (self.compress.total_in() - before) as usize;
            rest = &rest[consumed.min(rest.len())..];
            // The flush is complete once all input is taken and output space is left over.
            if rest.is_empty() && out.len() < out.capacity() {
                return Ok(());
            }
        }
    }

    /// Decompresses from `wire` onto `out`, appending at most [`INFLATE_CHUNK`] octets, and
    /// returns how many octets of `wire` it consumed. Call again with the unconsumed rest, and
    /// also with an empty `wire` while [`Deflate::has_output`] says more output is waiting.
    /// With non-empty `wire` every call consumes or produces something.
    pub fn inflate(&mut self, wire: &[u8], out: &mut Vec<u8>) -> Result<usize, Error> {
        if self.ended {
            self.more_output = false;
            return if wire.is_empty() {
                Ok(0)
            } else {
                Err(Error::AfterEnd)
            };
        }
        let start = out.len();
        out.resize(start + INFLATE_CHUNK, 0);
        let (in_before, out_before) = (self.decompress.total_in(), self.decompress.total_out());
        let status = self
            .decompress
            .decompress(wire, &mut out[start..], FlushDecompress::None);
        let consumed = (self.decompress.total_in() - in_before) as usize;
        let produced = (self.decompress.total_out() - out_before) as usize;
        out.truncate(start + produced);
        match status {
            Err(_) => return Err(Error::Corrupt),
            Ok(Status::StreamEnd) => {
                self.ended = true;
                if consumed < wire.len() {
                    return Err(Error::AfterEnd);
                }
            }
            Ok(Status::Ok | Status::BufError) => {}
        }
        self.more_output = produced == INFLATE_CHUNK;
        if !wire.is_empty() && consumed == 0 && produced == 0 {
            // Cannot happen with output space available; refusing beats spinning.
            return Err(Error::Corrupt);
        }
        Ok(consumed)
    }

    /// Whether the decompressor may hold output the last [`Deflate::inflate`] had no room for.
    pub fn has_output(&self) -> bool {
        self.more_output
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inflates `wire` fed in `chunk`-sized pieces, the way a session does.
    fn inflate_all(z: &mut Deflate, wire: &[u8], chunk: usize) -> Result<Vec<u8>, Error> {
        let mut plain = Vec::new();
        for piece in wire.chunks(chunk.max(1)) {
            let mut rest = piece;
            loop {
                let before = plain.len();
                let n = z.inflate(rest, &mut plain)?;
                assert!(plain.len() - before <= INFLATE_CHUNK);
                assert!(
                    rest.is_empty() || n > 0 || plain.len() > before,
                    "no progress"
                );
                rest = &rest[n..];
                if rest.is_empty() && !z.has_output() {
                    break;
                }
            }
        }
        Ok(plain)
    }

    fn sample() -> Vec<u8> {
        let mut s = Vec::new();
        for i in 0..3000u32 {
            s.extend_from_slice(format!("* {i} FETCH (UID {i} FLAGS (\\Seen))\r\n").as_bytes());
            // Some incompressible bytes too.
            s.extend(
                (0..(i % 37)).map(|j| (i.wrapping_mul(2654435761).wrapping_add(j) >> 7) as u8),
            );
        }
        s
    }

    #[test]
    fn round_trip_at_many_chunk_sizes() {
        let full = sample();
        for chunk in [1, 7, 64, 1000, 16 * 1024, 100_000, full.len()] {
            // A flush per octet is slow in a debug build: a shorter text for the tiny chunks.
            let plain = if chunk < 64 { &full[..5000] } else { &full[..] };
            let mut server = Deflate::new();
            let mut client = Deflate::new();
            // Several flushes, each decodable on its own, as responses are.
            let mut got = Vec::new();
            for part in plain.chunks(chunk) {
                let mut wire = Vec::new();
                server.deflate(part, &mut wire).unwrap();
                got.extend(inflate_all(&mut client, &wire, 13).unwrap());
            }
            assert_eq!(got, plain, "chunk {chunk}");
        }
    }

    #[test]
    fn each_flush_is_decodable_immediately() {
        let mut server = Deflate::new();
        let mut client = Deflate::new();
        for line in ["* OK first\r\n", "a1 OK second\r\n", ""] {
            let mut wire = Vec::new();
            server.deflate(line.as_bytes(), &mut wire).unwrap();
            assert!(wire.ends_with(&[0, 0, 0xff, 0xff]), "sync flush marker");
            assert_eq!(inflate_all(&mut client, &wire, 3).unwrap(), line.as_bytes());
        }
    }

    #[test]
    fn interoperates_with_flate2_streams() {
        // A peer's own compressor (what a client library produces).
        let plain = sample();
        let mut peer = Compress::new(Compression::best(), false);
        let mut wire = Vec::with_capacity(plain.len() * 2);
        peer.compress_vec(&plain, &mut wire, FlushCompress::Sync)
            .unwrap();
        let mut z = Deflate::new();
        assert_eq!(inflate_all(&mut z, &wire, 4096).unwrap(), plain);
    }

    #[test]
    fn a_bomb_comes_out_in_bounded_chunks() {
        let plain = vec![b'a'; 4 << 20];
        let mut wire = Vec::new();
        Deflate::new().deflate(&plain, &mut wire).unwrap();
        assert!(wire.len() < 16 * 1024, "{}", wire.len());
        let mut z = Deflate::new();
        let mut out = Vec::new();
        let n = z.inflate(&wire, &mut out).unwrap();
        assert_eq!(out.len(), INFLATE_CHUNK);
        assert!(z.has_output());
        assert!(n <= wire.len());
        let rest = inflate_all(&mut z, &wire[n..], wire.len()).unwrap();
        assert_eq!(out.len() + rest.len(), plain.len());
    }

    #[test]
    fn corrupt_input_is_an_error() {
        // 0xff: BTYPE 11, a reserved block type.
        let mut z = Deflate::new();
        assert_eq!(inflate_all(&mut z, &[0xff; 64], 64), Err(Error::Corrupt));
        // Random bytes at every chunk size: an error or some output, never a panic or a hang.
        let mut seed = 0x9e3779b97f4a7c15u64;
        for round in 0..200 {
            let junk: Vec<u8> = (0..512)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = inflate_all(&mut Deflate::new(), &junk, 1 + round % 50);
        }
    }

    #[test]
    fn data_after_a_final_block_is_an_error() {
        let mut peer = Compress::new(Compression::default(), false);
        let mut wire = Vec::with_capacity(256);
        peer.compress_vec(b"a1 NOOP\r\n", &mut wire, FlushCompress::Finish)
            .unwrap();
        let mut z = Deflate::new();
        assert_eq!(inflate_all(&mut z, &wire, 100).unwrap(), b"a1 NOOP\r\n");
        assert_eq!(z.inflate(b"x", &mut Vec::new()), Err(Error::AfterEnd));
        // Trailing bytes in the same read as the final block.
        let mut z = Deflate::new();
        let mut more = wire.clone();
        more.extend_from_slice(b"a2 NOOP\r\n");
        assert_eq!(inflate_all(&mut z, &more, more.len()), Err(Error::AfterEnd));
    }
}
