//! Fuzz target: the POP3 input and output paths. Arbitrary bytes go through `parse_command`
//! (never panics) and through `LineBuffer` framing at a data-derived chunk size, which must
//! give the same lines and errors as one-shot feeding while staying bounded. The same bytes,
//! taken as a stored message, go through `MessageWriter` (RETR and TOP) at a data-derived
//! output budget: the output is CRLF lines, dot-stuffed, ended by the only "." line, and for
//! RETR its unstuffed size is exactly `message_size`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_pop3::{LineBuffer, LineError, MessageWriter, message_size, parse_command};

const MAX_LINE: usize = 64;

fn frame(data: &[u8], chunk: usize) -> Vec<Result<Vec<u8>, LineError>> {
    let mut lb = LineBuffer::new(MAX_LINE);
    let mut out = Vec::new();
    for c in data.chunks(chunk.max(1)) {
        lb.push(c);
        while let Some(item) = lb.next_line() {
            if let Ok(line) = &item {
                assert!(line.len() <= MAX_LINE);
                assert!(!line.contains(&b'\n'));
                let _ = parse_command(line);
            }
            out.push(item.map(<[u8]>::to_vec));
        }
    }
    out
}

/// Checks the multi-line form and returns its size without stuffing and the final ".".
fn check_wire(wire: &[u8]) -> u64 {
    let body = wire.strip_suffix(b".\r\n").expect("ends with the . line");
    let mut size = 0;
    for line in body.split_inclusive(|b| *b == b'\n') {
        assert!(line.ends_with(b"\r\n"), "line without CRLF: {line:?}");
        assert!(
            !line[..line.len() - 1].contains(&b'\n'),
            "LF inside a line: {line:?}"
        );
        assert!(line != b".\r\n", "an unstuffed . line ends the response early");
        size += line.len() - usize::from(line.first() == Some(&b'.'));
        if line.first() == Some(&b'.') {
            assert_eq!(line.get(1), Some(&b'.'), "unstuffed dot: {line:?}");
        }
    }
    size as u64
}

fuzz_target!(|data: &[u8]| {
    let _ = parse_command(data);

    let chunk = usize::from(data.first().copied().unwrap_or(1));
    assert_eq!(frame(data, data.len().max(1)), frame(data, chunk));

    let budget = usize::from(data.last().copied().unwrap_or(0)) + 1;
    let mut wire = Vec::new();
    let mut w = MessageWriter::retr(data);
    while !w.write(&mut wire, budget) {}
    assert_eq!(check_wire(&wire), message_size(data));

    let lines = u32::from(data.get(1).copied().unwrap_or(0) % 8);
    let mut top = Vec::new();
    let mut w = MessageWriter::top(data, lines);
    while !w.write(&mut top, budget) {}
    assert!(check_wire(&top) <= message_size(data));
});
