//! Table-driven ENVELOPE, BODYSTRUCTURE, section, BINARY, search and sort fixtures.

mod common;

use common::*;
use message::*;

fn b(s: &str) -> Option<Vec<u8>> {
    Some(s.as_bytes().to_vec())
}

fn addr(name: Option<&str>, mailbox: &str, host: &str) -> Address {
    Address {
        name: name.and_then(b),
        adl: None,
        mailbox: b(mailbox),
        host: b(host),
    }
}

fn group_start(name: &str) -> Address {
    Address {
        mailbox: b(name),
        ..Address::default()
    }
}

fn params(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn fields(t: &str, s: &str, p: &[(&str, &str)], enc: &str, size: usize) -> PartFields {
    PartFields {
        media_type: t.into(),
        subtype: s.into(),
        params: params(p),
        encoding: enc.into(),
        size: size as u64,
        ..PartFields::default()
    }
}

fn text(s: &str, p: &[(&str, &str)], enc: &str, size: usize, lines: u32) -> BodyStructure {
    BodyStructure::Text {
        part: fields("text", s, p, enc, size),
        lines,
    }
}

fn multipart(parts: Vec<BodyStructure>, subtype: &str, p: &[(&str, &str)]) -> BodyStructure {
    BodyStructure::Multipart {
        parts,
        subtype: subtype.into(),
        params: params(p),
        disposition: None,
        language: None,
        location: None,
    }
}

#[test]
fn envelopes() {
    let simple_from = vec![addr(Some("Joe Q. Public"), "john.q.public", "example.com")];
    let cases: Vec<(Vec<u8>, Envelope)> = vec![
        (
            crlf(SIMPLE),
            Envelope {
                date: b("Tue, 1 Jul 2003 10:52:37 +0200"),
                subject: b("Hello"),
                from: simple_from.clone(),
                sender: simple_from.clone(),
                reply_to: simple_from.clone(),
                to: vec![
                    addr(Some("Mary Smith"), "mary", "x.test"),
                    addr(None, "jdoe", "example.org"),
                    addr(Some("Who?"), "one", "y.test"),
                ],
                cc: vec![
                    addr(None, "boss", "nil.test"),
                    addr(Some("Giant; \"Big\" Box"), "sysservices", "example.net"),
                ],
                bcc: vec![],
                in_reply_to: None,
                message_id: b("<5678.21-Nov-1997@example.com>"),
            },
        ),
        (
            crlf(GROUPS),
            Envelope {
                date: None,
                subject: b("groups"),
                from: vec![addr(Some("Pete"), "pete", "silly.example")],
                sender: vec![addr(Some("Pete"), "pete", "silly.example")],
                reply_to: vec![addr(None, "reply", "example.com")],
                to: vec![
                    group_start("A Group"),
                    addr(Some("Ed Jones"), "c", "a.test"),
                    addr(None, "joe", "where.test"),
                    addr(Some("John"), "jdoe", "one.test"),
                    Address::default(),
                ],
                cc: vec![group_start("Undisclosed recipients"), Address::default()],
                bcc: vec![],
                in_reply_to: None,
                message_id: None,
            },
        ),
        (
            crlf(MISSING),
            Envelope {
                subject: b("only a subject"),
                ..Envelope::default()
            },
        ),
        (b"".to_vec(), Envelope::default()),
    ];
    for (raw, want) in cases {
        assert_eq!(envelope(&raw), want, "{}", String::from_utf8_lossy(&raw));
    }
    // LF-only storage gives the same envelope.
    assert_eq!(envelope(SIMPLE.as_bytes()), envelope(&crlf(SIMPLE)));
}

#[test]
fn body_structures() {
    let inner_crlf = crlf(INNER);
    let inner_lines = INNER.lines().count() as u32;
    let inner_body = multipart(
        vec![
            text("plain", &[], "7BIT", 10, 1),
            text("html", &[], "7BIT", 12, 1),
        ],
        "alternative",
        &[("boundary", "inner")],
    );
    let mut pdf = fields("application", "pdf", &[("name", "doc.pdf")], "BASE64", 16);
    pdf.disposition = Some(("attachment".into(), params(&[("filename", "한국.pdf")])));
    pdf.id = Some("<part2@example.com>".into());
    pdf.description = Some("The document".into());
    pdf.language = Some(vec!["ko".into(), "en".into()]);
    pdf.location = Some("http://example.com/doc.pdf".into());

    let cases: Vec<(Vec<u8>, BodyStructure)> = vec![
        (
            crlf(SIMPLE),
            text("plain", &[("charset", "us-ascii")], "7BIT", 14, 1),
        ),
        (
            SIMPLE.as_bytes().to_vec(),
            text("plain", &[("charset", "us-ascii")], "7BIT", 13, 1),
        ),
        (
            crlf(ALTERNATIVE),
            multipart(
                vec![
                    text("plain", &[("charset", "utf-8")], "QUOTED-PRINTABLE", 9, 1),
                    text("html", &[("charset", "utf-8")], "7BIT", 18, 1),
                ],
                "alternative",
                &[("boundary", "b1")],
            ),
        ),
        (
            crlf(MIXED),
            multipart(
                vec![
                    text("plain", &[("charset", "us-ascii")], "7BIT", 13, 1),
                    BodyStructure::Basic { part: pdf },
                    BodyStructure::Basic {
                        part: fields("application", "octet-stream", &[], "X-UUENCODE", 11),
                    },
                ],
                "mixed",
                &[("boundary", "XX")],
            ),
        ),
        (
            crlf(&nested()),
            multipart(
                vec![
                    text("plain", &[], "7BIT", 9, 1),
                    BodyStructure::Message {
                        part: fields("message", "rfc822", &[], "7BIT", inner_crlf.len()),
                        envelope: Box::new(envelope(&inner_crlf)),
                        body: Box::new(inner_body),
                        lines: inner_lines,
                    },
                ],
                "mixed",
                &[("boundary", "outer")],
            ),
        ),
        (
            crlf(MISSING),
            text("plain", &[("charset", "us-ascii")], "7BIT", 26, 1),
        ),
        (
            crlf(DIGEST),
            multipart(
                vec![
                    BodyStructure::Message {
                        part: fields("message", "rfc822", &[], "7BIT", 21),
                        envelope: Box::new(Envelope {
                            subject: b("one"),
                            ..Envelope::default()
                        }),
                        body: Box::new(text("plain", &[("charset", "us-ascii")], "7BIT", 5, 1)),
                        lines: 3,
                    },
                    text("plain", &[], "7BIT", 13, 1),
                ],
                "digest",
                &[("boundary", "d")],
            ),
        ),
    ];
    for (raw, want) in cases {
        assert_eq!(
            body_structure(&raw),
            want,
            "{}",
            String::from_utf8_lossy(&raw)
        );
    }
    // The nested envelope is the inner message's.
    let BodyStructure::Multipart { parts, .. } = body_structure(&crlf(&nested())) else {
        panic!("not multipart")
    };
    let BodyStructure::Message { envelope: e, .. } = &parts[1] else {
        panic!("not message")
    };
    assert_eq!(e.subject, b("inner subject"));
    assert_eq!(e.from, vec![addr(None, "inner", "example.com")]);
}

#[test]
fn malformed_structures() {
    // Multipart without boundary: plain text.
    let s = body_structure(&crlf("Content-Type: multipart/mixed\n\nx\n"));
    assert_eq!(s, text("plain", &[("charset", "us-ascii")], "7BIT", 3, 1));
    // Boundary never seen: one empty part.
    let s = body_structure(&crlf("Content-Type: multipart/mixed; boundary=z\n\nx\n"));
    assert_eq!(
        s,
        multipart(
            vec![text("plain", &[("charset", "us-ascii")], "7BIT", 0, 0)],
            "mixed",
            &[("boundary", "z")]
        )
    );
    // Invalid Content-Type: default.
    let s = body_structure(&crlf("Content-Type: garbage\n\nx"));
    assert_eq!(s, text("plain", &[("charset", "us-ascii")], "7BIT", 1, 1));
    // Base64-encoded message/rfc822 cannot be parsed in place: opaque.
    let s = body_structure(&crlf(
        "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nQQ==\n",
    ));
    assert_eq!(
        s,
        BodyStructure::Basic {
            part: fields("application", "octet-stream", &[], "BASE64", 6)
        }
    );
}

#[test]
fn deep_nesting_is_bounded() {
    let mut msg = String::from("Subject: deep\n");
    for i in 0..200 {
        msg.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n"
        ));
    }
    msg.push_str("\nleaf\n");
    let raw = crlf(&msg);
    let mut depth = 0;
    let mut cur = body_structure(&raw);
    while let BodyStructure::Multipart { mut parts, .. } = cur {
        depth += 1;
        cur = parts.remove(0);
    }
    assert_eq!(depth, message::mime::MAX_DEPTH);
    assert!(matches!(cur, BodyStructure::Basic { .. }));

    let mut msg = String::new();
    for _ in 0..300 {
        msg.push_str("Content-Type: message/rfc822\n\n");
    }
    msg.push_str("Subject: bottom\n\nx\n");
    let _ = body_structure(msg.as_bytes());
    let _ = search_text(msg.as_bytes());
    let path = vec![1u32; 300];
    let _ = section(
        msg.as_bytes(),
        &Section {
            part: path,
            text: SectionText::Full,
        },
    );
}

fn sec(part: &[u32], text: SectionText) -> Section {
    Section {
        part: part.to_vec(),
        text,
    }
}

#[test]
fn sections() {
    use SectionText::*;
    let raw = crlf(&nested());
    let inner = crlf(INNER);
    let outer_header = crlf(
        "From: outer@example.com\nSubject: fwd\nContent-Type: multipart/mixed; boundary=outer\n\n",
    );
    let inner_header = crlf(
        "From: inner@example.com\nSubject: inner subject\nContent-Type: multipart/alternative; boundary=inner\n\n",
    );
    let s = |v: &str| Some(crlf(v));
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cases: Vec<(Section, Option<Vec<u8>>)> = vec![
        (sec(&[], Full), Some(raw.clone())),
        (sec(&[], Header), Some(outer_header.clone())),
        (sec(&[], Text), Some(raw[outer_header.len()..].to_vec())),
        (sec(&[], Mime), None),
        (sec(&[1], Full), s("see below")),
        (sec(&[1], Mime), s("Content-Type: text/plain\n\n")),
        (sec(&[1], Header), None),
        (sec(&[1], Text), None),
        (sec(&[1, 1], Full), None),
        (sec(&[2], Full), Some(inner.clone())),
        (sec(&[2], Mime), s("Content-Type: message/rfc822\n\n")),
        (sec(&[2], Header), Some(inner_header.clone())),
        (sec(&[2], Text), Some(inner[inner_header.len()..].to_vec())),
        (sec(&[2, 1], Full), s("inner text")),
        (sec(&[2, 2], Full), s("<b>inner</b>")),
        (sec(&[2, 2], Mime), s("Content-Type: text/html\n\n")),
        (sec(&[2, 3], Full), None),
        (sec(&[3], Full), None),
        (sec(&[0], Full), None),
        (
            sec(&[2], HeaderFields(names(&["SUBJECT"]))),
            s("Subject: inner subject\n\n"),
        ),
        (
            sec(&[], HeaderFields(names(&["subject", "From", "X-None"]))),
            s("From: outer@example.com\nSubject: fwd\n\n"),
        ),
        (
            sec(&[], HeaderFieldsNot(names(&["subject", "content-type"]))),
            s("From: outer@example.com\n\n"),
        ),
        (sec(&[], HeaderFields(names(&["x-none"]))), s("\n")),
        (sec(&[1], HeaderFields(names(&["subject"]))), None),
    ];
    for (spec, want) in cases {
        assert_eq!(
            section(&raw, &spec).map(|v| String::from_utf8_lossy(&v).into_owned()),
            want.map(|v| String::from_utf8_lossy(&v).into_owned()),
            "{spec:?}"
        );
    }

    // Non-multipart message: part 1 is the body, 1.MIME its header; folded lines are kept.
    let simple = crlf(SIMPLE);
    let (h, body) = simple.split_at(simple.len() - "Hi everyone.\r\n".len());
    assert_eq!(section(&simple, &sec(&[1], Full)).unwrap(), body);
    assert_eq!(section(&simple, &sec(&[1], Mime)).unwrap(), h);
    assert_eq!(section(&simple, &sec(&[2], Full)), None);
    assert_eq!(section(&simple, &sec(&[1, 1], Full)), None);
    assert_eq!(
        section(&simple, &sec(&[], HeaderFields(names(&["date"])))).unwrap(),
        crlf("Date: Tue, 1 Jul 2003 10:52:37\n +0200\n\n")
    );

    // Multipart/digest: the default part type is message/rfc822.
    let digest = crlf(DIGEST);
    assert_eq!(
        section(&digest, &sec(&[1], Header)).unwrap(),
        crlf("Subject: one\n\n")
    );
    assert_eq!(section(&digest, &sec(&[1, 1], Full)).unwrap(), b"first");

    // Header without a final line break still gets a proper CRLF.
    assert_eq!(
        section(b"Subject: x", &sec(&[], HeaderFields(names(&["subject"])))).unwrap(),
        b"Subject: x\r\n\r\n"
    );
}

#[test]
fn binaries() {
    let mixed = crlf(MIXED);
    assert_eq!(binary(&mixed, &[2]).unwrap(), b"hello world");
    assert_eq!(binary(&mixed, &[1]).unwrap(), b"See attached.");
    assert_eq!(
        binary(&mixed, &[3]),
        Err(BinaryError::UnknownEncoding("x-uuencode".into()))
    );
    assert_eq!(binary(&mixed, &[4]), Err(BinaryError::NoSuchPart));
    assert_eq!(binary(&mixed, &[1, 1]), Err(BinaryError::NoSuchPart));
    assert_eq!(binary(&mixed, &[]).unwrap(), mixed);
    assert_eq!(binary_size(&mixed, &[2]), Ok(11));
    let alt = crlf(ALTERNATIVE);
    assert_eq!(binary(&alt, &[1]).unwrap(), "café".as_bytes());
    let qp = crlf("Content-Transfer-Encoding: Quoted-Printable\n\nsoft=\nbreak=20\n");
    assert_eq!(binary(&qp, &[1]).unwrap(), b"softbreak \r\n");
}

fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn euc_kr(s: &str) -> Vec<u8> {
    let (v, _, had_errors) = encoding_rs::EUC_KR.encode(s);
    assert!(!had_errors);
    v.into_owned()
}

/// Encodes Korean/ASCII text as ISO-2022-KR (RFC 1557).
fn iso_2022_kr(s: &str) -> Vec<u8> {
    let mut out = b"\x1b$)C".to_vec();
    let mut shifted = false;
    for c in s.chars() {
        if c.is_ascii() {
            if shifted {
                out.push(0x0f);
                shifted = false;
            }
            out.push(c as u8);
        } else {
            if !shifted {
                out.push(0x0e);
                shifted = true;
            }
            out.extend(euc_kr(&c.to_string()).iter().map(|b| b & 0x7f));
        }
    }
    if shifted {
        out.push(0x0f);
    }
    out
}

#[test]
fn korean_search_text() {
    // EUC-KR body, ks_c_5601-1987 encoded-word subject and display name.
    let mut raw = format!(
        "From: =?ks_c_5601-1987?B?{}?= <kim@example.kr>\r\nSubject: =?ks_c_5601-1987?B?{}?=\r\nContent-Type: text/plain; charset=euc-kr\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        b64(&euc_kr("김철수")),
        b64(&euc_kr("안녕하세요")),
    )
    .into_bytes();
    raw.extend(euc_kr("안녕하세요, 한국어 메일입니다.\r\n"));
    let t = search_text(&raw);
    assert_eq!(
        t.header_values("subject").collect::<Vec<_>>(),
        ["안녕하세요"]
    );
    assert_eq!(
        t.header_values("FROM").collect::<Vec<_>>(),
        ["김철수 <kim@example.kr>"]
    );
    assert_eq!(t.body, "안녕하세요, 한국어 메일입니다.\r\n");
    assert!(fold(&t.body).contains(&fold("한국어 메일")));

    // ISO-2022-KR body, Q-encoded EUC-KR subject split over two words.
    let subj = euc_kr("한국어 메일");
    let q: String = subj.iter().map(|b| format!("={b:02X}")).collect();
    let (q1, q2) = q.split_at(q.len() / 2 / 3 * 3);
    let mut raw = format!(
        "Subject: =?EUC-KR?Q?{q1}?=\r\n =?euc-kr?Q?{q2}?=\r\nContent-Type: text/plain; charset=ISO-2022-KR\r\n\r\n"
    )
    .into_bytes();
    raw.extend(iso_2022_kr("Hello 안녕하세요\r\n한국어 메일 end\r\n"));
    let t = search_text(&raw);
    assert_eq!(t.header_values("subject").next(), Some("한국어 메일"));
    assert_eq!(t.body, "Hello 안녕하세요\r\n한국어 메일 end\r\n");

    // UTF-8 Hangul: base64 plain part, quoted-printable HTML part, and an attached
    // message/rfc822 whose headers and text are searchable too.
    let html_qp: String = "<p>한국어 <b>메일</b> &amp; more</p>"
        .bytes()
        .map(|b| {
            if b.is_ascii() {
                (b as char).to_string()
            } else {
                format!("={b:02X}")
            }
        })
        .collect();
    let raw = crlf(&format!(
        "Subject: =?UTF-8?B?{}?=
Content-Type: multipart/mixed; boundary=k

--k
Content-Type: multipart/alternative; boundary=a

--a
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: base64

{}
--a
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

{html_qp}
--a--
--k
Content-Type: message/rfc822

Subject: =?utf-8?Q?=EC=95=88=EB=85=95?=
Content-Type: text/plain; charset=ks_c_5601-1987
Content-Transfer-Encoding: base64

{}
--k
Content-Type: image/png
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--k--
",
        b64("안녕하세요".as_bytes()),
        b64("UTF-8 본문: 안녕하세요".as_bytes()),
        b64(&euc_kr("첨부된 메일"))
    ));
    let t = search_text(&raw);
    assert_eq!(t.header_values("subject").next(), Some("안녕하세요"));
    assert_eq!(
        t.body,
        "UTF-8 본문: 안녕하세요\n\n한국어 메일 & more\nsubject: 안녕\ncontent-type: text/plain; charset=ks_c_5601-1987\ncontent-transfer-encoding: base64\n첨부된 메일"
    );
    assert!(!t.body.contains("PNG"));
}

#[test]
fn decode_header_values() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            format!("=?ks_c_5601-1987?B?{}?=", b64(&euc_kr("안녕하세요"))).into_bytes(),
            "안녕하세요",
        ),
        (
            format!("=?iso-2022-kr?B?{}?=", b64(&iso_2022_kr("한국어"))).into_bytes(),
            "한국어",
        ),
        (b"=?iso-8859-1?q?caf=E9?= au lait".to_vec(), "café au lait"),
        (b"=?windows-1251?B?z/Do4uXy?=".to_vec(), "Привет"),
        (b"=?koi8-r?Q?=F0=D2=C9=D7=C5=D4?=".to_vec(), "Привет"),
        (
            format!(
                "=?shift_jis?B?{}?=",
                b64(&encoding_rs::SHIFT_JIS.encode("日本語").0)
            )
            .into_bytes(),
            "日本語",
        ),
        (
            format!(
                "=?ISO-2022-JP?B?{}?=",
                b64(&encoding_rs::ISO_2022_JP.encode("日本語").0)
            )
            .into_bytes(),
            "日本語",
        ),
        (
            format!("=?gb2312?B?{}?=", b64(&encoding_rs::GBK.encode("中文").0)).into_bytes(),
            "中文",
        ),
        (
            format!("=?big5?B?{}?=", b64(&encoding_rs::BIG5.encode("中文").0)).into_bytes(),
            "中文",
        ),
        (b"=?iso-8859-15?Q?=A4?=".to_vec(), "€"),
        (b"=?iso-8859-2?Q?=B1?=".to_vec(), "ą"),
        (b"=?us-ascii?Q?plain?=".to_vec(), "plain"),
        (b"=?unknown-cs?Q?x?=".to_vec(), "x"),
        (euc_kr("날 것의 EUC-KR"), "날 것의 EUC-KR"),
    ];
    for (raw, want) in cases {
        assert_eq!(
            decode_header_value(&raw),
            want,
            "{}",
            String::from_utf8_lossy(&raw)
        );
    }
}

#[test]
fn sort_and_thread_keys() {
    let raw = crlf(
        "Date: Fri, 21 Nov 1997 09:55:06 -0600
Subject: Re: [list] =?utf-8?Q?Caf=C3=A9?= (fwd)
From: =?utf-8?Q?=C3=89mile?= <Emile@Example.COM>
To: undisclosed:;, Bob <BOB@x.test>
Cc: carol@y.test
Message-ID: <id-3@x>
In-Reply-To: <id-2@x>
References: <id-1@x>
 <id-2@x>

body
",
    );
    let k = sort_keys(&raw);
    assert_eq!(
        k,
        SortKeys {
            date: Some(880127706),
            subject: "café".into(),
            from: "emile".into(),
            to: "bob".into(),
            cc: "carol".into(),
            display_from: "émile".into(),
            display_to: "bob".into(),
            message_id: Some("<id-3@x>".into()),
            references: vec!["<id-1@x>".into(), "<id-2@x>".into()],
            subject_is_reply: true,
        }
    );
    let k = sort_keys(&crlf("In-Reply-To: <a@b> <c@d>\nTo: x@y\n\n"));
    assert_eq!(k.references, vec!["<a@b>".to_string()]);
    assert_eq!(k.display_to, "x@y");
    assert_eq!(k.date, None);
    assert_eq!(k.message_id, None);
    assert!(!k.subject_is_reply);
}

/// RFC 5256 section 2.1 examples and edge cases.
#[test]
fn base_subjects() {
    let cases = [
        ("Re: test", "test", true),
        ("re:  re: test", "test", true),
        ("Fwd: test", "test", true),
        ("fw: test", "test", true),
        ("test (fwd)", "test", true),
        ("[fwd: test]", "test", true),
        ("[Fwd: Re: test (fwd)]", "test", true),
        ("Re[2]: test", "test", true),
        ("[IMAP-LIST] Re: test", "test", true),
        ("[IMAP-LIST] test", "test", false),
        ("[IMAP-LIST]", "[IMAP-LIST]", false),
        ("Re: [IMAP-LIST]", "[IMAP-LIST]", true),
        ("test", "test", false),
        ("\ttest\t\tsubject ", "test subject", false),
        ("Re: Re: Fwd: [a] Re: 안녕하세요 (fwd)", "안녕하세요", true),
    ];
    for (input, want, reply) in cases {
        assert_eq!(base_subject(input), (want.to_string(), reply), "{input:?}");
    }
}

#[test]
fn multipart_ignores_bogus_transfer_encoding() {
    let raw = crlf(
        "Content-Type: multipart/mixed; boundary=q\nContent-Transfer-Encoding: quoted-printable\n\n--q\n\na=3Db\n--q--\n",
    );
    assert_eq!(
        body_structure(&raw),
        multipart(
            vec![text("plain", &[("charset", "us-ascii")], "7BIT", 5, 1)],
            "mixed",
            &[("boundary", "q")]
        )
    );
    assert_eq!(binary(&raw, &[1]).unwrap(), b"a=3Db");
}
