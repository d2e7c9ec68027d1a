//! Shared message fixtures (written with LF for readability, converted to CRLF).

#![allow(dead_code)]

/// Converts LF line endings to CRLF.
pub(crate) fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}

pub(crate) const SIMPLE: &str = "From: \"Joe Q. Public\" <john.q.public@example.com>
To: Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>
Cc: <boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>
Date: Tue, 1 Jul 2003 10:52:37
 +0200
Subject: Hello
Message-ID: <5678.21-Nov-1997@example.com>

Hi everyone.
";

pub(crate) const ALTERNATIVE: &str = "From: a@example.com
To: b@example.com
Subject: alt
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=\"b1\"

preamble
--b1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

caf=C3=A9
--b1
Content-Type: text/html; charset=utf-8

<p>caf&eacute;</p>
--b1--
epilogue
";

pub(crate) const MIXED: &str = "From: a@example.com
Subject: attachment
Content-Type: multipart/mixed; boundary=\"XX\"

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
--XX
Content-Type: application/octet-stream
Content-Transfer-Encoding: x-uuencode

begin 644 x
--XX--
";

pub(crate) const INNER: &str = "From: inner@example.com
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

pub(crate) fn nested() -> String {
    format!(
        "From: outer@example.com
Subject: fwd
Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: text/plain

see below
--outer
Content-Type: message/rfc822

{INNER}
--outer--
"
    )
}

pub(crate) const GROUPS: &str = "From: Pete <pete@silly.example>
To: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;
Cc: Undisclosed recipients:;
Reply-To: reply@example.com
Subject: groups

body
";

pub(crate) const MISSING: &str = "Subject: only a subject

body without final newline";

pub(crate) const DIGEST: &str = "Content-Type: multipart/digest; boundary=d

--d

Subject: one

first
--d
Content-Type: text/plain

not a message
--d--
";

pub(crate) fn all() -> Vec<Vec<u8>> {
    vec![
        crlf(SIMPLE),
        crlf(ALTERNATIVE),
        crlf(MIXED),
        crlf(&nested()),
        crlf(GROUPS),
        crlf(MISSING),
        crlf(DIGEST),
        SIMPLE.as_bytes().to_vec(),
        nested().into_bytes(),
    ]
}
