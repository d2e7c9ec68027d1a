//! Fuzz target: `DataReceiver` with random chunking must agree with one-shot feeding and stay
//! within its memory bound; accepted messages must be canonical and survive `dot_stuff`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_smtp::data::dot_stuff;
use proto_smtp::{DataOutcome, DataReceiver};

fn feed_all(
    max: usize,
    input: &[u8],
    mut next_chunk: impl FnMut() -> usize,
) -> (Option<usize>, DataOutcome) {
    let mut rx = DataReceiver::new(max);
    let mut off = 0;
    let mut consumed = None;
    while off < input.len() {
        let end = (off + next_chunk().max(1)).min(input.len());
        let c = &input[off..end];
        let r = rx.feed(c);
        assert!(
            rx.stored_len() <= max,
            "stored {} > max {max}",
            rx.stored_len()
        );
        if let Some(n) = r {
            assert!(n <= c.len());
            consumed = Some(off + n);
            break;
        }
        off = end;
    }
    (consumed, rx.finish())
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max = usize::from(u16::from_le_bytes([data[0], data[1]]) % 4096);
    let mut seed = u64::from(data[2]) | 1;
    let input = &data[3..];

    let one_shot = feed_all(max, input, || input.len());
    let chunked = feed_all(max, input, || {
        // xorshift: deterministic "random" chunk sizes 1..=32
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 32) as usize + 1
    });
    assert_eq!(one_shot, chunked);

    if let (Some(_), DataOutcome::Message(m)) = &one_shot {
        assert!(m.len() <= max);
        // Canonical: every LF is part of a CRLF, and content is empty or ends with CRLF.
        for (i, &b) in m.iter().enumerate() {
            if b == b'\n' {
                assert!(i > 0 && m[i - 1] == b'\r', "bare LF in output");
            }
        }
        assert!(m.is_empty() || m.ends_with(b"\r\n"));
        // Stuffing it again and receiving gives the same message (dot_stuff turns bare CR into
        // CRLF), with the terminator exactly at the end.
        let mut expected = Vec::with_capacity(m.len());
        for (i, &b) in m.iter().enumerate() {
            expected.push(b);
            if b == b'\r' && m.get(i + 1) != Some(&b'\n') {
                expected.push(b'\n');
            }
        }
        let mut wire = Vec::new();
        dot_stuff(m, &mut wire);
        let again = feed_all(usize::MAX, &wire, || wire.len());
        assert_eq!(again, (Some(wire.len()), DataOutcome::Message(expected)));
    }
});
