//! Robustness: no function panics on arbitrary or mutated input.

mod common;

use message::*;
use proptest::prelude::*;

fn exercise(raw: &[u8]) {
    let _ = envelope(raw);
    let bs = body_structure(raw);
    let _ = format!("{bs:?}");
    let _ = search_text(raw);
    let _ = sort_keys(raw);
    let _ = decode_header_value(raw);
    let _ = base_subject(&String::from_utf8_lossy(raw));
    let _ = message::address::parse_address_list(raw);
    let _ = message::params::parse(raw);
    let _ = message::charset::decode_iso_2022_kr(raw);
    let _ = message::search::html_to_text(&String::from_utf8_lossy(raw));
    let _ = message::transfer::quoted_printable(raw);
    let paths: [&[u32]; 7] = [&[], &[1], &[2], &[1, 1], &[2, 1], &[2, 2, 1], &[u32::MAX]];
    for p in paths {
        for text in [
            SectionText::Full,
            SectionText::Header,
            SectionText::HeaderFields(vec!["subject".into(), "from".into()]),
            SectionText::HeaderFieldsNot(vec!["subject".into()]),
            SectionText::Text,
            SectionText::Mime,
        ] {
            let _ = section(
                raw,
                &Section {
                    part: p.to_vec(),
                    text,
                },
            );
        }
        let _ = binary(raw, p);
    }
}

/// Bytes that matter to the parsers.
const INTERESTING: &[u8] = b"\r\n\r\n-- =?!:;,<>()[]\"\\@.\t\x0e\x0f\x1b%*'_\x80\xff";

fn mutate(base: &[u8], ops: &[(u16, u8, u8)]) -> Vec<u8> {
    let mut v = base.to_vec();
    for &(pos, kind, byte) in ops {
        let pos = if v.is_empty() {
            0
        } else {
            pos as usize % (v.len() + 1)
        };
        let b = if byte < 128 {
            INTERESTING[byte as usize % INTERESTING.len()]
        } else {
            byte
        };
        match kind % 4 {
            0 => v.insert(pos, b),
            1 if pos < v.len() => {
                v.remove(pos);
            }
            2 if pos < v.len() => v[pos] = b,
            _ => {
                // Duplicate a chunk (creates nesting and repeated boundaries).
                let end = (pos + b as usize).min(v.len());
                let chunk = v[pos..end].to_vec();
                v.splice(pos..pos, chunk);
            }
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes(raw in proptest::collection::vec(any::<u8>(), 0..600)) {
        exercise(&raw);
    }

    #[test]
    fn mutated_fixtures(
        which in 0usize..9,
        ops in proptest::collection::vec((any::<u16>(), any::<u8>(), any::<u8>()), 1..24),
    ) {
        let base = &common::all()[which];
        exercise(&mutate(base, &ops));
    }

    #[test]
    fn interesting_soup(idx in proptest::collection::vec(0usize..INTERESTING.len() + 8, 0..300)) {
        let words: [&[u8]; 8] = [
            b"Content-Type: multipart/mixed; boundary=x\r\n",
            b"--x\r\n",
            b"Content-Type: message/rfc822\r\n",
            b"Content-Transfer-Encoding: base64\r\n",
            b"=?utf-8?B?",
            b"?=",
            b"From: a <b@c>, g:;",
            b"filename*0*=utf-8''%E",
        ];
        let mut raw = Vec::new();
        for i in idx {
            match INTERESTING.get(i) {
                Some(&b) => raw.push(b),
                None => raw.extend_from_slice(words[i - INTERESTING.len()]),
            }
        }
        exercise(&raw);
    }
}

#[test]
fn every_prefix_of_fixtures() {
    for f in common::all() {
        for n in 0..=f.len() {
            exercise(&f[..n]);
        }
    }
}

/// Inputs that would take quadratic time in a naive parser finish quickly.
#[test]
fn pathological_inputs_stay_linear() {
    let n = 200_000;
    let start = std::time::Instant::now();
    let mut cases: Vec<Vec<u8>> = Vec::new();
    cases.push(format!("Subject: {}\r\n\r\n", "=?a?q?".repeat(n / 6)).into_bytes());
    cases.push(format!("References: {}>\r\n\r\n", "<".repeat(n)).into_bytes());
    cases.push(format!("Subject: {}x\r\n\r\n", "[a]".repeat(n / 3)).into_bytes());
    cases.push(format!("Subject: {}x\r\n\r\n", "[fwd:".repeat(n / 5)).into_bytes());
    cases.push(format!("To: {}\r\n\r\n", "a:".repeat(n / 2)).into_bytes());
    cases.push(format!("To: {}\r\n\r\n", "(((".repeat(n / 3)).into_bytes());
    cases.push(
        format!(
            "Content-Type: text/html\r\n\r\n{}",
            "<script><!--&amp;".repeat(n / 17)
        )
        .into_bytes(),
    );
    cases.push(
        format!(
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n{}",
            "--b\r\n".repeat(n / 5)
        )
        .into_bytes(),
    );
    cases.push(format!("Content-Type: a/b;{}\r\n\r\n", "x*0*=';".repeat(n / 7)).into_bytes());
    for raw in &cases {
        let _ = body_structure(raw);
        let _ = envelope(raw);
        let _ = search_text(raw);
        let _ = sort_keys(raw);
    }
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
}
