//! The DATA phase: incremental end-of-data detection and dot-unstuffing ([`DataReceiver`]), and
//! dot-stuffing for the client side ([`dot_stuff`]).
//!
//! Security note (SMTP smuggling, CVE-2023-51766 and relatives): the only terminator accepted is
//! `CR LF "." CR LF`. A lone "." bounded by a bare LF or a bare CR on either side is *not* a
//! terminator, and marks the message [`DataOutcome::BareLfDot`] so the server can reject it.

/// Result of a finished DATA transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataOutcome {
    /// The prefix, then the unstuffed message; every line ends with CRLF.
    Message(Vec<u8>),
    /// The content exceeded `max_size`; the end was still found but the content was dropped.
    TooLarge,
    /// A lone "." with a bare LF (or bare CR) next to it was seen: an SMTP smuggling attempt.
    BareLfDot,
    /// [`DataReceiver::finish`] was called before the terminator was seen (connection lost).
    Incomplete,
}

/// How the current line (or lone-dot candidate) was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prefix {
    /// After CRLF, or at the beginning of the data.
    Clean,
    /// After a bare LF.
    BareLf,
    /// After a bare CR (not a line start, but a lax peer could treat it as one).
    BareCr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a line (prefix is Clean or BareLf).
    LineStart(Prefix),
    /// Inside a line.
    Text,
    /// Inside a line, a CR is pending (not yet written).
    TextCr,
    /// A "." is pending after the given prefix.
    Dot(Prefix),
    /// "." CR is pending after the given prefix.
    DotCr(Prefix),
    /// The terminator has been seen.
    Done,
}

/// Receives message content after the 354 reply: finds the end of data and undoes dot-stuffing,
/// incrementally and independently of how the input is split into chunks.
#[derive(Debug)]
pub struct DataReceiver {
    max_size: usize,
    /// Length of the caller's prefix at the start of `out`; not counted against `max_size`.
    prefix_len: usize,
    out: Vec<u8>,
    state: State,
    too_large: bool,
    smuggling: bool,
}

impl DataReceiver {
    /// A receiver that stores at most `max_size` bytes of (unstuffed) content.
    pub fn new(max_size: usize) -> Self {
        Self::with_prefix(max_size, Vec::new())
    }

    /// A receiver whose message starts with `prefix` (a trace header, say), so that the content
    /// is written after it once instead of being copied behind it later.
    pub fn with_prefix(max_size: usize, prefix: Vec<u8>) -> Self {
        DataReceiver {
            max_size,
            prefix_len: prefix.len(),
            out: prefix,
            // RFC 5321 4.1.1.4: the beginning of the data counts as following a CRLF, so ".CRLF"
            // right after the 354 is an empty message.
            state: State::LineStart(Prefix::Clean),
            too_large: false,
            smuggling: false,
        }
    }

    /// Feeds received bytes.
    ///
    /// Returns `Some(consumed)` once the terminating `CRLF.CRLF` was found: `consumed` is how many
    /// bytes of `input` belong to the message including the terminator; the rest is pipelined
    /// command data. Returns `None` when all of `input` was consumed and more is needed. After the
    /// terminator, further calls return `Some(0)`.
    pub fn feed(&mut self, input: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Done => return Some(0),
                State::Text => {
                    let run = ordinary_run(&input[i..]);
                    if run > 0 {
                        self.emit(&input[i..i + run]);
                        i += run;
                        continue;
                    }
                    if b == b'\r' {
                        self.state = State::TextCr;
                    } else {
                        // Bare LF: tolerated as a line end, normalised to CRLF.
                        self.emit(b"\r\n");
                        self.state = State::LineStart(Prefix::BareLf);
                    }
                    i += 1;
                }
                State::LineStart(p) => {
                    if b == b'.' {
                        self.state = State::Dot(p);
                        i += 1;
                    } else {
                        self.state = State::Text; // reprocess b
                    }
                }
                State::TextCr => match b {
                    b'\n' => {
                        self.emit(b"\r\n");
                        self.state = State::LineStart(Prefix::Clean);
                        i += 1;
                    }
                    b'.' => {
                        // Bare CR is data; a "." after it may start a "\r.\r\n" smuggle.
                        self.emit(b"\r");
                        self.state = State::Dot(Prefix::BareCr);
                        i += 1;
                    }
                    _ => {
                        // Bare CR is kept as data.
                        self.emit(b"\r");
                        self.state = State::Text; // reprocess b
                    }
                },
                State::Dot(p) => match b {
                    b'\r' => {
                        self.state = State::DotCr(p);
                        i += 1;
                    }
                    b'\n' => {
                        // "\n.\n", "\r\n.\n", "\r.\n": not a terminator, but suspicious.
                        self.smuggling = true;
                        self.emit_dot(p);
                        self.emit(b"\r\n");
                        self.state = State::LineStart(Prefix::BareLf);
                        i += 1;
                    }
                    _ => {
                        // RFC 5321 4.5.2: a leading "." is removed (only at a real line start).
                        self.emit_dot(p);
                        self.state = State::Text; // reprocess b
                    }
                },
                State::DotCr(p) => match b {
                    // RFC 5321 4.1.1.4: the end of data is indicated by CRLF "." CRLF.
                    b'\n' if p == Prefix::Clean => {
                        self.state = State::Done;
                        return Some(i + 1);
                    }
                    b'\n' => {
                        // "\n.\r\n" or "\r.\r\n": not a terminator, but suspicious.
                        self.smuggling = true;
                        self.emit_dot(p);
                        self.emit(b"\r\n");
                        self.state = State::LineStart(Prefix::Clean);
                        i += 1;
                    }
                    _ => {
                        // "." followed by a bare CR: a lax peer may see a terminator.
                        self.smuggling = true;
                        self.emit_dot(p);
                        self.state = State::TextCr; // the CR is pending; reprocess b
                    }
                },
            }
        }
        (self.state == State::Done).then_some(0)
    }

    /// Bytes of unstuffed content stored so far (never more than `max_size`).
    pub fn stored_len(&self) -> usize {
        self.out.len().saturating_sub(self.prefix_len)
    }

    /// True once the terminator has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The outcome. Smuggling wins over size, so such a message is always identified as such.
    pub fn finish(self) -> DataOutcome {
        if self.state != State::Done {
            DataOutcome::Incomplete
        } else if self.smuggling {
            DataOutcome::BareLfDot
        } else if self.too_large {
            DataOutcome::TooLarge
        } else {
            DataOutcome::Message(self.out)
        }
    }

    /// Writes the pending "." of a dot line: dropped (unstuffed) at a line start, kept after a bare CR.
    fn emit_dot(&mut self, p: Prefix) {
        if p == Prefix::BareCr {
            self.emit(b".");
        }
    }

    fn emit(&mut self, bytes: &[u8]) {
        if self.too_large {
            return;
        }
        if self.stored_len() + bytes.len() > self.max_size {
            // Stop storing but keep scanning for the end so the session stays in sync.
            self.too_large = true;
            self.out = Vec::new();
            self.prefix_len = 0;
            return;
        }
        self.out.extend_from_slice(bytes);
    }
}

/// Length of the prefix of `input` (which starts inside a line) that needs no state change: text
/// and whole `CRLF`s followed by an ordinary character. Scanning with memchr and emitting whole runs
/// of lines at once is what keeps a 100 KiB body cheap; every CR or LF that could matter (a bare
/// one, one at the end of the input, or one followed by ".", CR or LF) ends the run.
fn ordinary_run(input: &[u8]) -> usize {
    let mut j = 0;
    while let Some(k) = memchr::memchr2(b'\r', b'\n', &input[j..]) {
        let p = j + k;
        match input.get(p..p + 3) {
            Some([b'\r', b'\n', next]) if !matches!(next, b'.' | b'\r' | b'\n') => j = p + 2,
            _ => return p,
        }
    }
    input.len()
}

/// Client side: writes `message` for transmission after a 354 reply.
///
/// Lines starting with "." get an extra "." (RFC 5321 4.5.2), bare CR and bare LF are normalised to
/// CRLF (RFC 5321 2.3.8 allows CR and LF only together), the content is made to end with CRLF when
/// non-empty, and the terminator ".\r\n" is appended.
pub fn dot_stuff(message: &[u8], out: &mut Vec<u8>) {
    let mut line_start = true;
    let mut i = 0;
    while i < message.len() {
        let b = message[i];
        if line_start && b == b'.' {
            out.push(b'.');
        }
        match b {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if message.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                line_start = true;
            }
            b'\n' => {
                out.extend_from_slice(b"\r\n");
                line_start = true;
            }
            _ => {
                out.push(b);
                line_start = false;
            }
        }
        i += 1;
    }
    if !line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNKS: [usize; 18] = [
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 64, 512,
    ];

    /// Feeds `input` in chunks of `chunk`; returns (consumed, outcome).
    fn run(max: usize, input: &[u8], chunk: usize) -> (Option<usize>, DataOutcome) {
        let mut rx = DataReceiver::new(max);
        let mut off = 0;
        let mut consumed = None;
        for c in input.chunks(chunk) {
            if let Some(n) = rx.feed(c) {
                assert!(n <= c.len());
                consumed = Some(off + n);
                break;
            }
            off += c.len();
            assert!(rx.out.len() <= max);
        }
        (consumed, rx.finish())
    }

    /// Runs at every chunk size and asserts they all agree; returns the common result.
    fn run_all(max: usize, input: &[u8]) -> (Option<usize>, DataOutcome) {
        let first = run(max, input, input.len().max(1));
        for chunk in CHUNKS {
            assert_eq!(
                run(max, input, chunk),
                first,
                "{:?} chunk {chunk}",
                String::from_utf8_lossy(input)
            );
        }
        first
    }

    fn msg(s: &[u8]) -> DataOutcome {
        DataOutcome::Message(s.to_vec())
    }

    #[test]
    fn prefix_is_kept_and_not_counted_against_the_limit() {
        let mut rx = DataReceiver::with_prefix(6, b"Received: x\r\n".to_vec());
        assert_eq!(rx.feed(b"abcd\r\n.\r\n"), Some(9));
        assert_eq!(rx.finish(), msg(b"Received: x\r\nabcd\r\n"));
        let mut rx = DataReceiver::with_prefix(5, b"Received: x\r\n".to_vec());
        assert_eq!(rx.feed(b"abcd\r\n.\r\n"), Some(9));
        assert_eq!(rx.finish(), DataOutcome::TooLarge);
    }

    #[test]
    fn long_bodies_split_anywhere() {
        // Many ordinary lines plus the cases the fast path must stop at.
        let (mut input, mut expected) = (Vec::new(), Vec::new());
        for i in 0..200 {
            let line = format!("line {i} of text\r\n");
            input.extend_from_slice(line.as_bytes());
            expected.extend_from_slice(line.as_bytes());
            if i % 37 == 0 {
                input.extend_from_slice(b"..dotted\r\n\r\nbare\nlf\rcr\r\n");
                expected.extend_from_slice(b".dotted\r\n\r\nbare\r\nlf\rcr\r\n");
            }
        }
        input.extend_from_slice(b".\r\n");
        let (consumed, outcome) = run_all(usize::MAX, &input);
        assert_eq!(consumed, Some(input.len()));
        assert_eq!(outcome, DataOutcome::Message(expected));
    }

    #[test]
    fn receive_table() {
        use DataOutcome::*;
        let cases: Vec<(&[u8], usize, Option<usize>, DataOutcome)> = vec![
            // empty message
            (b".\r\n", 100, Some(3), msg(b"")),
            (b".\r\nQUIT\r\n", 100, Some(3), msg(b"")),
            (b"\r\n.\r\n", 100, Some(5), msg(b"\r\n")),
            (
                b"Subject: x\r\n\r\nbody\r\n.\r\n",
                100,
                Some(23),
                msg(b"Subject: x\r\n\r\nbody\r\n"),
            ),
            // dot-stuffing
            (
                b"..leading\r\n...\r\n.x\r\n.\r\n",
                100,
                Some(23),
                msg(b".leading\r\n..\r\nx\r\n"),
            ),
            (b"..\r\n.\r\n", 100, Some(7), msg(b".\r\n")),
            (b"a.\r\nb.\r\n.\r\n", 100, Some(11), msg(b"a.\r\nb.\r\n")),
            // pipelined commands after the terminator
            (
                b"hi\r\n.\r\nMAIL FROM:<a@b>\r\n",
                100,
                Some(7),
                msg(b"hi\r\n"),
            ),
            // bare LF normalised, bare CR kept
            (b"a\nb\r\n.\r\n", 100, Some(8), msg(b"a\r\nb\r\n")),
            (b"a\n..b\r\n.\r\n", 100, Some(10), msg(b"a\r\n.b\r\n")),
            (b"\n\r\n.\r\n", 100, Some(6), msg(b"\r\n\r\n")),
            (b"\n\n.\r\n", 100, None, Incomplete),
            (b"a\rb\r\n.\r\n", 100, Some(8), msg(b"a\rb\r\n")),
            (b"a\r\r\n.\r\n", 100, Some(7), msg(b"a\r\r\n")),
            (b"a\r\n\r.x\r\n.\r\n", 100, Some(11), msg(b"a\r\n\r.x\r\n")),
            // smuggling: lone dot with a bare LF / bare CR next to it never terminates
            (b"a\n.\nMAIL FROM:<x@y>\r\n.\r\n", 100, Some(24), BareLfDot),
            (b"a\n.\r\nRCPT TO:<x@y>\r\n.\r\n", 100, Some(23), BareLfDot),
            (b"a\r\n.\nDATA\r\n.\r\n", 100, Some(14), BareLfDot),
            (b"a\r.\r\nb\r\n.\r\n", 100, Some(11), BareLfDot),
            (b"a\r.\nb\r\n.\r\n", 100, Some(10), BareLfDot),
            (b"a\r\n.\rb\r\n.\r\n", 100, Some(11), BareLfDot),
            (b"\n.\n.\r\n", 100, None, Incomplete),
            (b".\n.\r\n.\r\n", 100, Some(8), BareLfDot),
            (b".\nQUIT\r\n", 100, None, Incomplete),
            // smuggling wins over size
            (b"0123456789abcdef\n.\n\r\n.\r\n", 4, Some(24), BareLfDot),
            // size limit
            (b"0123456789ABCDEF\r\n.\r\nQUIT\r\n", 10, Some(21), TooLarge),
            (b"0123456789\r\n.\r\n", 12, Some(15), msg(b"0123456789\r\n")),
            (b"0123456789\r\n.\r\n", 11, Some(15), TooLarge),
            (b"0123456789\n\r\n.\r\n", 13, Some(16), TooLarge),
            (
                b"0123456789\n\r\n.\r\n",
                14,
                Some(16),
                msg(b"0123456789\r\n\r\n"),
            ),
            // incomplete
            (b"", 100, None, Incomplete),
            (b"abc\r\n.", 100, None, Incomplete),
            (b"abc\r\n.\r", 100, None, Incomplete),
        ];
        for (input, max, consumed, outcome) in cases {
            assert_eq!(
                run_all(max, input),
                (consumed, outcome),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn feed_after_done() {
        let mut rx = DataReceiver::new(10);
        assert_eq!(rx.feed(b"x\r\n"), None);
        assert!(!rx.is_done());
        assert_eq!(rx.feed(b".\r\nNOOP"), Some(3));
        assert!(rx.is_done());
        assert_eq!(rx.feed(b"NOOP\r\n"), Some(0));
        assert_eq!(rx.finish(), msg(b"x\r\n"));
    }

    /// Small deterministic PRNG (xorshift64*) for property tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn bytes(&mut self, max_len: u64) -> Vec<u8> {
            let n = self.next() % (max_len + 1);
            (0..n)
                .map(|_| b".\r\na"[(self.next() % 4) as usize])
                .collect()
        }
    }

    /// The canonical form dot_stuff produces: bare CR / bare LF become CRLF, final CRLF added.
    fn normalise(m: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < m.len() {
            match m[i] {
                b'\r' | b'\n' => {
                    if m[i] == b'\r' && m.get(i + 1) == Some(&b'\n') {
                        i += 1;
                    }
                    out.extend_from_slice(b"\r\n");
                }
                b => out.push(b),
            }
            i += 1;
        }
        if !out.is_empty() && !out.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    #[test]
    fn dot_stuff_output() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a", b"a\r\n.\r\n"),
            (b".", b"..\r\n.\r\n"),
            (b".\r\n.", b"..\r\n..\r\n.\r\n"),
            (b"a\n.b\r\n", b"a\r\n..b\r\n.\r\n"),
            (b"a\r.\r\n", b"a\r\n..\r\n.\r\n"),
            (b"x.y\r\n", b"x.y\r\n.\r\n"),
        ];
        for (input, want) in cases {
            let mut out = Vec::new();
            dot_stuff(input, &mut out);
            assert_eq!(out, *want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn dot_stuff_round_trips() {
        let mut fixed: Vec<Vec<u8>> = [
            &b""[..],
            b"a",
            b".",
            b"..",
            b".\r\n",
            b"a\r\n.\r\nb",
            b"a\n.\nb",
            b"a\r.\r\nb",
            b"\r\n",
            b"x\r",
            b".\n.",
            b"Subject: hi\r\n\r\n.hidden\r\n..\r\n",
        ]
        .iter()
        .map(|m| m.to_vec())
        .collect();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        fixed.extend((0..300).map(|_| rng.bytes(40)));
        for m in fixed {
            let mut wire = Vec::new();
            dot_stuff(&m, &mut wire);
            wire.extend_from_slice(b"QUIT\r\n");
            let (consumed, outcome) = run_all(1 << 20, &wire);
            assert_eq!(
                consumed,
                Some(wire.len() - 6),
                "{:?}",
                String::from_utf8_lossy(&m)
            );
            assert_eq!(
                outcome,
                DataOutcome::Message(normalise(&m)),
                "{:?}",
                String::from_utf8_lossy(&m)
            );
        }
    }

    #[test]
    fn random_chunking_matches_one_shot() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for _ in 0..2000 {
            let input = rng.bytes(48);
            let max = (rng.next() % 40) as usize;
            let one_shot = run(max, &input, input.len().max(1));
            // random chunk boundaries
            let mut rx = DataReceiver::new(max);
            let mut off = 0;
            let mut consumed = None;
            while off < input.len() {
                let n = 1 + (rng.next() % 7) as usize;
                let c = &input[off..(off + n).min(input.len())];
                if let Some(k) = rx.feed(c) {
                    consumed = Some(off + k);
                    break;
                }
                off += c.len();
            }
            assert_eq!(
                (consumed, rx.finish()),
                one_shot,
                "{:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }
}
