//! `postern-bench gen-mail` — deterministic test mail for the IMAP benchmark.
//!
//! Writes `N` messages of about `S` bytes each (sizes vary from 0.5 S to 1.5 S,
//! mean S) either as a Maildir (`--maildir DIR`: `DIR/cur/` files named like
//! Dovecot's, with `,S=` and `,W=` sizes and `:2,` flags, mtime = the message
//! date) or as an mbox file (`--mbox FILE`: `From ` separated, mboxrd quoting,
//! a `Status: RO` header on seen messages), or both. The same `--seed` gives
//! the same messages, so Postern (imported from the Maildir or the mbox) and
//! Dovecot (the Maildir copied into its mail home) hold identical mail.
//!
//! Messages look like ordinary mail: `Received`, `Return-Path`, `Date`,
//! `From` (with display names, some Korean RFC 2047 encoded), `To`,
//! `Subject` (English, Korean RFC 2047 `=?UTF-8?B?`, and some raw UTF-8),
//! `Message-ID`, some `In-Reply-To`/`References`; bodies are `text/plain`
//! UTF-8 8bit, or `multipart/alternative` (text + quoted-printable HTML), or
//! (every 10th) `multipart/mixed` with a small base64 attachment. Message
//! dates rise with the index (UID order = date order = file-name order).
//! Every 10th message and the newest 30 are unseen; every 25th is flagged.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufWriter, Write as _};
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Args, Debug)]
pub(crate) struct GenArgs {
    /// Number of messages.
    #[arg(short = 'n', long, default_value_t = 10_000)]
    messages: usize,

    /// Mean message size in bytes (k/m suffixes accepted).
    #[arg(short = 's', long, default_value = "4k", value_parser = crate::parse_size)]
    size: usize,

    /// Write a Maildir here (creates DIR/cur, DIR/new, DIR/tmp).
    #[arg(long, value_name = "DIR")]
    maildir: Option<PathBuf>,

    /// Write an mbox file here.
    #[arg(long, value_name = "FILE")]
    mbox: Option<PathBuf>,

    /// Recipient address shown in To:.
    #[arg(long, default_value = "bench-user@naver.test")]
    to: String,

    /// Random seed (same seed = same messages).
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Unix time of the newest message (default: 1795000000 = Nov 2026).
    #[arg(long, default_value_t = 1_795_000_000)]
    newest: i64,
}

pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len())]
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for ch in input.chunks(3) {
        let b = [ch[0], *ch.get(1).unwrap_or(&0), *ch.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(B64[(n >> 18) as usize & 63] as char);
        out.push(B64[(n >> 12) as usize & 63] as char);
        out.push(if ch.len() > 1 {
            B64[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if ch.len() > 2 {
            B64[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

fn rfc2047(s: &str) -> String {
    format!("=?UTF-8?B?{}?=", base64(s.as_bytes()))
}

const FIRST_KO: &[&str] = &[
    "김민준",
    "이서연",
    "박지호",
    "최수아",
    "정예준",
    "강하은",
    "조도윤",
    "윤지우",
    "장서준",
    "임하윤",
];
const FIRST_EN: &[&str] = &[
    "Alice Kim",
    "Bob Lee",
    "Carol Park",
    "Dave Choi",
    "Erin Jung",
    "Frank Kang",
    "Grace Cho",
    "Henry Yoon",
];
const DOMAINS: &[&str] = &[
    "daum.test",
    "naver.test",
    "kakao.test",
    "example.com",
    "corp.example",
    "shop.example",
];
const SUBJ_EN: &[&str] = &[
    "Quarterly report draft",
    "Re: meeting tomorrow at 10",
    "Your order has shipped",
    "Invoice for November",
    "Weekly team update",
    "Fwd: slides from the conference",
    "Lunch on Friday?",
    "Password reset request",
    "[dev] build failures on main",
    "Re: Re: contract review comments",
    "Newsletter: what's new this month",
    "Travel itinerary confirmation",
];
const SUBJ_KO: &[&str] = &[
    "회의 일정 안내",
    "주간 업무 보고서",
    "Re: 견적서 검토 부탁드립니다",
    "11월 청구서 발송 안내",
    "[공지] 사내 시스템 점검 일정",
    "택배 배송이 시작되었습니다",
    "프로젝트 킥오프 미팅 자료",
    "점심 약속 확인",
    "비밀번호 변경 안내",
    "Fwd: 계약서 수정본",
];
const LINES_KO: &[&str] = &[
    "안녕하세요, 요청하신 자료를 첨부하여 보내드립니다.",
    "다음 주 화요일 오전 10시에 회의실 3층에서 뵙겠습니다.",
    "검토 후 의견 주시면 반영하도록 하겠습니다. 감사합니다.",
    "일정에 변동이 있으면 미리 알려주시기 바랍니다.",
    "첨부 파일을 확인해 주시고 문의 사항은 회신 부탁드립니다.",
];
const LINES_EN: &[&str] = &[
    "Thanks for the quick reply, I have attached the updated figures below.",
    "Please review the changes before the end of the week if you can.",
    "Let me know if anything in the proposal needs to be clarified further.",
    "The numbers for the third quarter look better than we expected.",
    "I will forward the meeting notes to the rest of the team this afternoon.",
    "We still need a decision on the budget for the new office equipment.",
];

fn date_str(t: i64) -> String {
    crate::rfc5322_date(UNIX_EPOCH + Duration::from_secs(t.max(0) as u64)).replace("+0000", "+0900")
}

/// One generated message (LF line endings) and its flags.
pub(crate) struct GenMsg {
    pub(crate) data: Vec<u8>,
    pub(crate) seen: bool,
    pub(crate) flagged: bool,
    pub(crate) time: i64,
}

fn qp_encode(s: &str) -> String {
    let mut out = String::new();
    let mut col = 0;
    for &b in s.as_bytes() {
        let piece = if b == b'\n' {
            out.push('\n');
            col = 0;
            continue;
        } else if (b' '..=b'~').contains(&b) && b != b'=' {
            (b as char).to_string()
        } else {
            format!("={b:02X}")
        };
        if col + piece.len() > 75 {
            out.push_str("=\n");
            col = 0;
        }
        col += piece.len();
        out.push_str(&piece);
    }
    out
}

fn text_body(rng: &mut Rng, target: usize, korean: bool) -> String {
    let mut s = String::with_capacity(target + 100);
    s.push_str(if korean {
        "안녕하세요.\n\n"
    } else {
        "Hello,\n\n"
    });
    while s.len() < target {
        let l = if korean && rng.below(3) > 0 {
            rng.pick(LINES_KO)
        } else {
            rng.pick(LINES_EN)
        };
        s.push_str(l);
        s.push('\n');
        if rng.below(5) == 0 {
            s.push('\n');
        }
    }
    s.push_str("\n-- \nSent from the benchmark generator\n");
    s
}

pub(crate) fn gen_message(
    seed: u64,
    i: usize,
    n: usize,
    size: usize,
    to: &str,
    newest: i64,
) -> GenMsg {
    let mut rng = Rng::new(seed ^ (i as u64).wrapping_mul(0x1000_0000_01B3));
    for _ in 0..3 {
        rng.next();
    }
    // dates: newest message at `newest`, about 5 minutes apart (strictly increasing)
    let time = newest - ((n - 1 - i) as i64) * 300 - rng.below(200) as i64;
    let korean = rng.below(3) == 0;
    let from_dom = rng.pick(DOMAINS);
    let (from_name, from_local) = if korean {
        let nm = rng.pick(FIRST_KO);
        (rfc2047(nm), format!("user{}", rng.below(500)))
    } else {
        let nm = rng.pick(FIRST_EN);
        (
            format!("\"{nm}\""),
            nm.split(' ').next().unwrap_or("x").to_lowercase(),
        )
    };
    let subject = match rng.below(20) {
        0 => rng.pick(SUBJ_KO).to_string(), // raw UTF-8 (as some clients send)
        1..=6 => rfc2047(rng.pick(SUBJ_KO)),
        _ => rng.pick(SUBJ_EN).to_string(),
    };
    let subject = format!("{subject} #{i}");
    let msgid = format!("<{:016x}.{i}@{from_dom}>", rng.next());
    let mut h = String::with_capacity(1024);
    let _ = write!(
        h,
        "Return-Path: <{from_local}@{from_dom}>\n\
Delivered-To: {to}\n\
Received: from mx.{from_dom} (mx.{from_dom} [192.0.2.{}])\n\tby mx.naver.test with ESMTPS id {:012X}\n\tfor <{to}>; {}\n\
Date: {}\n\
From: {from_name} <{from_local}@{from_dom}>\n\
To: {to}\n\
Subject: {subject}\n\
Message-ID: {msgid}\n",
        rng.below(250) + 1,
        rng.next() & 0xFFFF_FFFF_FFFF,
        date_str(time + 2),
        date_str(time),
    );
    if rng.below(4) == 0 {
        let r = format!("<{:016x}.{}@{from_dom}>", rng.next(), i / 2);
        let _ = write!(h, "In-Reply-To: {r}\nReferences: {r}\n");
    }
    if rng.below(3) == 0 {
        let _ = writeln!(h, "Cc: \"Team\" <team@{}>", rng.pick(DOMAINS));
    }
    h.push_str("MIME-Version: 1.0\n");
    // size: 0.5 .. 1.5 x mean
    let target = (size / 2 + rng.below(size.max(2))).max(400);
    let body_target = target.saturating_sub(h.len() + 200).max(100);
    let kind = rng.below(10);
    let mut body = String::with_capacity(body_target + 600);
    if kind == 0 {
        // multipart/mixed with a small attachment
        let b = format!("=_mixed_{:08x}", rng.next() as u32);
        let _ = writeln!(h, "Content-Type: multipart/mixed; boundary=\"{b}\"");
        let att_len = body_target / 2;
        let text = text_body(&mut rng, body_target - att_len * 4 / 3, korean);
        let att: Vec<u8> = (0..att_len).map(|_| rng.next() as u8).collect();
        let _ = write!(
            body,
            "This is a multi-part message in MIME format.\n\n--{b}\n\
Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\n{text}\n--{b}\n\
Content-Type: application/pdf; name=\"report-{i}.pdf\"\n\
Content-Disposition: attachment; filename=\"report-{i}.pdf\"\nContent-Transfer-Encoding: base64\n\n"
        );
        let enc = base64(&att);
        for chunk in enc.as_bytes().chunks(76) {
            body.push_str(std::str::from_utf8(chunk).unwrap_or(""));
            body.push('\n');
        }
        let _ = writeln!(body, "--{b}--");
    } else if kind <= 3 {
        let b = format!("=_alt_{:08x}", rng.next() as u32);
        let _ = writeln!(h, "Content-Type: multipart/alternative; boundary=\"{b}\"");
        let text = text_body(&mut rng, body_target * 2 / 5, korean);
        let mut html = String::from("<html><body>\n");
        for l in text.lines() {
            let _ = writeln!(html, "<p>{l}</p>");
        }
        html.push_str("</body></html>\n");
        let _ = write!(
            body,
            "--{b}\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\n{text}\n--{b}\n\
Content-Type: text/html; charset=UTF-8\nContent-Transfer-Encoding: quoted-printable\n\n{}\n--{b}--\n",
            qp_encode(&html)
        );
    } else {
        h.push_str("Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n");
        body = text_body(&mut rng, body_target, korean);
    }
    h.push('\n');
    let mut data = h.into_bytes();
    data.extend_from_slice(body.as_bytes());
    GenMsg {
        data,
        seen: !(i.is_multiple_of(10) || i + 30 >= n),
        flagged: i.is_multiple_of(25),
        time,
    }
}

pub(crate) fn gen_main(a: GenArgs) -> Result<()> {
    if a.maildir.is_none() && a.mbox.is_none() {
        bail!("give --maildir DIR and/or --mbox FILE");
    }
    let mut mbox = match &a.mbox {
        Some(p) => Some(BufWriter::with_capacity(
            1 << 20,
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    if let Some(d) = &a.maildir {
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(d.join(sub))
                .with_context(|| format!("creating {}/{sub}", d.display()))?;
        }
    }
    let mut total = 0usize;
    for i in 0..a.messages {
        let m = gen_message(a.seed, i, a.messages, a.size, &a.to, a.newest);
        total += m.data.len();
        if let Some(d) = &a.maildir {
            let lfs = m.data.iter().filter(|&&b| b == b'\n').count();
            let mut flags = String::new();
            if m.flagged {
                flags.push('F');
            }
            if m.seen {
                flags.push('S');
            }
            let name = format!(
                "{}.M{}P{}.bench,S={},W={}:2,{flags}",
                m.time,
                i % 1_000_000,
                i,
                m.data.len(),
                m.data.len() + lfs
            );
            let p = d.join("cur").join(name);
            let f = File::create(&p).with_context(|| format!("creating {}", p.display()))?;
            let mut w = BufWriter::new(&f);
            w.write_all(&m.data)?;
            w.flush()?;
            drop(w);
            let t = UNIX_EPOCH + Duration::from_secs(m.time.max(0) as u64);
            f.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))?;
        }
        if let Some(w) = mbox.as_mut() {
            let asct = crate::rfc5322_date(UNIX_EPOCH + Duration::from_secs(m.time.max(0) as u64));
            // "Sun, 22 Nov 2026 00:05:29 +0000" -> "Sun Nov 22 00:05:29 2026"
            let p: Vec<&str> = asct.split([' ', ',']).filter(|s| !s.is_empty()).collect();
            writeln!(
                w,
                "From bench@daum.test {} {} {:>2} {} {}",
                p[0],
                p[2],
                p[1].trim_start_matches('0'),
                p[4],
                p[3]
            )?;
            let text = &m.data;
            let hdr_end = text
                .windows(2)
                .position(|x| x == b"\n\n")
                .map_or(text.len(), |p| p + 1);
            w.write_all(&text[..hdr_end])?;
            if m.seen {
                w.write_all(b"Status: RO\n")?;
            }
            if m.flagged {
                w.write_all(b"X-Status: F\n")?;
            }
            for line in text[hdr_end..].split_inclusive(|&b| b == b'\n') {
                let stripped = line
                    .iter()
                    .position(|&b| b != b'>')
                    .map_or(&line[line.len()..], |k| &line[k..]);
                if stripped.starts_with(b"From ") {
                    w.write_all(b">")?;
                }
                w.write_all(line)?;
            }
            if !text.ends_with(b"\n") {
                w.write_all(b"\n")?;
            }
            w.write_all(b"\n")?;
        }
    }
    if let Some(mut w) = mbox {
        w.flush()?;
    }
    eprintln!(
        "generated {} messages, {} bytes total, mean {} bytes",
        a.messages,
        total,
        total / a.messages.max(1)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64() {
        assert_eq!(base64(b"hello"), "aGVsbG8=");
        assert_eq!(base64(b"hi"), "aGk=");
        assert_eq!(base64(b"abc"), "YWJj");
    }

    #[test]
    fn messages_deterministic_and_sized() {
        let a = gen_message(1, 5, 100, 4096, "x@naver.test", 1_795_000_000);
        let b = gen_message(1, 5, 100, 4096, "x@naver.test", 1_795_000_000);
        assert_eq!(a.data, b.data);
        let mut total = 0;
        for i in 0..200 {
            let m = gen_message(1, i, 200, 4096, "x@naver.test", 1_795_000_000);
            assert!(m.data.windows(2).any(|w| w == b"\n\n"));
            total += m.data.len();
        }
        let mean = total / 200;
        assert!((3000..5500).contains(&mean), "mean {mean}");
    }
}
