//! Fuzz target: `parse_command` on arbitrary bytes, and `LineBuffer` framing of arbitrary input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_smtp::{LineBuffer, parse_command};

const MAX_LINE: usize = 64;

fuzz_target!(|data: &[u8]| {
    // The whole input as one command line: must never panic; a parsed command must survive a
    // write / parse round trip unchanged.
    match parse_command(data) {
        Ok(cmd) => {
            let mut wire = Vec::new();
            cmd.write_to(&mut wire);
            let line = wire.strip_suffix(b"\r\n").expect("write_to ends with CRLF");
            assert_eq!(
                parse_command(line).as_ref(),
                Ok(&cmd),
                "round trip of {cmd:?}"
            );
        }
        Err(e) => {
            // Every error maps to a well-formed single-line reply.
            let bytes = e.reply().to_bytes();
            assert!(bytes.ends_with(b"\r\n"));
            assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1);
        }
    }

    // The input as a stream, split at a data-derived chunk size.
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut lb = LineBuffer::new(MAX_LINE);
    for c in data.chunks(chunk) {
        lb.push(c);
        while let Some(item) = lb.next_line() {
            // Err(TooLong) is expected for long lines; framing resumes after the next LF.
            if let Ok(line) = item {
                assert!(line.len() <= MAX_LINE);
                assert!(!line.contains(&b'\n'));
                let _ = parse_command(line);
            }
        }
        // Bounded: at most one line plus a trailing CR once drained.
        assert!(lb.buffered_len() <= MAX_LINE + 1);
    }
});
