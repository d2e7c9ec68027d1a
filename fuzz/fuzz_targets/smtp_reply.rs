//! Fuzz target: the client side of SMTP. `ReplyParser` with data-derived chunking must give
//! the same replies as one-shot feeding, never hold more than its line bound, and every reply
//! it accepts must have a valid code and at least one line; `Capabilities::from_ehlo` must not
//! panic on any of them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_smtp::{Capabilities, ReplyParser};

const MAX_LINE: usize = 512;

fn replies(input: &[u8], mut next_chunk: impl FnMut() -> usize) -> Vec<String> {
    let mut p = ReplyParser::new(MAX_LINE);
    let mut out = Vec::new();
    let mut off = 0;
    while off < input.len() {
        let end = (off + next_chunk().max(1)).min(input.len());
        p.push(&input[off..end]);
        off = end;
        while let Some(r) = p.next_reply() {
            out.push(match r {
                Ok(r) => {
                    assert!((200..=559).contains(&r.code), "code {}", r.code);
                    assert!(!r.lines.is_empty());
                    let caps = Capabilities::from_ehlo(&r);
                    let _ = caps.too_large(u64::MAX);
                    format!("{} {:?} {:?}", r.code, r.enhanced, r.lines)
                }
                Err(e) => format!("error {e}"),
            });
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let (seed, input) = data.split_at(1);
    let whole = replies(input, || input.len());
    let mut n = usize::from(seed[0]);
    let chunked = replies(input, || {
        n = (n * 7 + 3) % 61;
        n + 1
    });
    assert_eq!(whole, chunked);
});
