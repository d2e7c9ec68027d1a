//! `postern-bench` — load generators for benchmarking Postern against its peers.
//!
//! # `postern-bench smtp`
//!
//! A compiled SMTP load generator. It sends `N` messages of `S` bytes (headers
//! included) over `C` parallel SMTP sessions (C tokio tasks on a multi-thread
//! runtime) and reports:
//!
//! * **accepted msg/s** — messages that got the final `250` after DATA, divided
//!   by the time from the first connect to the last such `250`;
//! * **end-to-end msg/s** — the time until all accepted messages are *stored* at
//!   the destination (`--wait-maildir DIR`: number of files under `DIR/**/new`
//!   and `DIR/**/cur` grew by the accepted count; `--wait-cmd CMD`: an integer
//!   printed by `sh -c CMD` grew by that count). Without either option the
//!   end-to-end time is the acceptance time (for servers whose `250` already
//!   means "stored");
//! * **server CPU ms/msg** — utime+stime+cutime+cstime summed over the process
//!   trees rooted at every `--server-pid` (descendants found by scanning the
//!   ppid field of `/proc/*/stat`), sampled before the run and after end-to-end
//!   completion (plus a short `--settle-ms`), divided by accepted messages;
//! * **latency p50/p90/p99/max** of the mail transaction (MAIL FROM sent ->
//!   final `250` after the body) and of the data phase alone (body sent ->
//!   final `250`);
//! * the generator's own CPU per message and the whole machine's CPU busy
//!   fraction, to show whether the generator or the machine was the limit.
//!
//! Per session: connect, read 220, `EHLO bench.test`, then per message
//! MAIL/RCPT/DATA (sent as one batch if the server advertises PIPELINING), wait
//! for 354, send the message + `.`, wait for 250; after `--per-session`
//! messages `QUIT` and reconnect. A non-2xx reply where 2xx was expected (or an
//! I/O error) counts the message as an error, aborts that session and opens a
//! new one; the run goes on. Message bytes are prepared once per run (only the
//! per-message header lines are rebuilt into a reused buffer), so the generator
//! stays cheap.
//!
//! ## Against Postern
//!
//! ```sh
//! cargo build --release -p bench -p postern
//! # start postern with its SMTP listener on e.g. 127.0.0.1:2526, then:
//! target/release/postern-bench smtp --addr 127.0.0.1:2526 -n 5000 -s 4k -c 10 \
//!     --rcpt-template 'u{i:03}@naver.test' --rcpt-count 100 \
//!     --server-pid "$(pgrep -o -x postern)" --label postern
//! ```
//! If Postern's `250` is only sent once the message is durably stored, no wait
//! option is needed; otherwise use `--wait-maildir` (Maildir storage) or
//! `--wait-cmd` (any command printing the number of stored messages).
//!
//! ## Against the Postfix peer (`/work/shared/peers`)
//!
//! ```sh
//! bash /work/shared/peers/ctl.sh start
//! eval "$(bash /work/shared/peers/ctl.sh pids)"      # sets $postfix, $dovecot
//! target/release/postern-bench smtp --addr 127.0.0.1:2525 -n 5000 -s 4k -c 10 \
//!     --rcpt-template 'u{i:03}@naver.test' --rcpt-count 100 \
//!     --wait-maildir /opt/mailpeers/vhosts/naver.test --server-pid "$postfix" \
//!     --label postfix
//! bash /work/shared/peers/ctl.sh stop
//! ```
//! Use `--json` to get one machine-readable line in addition to the text.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use clap::{Args, Parser, Subcommand};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

mod genmail;
mod imap;
mod pop3;

#[derive(Parser, Debug)]
#[command(
    name = "postern-bench",
    version,
    about = "Benchmark load generators for Postern and peer mail servers"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// SMTP load generator: N messages of S bytes over C parallel sessions.
    ///
    /// Reports accepted msg/s (first connect -> last 250 after DATA),
    /// end-to-end msg/s (until all messages are stored, see --wait-maildir /
    /// --wait-cmd), server CPU ms per message (process trees of --server-pid)
    /// and latency percentiles of the mail transaction.
    #[command(after_help = SMTP_AFTER_HELP)]
    Smtp(SmtpArgs),

    /// IMAP load generator: webmail-like sessions (mix), the command mix on
    /// logged-in connections (commands), memory per idle connection
    /// (idle-connections), or SELECT time of a big mailbox (select).
    Imap(imap::ImapArgs),

    /// POP3 load generator: C clients each logging in, STAT, LIST, RETR of every message,
    /// QUIT, for a duration; sessions/s and server CPU per session.
    Pop3(pop3::Pop3Args),

    /// Write deterministic test mail (Maildir and/or mbox) for the IMAP benchmark.
    GenMail(genmail::GenArgs),
}

const SMTP_AFTER_HELP: &str = "\
Example (Postfix peer on 127.0.0.1:2525):
  eval \"$(bash /work/shared/peers/ctl.sh pids)\"
  postern-bench smtp --addr 127.0.0.1:2525 -n 5000 -s 4k -c 10 \\
      --rcpt-template 'u{i:03}@naver.test' --rcpt-count 100 \\
      --wait-maildir /opt/mailpeers/vhosts/naver.test --server-pid $postfix

PIPELINING is used when the server advertises it (MAIL+RCPT+DATA in one write).
Latency = time from sending MAIL FROM to the final 250 after the body.
Server CPU = utime+stime+cutime+cstime of every process in the --server-pid
trees, sampled before the run and after end-to-end completion (+ --settle-ms).
Exit status: 0 all messages accepted and stored, 1 some messages failed,
2 the --timeout expired.";

#[derive(Args, Debug)]
struct SmtpArgs {
    /// SMTP server address (host:port).
    #[arg(long, default_value = "127.0.0.1:2525")]
    addr: String,

    /// Total number of messages to send (N).
    #[arg(short = 'n', long = "messages", default_value_t = 5000)]
    messages: usize,

    /// Size of each message in bytes, headers included (S); suffixes k/K
    /// (x1024) and m/M (x1048576) are accepted, e.g. 4k, 100k.
    #[arg(short = 's', long, default_value = "4096", value_parser = parse_size)]
    size: usize,

    /// Number of parallel SMTP sessions (C).
    #[arg(short = 'c', long, default_value_t = 10)]
    concurrency: usize,

    /// Envelope sender (MAIL FROM) and From: header.
    #[arg(long, default_value = "bench@daum.test")]
    from: String,

    /// Log in with AUTH PLAIN after EHLO (a submission port), as USER:PASSWORD.
    #[arg(long, value_name = "USER:PASSWORD")]
    auth: Option<String>,

    /// Recipient template; `{i}` or `{i:03}` (zero-padded width) is replaced
    /// by the recipient number 1..=rcpt-count.
    #[arg(long, default_value = "u{i:03}@naver.test")]
    rcpt_template: String,

    /// Number of distinct recipients; message k goes to recipient
    /// (k % rcpt-count) + 1.
    #[arg(long, default_value_t = 100)]
    rcpt_count: usize,

    /// Messages per SMTP connection before QUIT and reconnect.
    #[arg(long, default_value_t = 100)]
    per_session: usize,

    /// End-to-end: wait until the number of regular files under DIR/**/new
    /// and DIR/**/cur has grown by the number of accepted messages (polled
    /// every 20 ms).
    #[arg(long, value_name = "DIR", conflicts_with = "wait_cmd")]
    wait_maildir: Option<PathBuf>,

    /// End-to-end: run `sh -c CMD` every 100 ms; it must print an integer
    /// count of stored messages; wait until it has grown by the number of
    /// accepted messages.
    #[arg(long, value_name = "CMD")]
    wait_cmd: Option<String>,

    /// PID of a server process; CPU time of its whole process tree is
    /// measured. May be given several times.
    #[arg(long = "server-pid", value_name = "PID")]
    server_pid: Vec<u32>,

    /// Overall time limit in seconds (sending + waiting for storage).
    #[arg(long, default_value_t = 600)]
    timeout: u64,

    /// Delay in ms after end-to-end completion before the final server CPU
    /// sample (lets the server finish its post-delivery bookkeeping).
    #[arg(long, default_value_t = 200)]
    settle_ms: u64,

    /// Name of this configuration, printed in the output.
    #[arg(long, default_value = "")]
    label: String,

    /// Also print one JSON line with the results.
    #[arg(long)]
    json: bool,

    /// Worker threads of the generator's tokio runtime (default: number of CPUs).
    #[arg(long)]
    threads: Option<usize>,
}

fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1024),
        Some('m' | 'M') => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    let n: usize = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid size {s:?} (expected e.g. 4096, 4k, 100k, 1m)"))?;
    n.checked_mul(mult)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("invalid size {s:?}"))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Smtp(args) => {
            let code = smtp_main(args)?;
            std::process::exit(code);
        }
        Cmd::Imap(args) => {
            let code = imap::imap_main(args)?;
            std::process::exit(code);
        }
        Cmd::Pop3(args) => {
            let code = pop3::pop3_main(args)?;
            std::process::exit(code);
        }
        Cmd::GenMail(args) => genmail::gen_main(args),
    }
}

// ---------------------------------------------------------------------------
// message preparation

/// Expand `{i}` / `{i:0N}` in the recipient template.
fn format_rcpt(template: &str, i: usize) -> String {
    let mut out = String::with_capacity(template.len() + 8);
    let mut rest = template;
    while let Some(pos) = rest.find("{i") {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        if let Some(end) = after.find('}') {
            let spec = &after[..end];
            let width = spec
                .strip_prefix(':')
                .map(|w| w.trim_start_matches('0').parse::<usize>().unwrap_or(0));
            match (spec.is_empty(), width) {
                (true, _) => {
                    let _ = write!(out, "{i}");
                }
                (false, Some(w)) => {
                    let _ = write!(out, "{i:0w$}");
                }
                (false, None) => {
                    // not ours: keep literally
                    out.push_str(&rest[pos..pos + 2 + end + 1]);
                }
            }
            rest = &after[end + 1..];
        } else {
            out.push_str(&rest[pos..]);
            rest = "";
        }
    }
    out.push_str(rest);
    out
}

const LINE_CHARS: usize = 76;
const LINE_LEN: usize = LINE_CHARS + 2;
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Everything that is the same for all messages of a run, pre-rendered.
struct Template {
    /// `MAIL FROM:<from>\r\n`
    mail_cmd: Vec<u8>,
    /// per recipient: `RCPT TO:<rcpt>\r\n`
    rcpt_cmds: Vec<Vec<u8>>,
    /// per recipient: `To: <rcpt>\r\n`
    to_hdrs: Vec<Vec<u8>>,
    /// `From: <from>\r\n`
    from_hdr: Vec<u8>,
    /// `Date: ...\r\n`
    date_hdr: Vec<u8>,
    run_id: String,
    /// `MIME-Version...` up to and including the empty line.
    tail_hdrs: Vec<u8>,
    /// Full 76-char lines (CRLF-terminated), followed by the ".\r\n" terminator.
    /// A message takes a suffix of this.
    body: Vec<u8>,
    /// Pool of printable characters for the one short line per message.
    short_pool: Vec<u8>,
    size: usize,
}

impl Template {
    fn new(args: &SmtpArgs, run_id: String) -> Template {
        let mut rng: u64 = 0x9E37_79B9_7F4A_7C15 ^ run_id.len() as u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let nlines = args.size / LINE_LEN + 2;
        let mut body = Vec::with_capacity(nlines * LINE_LEN + 3);
        for _ in 0..nlines {
            for _ in 0..LINE_CHARS {
                body.push(B64[(next() % 64) as usize]);
            }
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b".\r\n");
        let short_pool: Vec<u8> = (0..LINE_LEN).map(|_| B64[(next() % 64) as usize]).collect();
        let rcpts: Vec<String> = (1..=args.rcpt_count.max(1))
            .map(|i| format_rcpt(&args.rcpt_template, i))
            .collect();
        Template {
            mail_cmd: format!("MAIL FROM:<{}>\r\n", args.from).into_bytes(),
            rcpt_cmds: rcpts
                .iter()
                .map(|r| format!("RCPT TO:<{r}>\r\n").into_bytes())
                .collect(),
            to_hdrs: rcpts
                .iter()
                .map(|r| format!("To: <{r}>\r\n").into_bytes())
                .collect(),
            from_hdr: format!("From: Bench <{}>\r\n", args.from).into_bytes(),
            date_hdr: format!("Date: {}\r\n", rfc5322_date(SystemTime::now())).into_bytes(),
            run_id,
            tail_hdrs: b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\
                         Content-Transfer-Encoding: 7bit\r\n\r\n"
                .to_vec(),
            body,
            short_pool,
            size: args.size,
        }
    }

    /// Render message `k` into `head` (headers + one short line); returns the
    /// offset into `self.body` from which the rest of the message (including
    /// the terminating ".\r\n") is taken.
    fn render(&self, k: usize, rcpt_idx: usize, head: &mut Vec<u8>) -> usize {
        head.clear();
        head.extend_from_slice(&self.from_hdr);
        head.extend_from_slice(&self.to_hdrs[rcpt_idx]);
        let _ = write!(head, "Subject: bench {k}\r\n");
        head.extend_from_slice(&self.date_hdr);
        let _ = write!(
            head,
            "Message-ID: <bench-{k}-{}@bench.test>\r\n",
            self.run_id
        );
        head.extend_from_slice(&self.tail_hdrs);
        let r = self.size.saturating_sub(head.len());
        let (mut full, rem) = (r / LINE_LEN, r % LINE_LEN);
        if r >= 2 && rem > 0 {
            let short = if rem == 1 {
                // one full line fewer, one 77-char line instead
                full -= 1;
                LINE_LEN + 1 - 2
            } else {
                rem - 2
            };
            head.extend_from_slice(&self.short_pool[..short]);
            head.extend_from_slice(b"\r\n");
        }
        let full_bytes = if r >= 2 { full * LINE_LEN } else { 0 };
        self.body.len() - 3 - full_bytes
    }
}

/// Fails unless every `--server-pid` names a running process (its CPU time is measured).
pub(crate) fn check_server_pids(pids: &[u32]) -> Result<()> {
    for &p in pids {
        if !Path::new(&format!("/proc/{p}")).exists() {
            bail!("--server-pid {p}: no such process");
        }
    }
    Ok(())
}

/// The load generator's runtime, with `threads` workers (default: one per CPU).
pub(crate) fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(t) = threads {
        rt.worker_threads(t.max(1));
    }
    Ok(rt.build()?)
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn rfc5322_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    const WD: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MO: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} +0000",
        WD[(days + 4).rem_euclid(7) as usize],
        MO[(m - 1) as usize],
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

// ---------------------------------------------------------------------------
// SMTP sessions

#[derive(Default)]
struct Shared {
    next: AtomicUsize,
    accepted: AtomicU64,
    failed: AtomicU64,
    connect_errors: AtomicU64,
    /// claimed by a worker that then gave up connecting
    abandoned: AtomicU64,
    sessions: AtomicU64,
    /// first few distinct error descriptions, with counts
    errors: Mutex<Vec<(String, u64)>>,
}

impl Shared {
    fn note_error(&self, what: String) {
        let mut e = self.errors.lock().unwrap();
        if let Some(x) = e.iter_mut().find(|(s, _)| *s == what) {
            x.1 += 1;
        } else if e.len() < 8 {
            e.push((what, 1));
        } else if let Some(x) = e.last_mut() {
            if x.0 == "(other errors)" {
                x.1 += 1;
            } else {
                e.push(("(other errors)".into(), 1));
            }
        }
    }
}

#[derive(Default)]
struct TaskResult {
    /// mail transaction latencies, microseconds
    txn_us: Vec<u32>,
    /// data phase latencies (body sent -> 250), microseconds
    data_us: Vec<u32>,
    last_accept: Option<Instant>,
}

struct Conn {
    io: BufReader<TcpStream>,
    line: Vec<u8>,
    pipelining: bool,
}

/// Why a session was aborted (reported in the error summary).
struct SessErr {
    msg: String,
}

fn serr(msg: impl Into<String>) -> SessErr {
    SessErr { msg: msg.into() }
}

impl Conn {
    /// Read one (possibly multi-line) reply; returns the code. If `ehlo`,
    /// notes PIPELINING.
    async fn reply(&mut self, ehlo: bool) -> Result<u16, SessErr> {
        let mut first = true;
        loop {
            self.line.clear();
            let n = self
                .io
                .read_until(b'\n', &mut self.line)
                .await
                .map_err(|e| serr(format!("read: {e}")))?;
            if n == 0 {
                return Err(serr("connection closed by server"));
            }
            let l = &self.line;
            if l.len() < 3 || !l[..3].iter().all(u8::is_ascii_digit) {
                return Err(serr(format!(
                    "malformed reply {:?}",
                    String::from_utf8_lossy(l).trim_end()
                )));
            }
            let code =
                (l[0] - b'0') as u16 * 100 + (l[1] - b'0') as u16 * 10 + (l[2] - b'0') as u16;
            if ehlo && !first && l.len() >= 14 && l[4..14].eq_ignore_ascii_case(b"PIPELINING") {
                self.pipelining = true;
            }
            first = false;
            if l.len() < 4 || l[3] != b'-' {
                return Ok(code);
            }
        }
    }

    fn last_line(&self) -> String {
        String::from_utf8_lossy(&self.line).trim_end().to_string()
    }

    async fn send(&mut self, b: &[u8]) -> Result<(), SessErr> {
        self.io
            .get_mut()
            .write_all(b)
            .await
            .map_err(|e| serr(format!("write: {e}")))
    }

    async fn expect(&mut self, stage: &str, want: u16) -> Result<(), SessErr> {
        let code = self.reply(false).await?;
        if code / 100 != want / 100 {
            return Err(serr(format!("{stage}: {}", self.last_line())));
        }
        Ok(())
    }
}

async fn open_session(addr: &str, auth: Option<&str>) -> Result<Conn, SessErr> {
    let s = TcpStream::connect(addr)
        .await
        .map_err(|e| serr(format!("connect {addr}: {e}")))?;
    let _ = s.set_nodelay(true);
    let mut c = Conn {
        io: BufReader::with_capacity(16 * 1024, s),
        line: Vec::with_capacity(512),
        pipelining: false,
    };
    c.expect("greeting", 220).await?;
    c.send(b"EHLO bench.test\r\n").await?;
    let code = c.reply(true).await?;
    if code / 100 != 2 {
        c.send(b"HELO bench.test\r\n").await?;
        c.expect("HELO", 250).await?;
    }
    if let Some(auth) = auth {
        let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
        let ir = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        c.send(format!("AUTH PLAIN {ir}\r\n").as_bytes()).await?;
        c.expect("AUTH", 235).await?;
    }
    Ok(c)
}

/// Runs one message transaction on an open connection.
async fn transaction(
    c: &mut Conn,
    t: &Template,
    k: usize,
    cmd: &mut Vec<u8>,
    head: &mut Vec<u8>,
    res: &mut TaskResult,
) -> Result<(), SessErr> {
    let ridx = k % t.rcpt_cmds.len();
    let off = t.render(k, ridx, head);
    let start = Instant::now();
    if c.pipelining {
        cmd.clear();
        cmd.extend_from_slice(&t.mail_cmd);
        cmd.extend_from_slice(&t.rcpt_cmds[ridx]);
        cmd.extend_from_slice(b"DATA\r\n");
        c.send(cmd).await?;
        let a = c.reply(false).await?;
        let la = c.last_line();
        let b = c.reply(false).await?;
        let lb = c.last_line();
        let d = c.reply(false).await?;
        if a / 100 != 2 {
            return Err(serr(format!("MAIL: {la}")));
        }
        if b / 100 != 2 {
            return Err(serr(format!("RCPT: {lb}")));
        }
        if d != 354 {
            return Err(serr(format!("DATA: {}", c.last_line())));
        }
    } else {
        c.send(&t.mail_cmd).await?;
        c.expect("MAIL", 250).await?;
        c.send(&t.rcpt_cmds[ridx]).await?;
        c.expect("RCPT", 250).await?;
        c.send(b"DATA\r\n").await?;
        let d = c.reply(false).await?;
        if d != 354 {
            return Err(serr(format!("DATA: {}", c.last_line())));
        }
    }
    let rest = &t.body[off..];
    if head.len() + rest.len() <= 64 * 1024 {
        head.extend_from_slice(rest);
        c.send(head).await?;
    } else {
        c.send(head).await?;
        c.send(rest).await?;
    }
    let data_sent = Instant::now();
    c.expect("end of data", 250).await?;
    let now = Instant::now();
    res.txn_us
        .push(now.duration_since(start).as_micros().min(u32::MAX as u128) as u32);
    res.data_us.push(
        now.duration_since(data_sent)
            .as_micros()
            .min(u32::MAX as u128) as u32,
    );
    res.last_accept = Some(now);
    Ok(())
}

async fn worker(
    args: Arc<SmtpArgs>,
    t: Arc<Template>,
    sh: Arc<Shared>,
    expected: usize,
) -> TaskResult {
    let mut res = TaskResult {
        txn_us: Vec::with_capacity(expected),
        data_us: Vec::with_capacity(expected),
        last_accept: None,
    };
    let mut cmd = Vec::with_capacity(256);
    let mut head = Vec::with_capacity(t.size.min(64 * 1024) + 1024);
    let mut connect_fail_streak = 0u32;
    let per_session = args.per_session.max(1);
    let claim = || {
        let k = sh.next.fetch_add(1, Ordering::Relaxed);
        (k < args.messages).then_some(k)
    };
    // The first message of a session is claimed before connecting, so that no
    // session is opened when there is nothing left to send.
    let mut pending = claim();
    'outer: while let Some(first) = pending {
        let mut c = match open_session(&args.addr, args.auth.as_deref()).await {
            Ok(c) => {
                connect_fail_streak = 0;
                sh.sessions.fetch_add(1, Ordering::Relaxed);
                c
            }
            Err(e) => {
                sh.connect_errors.fetch_add(1, Ordering::Relaxed);
                sh.note_error(format!("session setup: {}", e.msg));
                connect_fail_streak += 1;
                if connect_fail_streak > 20 {
                    // give up this worker; its claimed message is reported as unsent
                    sh.abandoned.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10 << connect_fail_streak.min(6))).await;
                continue;
            }
        };
        let mut k = first;
        for i in 0..per_session {
            if i > 0 {
                match claim() {
                    Some(n) => k = n,
                    None => {
                        pending = None;
                        break;
                    }
                }
            }
            if let Err(e) = transaction(&mut c, &t, k, &mut cmd, &mut head, &mut res).await {
                sh.failed.fetch_add(1, Ordering::Relaxed);
                sh.note_error(e.msg);
                pending = claim();
                continue 'outer; // drop this connection, open a new one
            }
            sh.accepted.fetch_add(1, Ordering::Relaxed);
        }
        let _ = c.send(b"QUIT\r\n").await;
        let _ = c.reply(false).await;
        if pending.is_some() {
            pending = claim();
        }
    }
    res
}

// ---------------------------------------------------------------------------
// measuring: /proc CPU times, maildir counting, wait command

struct ProcStat {
    ppid: u32,
    /// utime+stime+cutime+cstime, clock ticks
    ticks: u64,
}

fn read_proc_stat(path: &Path) -> Option<ProcStat> {
    let s = std::fs::read_to_string(path).ok()?;
    let rp = s.rfind(')')?;
    let f: Vec<&str> = s[rp + 1..].split_ascii_whitespace().collect();
    // f[0]=state(3) f[1]=ppid(4) ... f[11]=utime(14) f[12]=stime(15) f[13]=cutime f[14]=cstime
    let ppid = f.get(1)?.parse().ok()?;
    let mut ticks = 0u64;
    for i in 11..=14 {
        ticks += f.get(i)?.parse::<i64>().ok()?.max(0) as u64;
    }
    Some(ProcStat { ppid, ticks })
}

/// CPU ticks of all process trees rooted at `roots`.
fn tree_cpu_ticks(roots: &[u32]) -> u64 {
    let mut procs: HashMap<u32, ProcStat> = HashMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(st) = read_proc_stat(&e.path().join("stat")) {
                procs.insert(pid, st);
            }
        }
    }
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&pid, st) in &procs {
        children.entry(st.ppid).or_default().push(pid);
    }
    let mut seen = HashSet::new();
    let mut stack: Vec<u32> = roots.to_vec();
    let mut total = 0;
    while let Some(p) = stack.pop() {
        if !seen.insert(p) {
            continue;
        }
        if let Some(st) = procs.get(&p) {
            total += st.ticks;
        }
        if let Some(ch) = children.get(&p) {
            stack.extend(ch);
        }
    }
    total
}

/// PIDs of all process trees rooted at `roots` (roots included if alive).
fn tree_pids(roots: &[u32]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut alive = HashSet::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(st) = read_proc_stat(&e.path().join("stat")) {
                children.entry(st.ppid).or_default().push(pid);
                alive.insert(pid);
            }
        }
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut stack: Vec<u32> = roots.to_vec();
    while let Some(p) = stack.pop() {
        if !seen.insert(p) {
            continue;
        }
        if alive.contains(&p) {
            out.push(p);
        }
        if let Some(ch) = children.get(&p) {
            stack.extend(ch);
        }
    }
    out
}

fn self_cpu_ticks() -> u64 {
    read_proc_stat(Path::new("/proc/self/stat")).map_or(0, |s| s.ticks)
}

/// (busy, total) jiffies of the whole machine from /proc/stat.
fn machine_cpu() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = s.lines().next() else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn clk_tck() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(100)
}

/// Counts regular files in every `new`/`cur` directory below the root.
/// A `new`/`cur` directory is re-read only when its mtime changed (or the
/// previous read may have raced with a change in the same timestamp tick).
struct MaildirCounter {
    root: PathBuf,
    cache: HashMap<PathBuf, (SystemTime, SystemTime, u64)>, // mtime, read time, count
}

impl MaildirCounter {
    fn new(root: PathBuf) -> Self {
        MaildirCounter {
            root,
            cache: HashMap::new(),
        }
    }

    fn count(&mut self) -> u64 {
        let mut total = 0;
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let Ok(ft) = e.file_type() else { continue };
                if !ft.is_dir() {
                    continue;
                }
                let name = e.file_name();
                if name == "new" || name == "cur" {
                    total += self.count_leaf(e.path());
                } else if name != "tmp" {
                    stack.push(e.path());
                }
            }
        }
        total
    }

    fn count_leaf(&mut self, dir: PathBuf) -> u64 {
        let mtime = std::fs::metadata(&dir).and_then(|m| m.modified()).ok();
        if let (Some(mt), Some(&(cmt, read_at, n))) = (mtime, self.cache.get(&dir))
            && mt == cmt
            && read_at.duration_since(mt).unwrap_or_default() > Duration::from_millis(100)
        {
            return n;
        }
        let read_at = SystemTime::now();
        let mut n = 0;
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_file()) {
                    n += 1;
                }
            }
        }
        if let Some(mt) = mtime {
            self.cache.insert(dir, (mt, read_at, n));
        }
        n
    }
}

fn run_wait_cmd(cmd: &str) -> Result<u64> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .with_context(|| format!("running sh -c {cmd:?}"))?;
    let s = String::from_utf8_lossy(&out.stdout);
    s.trim()
        .parse::<u64>()
        .with_context(|| format!("--wait-cmd printed {:?}, expected an integer", s.trim()))
}

enum Waiter {
    None,
    Maildir(MaildirCounter),
    Cmd(String),
}

impl Waiter {
    fn count(&mut self) -> Result<u64> {
        match self {
            Waiter::None => Ok(0),
            Waiter::Maildir(m) => Ok(m.count()),
            Waiter::Cmd(c) => run_wait_cmd(c),
        }
    }
    fn interval(&self) -> Duration {
        match self {
            Waiter::Cmd(_) => Duration::from_millis(100),
            _ => Duration::from_millis(20),
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            Waiter::None => "accept",
            Waiter::Maildir(_) => "maildir",
            Waiter::Cmd(_) => "cmd",
        }
    }
}

// ---------------------------------------------------------------------------
// the run

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64) - 1.0).ceil().max(0.0) as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "null".into()
    }
}

fn smtp_main(args: SmtpArgs) -> Result<i32> {
    if args.concurrency == 0 || args.messages == 0 {
        bail!("--messages and --concurrency must be > 0");
    }
    if args.rcpt_count == 0 {
        bail!("--rcpt-count must be > 0");
    }
    check_server_pids(&args.server_pid)?;
    let args = Arc::new(args);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    let run_id = format!("{:x}", nanos ^ ((std::process::id() as u64) << 40));
    let template = Arc::new(Template::new(&args, run_id.clone()));
    let tck = clk_tck();

    let mut waiter = match (&args.wait_maildir, &args.wait_cmd) {
        (Some(d), _) => {
            if !d.is_dir() {
                bail!("--wait-maildir {}: not a directory", d.display());
            }
            Waiter::Maildir(MaildirCounter::new(d.clone()))
        }
        (None, Some(c)) => Waiter::Cmd(c.clone()),
        (None, None) => Waiter::None,
    };

    let rt = runtime(args.threads)?;

    // --- samples before the run
    let stored_before = waiter.count()?;
    let server_before = tree_cpu_ticks(&args.server_pid);
    let self_before = self_cpu_ticks();
    let mach_before = machine_cpu();
    let deadline = Instant::now() + Duration::from_secs(args.timeout);

    // --- sending phase
    let shared = Arc::new(Shared::default());
    let t0 = Instant::now();
    let per_task = args.messages / args.concurrency + 1;
    let (results, timed_out) = rt.block_on(async {
        let mut handles = Vec::with_capacity(args.concurrency);
        for _ in 0..args.concurrency {
            handles.push(tokio::spawn(worker(
                args.clone(),
                template.clone(),
                shared.clone(),
                per_task,
            )));
        }
        let aborts: Vec<_> = handles.iter().map(|h| h.abort_handle()).collect();
        let all = async {
            let mut v = Vec::with_capacity(handles.len());
            for h in handles {
                if let Ok(r) = h.await {
                    v.push(r);
                }
            }
            v
        };
        match tokio::time::timeout_at(deadline.into(), all).await {
            Ok(v) => (v, false),
            Err(_) => {
                for a in aborts {
                    a.abort();
                }
                (Vec::new(), true)
            }
        }
    });
    let send_end = Instant::now();
    let accepted = shared.accepted.load(Ordering::Relaxed);
    let failed = shared.failed.load(Ordering::Relaxed);
    let claimed = shared.next.load(Ordering::Relaxed).min(args.messages) as u64;
    let unsent = args.messages as u64 - claimed + shared.abandoned.load(Ordering::Relaxed);
    let last_accept = results.iter().filter_map(|r| r.last_accept).max();
    let accept_secs = last_accept
        .map_or(send_end, |l| l)
        .duration_since(t0)
        .as_secs_f64();

    // --- end-to-end wait
    let mut e2e_timed_out = false;
    let mut stored_delta = 0u64;
    let e2e_end = if matches!(waiter, Waiter::None) || timed_out {
        last_accept.unwrap_or(send_end)
    } else {
        let mut warned = false;
        loop {
            match waiter.count() {
                Ok(n) => {
                    stored_delta = n.saturating_sub(stored_before);
                    if stored_delta >= accepted {
                        break Instant::now();
                    }
                }
                // a transient failure of the count must not lose the run's results
                Err(e) if !warned => {
                    eprintln!("warning: counting stored messages failed (retrying): {e:#}");
                    warned = true;
                }
                Err(_) => {}
            }
            if Instant::now() >= deadline {
                e2e_timed_out = true;
                break Instant::now();
            }
            std::thread::sleep(waiter.interval());
        }
    };
    let e2e_secs = e2e_end.duration_since(t0).as_secs_f64();
    if !args.server_pid.is_empty() {
        std::thread::sleep(Duration::from_millis(args.settle_ms));
    }
    let server_after = tree_cpu_ticks(&args.server_pid);
    let self_after = self_cpu_ticks();
    let mach_after = machine_cpu();
    drop(rt);

    // --- results
    let mut txn: Vec<u32> = results
        .iter()
        .flat_map(|r| r.txn_us.iter().copied())
        .collect();
    let mut data: Vec<u32> = results
        .iter()
        .flat_map(|r| r.data_us.iter().copied())
        .collect();
    txn.sort_unstable();
    data.sort_unstable();
    let acc_f = accepted.max(1) as f64;
    let server_cpu_s = server_after.saturating_sub(server_before) as f64 / tck as f64;
    let self_cpu_s = self_after.saturating_sub(self_before) as f64 / tck as f64;
    let mach_busy = {
        let db = mach_after.0.saturating_sub(mach_before.0) as f64;
        let dt = mach_after.1.saturating_sub(mach_before.1) as f64;
        if dt > 0.0 { db / dt * 100.0 } else { f64::NAN }
    };
    let accept_rate = accepted as f64 / accept_secs.max(1e-9);
    let e2e_rate = if e2e_timed_out || timed_out {
        f64::NAN
    } else {
        accepted as f64 / e2e_secs.max(1e-9)
    };
    let server_ms = if args.server_pid.is_empty() {
        f64::NAN
    } else {
        server_cpu_s * 1000.0 / acc_f
    };
    let self_ms = self_cpu_s * 1000.0 / acc_f;
    let (p50, p90, p99, pmax) = (
        percentile(&txn, 50.0),
        percentile(&txn, 90.0),
        percentile(&txn, 99.0),
        percentile(&txn, 100.0),
    );
    let (d50, d99) = (percentile(&data, 50.0), percentile(&data, 99.0));
    let errors = shared.errors.lock().unwrap().clone();

    let mut out = String::new();
    let label = if args.label.is_empty() {
        String::new()
    } else {
        format!("[{}] ", args.label)
    };
    let _ = writeln!(
        out,
        "{label}smtp {} N={} S={} C={} per-session={} rcpts={}",
        args.addr, args.messages, args.size, args.concurrency, args.per_session, args.rcpt_count
    );
    let _ = writeln!(
        out,
        "  accepted    {accepted}/{} in {accept_secs:.3} s  = {accept_rate:.1} msg/s  (failed {failed}, unsent {unsent}, connect errors {}, sessions {})",
        args.messages,
        shared.connect_errors.load(Ordering::Relaxed),
        shared.sessions.load(Ordering::Relaxed),
    );
    match waiter.kind() {
        "accept" => {
            let _ = writeln!(
                out,
                "  end-to-end  = acceptance (no --wait-maildir/--wait-cmd)  = {e2e_rate:.1} msg/s"
            );
        }
        kind => {
            if e2e_timed_out {
                let _ = writeln!(
                    out,
                    "  end-to-end  TIMEOUT: only {stored_delta}/{accepted} stored after {e2e_secs:.3} s ({kind})"
                );
            } else {
                let _ = writeln!(
                    out,
                    "  end-to-end  {accepted} stored in {e2e_secs:.3} s  = {e2e_rate:.1} msg/s  ({kind}; {:.3} s after last 250)",
                    e2e_secs - accept_secs
                );
            }
        }
    }
    if args.server_pid.is_empty() {
        let _ = writeln!(out, "  server CPU  not measured (no --server-pid)");
    } else {
        let _ = writeln!(
            out,
            "  server CPU  {server_cpu_s:.2} s = {server_ms:.3} ms/msg  ({:.0}% of one core over the e2e time; pids {:?})",
            server_cpu_s / e2e_secs.max(1e-9) * 100.0,
            args.server_pid
        );
    }
    let _ = writeln!(
        out,
        "  generator   {self_cpu_s:.2} s CPU = {self_ms:.3} ms/msg;  machine CPU busy {mach_busy:.0}% (all cores)"
    );
    let _ = writeln!(
        out,
        "  latency ms  transaction p50 {p50:.2}  p90 {p90:.2}  p99 {p99:.2}  max {pmax:.2};  data phase p50 {d50:.2}  p99 {d99:.2}"
    );
    if timed_out {
        let _ = writeln!(out, "  TIMEOUT after {} s while sending", args.timeout);
    }
    for (e, n) in &errors {
        let _ = writeln!(out, "  error x{n}: {e}");
    }
    print!("{out}");

    if args.json {
        let errs: Vec<String> = errors
            .iter()
            .map(|(e, n)| format!("{{\"error\":{},\"count\":{n}}}", json_str(e)))
            .collect();
        println!(
            "{{\"label\":{},\"addr\":{},\"messages\":{},\"size\":{},\"concurrency\":{},\"per_session\":{},\"rcpt_count\":{},\
\"accepted\":{accepted},\"failed\":{failed},\"unsent\":{unsent},\"connect_errors\":{},\"sessions\":{},\
\"accept_secs\":{},\"accept_rate\":{},\"e2e_source\":\"{}\",\"e2e_secs\":{},\"e2e_rate\":{},\"e2e_timed_out\":{},\
\"server_cpu_secs\":{},\"server_cpu_ms_per_msg\":{},\"gen_cpu_secs\":{},\"gen_cpu_ms_per_msg\":{},\"machine_busy_pct\":{},\
\"lat_p50_ms\":{},\"lat_p90_ms\":{},\"lat_p99_ms\":{},\"lat_max_ms\":{},\"data_p50_ms\":{},\"data_p99_ms\":{},\
\"timed_out\":{timed_out},\"run_id\":{},\"errors\":[{}]}}",
            json_str(&args.label),
            json_str(&args.addr),
            args.messages,
            args.size,
            args.concurrency,
            args.per_session,
            args.rcpt_count,
            shared.connect_errors.load(Ordering::Relaxed),
            shared.sessions.load(Ordering::Relaxed),
            json_num(accept_secs),
            json_num(accept_rate),
            waiter.kind(),
            json_num(e2e_secs),
            json_num(e2e_rate),
            e2e_timed_out,
            if args.server_pid.is_empty() {
                "null".into()
            } else {
                json_num(server_cpu_s)
            },
            json_num(server_ms),
            json_num(self_cpu_s),
            json_num(self_ms),
            json_num(mach_busy),
            json_num(p50),
            json_num(p90),
            json_num(p99),
            json_num(pmax),
            json_num(d50),
            json_num(d99),
            json_str(&run_id),
            errs.join(",")
        );
    }
    let _ = std::io::stdout().flush();
    Ok(if timed_out || e2e_timed_out {
        2
    } else if failed > 0 || unsent > 0 {
        1
    } else {
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(size: usize) -> SmtpArgs {
        SmtpArgs::parse_from_args(size)
    }

    impl SmtpArgs {
        fn parse_from_args(size: usize) -> SmtpArgs {
            let cli = Cli::parse_from(["postern-bench", "smtp", "-s", &size.to_string()]);
            match cli.cmd {
                Cmd::Smtp(a) => a,
                _ => unreachable!(),
            }
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4k").unwrap(), 4096);
        assert_eq!(parse_size("100K").unwrap(), 102_400);
        assert_eq!(parse_size("1m").unwrap(), 1 << 20);
        assert_eq!(parse_size("777").unwrap(), 777);
        assert!(parse_size("x").is_err());
    }

    #[test]
    fn rcpt_template() {
        assert_eq!(format_rcpt("u{i:03}@naver.test", 7), "u007@naver.test");
        assert_eq!(format_rcpt("u{i}@x", 42), "u42@x");
        assert_eq!(format_rcpt("plain@x", 1), "plain@x");
    }

    #[test]
    fn message_exact_size_and_no_dots() {
        for size in [
            300usize, 400, 401, 402, 478, 479, 480, 4096, 102_400, 12_345,
        ] {
            let a = args(size);
            let t = Template::new(&a, "abc".into());
            for k in [0usize, 9, 10, 99, 4999, 123_456] {
                let mut head = Vec::new();
                let off = t.render(k, k % t.rcpt_cmds.len(), &mut head);
                let mut msg = head.clone();
                msg.extend_from_slice(&t.body[off..]);
                assert!(msg.ends_with(b"\r\n.\r\n"));
                let content = &msg[..msg.len() - 3];
                assert_eq!(content.len(), size, "size {size} k {k}");
                for line in content.split(|&b| b == b'\n') {
                    assert!(!line.starts_with(b"."));
                    assert!(line.len() <= 80);
                }
                assert!(
                    content.windows(2).filter(|w| w == b"\r\n").count()
                        == content.iter().filter(|&&b| b == b'\n').count()
                );
            }
        }
    }

    #[test]
    fn date() {
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(UNIX_EPOCH + Duration::from_secs(1_795_305_929)),
            "Sun, 22 Nov 2026 00:05:29 +0000"
        );
    }
}
