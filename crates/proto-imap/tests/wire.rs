//! Exact wire format of ENVELOPE / BODY / BODYSTRUCTURE for message fixtures, and a syntax
//! check of the encoders' output on arbitrary input.

use proptest::prelude::*;

fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}

fn env(raw: &[u8]) -> String {
    let mut out = Vec::new();
    proto_imap::envelope(&mut out, &message::envelope(raw));
    String::from_utf8(out).unwrap()
}

fn bs(raw: &[u8], extensible: bool) -> String {
    let mut out = Vec::new();
    proto_imap::body_structure(&mut out, &message::body_structure(raw), extensible);
    String::from_utf8(out).unwrap()
}

const SIMPLE: &str = "From: \"Joe Q. Public\" <john.q.public@example.com>
To: Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>
Cc: <boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>
Date: Tue, 1 Jul 2003 10:52:37
 +0200
Subject: Hello
Message-ID: <5678.21-Nov-1997@example.com>

Hi everyone.
";

const ALTERNATIVE: &str = "From: a@example.com
Content-Type: multipart/alternative; boundary=\"b1\"

--b1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

caf=C3=A9
--b1
Content-Type: text/html; charset=utf-8

<p>caf&eacute;</p>
--b1--
";

const MIXED: &str = "Content-Type: multipart/mixed; boundary=\"XX\"

--XX
Content-Type: text/plain; charset=us-ascii

See attached.
--XX
Content-Type: application/pdf; name=\"doc.pdf\"
Content-Disposition: attachment;
 filename*0*=utf-8''%ED%95%9C%EA%B5%AD;
 filename*1=\".pdf\"
Content-Transfer-Encoding: base64
Content-ID: <part2@example.com>
Content-Description: The document
Content-Language: ko, en
Content-Location: http://example.com/
 doc.pdf

aGVsbG8gd29ybGQ=
--XX--
";

const INNER: &str = "From: inner@example.com
Subject: inner subject
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain

inner text
--inner
Content-Type: text/html

<b>inner</b>
--inner--
";

const GROUPS: &str = "From: Pete <pete@silly.example>
To: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;
Cc: Undisclosed recipients:;
Subject: =?utf-8?Q?caf=C3=A9?=

body
";

#[test]
fn simple() {
    let raw = crlf(SIMPLE);
    let joe = "((\"Joe Q. Public\" NIL \"john.q.public\" \"example.com\"))";
    assert_eq!(
        env(&raw),
        format!(
            "(\"Tue, 1 Jul 2003 10:52:37 +0200\" \"Hello\" {joe} {joe} {joe} \
             ((\"Mary Smith\" NIL \"mary\" \"x.test\")(NIL NIL \"jdoe\" \"example.org\")(\"Who?\" NIL \"one\" \"y.test\")) \
             ((NIL NIL \"boss\" \"nil.test\")(\"Giant; \\\"Big\\\" Box\" NIL \"sysservices\" \"example.net\")) \
             NIL NIL \"<5678.21-Nov-1997@example.com>\")"
        )
    );
    assert_eq!(
        bs(&raw, true),
        "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 14 1 NIL NIL NIL NIL)"
    );
    assert_eq!(
        bs(&raw, false),
        "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 14 1)"
    );
}

#[test]
fn groups_and_missing_headers() {
    let raw = crlf(GROUPS);
    let pete = "((\"Pete\" NIL \"pete\" \"silly.example\"))";
    assert_eq!(
        env(&raw),
        format!(
            "(NIL \"=?utf-8?Q?caf=C3=A9?=\" {pete} {pete} {pete} \
             ((NIL NIL \"A Group\" NIL)(\"Ed Jones\" NIL \"c\" \"a.test\")(NIL NIL \"joe\" \"where.test\")(\"John\" NIL \"jdoe\" \"one.test\")(NIL NIL NIL NIL)) \
             ((NIL NIL \"Undisclosed recipients\" NIL)(NIL NIL NIL NIL)) NIL NIL NIL)"
        )
    );
    assert_eq!(env(b"\r\n"), "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
    // Raw 8-bit header text goes out as a literal.
    assert_eq!(
        env("Subject: 한\r\n\r\n".as_bytes()),
        "(NIL {3}\r\n한 NIL NIL NIL NIL NIL NIL NIL NIL)"
    );
}

#[test]
fn alternative() {
    let raw = crlf(ALTERNATIVE);
    assert_eq!(
        bs(&raw, true),
        "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 9 1 NIL NIL NIL NIL)\
         (\"TEXT\" \"HTML\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 18 1 NIL NIL NIL NIL) \
         \"ALTERNATIVE\" (\"BOUNDARY\" \"b1\") NIL NIL NIL)"
    );
    assert_eq!(
        bs(&raw, false),
        "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 9 1)\
         (\"TEXT\" \"HTML\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 18 1) \"ALTERNATIVE\")"
    );
}

#[test]
fn mixed_with_rfc2231_attachment() {
    let raw = crlf(MIXED);
    assert_eq!(
        bs(&raw, true),
        "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 13 1 NIL NIL NIL NIL)\
         (\"APPLICATION\" \"PDF\" (\"NAME\" \"doc.pdf\") \"<part2@example.com>\" \"The document\" \"BASE64\" 16 \
         NIL (\"ATTACHMENT\" (\"FILENAME*\" \"utf-8''%ED%95%9C%EA%B5%AD.pdf\")) (\"ko\" \"en\") \"http://example.com/doc.pdf\") \
         \"MIXED\" (\"BOUNDARY\" \"XX\") NIL NIL NIL)"
    );
    assert_eq!(
        bs(&raw, false),
        "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 13 1)\
         (\"APPLICATION\" \"PDF\" (\"NAME\" \"doc.pdf\") \"<part2@example.com>\" \"The document\" \"BASE64\" 16) \"MIXED\")"
    );
}

#[test]
fn nested_message() {
    let raw = crlf(&format!(
        "From: outer@example.com
Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: text/plain

see below
--outer
Content-Type: message/rfc822
Content-Disposition: inline

{INNER}
--outer--
"
    ));
    let inner_size = crlf(INNER).len();
    let inner_lines = INNER.lines().count();
    let inner = "((NIL NIL \"inner\" \"example.com\"))";
    assert_eq!(
        bs(&raw, true),
        format!(
            "((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 9 1 NIL NIL NIL NIL)\
             (\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" {inner_size} \
             (NIL \"inner subject\" {inner} {inner} {inner} NIL NIL NIL NIL NIL) \
             ((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 10 1 NIL NIL NIL NIL)\
             (\"TEXT\" \"HTML\" NIL NIL NIL \"7BIT\" 12 1 NIL NIL NIL NIL) \"ALTERNATIVE\" (\"BOUNDARY\" \"inner\") NIL NIL NIL) \
             {inner_lines} NIL (\"INLINE\" NIL) NIL NIL) \
             \"MIXED\" (\"BOUNDARY\" \"outer\") NIL NIL NIL)"
        )
    );
    assert_eq!(
        bs(&raw, false),
        format!(
            "((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 9 1)\
             (\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" {inner_size} \
             (NIL \"inner subject\" {inner} {inner} {inner} NIL NIL NIL NIL NIL) \
             ((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 10 1)(\"TEXT\" \"HTML\" NIL NIL NIL \"7BIT\" 12 1) \"ALTERNATIVE\") \
             {inner_lines}) \"MIXED\")"
        )
    );
}

/// A minimal parser for the IMAP data syntax used in these responses: lists, NIL, numbers,
/// quoted strings and (synchronizing or `~`) literals. Returns the rest after one value.
fn parse_value(s: &[u8]) -> Result<&[u8], String> {
    match s.first() {
        Some(b'(') => {
            let mut rest = &s[1..];
            if let Some(r) = rest.strip_prefix(b")") {
                return Ok(r);
            }
            loop {
                rest = parse_value(rest)?;
                match rest.first() {
                    Some(b')') => return Ok(&rest[1..]),
                    Some(b' ') => rest = &rest[1..],
                    // Adjacent lists (multipart bodies, address lists) need no space.
                    Some(b'(') => {}
                    other => return Err(format!("unexpected {other:?} in list")),
                }
            }
        }
        Some(b'"') => {
            let mut i = 1;
            while i < s.len() {
                match s[i] {
                    b'\\' => {
                        if !matches!(s.get(i + 1), Some(b'"' | b'\\')) {
                            return Err("bad escape".into());
                        }
                        i += 2;
                    }
                    b'"' => return Ok(&s[i + 1..]),
                    b'\r' | b'\n' | 0 => return Err("CR/LF/NUL in quoted".into()),
                    b if b >= 0x80 => return Err("8-bit in quoted".into()),
                    _ => i += 1,
                }
            }
            Err("unterminated quoted".into())
        }
        Some(b'{') | Some(b'~') => {
            let s = s.strip_prefix(b"~").unwrap_or(s);
            let close = s.iter().position(|&b| b == b'}').ok_or("no }")?;
            let n: usize = std::str::from_utf8(&s[1..close])
                .map_err(|e| e.to_string())?
                .parse()
                .map_err(|e: std::num::ParseIntError| e.to_string())?;
            let rest = s[close + 1..].strip_prefix(b"\r\n").ok_or("no CRLF")?;
            rest.get(n..).ok_or_else(|| "short literal".into())
        }
        Some(b'N') => s.strip_prefix(b"NIL").ok_or_else(|| "bad atom".into()),
        Some(b) if b.is_ascii_digit() => {
            let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
            Ok(&s[n..])
        }
        other => Err(format!("unexpected {other:?}")),
    }
}

fn assert_well_formed(out: &[u8]) {
    match parse_value(out) {
        Ok([]) => {}
        Ok(rest) => panic!("trailing {:?}", String::from_utf8_lossy(rest)),
        Err(e) => panic!("{e}: {:?}", String::from_utf8_lossy(out)),
    }
}

#[test]
fn fixtures_are_well_formed() {
    for raw in [SIMPLE, ALTERNATIVE, MIXED, INNER, GROUPS] {
        let raw = crlf(raw);
        assert_well_formed(env(&raw).as_bytes());
        assert_well_formed(bs(&raw, true).as_bytes());
        assert_well_formed(bs(&raw, false).as_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_messages_encode_well_formed(
        chunks in proptest::collection::vec(
            prop_oneof![
                Just(&b"Content-Type: multipart/mixed; boundary=x\r\n"[..]),
                Just(&b"--x\r\n"[..]),
                Just(&b"--x--\r\n"[..]),
                Just(&b"Content-Type: message/rfc822\r\n"[..]),
                Just(&b"Content-Disposition: attachment; filename*=utf-8''%ED%95%9C\r\n"[..]),
                Just(&b"Content-Language: ko\r\n"[..]),
                Just(&b"From: \"a\\\"b\" <c@d>, g: e@f;\r\n"[..]),
                Just(&b"Subject: \xed\x95\x9c \"q\" \\\r\n"[..]),
                Just(&b"Content-ID: <\x00\xff>\r\n"[..]),
                Just(&b"\r\n"[..]),
                Just(&b"text\r\n"[..]),
            ],
            0..40,
        ),
        noise in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut raw: Vec<u8> = chunks.concat();
        raw.extend(noise);
        // Bytes, not `env()`: arbitrary 8-bit input may come out in literals, which need not be
        // UTF-8.
        let mut out = Vec::new();
        proto_imap::envelope(&mut out, &message::envelope(&raw));
        assert_well_formed(&out);
        out.clear();
        let b = message::body_structure(&raw);
        proto_imap::body_structure(&mut out, &b, true);
        assert_well_formed(&out);
        out.clear();
        proto_imap::body_structure(&mut out, &b, false);
        assert_well_formed(&out);
    }

    #[test]
    fn mutf7_round_trip(s in "\\PC*") {
        let e = proto_imap::mutf7::encode(&s);
        prop_assert!(e.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        prop_assert_eq!(proto_imap::mutf7::decode(&e), Some(s));
    }

    #[test]
    fn mutf7_decode_never_panics(s in "[&A-Za-z0-9+,\\-é]{0,40}") {
        if let Some(d) = proto_imap::mutf7::decode(&s) {
            prop_assert_eq!(proto_imap::mutf7::encode(&d), s);
        }
    }
}
