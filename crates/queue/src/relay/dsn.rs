//! Delivery status notifications (RFC 3464): a `multipart/report; report-type=delivery-status`
//! with a human-readable part, the `message/delivery-status` fields (Reporting-MTA, then per
//! recipient Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code) and the original
//! message's header as `text/rfc822-headers`. Built with mail-builder; every value that came
//! from a peer or a user is stripped of control characters so it cannot break a header.

use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;

/// What happened to a recipient (RFC 3464 2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Given up: the message was not delivered.
    Failed,
    /// Still trying.
    Delayed,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
        }
    }
}

/// One recipient's block.
#[derive(Debug, Clone)]
pub(crate) struct DsnRecipient {
    pub(crate) address: String,
    pub(crate) action: Action,
    /// RFC 3463 code.
    pub(crate) status: String,
    /// The last error: an SMTP reply ("550 5.1.1 ...") or a local description.
    pub(crate) diagnostic: Option<String>,
    pub(crate) remote_mta: Option<String>,
}

/// Everything a notice says.
#[derive(Debug, Clone)]
pub(crate) struct Dsn<'a> {
    /// Our host name (Reporting-MTA, MAILER-DAEMON@).
    pub(crate) hostname: &'a str,
    /// The original envelope sender: the notice's recipient.
    pub(crate) to: &'a str,
    pub(crate) queue_id: i64,
    /// When the original arrived, unix seconds.
    pub(crate) arrival: i64,
    /// Now, unix seconds (Date, Last-Attempt-Date).
    pub(crate) now: i64,
    /// For delayed recipients: when we give up.
    pub(crate) retry_until: Option<i64>,
    pub(crate) recipients: Vec<DsnRecipient>,
    /// The original message (only its header is included).
    pub(crate) original: &'a [u8],
}

fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .chars()
        .take(900)
        .collect()
}

fn rfc2822(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc2822)
                .ok()
        })
        .unwrap_or_default()
}

/// RFC 3464 2.3.2 / RFC 6533 3: `rfc822;` for ASCII addresses, `utf-8;` otherwise.
fn address_type(a: &str) -> &'static str {
    if a.is_ascii() { "rfc822" } else { "utf-8" }
}

/// RFC 3464 2.3.6: an SMTP reply is diagnosed as `smtp;`, anything else is ours.
fn diagnostic_code(d: &str) -> String {
    let is_reply =
        d.len() >= 4 && d.as_bytes()[..3].iter().all(u8::is_ascii_digit) && d.as_bytes()[3] == b' ';
    if is_reply {
        format!("smtp; {}", clean(d))
    } else {
        format!("X-Postern; {}", clean(d))
    }
}

/// The notice as a complete RFC 5322 message.
pub(crate) fn build(dsn: &Dsn<'_>) -> Vec<u8> {
    let failed = dsn.recipients.iter().any(|r| r.action == Action::Failed);
    let subject = if failed {
        "Undelivered Mail Returned to Sender"
    } else {
        "Delayed Mail (still being retried)"
    };
    let mut human = format!("This is the mail system at host {}.\r\n\r\n", dsn.hostname);
    if failed {
        human.push_str(
            "I'm sorry to have to inform you that your message could not\r\n\
             be delivered to one or more recipients. It's attached below.\r\n\r\n",
        );
    }
    if dsn.recipients.iter().any(|r| r.action == Action::Delayed) {
        human.push_str(
            "Your message could not be delivered yet to one or more recipients.\r\n\
             It will be retried until it is ",
        );
        human.push_str(&match dsn.retry_until {
            Some(t) => format!("{}; no action is needed.\r\n\r\n", rfc2822(t)),
            None => "too old.\r\n\r\n".into(),
        });
    }
    for r in &dsn.recipients {
        human.push_str(&format!(
            "<{}>: {}{}\r\n",
            clean(&r.address),
            if r.action == Action::Failed {
                "failed"
            } else {
                "delayed"
            },
            match (&r.remote_mta, &r.diagnostic) {
                (Some(m), Some(d)) => format!(", host {} said: {}", clean(m), clean(d)),
                (None, Some(d)) => format!(": {}", clean(d)),
                _ => String::new(),
            }
        ));
    }

    let mut status = format!(
        "Reporting-MTA: dns; {}\r\nX-Postern-Queue-ID: {}\r\nArrival-Date: {}\r\n",
        dsn.hostname,
        dsn.queue_id,
        rfc2822(dsn.arrival)
    );
    for r in &dsn.recipients {
        status.push_str(&format!(
            "\r\nFinal-Recipient: {}; {}\r\nAction: {}\r\nStatus: {}\r\n",
            address_type(&r.address),
            clean(&r.address),
            r.action.as_str(),
            clean(&r.status)
        ));
        if let Some(m) = &r.remote_mta {
            // "name[ip]" from the client: the DNS name is what Remote-MTA reports.
            let name = m.split('[').next().unwrap_or(m);
            status.push_str(&format!("Remote-MTA: dns; {}\r\n", clean(name)));
        }
        if let Some(d) = &r.diagnostic {
            status.push_str(&format!("Diagnostic-Code: {}\r\n", diagnostic_code(d)));
        }
        status.push_str(&format!("Last-Attempt-Date: {}\r\n", rfc2822(dsn.now)));
        if let (Action::Delayed, Some(t)) = (r.action, dsn.retry_until) {
            status.push_str(&format!("Will-Retry-Until: {}\r\n", rfc2822(t)));
        }
    }

    // RFC 6533 6.2: UTF-8 addresses need the global variant, which may carry 8-bit.
    let (status_type, status_cte) = if status.is_ascii() {
        ("message/delivery-status", "7bit")
    } else {
        ("message/global-delivery-status", "8bit")
    };
    let header = message::header::split(dsn.original).0;
    let header = header
        .strip_suffix(b"\r\n")
        .or_else(|| header.strip_suffix(b"\n"))
        .unwrap_or(header);
    let header_cte = if header.is_ascii() { "7bit" } else { "8bit" };

    let report = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        vec![
            MimePart::new(
                ContentType::new("text/plain").attribute("charset", "utf-8"),
                human,
            )
            .header("Content-Description", Raw::new("Notification")),
            // Raw parts: message/* and text/rfc822-headers keep their bytes as written.
            MimePart::new(ContentType::new(status_type), status.into_bytes())
                .header("Content-Description", Raw::new("Delivery report"))
                .transfer_encoding(status_cte),
            MimePart::new(ContentType::new("text/rfc822-headers"), header)
                .header(
                    "Content-Description",
                    Raw::new("Undelivered Message Headers"),
                )
                .transfer_encoding(header_cte),
        ],
    );
    let mut out = Vec::new();
    MessageBuilder::new()
        .from((
            "Mail Delivery System".to_owned(),
            format!("MAILER-DAEMON@{}", dsn.hostname),
        ))
        .to(dsn.to.to_owned())
        .subject(subject)
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .message_id(format!(
            "dsn.{}.{}.{:08x}@{}",
            dsn.queue_id,
            dsn.now,
            fastrand::u32(..),
            dsn.hostname
        ))
        .date(mail_builder::headers::date::Date::new(dsn.now))
        .body(report)
        .serialize(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(action: Action) -> Vec<u8> {
        build(&Dsn {
            hostname: "mx.daum.test",
            to: "kim@daum.test",
            queue_id: 42,
            arrival: 1_790_000_000,
            now: 1_790_000_600,
            retry_until: Some(1_790_432_000),
            recipients: vec![
                DsnRecipient {
                    address: "nobody@naver.test".into(),
                    action,
                    status: "5.1.1".into(),
                    diagnostic: Some("550 5.1.1 <nobody@naver.test>: no such user\r\nX-Injected: 1".into()),
                    remote_mta: Some("mx.naver.test[127.0.0.3]".into()),
                },
                DsnRecipient {
                    address: "이@naver.test".into(),
                    action,
                    status: "4.4.1".into(),
                    diagnostic: Some("connect to mx.naver.test[127.0.0.3]:25: refused".into()),
                    remote_mta: None,
                },
            ],
            original: b"From: Kim <kim@daum.test>\r\nSubject: hello\r\nMessage-ID: <m1@daum.test>\r\n\r\nthe body is not returned\r\n",
        })
    }

    #[test]
    fn failure_report_structure() {
        let m = sample(Action::Failed);
        let text = String::from_utf8(m.clone()).unwrap();
        assert!(
            text.contains("From: \"Mail Delivery System\" <MAILER-DAEMON@mx.daum.test>"),
            "{text}"
        );
        assert!(
            text.contains("To: <kim@daum.test>") || text.contains("To: kim@daum.test"),
            "{text}"
        );
        assert!(
            text.contains("Subject: Undelivered Mail Returned to Sender"),
            "{text}"
        );
        assert!(text.contains("Auto-Submitted: auto-replied"), "{text}");
        assert!(
            text.contains("report-type=\"delivery-status\"")
                || text.contains("report-type=delivery-status"),
            "{text}"
        );
        for needle in [
            "Reporting-MTA: dns; mx.daum.test\r\n",
            "Final-Recipient: rfc822; nobody@naver.test\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.naver.test\r\n",
            "Diagnostic-Code: smtp; 550 5.1.1 <nobody@naver.test>: no such user  X-Injected: 1\r\n",
            "Final-Recipient: utf-8; 이@naver.test\r\n",
            "Diagnostic-Code: X-Postern; connect to",
            "Content-Type: text/rfc822-headers",
            "Subject: hello\r\nMessage-ID: <m1@daum.test>",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(!text.contains("the body is not returned"));
        assert!(
            !text.contains("\r\nX-Injected"),
            "a peer's text cannot start a header line"
        );
        // It parses as multipart/report with three parts.
        let root = message::mime::parse(&m);
        assert_eq!(
            (root.media_type.as_str(), root.subtype.as_str()),
            ("multipart", "report")
        );
        let message::mime::Kind::Multipart(parts) = &root.kind else {
            panic!("not multipart")
        };
        let types: Vec<String> = parts
            .iter()
            .map(|p| format!("{}/{}", p.media_type, p.subtype))
            .collect();
        assert_eq!(
            types,
            [
                "text/plain",
                "message/global-delivery-status",
                "text/rfc822-headers"
            ]
        );
    }

    #[test]
    fn delay_warning() {
        let text = String::from_utf8(sample(Action::Delayed)).unwrap();
        assert!(text.contains("Content-Transfer-Encoding: 8bit"), "{text}");
        assert!(
            text.contains("Subject: Delayed Mail (still being retried)"),
            "{text}"
        );
        assert!(text.contains("Action: delayed\r\n"), "{text}");
        assert!(text.contains("Will-Retry-Until: "), "{text}");
    }
}
