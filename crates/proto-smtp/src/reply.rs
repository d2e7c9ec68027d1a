//! Server replies: the [`Reply`] type, its wire formatting and named constructors for common replies.

/// A server reply: a three-digit code, an optional RFC 2034 enhanced status code and text lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The RFC 5321 reply code, e.g. 250.
    pub code: u16,
    /// The RFC 3463 enhanced status code, e.g. `"5.1.1"`, written on every line when present.
    pub enhanced: Option<&'static str>,
    /// The text lines (without code or line terminator). An empty list is written as one empty line.
    pub lines: Vec<String>,
}

impl Reply {
    /// A single-line reply with an enhanced status code.
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Some(enhanced),
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply without enhanced status code (e.g. the EHLO response, RFC 2034 3 says
    /// EHLO lines carry none).
    pub fn multiline(code: u16, lines: Vec<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            lines,
        }
    }

    /// Writes the reply in wire form, e.g. `"250-first\r\n250 last\r\n"`.
    ///
    /// CR and LF characters inside the text are removed so a reply can never span extra lines.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let empty = [String::new()];
        let lines: &[String] = if self.lines.is_empty() {
            &empty
        } else {
            &self.lines
        };
        for (i, line) in lines.iter().enumerate() {
            // RFC 5321 4.2.1: "250-" on every line but the last, which uses "250 ".
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            let mut head = format!("{:03}{sep}", self.code);
            // RFC 2034 4: the enhanced code follows the reply code on every line.
            if let Some(e) = self.enhanced {
                head.push_str(e);
                if !line.is_empty() {
                    head.push(' ');
                }
            }
            out.extend_from_slice(head.as_bytes());
            out.extend(line.bytes().filter(|&b| b != b'\r' && b != b'\n'));
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }

    /// 2xx (completion) or 3xx (intermediate): RFC 5321 4.2.1 positive replies.
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// 4xx: transient negative completion.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: permanent negative completion.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// `250 2.0.0 OK`
    pub fn ok() -> Reply {
        Reply::new(250, "2.0.0", "OK")
    }

    /// `354` go ahead with the message (RFC 5321 4.1.1.4); no enhanced code on intermediate replies.
    pub fn start_data() -> Reply {
        Reply {
            code: 354,
            enhanced: None,
            lines: vec!["End data with <CR><LF>.<CR><LF>".into()],
        }
    }

    /// `221 2.0.0 Bye`
    pub fn closing() -> Reply {
        Reply::new(221, "2.0.0", "Bye")
    }

    /// `503 5.5.1 Bad sequence of commands`
    pub fn bad_sequence() -> Reply {
        Reply::new(503, "5.5.1", "Bad sequence of commands")
    }

    /// `502 5.5.1 Command not implemented`
    pub fn not_implemented() -> Reply {
        Reply::new(502, "5.5.1", "Command not implemented")
    }

    /// `500 5.5.2 Line too long` (RFC 5321 4.5.3.1.4 suggests 500 for an over-long line).
    pub fn line_too_long() -> Reply {
        Reply::new(500, "5.5.2", "Line too long")
    }

    /// `552 5.3.4 Message size exceeds fixed limit` (RFC 1870 6, RFC 3463 X.3.4).
    pub fn too_large() -> Reply {
        Reply::new(552, "5.3.4", "Message size exceeds fixed limit")
    }

    /// `554 5.6.0` rejecting a message with a bare LF next to a lone dot (SMTP smuggling attempt).
    pub fn bare_lf_dot() -> Reply {
        Reply::new(554, "5.6.0", "Message contains bare LF around a lone dot")
    }

    /// `421 4.3.2 Service shutting down`; the connection is closed after sending it.
    pub fn shutting_down() -> Reply {
        Reply::new(421, "4.3.2", "Service shutting down")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(r: &Reply) -> String {
        String::from_utf8(r.to_bytes()).unwrap()
    }

    #[test]
    fn formatting() {
        let cases = [
            (
                Reply::new(250, "2.1.0", "Sender OK"),
                "250 2.1.0 Sender OK\r\n",
            ),
            (Reply::ok(), "250 2.0.0 OK\r\n"),
            (Reply::new(250, "2.0.0", ""), "250 2.0.0\r\n"),
            (
                Reply::start_data(),
                "354 End data with <CR><LF>.<CR><LF>\r\n",
            ),
            (
                Reply::multiline(
                    250,
                    vec![
                        "mx.example.com".into(),
                        "PIPELINING".into(),
                        "SIZE 1000".into(),
                    ],
                ),
                "250-mx.example.com\r\n250-PIPELINING\r\n250 SIZE 1000\r\n",
            ),
            (
                Reply {
                    code: 550,
                    enhanced: Some("5.7.1"),
                    lines: vec!["a".into(), "b".into()],
                },
                "550-5.7.1 a\r\n550 5.7.1 b\r\n",
            ),
            (Reply::multiline(250, vec![]), "250 \r\n"),
            (
                Reply::new(550, "5.0.0", "evil\r\n250 injected\n"),
                "550 5.0.0 evil250 injected\r\n",
            ),
        ];
        for (reply, want) in cases {
            assert_eq!(wire(&reply), want);
        }
    }

    #[test]
    fn classes() {
        let r = |code| Reply::multiline(code, vec![]);
        for (code, pos, trans, perm) in [
            (220, true, false, false),
            (354, true, false, false),
            (421, false, true, false),
            (452, false, true, false),
            (550, false, false, true),
            (199, false, false, false),
        ] {
            let rep = r(code);
            assert_eq!(
                (rep.is_positive(), rep.is_transient(), rep.is_permanent()),
                (pos, trans, perm),
                "{code}"
            );
        }
    }
}
