//! DATA and BDAT: receiving the message, stamping it, and handing it to the deliverer. The
//! reply "250" is sent only after the deliverer says the message is on disk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use proto_smtp::{DataOutcome, DataReceiver, Reply};
use queue::Target;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

use crate::Role;
use crate::session::{End, Envelope, Phase, Session};

impl Session {
    /// Takes the envelope if it is ready for message data, or queues the right error.
    fn ready_envelope(&mut self) -> Result<Option<Envelope>, End> {
        match std::mem::take(&mut self.phase) {
            Phase::Mail(env) if !env.rcpts.is_empty() => Ok(Some(env)),
            Phase::Mail(env) => {
                self.phase = Phase::Mail(env);
                self.error_reply(Reply::new(554, "5.5.1", "No valid recipients"))?;
                Ok(None)
            }
            Phase::Idle => {
                self.error_reply(Reply::new(503, "5.5.1", "Need MAIL and RCPT first"))?;
                Ok(None)
            }
        }
    }

    pub(crate) async fn handle_data(&mut self) -> Result<(), End> {
        if matches!(&self.phase, Phase::Mail(env) if env.chunks.is_some()) {
            // RFC 3030 3: DATA may not follow BDAT in one transaction.
            return self.error_reply(Reply::new(503, "5.5.1", "DATA not allowed after BDAT"));
        }
        let Some(env) = self.ready_envelope()? else {
            return Ok(());
        };
        self.reply(Reply::start_data());
        let max = self.srv.settings.max_message_size;
        let id = next_id();
        // The trace header goes first, so the content is written once, behind it.
        let header = self.received_header(&env, &id).into_bytes();
        let header_len = header.len();
        let mut receiver = DataReceiver::with_prefix(max, header);
        // Bytes pipelined after DATA belong to the message.
        let pending = self.input.take_remaining();
        if let Some(consumed) = receiver.feed(&pending) {
            self.input.push(&pending[consumed..]);
        } else {
            drop(pending);
            loop {
                let timeout = self.srv.settings.data_timeout;
                let n = self.read_some(timeout, false).await?;
                let chunk = self.received(n);
                if let Some(consumed) = receiver.feed(chunk) {
                    // Whatever follows the terminator is the next command.
                    let rest = chunk[consumed..].to_vec();
                    self.input.push(&rest);
                    break;
                }
            }
        }
        match receiver.finish() {
            DataOutcome::Message(message) => self.accept(env, message, header_len, id).await,
            DataOutcome::TooLarge => self.error_reply(Reply::too_large()),
            DataOutcome::BareLfDot => self.error_reply(Reply::bare_lf_dot()),
            _ => self.error_reply(Reply::new(554, "5.6.0", "Message rejected")),
        }
    }

    pub(crate) async fn handle_bdat(&mut self, size: u64, last: bool) -> Result<(), End> {
        // The chunk follows the command whatever we answer: read it to stay in sync (RFC 3030 2).
        let max = self.srv.settings.max_message_size;
        let mut env = match std::mem::take(&mut self.phase) {
            Phase::Mail(env) if !env.rcpts.is_empty() => Some(env),
            other => {
                self.phase = other;
                None
            }
        };
        let mut sink = env.as_mut().map(|e| {
            let buf = e.chunks.get_or_insert_with(Vec::new);
            (buf, &mut e.chunks_too_large)
        });
        let mut remaining = size;
        let mut pending = self.input.take_remaining();
        loop {
            let take = remaining.min(pending.len() as u64) as usize;
            if let Some((buf, too_large)) = sink.as_mut() {
                if buf.len() + take > max {
                    **too_large = true;
                    buf.clear();
                } else if !**too_large {
                    buf.extend_from_slice(&pending[..take]);
                }
            }
            remaining -= take as u64;
            if remaining == 0 {
                self.input.push(&pending[take..]);
                break;
            }
            let n = self
                .read_some(self.srv.settings.data_timeout, false)
                .await?;
            pending.clear();
            pending.extend_from_slice(self.received(n));
        }
        let Some(mut env) = env else {
            return self.error_reply(Reply::new(503, "5.5.1", "Need MAIL and RCPT before BDAT"));
        };
        if !last {
            self.phase = Phase::Mail(env);
            self.reply(Reply::new(250, "2.0.0", format!("{size} octets received")));
            return Ok(());
        }
        if env.chunks_too_large {
            return self.error_reply(Reply::too_large());
        }
        let mut message = env.chunks.take().unwrap_or_default();
        let id = next_id();
        let header = self.received_header(&env, &id);
        message.splice(0..0, header.bytes());
        self.accept(env, message, header.len(), id).await
    }

    /// Stores a complete message (`content_start` is where the content begins, after our trace
    /// header), then answers.
    async fn accept(
        &mut self,
        env: Envelope,
        mut message: Vec<u8>,
        content_start: usize,
        id: String,
    ) -> Result<(), End> {
        // RFC 5321 6.3: a message that has passed this many hops is in a loop (two forwards
        // pointing at each other); refusing it stops the loop. Our own trace header counts.
        let hops = count_headers(&message[content_start..], "received") + 1;
        if hops > MAX_HOPS {
            tracing::warn!(id, hops, "refused: too many hops (mail loop)");
            self.reply(Reply::new(
                554,
                "5.4.6",
                format!("Too many hops ({hops}): mail loop"),
            ));
            return Ok(());
        }
        if self.srv.settings.role == Role::Submission {
            // RFC 6409 8: a submission server may add a missing Date and Message-ID.
            let extra = missing_submission_headers(
                &message[content_start..],
                &id,
                &self.srv.settings.hostname,
            );
            message.splice(content_start..content_start, extra);
        }
        let targets: Vec<Target> = env
            .rcpts
            .iter()
            .flat_map(|(_, t)| t.iter().cloned())
            .collect();
        match self
            .srv
            .deliverer
            .deliver(env.from.as_deref(), &targets, message)
            .await
        {
            Ok(receipt) => {
                tracing::info!(
                    id, from = env.from.as_deref().unwrap_or(""), rcpts = env.rcpts.len(),
                    queued = ?receipt.queue_id, "message accepted"
                );
                self.reply(Reply::new(
                    250,
                    "2.0.0",
                    format!("OK, message {id} accepted"),
                ));
            }
            Err(e) => {
                tracing::error!(id, "storing message failed: {e}");
                self.reply(Reply::new(
                    451,
                    "4.3.0",
                    "Local error in processing, try again later",
                ));
            }
        }
        Ok(())
    }

    /// RFC 5321 4.4 trace header.
    fn received_header(&self, env: &Envelope, id: &str) -> String {
        let helo = self
            .greeting
            .as_ref()
            .map_or_else(|| "unknown".to_string(), |g| trace_name(&g.name));
        let esmtp = self.greeting.as_ref().is_some_and(|g| g.esmtp);
        // RFC 3848 protocol types.
        let with = match (esmtp, self.is_tls(), self.identity.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        };
        let tls = self
            .tls_description()
            .map(|t| format!(" ({t})"))
            .unwrap_or_default();
        // Name the recipient only when there is one: more would disclose Bcc recipients.
        let rcpt = match env.rcpts.as_slice() {
            [(only, _)] => format!("\r\n\tfor <{only}>"),
            _ => String::new(),
        };
        let date = OffsetDateTime::now_utc()
            .format(&Rfc2822)
            .unwrap_or_default();
        format!(
            "Received: from {helo} ([{ip}])\r\n\tby {host} (Postern) with {with}{tls} id {id}{rcpt};\r\n\t{date}\r\n",
            ip = self.peer.ip(),
            host = self.srv.settings.hostname,
        )
    }
}

/// A unique message id for logs and headers: time plus a process-wide counter.
fn next_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    format!(
        "{micros:x}{:04x}",
        COUNTER.fetch_add(1, Ordering::Relaxed) & 0xffff
    )
}

/// Trace headers a message may carry before it is refused as a loop (Postfix: 50).
const MAX_HOPS: usize = 50;

/// Whether the header block of `data` has a field named `name` (case-insensitive).
fn has_header(data: &[u8], name: &str) -> bool {
    header_names(data).any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
}

/// How many fields named `name` (case-insensitive) the header block of `data` has.
fn count_headers(data: &[u8], name: &str) -> usize {
    header_names(data)
        .filter(|n| n.eq_ignore_ascii_case(name.as_bytes()))
        .count()
}

/// The field names of the header block of `data` (continuation lines have none).
fn header_names(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty())
        .filter(|line| !line.starts_with(b" ") && !line.starts_with(b"\t"))
        .filter_map(|line| {
            let colon = line.iter().position(|b| *b == b':')?;
            Some(line[..colon].trim_ascii_end())
        })
}

fn missing_submission_headers(data: &[u8], id: &str, host: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if !has_header(data, "date") {
        let date = OffsetDateTime::now_utc()
            .format(&Rfc2822)
            .unwrap_or_default();
        out.extend_from_slice(format!("Date: {date}\r\n").as_bytes());
    }
    if !has_header(data, "message-id") {
        out.extend_from_slice(format!("Message-ID: <{id}@{host}>\r\n").as_bytes());
    }
    out
}

/// The client's HELO name as the Received header shows it: printable ASCII, parentheses
/// replaced too, so that a made-up name can neither put raw bytes in the header nor pass
/// for the TCP information in the comment that follows it.
fn trace_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '(' && c != ')' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_names_are_printable_ascii_without_parentheses() {
        assert_eq!(trace_name("mx.example.com"), "mx.example.com");
        assert_eq!(trace_name("[192.0.2.1]"), "[192.0.2.1]");
        assert_eq!(
            trace_name("good.example;(spoof)\u{e9}"),
            "good.example;?spoof??"
        );
    }

    #[test]
    fn header_detection_stops_at_body() {
        let m = b"Subject: x\r\nDate : Mon\r\n\r\nMessage-ID: body\r\n";
        assert!(has_header(m, "date"));
        assert!(!has_header(m, "message-id"));
        assert!(!has_header(b"\r\nDate: x\r\n", "date"));
    }

    #[test]
    fn trace_headers_are_counted_in_the_header_block_only() {
        let m = b"Received: from a\r\n\tby b; date\r\nreceived: x\r\nSubject: y\r\n \
                  Received: a continuation\r\n\r\nReceived: in the body\r\n";
        assert_eq!(count_headers(m, "received"), 2);
        assert_eq!(count_headers(m, "subject"), 1);
        assert_eq!(count_headers(b"", "received"), 0);
    }

    #[test]
    fn ids_are_unique() {
        let a = next_id();
        assert_ne!(a, next_id());
    }
}
