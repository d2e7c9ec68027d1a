//! Fuzz target: the IMAP command input path. Arbitrary bytes, in arbitrary chunks, go through
//! imap-codec's `Fragmentizer` (driven the way `imap-server`'s session drives it: oversized
//! synchronising literals are skipped, oversized non-synchronising ones poisoned) and every
//! complete message is decoded with `CommandCodec`. Checks: no panic; the buffered message
//! never exceeds the limit by more than one read; random chunking gives the same events as
//! one-shot feeding; a decoded command encodes to bytes that decode, and re-encoding is
//! stable. The same bytes also go through modified UTF-7 (`proto_imap::mutf7`), the MIME
//! views of `message`, and COMPRESS=DEFLATE (`proto_imap::deflate`): inflating them as a
//! client's compressed stream ends in an error or in output, never a panic or a loop, at most
//! one chunk per call; and deflating them inflates back to the same bytes at any chunking.
#![no_main]

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::encode::Encoder;
use imap_codec::fragmentizer::{
    DecodeMessageError, FragmentInfo, Fragmentizer, LiteralAnnouncement,
};
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::command::Command;
use imap_codec::imap_types::core::LiteralMode;
use libfuzzer_sys::fuzz_target;

/// The largest message limit tried (the server's is APPENDLIMIT plus slack; 64 KiB here).
const MAX_MESSAGE: u32 = 64 * 1024;

/// What the framing loop produced, in order.
#[derive(Debug, PartialEq)]
enum Event {
    /// A complete message and how it decoded (`None`: syntax error or trailing bytes).
    Message(Vec<u8>, Option<Command<'static>>),
    /// A complete message over the size limit or with a poisoned (refused) literal.
    TooBig(Option<String>),
    /// A synchronising literal over the limit: refused before it is sent, message skipped.
    Refused(Option<String>),
    /// The bytes of the incomplete message left at the end of the input.
    Partial(Vec<u8>),
}

fn tag(frag: &Fragmentizer) -> Option<String> {
    frag.decode_tag().map(|t| t.inner().to_string())
}

fn run(
    max: u32,
    literal_limit: u32,
    input: &[u8],
    mut next_chunk: impl FnMut() -> usize,
) -> Vec<Event> {
    let codec = CommandCodec::default();
    let mut frag = Fragmentizer::new(max);
    let mut events = Vec::new();
    let mut off = 0;
    let mut last_read = 0;
    loop {
        match frag.progress() {
            Some(FragmentInfo::Line {
                announcement: Some(LiteralAnnouncement { mode, length }),
                ..
            }) if length > literal_limit => match mode {
                LiteralMode::Sync => {
                    events.push(Event::Refused(tag(&frag)));
                    frag.skip_message();
                    continue;
                }
                LiteralMode::NonSync => frag.poison_message(),
            },
            Some(_) => {}
            None => {
                if off >= input.len() {
                    break;
                }
                let end = (off + next_chunk().max(1)).min(input.len());
                frag.enqueue_bytes(&input[off..end]);
                last_read = end - off;
                off = end;
                continue;
            }
        }
        let held = frag.message_bytes().len();
        assert!(
            held <= max as usize + last_read,
            "message buffer {held} > limit {max} + read {last_read}"
        );
        if !frag.is_message_complete() {
            continue;
        }
        match frag.decode_message(&codec) {
            Ok(cmd) => {
                assert!(!frag.is_max_message_size_exceeded() && !frag.is_message_poisoned());
                round_trip(&codec, &cmd);
                events.push(Event::Message(
                    frag.message_bytes().to_vec(),
                    Some(cmd.into_static()),
                ));
            }
            Err(DecodeMessageError::MessageTooLong { .. }) => {
                assert!(frag.is_max_message_size_exceeded());
                events.push(Event::TooBig(tag(&frag)));
            }
            Err(DecodeMessageError::MessagePoisoned { .. }) => {
                assert!(frag.is_message_poisoned());
                events.push(Event::TooBig(tag(&frag)));
            }
            Err(
                DecodeMessageError::DecodingFailure(_)
                | DecodeMessageError::DecodingRemainder { .. },
            ) => {
                events.push(Event::Message(frag.message_bytes().to_vec(), None));
            }
        }
    }
    if !frag.is_message_complete() {
        events.push(Event::Partial(frag.message_bytes().to_vec()));
    }
    events
}

/// A decoded command encodes to bytes that decode again, and re-encoding that is a fixpoint.
/// (Not `decode(encode(c)) == c`: the encoder normalises, e.g. the sequence set `1:1` to `1`.)
fn round_trip(codec: &CommandCodec, cmd: &Command<'_>) {
    let wire = codec.encode(cmd).dump();
    match codec.decode(&wire) {
        Ok((rest, again)) => {
            assert!(rest.is_empty(), "encoding of {cmd:?} left {rest:?}");
            let wire2 = codec.encode(&again).dump();
            assert_eq!(
                String::from_utf8_lossy(&wire2),
                String::from_utf8_lossy(&wire),
                "re-encoding {again:?} (from {cmd:?}) differs"
            );
        }
        Err(e) => panic!(
            "encoding {:?} of {cmd:?} does not decode: {e:?}",
            String::from_utf8_lossy(&wire)
        ),
    }
}

fn mutf7(data: &[u8]) {
    use proto_imap::mutf7::{decode, encode};
    let text = String::from_utf8_lossy(data);
    let encoded = encode(&text);
    assert!(
        encoded.bytes().all(|b| (0x20..=0x7e).contains(&b)),
        "{encoded:?}"
    );
    assert_eq!(decode(&encoded).as_deref(), Some(&*text), "via {encoded:?}");
    // Any name that decodes is canonical: it is what encode produces for its decoding.
    if let Ok(s) = std::str::from_utf8(data)
        && let Some(d) = decode(s)
    {
        assert_eq!(encode(&d), s);
    }
}

fn mime(data: &[u8]) {
    let _ = message::envelope(data);
    let _ = message::body_structure(data);
    let _ = message::search_text(data);
}

/// Inflates `wire` in `chunk`-sized reads the way the session does; `None` on an error.
fn inflate_chunked(wire: &[u8], chunk: usize) -> Option<Vec<u8>> {
    use proto_imap::deflate::{Deflate, INFLATE_CHUNK};
    let mut z = Deflate::new();
    let mut plain = Vec::new();
    for piece in wire.chunks(chunk.max(1)) {
        let mut rest = piece;
        loop {
            let before = plain.len();
            let n = z.inflate(rest, &mut plain).ok()?;
            assert!(plain.len() - before <= INFLATE_CHUNK);
            assert!(n <= rest.len());
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
    Some(plain)
}

fn deflate(data: &[u8], chunk: usize) {
    let _ = inflate_chunked(data, chunk);
    let mut z = proto_imap::deflate::Deflate::new();
    let mut wire = Vec::new();
    for part in data.chunks(chunk.max(1)) {
        z.deflate(part, &mut wire).unwrap();
    }
    assert_eq!(inflate_chunked(&wire, chunk * 3 + 1).as_deref(), Some(data));
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    // A small limit half the time, so the over-the-limit paths are reached.
    let max = if data[0] & 1 == 0 {
        MAX_MESSAGE
    } else {
        16 + u32::from(data[1]) * 8
    };
    let literal_limit = u32::from(data[2]) * max / 255;
    let mut seed = u64::from(data[3]) | 1;
    let input = &data[4..];

    let one_shot = run(max, literal_limit, input, || input.len());
    let chunked = run(max, literal_limit, input, || {
        // xorshift: deterministic "random" chunk sizes 1..=64
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 64) as usize + 1
    });
    assert_eq!(one_shot, chunked);

    mutf7(input);
    mime(input);
    deflate(input, usize::from(data[3]) + 1);
});
