//! `postern-bench imap` — an IMAP load generator with four modes.
//!
//! * `mix`: C clients (tokio tasks), each repeating a webmail-like session
//!   for `--duration` seconds (or until `--sessions` sessions in total):
//!   connect, `LOGIN`, `SELECT INBOX`, a message-list page
//!   `UID FETCH <last 50> (UID FLAGS RFC822.SIZE ENVELOPE)`, open one random
//!   message `UID FETCH <uid> BODY.PEEK[]`, `UID SEARCH UNSEEN` (see
//!   `--search`), `UID STORE <uid> +FLAGS (\Seen)`, `APPEND INBOX {n}` of a
//!   small message, `UID STORE <new> +FLAGS (\Deleted)`, `UID EXPUNGE <new>`
//!   (the mailbox keeps its size), `LOGOUT`. Reports sessions/s, commands/s,
//!   latency p50/p99/max per command type, errors and server CPU per session.
//! * `commands`: the same clients log in and SELECT once, then loop over the
//!   same command mix (no LOGIN/SELECT/LOGOUT) for `--duration` seconds:
//!   commands/s, server CPU per command.
//! * `idle-connections`: open `-n` connections (in batches of `--batch`
//!   concurrent set-ups), each `LOGIN`, `SELECT INBOX`, `IDLE`; measures the
//!   server's memory: PSS (`/proc/PID/smaps_rollup`) and RSS summed over the
//!   `--server-pid` process trees, before and while holding them, per
//!   connection. Then closes them all.
//! * `select`: log in once and time `SELECT INBOX` (or `EXAMINE` with
//!   `--examine`) `--iterations` times: first (cold), min, p50, p99; then
//!   the same for each `--then` command (SEARCH, SORT, ... on that mailbox).
//!
//! Users: client `i` logs in as the `--user-template` with number
//! `--user-first + i % --user-count`. Before `mix`/`commands` a warm-up logs
//! in once per user, SELECTs INBOX (Dovecot builds its index here) and learns
//! the message UIDs with `UID SEARCH ALL` (the list page is the last 50 of
//! those, the opened message a random one of them); it is not measured.
//!
//! Responses are parsed only as far as needed: lines, `{n}` literals (read
//! and dropped), the tag, `EXISTS`, `[APPENDUID v uid]`, FETCH counts.
//! Every read has a `--io-timeout`, the run a hard deadline, so a run always
//! ends by itself.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::genmail::Rng;
use crate::{
    clk_tck, format_rcpt, json_num, json_str, machine_cpu, percentile, self_cpu_ticks,
    tree_cpu_ticks, tree_pids,
};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    Mix,
    Commands,
    IdleConnections,
    Select,
}

#[derive(Args, Debug)]
pub(crate) struct ImapArgs {
    /// IMAP server address (host:port).
    #[arg(long, default_value = "127.0.0.1:2143")]
    addr: String,

    /// What to measure.
    #[arg(long, value_enum, default_value = "mix")]
    mode: Mode,

    /// Concurrent clients (mix, commands).
    #[arg(short = 'c', long, default_value_t = 20)]
    concurrency: usize,

    /// Run time in seconds (mix, commands).
    #[arg(short = 'd', long, default_value_t = 20)]
    duration: u64,

    /// Stop after this many sessions in total (mix; 0 = only --duration).
    #[arg(long, default_value_t = 0)]
    sessions: u64,

    /// Connections to hold (idle-connections).
    #[arg(short = 'n', long, default_value_t = 1000)]
    connections: usize,

    /// Connections being set up at the same time (idle-connections).
    #[arg(long, default_value_t = 100)]
    batch: usize,

    /// Open-hold-close rounds (idle-connections); per-connection memory is
    /// reported for every round. From round 2 on, memory the server's
    /// allocator kept from round 1 (e.g. password hashing buffers) is in the
    /// baseline, so the last round shows the steady per-connection cost.
    #[arg(long, default_value_t = 2)]
    rounds: usize,

    /// Stop opening idle connections once the server trees' RSS exceeds this
    /// many MiB (protects the machine; reported). 0 = no cap.
    #[arg(long, default_value_t = 6144)]
    mem_cap_mib: u64,

    /// Seconds to hold the idle connections before the memory sample.
    #[arg(long, default_value_t = 2.0)]
    hold: f64,

    /// SELECT round trips (select).
    #[arg(short = 'k', long, default_value_t = 20)]
    iterations: usize,

    /// Use EXAMINE instead of SELECT (select mode).
    #[arg(long)]
    examine: bool,

    /// Select mode: after the SELECTs, time this command `--iterations` times too (repeatable;
    /// e.g. `--then "UID SEARCH FROM kim"` or `--then "UID SORT (DATE) UTF-8 ALL"`).
    #[arg(long = "then", value_name = "COMMAND")]
    then: Vec<String>,

    /// Login name template; `{i:03}` is replaced by the user number.
    #[arg(long, default_value = "u{i:03}@naver.test")]
    user_template: String,

    /// First user number.
    #[arg(long, default_value_t = 1)]
    user_first: usize,

    /// Number of distinct users.
    #[arg(long, default_value_t = 20)]
    user_count: usize,

    /// Password of every user.
    #[arg(long, default_value = "benchpass")]
    password: String,

    /// Mailbox to SELECT.
    #[arg(long, default_value = "INBOX")]
    mailbox: String,

    /// Search criteria of the search step (e.g. UNSEEN, "SUBJECT report").
    #[arg(long, default_value = "UNSEEN")]
    search: String,

    /// Size of the APPENDed message in bytes.
    #[arg(long, default_value = "1500", value_parser = crate::parse_size)]
    append_size: usize,

    /// Messages in the list page.
    #[arg(long, default_value_t = 50)]
    page: usize,

    /// Server process (tree) to measure; may be repeated.
    #[arg(long = "server-pid", value_name = "PID")]
    server_pid: Vec<u32>,

    /// Per-read timeout in seconds.
    #[arg(long, default_value_t = 30)]
    io_timeout: u64,

    /// Hard limit for the whole run in seconds (0 = automatic).
    #[arg(long, default_value_t = 0)]
    timeout: u64,

    /// Report commands slower than this many ms (count and first few).
    #[arg(long, default_value_t = 100)]
    slow_ms: u64,

    /// Name of this configuration, printed in the output.
    #[arg(long, default_value = "")]
    label: String,

    /// Also print one JSON line with the results.
    #[arg(long)]
    json: bool,

    /// Worker threads of the generator's runtime (default: number of CPUs).
    #[arg(long)]
    threads: Option<usize>,

    /// Random seed for the message picks.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

// ---------------------------------------------------------------------------
// command kinds and per-kind statistics

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Kind {
    Connect,
    Login,
    Select,
    List,
    Body,
    Search,
    Store,
    Append,
    StoreDel,
    Expunge,
    Logout,
    Idle,
}

const KINDS: [Kind; 12] = [
    Kind::Connect,
    Kind::Login,
    Kind::Select,
    Kind::List,
    Kind::Body,
    Kind::Search,
    Kind::Store,
    Kind::Append,
    Kind::StoreDel,
    Kind::Expunge,
    Kind::Logout,
    Kind::Idle,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Connect => "connect+greeting",
            Kind::Login => "LOGIN",
            Kind::Select => "SELECT",
            Kind::List => "UID FETCH list",
            Kind::Body => "UID FETCH BODY[]",
            Kind::Search => "UID SEARCH",
            Kind::Store => "UID STORE \\Seen",
            Kind::Append => "APPEND",
            Kind::StoreDel => "UID STORE \\Deleted",
            Kind::Expunge => "UID EXPUNGE",
            Kind::Logout => "LOGOUT",
            Kind::Idle => "IDLE",
        }
    }
    fn key(self) -> &'static str {
        match self {
            Kind::Connect => "connect",
            Kind::Login => "login",
            Kind::Select => "select",
            Kind::List => "list",
            Kind::Body => "body",
            Kind::Search => "search",
            Kind::Store => "store_seen",
            Kind::Append => "append",
            Kind::StoreDel => "store_deleted",
            Kind::Expunge => "expunge",
            Kind::Logout => "logout",
            Kind::Idle => "idle",
        }
    }
    fn idx(self) -> usize {
        KINDS.iter().position(|&k| k == self).unwrap_or(0)
    }
    /// Whether it counts as an IMAP command (connect does not).
    fn is_command(self) -> bool {
        self != Kind::Connect
    }
}

#[derive(Default)]
struct Shared {
    sessions: AtomicU64,
    commands: AtomicU64,
    errors_total: AtomicU64,
    stop: AtomicBool,
    errors: Mutex<Vec<(String, u64)>>,
    slow: Mutex<(u64, Vec<String>)>,
}

impl Shared {
    fn note_error(&self, what: String) {
        self.errors_total.fetch_add(1, Ordering::Relaxed);
        let mut e = self.errors.lock().unwrap();
        if let Some(x) = e.iter_mut().find(|(s, _)| *s == what) {
            x.1 += 1;
        } else if e.len() < 10 {
            e.push((what, 1));
        } else if let Some(x) = e.iter_mut().find(|(s, _)| s == "(other errors)") {
            x.1 += 1;
        } else {
            e.push(("(other errors)".into(), 1));
        }
    }
    fn note_slow(&self, what: String) {
        let mut s = self.slow.lock().unwrap();
        s.0 += 1;
        if s.1.len() < 8 {
            s.1.push(what);
        }
    }
}

struct Lat {
    us: Vec<Vec<u32>>,
}

impl Lat {
    fn new() -> Lat {
        Lat {
            us: vec![Vec::new(); KINDS.len()],
        }
    }
    fn merge(&mut self, o: Lat) {
        for (a, b) in self.us.iter_mut().zip(o.us) {
            a.extend(b);
        }
    }
}

// ---------------------------------------------------------------------------
// the connection

struct Conn {
    io: BufReader<TcpStream>,
    line: Vec<u8>,
    scratch: Vec<u8>,
    cmd: Vec<u8>,
    tag_n: u64,
    tag: Vec<u8>,
    io_timeout: Duration,
}

#[derive(Debug)]
struct Fail(String);

fn e(s: impl Into<String>) -> Fail {
    Fail(s.into())
}

/// What a command's responses told us.
#[derive(Default)]
struct Resp {
    /// untagged `* N EXISTS`
    exists: Option<u32>,
    /// number of untagged FETCH responses
    fetches: u32,
    /// bytes of literals received
    literal_bytes: usize,
    /// UIDs of `* SEARCH` responses (only if asked)
    search: Vec<u32>,
    /// `[APPENDUID v uid]` of the tagged OK
    append_uid: Option<u32>,
    /// `UID n` values in FETCH responses (only if asked)
    fetch_uids: Vec<u32>,
}

fn parse_u32(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 10 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u64;
    }
    u32::try_from(v).ok()
}

fn trim_crlf(l: &[u8]) -> &[u8] {
    let mut l = l;
    while let [rest @ .., b'\r' | b'\n'] = l {
        l = rest;
    }
    l
}

/// If the line ends with a literal announcement `{n}` / `{n+}`, returns n.
fn literal_len(l: &[u8]) -> Option<usize> {
    let l = trim_crlf(l);
    let l = l.strip_suffix(b"}")?;
    let l = l.strip_suffix(b"+").unwrap_or(l);
    let open = l.iter().rposition(|&c| c == b'{')?;
    parse_u32(&l[open + 1..]).map(|n| n as usize)
}

impl Conn {
    async fn connect(addr: &str, io_timeout: Duration) -> Result<Conn, Fail> {
        let s = tokio::time::timeout(io_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| e("connect: timeout"))?
            .map_err(|x| e(format!("connect: {x}")))?;
        let _ = s.set_nodelay(true);
        let mut c = Conn {
            io: BufReader::with_capacity(16 * 1024, s),
            line: Vec::with_capacity(1024),
            scratch: Vec::with_capacity(16 * 1024),
            cmd: Vec::with_capacity(256),
            tag_n: 0,
            tag: Vec::with_capacity(16),
            io_timeout,
        };
        c.read_line().await?;
        if !c.line.starts_with(b"* OK") {
            return Err(e(format!("greeting: {}", c.line_str())));
        }
        Ok(c)
    }

    fn line_str(&self) -> String {
        let l = trim_crlf(&self.line);
        let l = &l[..l.len().min(200)];
        String::from_utf8_lossy(l).into_owned()
    }

    /// Reads one physical line into `self.line`.
    async fn read_raw_line(&mut self) -> Result<(), Fail> {
        let n = tokio::time::timeout(self.io_timeout, self.io.read_until(b'\n', &mut self.line))
            .await
            .map_err(|_| e("read: timeout"))?
            .map_err(|x| e(format!("read: {x}")))?;
        if n == 0 {
            return Err(e("connection closed by server"));
        }
        Ok(())
    }

    /// Reads one logical response line into `self.line`, reading and dropping
    /// the contents of literals (each replaced by `{}` in `self.line`).
    /// Returns the number of literal bytes read.
    async fn read_line(&mut self) -> Result<usize, Fail> {
        self.line.clear();
        let mut lit = 0;
        loop {
            let start = self.line.len();
            self.read_raw_line().await?;
            match literal_len(&self.line[start..]) {
                Some(n) => {
                    // keep the line without the CRLF, then drop the literal
                    let keep = start + trim_crlf(&self.line[start..]).len();
                    self.line.truncate(keep);
                    self.scratch.resize(n, 0);
                    tokio::time::timeout(self.io_timeout, self.io.read_exact(&mut self.scratch))
                        .await
                        .map_err(|_| e("read literal: timeout"))?
                        .map_err(|x| e(format!("read literal: {x}")))?;
                    lit += n;
                }
                None => return Ok(lit),
            }
        }
    }

    fn next_tag(&mut self) {
        self.tag_n += 1;
        self.tag.clear();
        let _ = write!(self.tag, "a{}", self.tag_n);
    }

    /// `self.cmd` must hold the command without tag and CRLF.
    async fn send_cmd(&mut self) -> Result<(), Fail> {
        self.next_tag();
        let mut buf = Vec::with_capacity(self.tag.len() + self.cmd.len() + 3);
        buf.extend_from_slice(&self.tag);
        buf.push(b' ');
        buf.extend_from_slice(&self.cmd);
        buf.extend_from_slice(b"\r\n");
        self.write(&buf).await
    }

    async fn write(&mut self, b: &[u8]) -> Result<(), Fail> {
        tokio::time::timeout(self.io_timeout, self.io.get_mut().write_all(b))
            .await
            .map_err(|_| e("write: timeout"))?
            .map_err(|x| e(format!("write: {x}")))
    }

    /// Reads responses up to the tagged one for the current tag; fails
    /// unless it is OK.
    async fn finish(
        &mut self,
        what: &str,
        want_search: bool,
        want_uids: bool,
    ) -> Result<Resp, Fail> {
        let mut r = Resp::default();
        loop {
            r.literal_bytes += self.read_line().await?;
            let l = trim_crlf(&self.line);
            if let Some(rest) = l.strip_prefix(b"* ") {
                // "* N EXISTS", "* N FETCH (...)", "* SEARCH 1 2 3"
                if let Some(sp) = rest.iter().position(|&c| c == b' ')
                    && let Some(n) = parse_u32(&rest[..sp])
                {
                    let word = &rest[sp + 1..];
                    if word.eq_ignore_ascii_case(b"EXISTS") {
                        r.exists = Some(n);
                    } else if word.len() >= 5 && word[..5].eq_ignore_ascii_case(b"FETCH") {
                        r.fetches += 1;
                        if want_uids {
                            let up = word.to_ascii_uppercase();
                            if let Some(p) = up.windows(4).position(|w| w == b"UID ") {
                                let digits: Vec<u8> = word[p + 4..]
                                    .iter()
                                    .copied()
                                    .take_while(u8::is_ascii_digit)
                                    .collect();
                                if let Some(u) = parse_u32(&digits) {
                                    r.fetch_uids.push(u);
                                }
                            }
                        }
                    }
                } else if want_search
                    && rest.len() >= 6
                    && rest[..6].eq_ignore_ascii_case(b"SEARCH")
                {
                    for w in rest[6..].split(|&c| c == b' ') {
                        if let Some(u) = parse_u32(w) {
                            r.search.push(u);
                        }
                    }
                }
                continue;
            }
            if l.starts_with(b"+") {
                return Err(e(format!(
                    "{what}: unexpected continuation: {}",
                    self.line_str()
                )));
            }
            if l.len() > self.tag.len() && l.starts_with(&self.tag) && l[self.tag.len()] == b' ' {
                let st = &l[self.tag.len() + 1..];
                if st.len() >= 2 && st[..2].eq_ignore_ascii_case(b"OK") {
                    let up = st.to_ascii_uppercase();
                    if let Some(p) = up.windows(11).position(|w| w == b"[APPENDUID ") {
                        let mut it = st[p + 11..].split(|&c| c == b' ' || c == b']');
                        let _validity = it.next();
                        r.append_uid = it.next().and_then(parse_u32);
                    }
                    return Ok(r);
                }
                return Err(e(format!("{what}: {}", String::from_utf8_lossy(st))));
            }
            // another tag or garbage: ignore
        }
    }

    /// Sends `self.cmd` and waits for the tagged OK.
    async fn run(&mut self, what: &str) -> Result<Resp, Fail> {
        self.send_cmd().await?;
        self.finish(what, false, false).await
    }

    /// Waits for a `+` continuation request.
    async fn continuation(&mut self, what: &str) -> Result<(), Fail> {
        loop {
            self.read_line().await?;
            if self.line.starts_with(b"+") {
                return Ok(());
            }
            if self.line.starts_with(b"* ") {
                continue;
            }
            return Err(e(format!("{what}: {}", self.line_str())));
        }
    }

    fn set_cmd(&mut self, f: impl FnOnce(&mut Vec<u8>)) {
        self.cmd.clear();
        f(&mut self.cmd);
    }
}

fn quoted(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            o.push('\\');
        }
        o.push(c);
    }
    o.push('"');
    o
}

// ---------------------------------------------------------------------------
// one client

struct Ctx {
    args: ImapArgs,
    shared: Shared,
    /// per user index: the UIDs found by the warm-up
    uids: Vec<Vec<u32>>,
    append_msg: Vec<u8>,
    /// measurement window end (mix, commands)
    end: Instant,
    t0: Instant,
}

impl Ctx {
    fn user(&self, idx: usize) -> String {
        format_rcpt(&self.args.user_template, self.args.user_first + idx)
    }
}

struct Client<'a> {
    ctx: &'a Ctx,
    lat: Lat,
    rng: Rng,
    user_idx: usize,
}

impl Client<'_> {
    fn record(&mut self, k: Kind, start: Instant) {
        let d = start.elapsed();
        let us = d.as_micros().min(u32::MAX as u128) as u32;
        self.lat.us[k.idx()].push(us);
        if k.is_command() {
            self.ctx.shared.commands.fetch_add(1, Ordering::Relaxed);
        }
        if d >= Duration::from_millis(self.ctx.args.slow_ms) {
            self.ctx.shared.note_slow(format!(
                "{} {:.1} ms at t={:.1}s ({})",
                k.name(),
                d.as_secs_f64() * 1000.0,
                start.duration_since(self.ctx.t0).as_secs_f64(),
                self.ctx.user(self.user_idx)
            ));
        }
    }

    async fn open(&mut self) -> Result<Conn, Fail> {
        let io_t = Duration::from_secs(self.ctx.args.io_timeout);
        let t = Instant::now();
        let c = Conn::connect(&self.ctx.args.addr, io_t)
            .await
            .map_err(|x| e(format!("connect: {}", x.0)))?;
        self.record(Kind::Connect, t);
        Ok(c)
    }

    async fn login_select(&mut self, c: &mut Conn) -> Result<u32, Fail> {
        let user = self.ctx.user(self.user_idx);
        let pass = &self.ctx.args.password;
        c.set_cmd(|b| {
            let _ = write!(b, "LOGIN {} {}", quoted(&user), quoted(pass));
        });
        let t = Instant::now();
        c.run("LOGIN").await?;
        self.record(Kind::Login, t);
        let mbox = &self.ctx.args.mailbox;
        c.set_cmd(|b| {
            let _ = write!(b, "SELECT {}", quoted(mbox));
        });
        let t = Instant::now();
        let r = c.run("SELECT").await?;
        self.record(Kind::Select, t);
        Ok(r.exists.unwrap_or(0))
    }

    /// The command mix on a selected mailbox.
    async fn mix(&mut self, c: &mut Conn) -> Result<(), Fail> {
        let uids = &self.ctx.uids[self.user_idx];
        if uids.is_empty() {
            return Err(e("mailbox has no messages (warm-up found none)"));
        }
        let page = self.ctx.args.page.clamp(1, uids.len());
        let (lo, hi) = (uids[uids.len() - page], uids[uids.len() - 1]);
        c.set_cmd(|b| {
            let _ = write!(b, "UID FETCH {lo}:{hi} (UID FLAGS RFC822.SIZE ENVELOPE)");
        });
        let t = Instant::now();
        let r = c.run("UID FETCH list").await?;
        self.record(Kind::List, t);
        if r.fetches == 0 {
            self.ctx
                .shared
                .note_error("UID FETCH list: no FETCH responses".into());
        }

        let uid = uids[self.rng.below(uids.len())];
        c.set_cmd(|b| {
            let _ = write!(b, "UID FETCH {uid} BODY.PEEK[]");
        });
        let t = Instant::now();
        let r = c.run("UID FETCH BODY.PEEK[]").await?;
        self.record(Kind::Body, t);
        if r.literal_bytes == 0 {
            self.ctx
                .shared
                .note_error(format!("UID FETCH {uid} BODY.PEEK[]: no literal"));
        }

        let crit = &self.ctx.args.search;
        c.set_cmd(|b| {
            let _ = write!(b, "UID SEARCH {crit}");
        });
        let t = Instant::now();
        c.run("UID SEARCH").await?;
        self.record(Kind::Search, t);

        c.set_cmd(|b| {
            let _ = write!(b, "UID STORE {uid} +FLAGS (\\Seen)");
        });
        let t = Instant::now();
        c.run("UID STORE +FLAGS (\\Seen)").await?;
        self.record(Kind::Store, t);

        let msg = &self.ctx.append_msg;
        let mbox = &self.ctx.args.mailbox;
        c.set_cmd(|b| {
            let _ = write!(b, "APPEND {} (\\Seen) {{{}}}", quoted(mbox), msg.len());
        });
        let t = Instant::now();
        c.send_cmd().await?;
        c.continuation("APPEND").await?;
        let mut body = Vec::with_capacity(msg.len() + 2);
        body.extend_from_slice(msg);
        body.extend_from_slice(b"\r\n");
        c.write(&body).await?;
        let r = c.finish("APPEND", false, false).await?;
        self.record(Kind::Append, t);
        let Some(new_uid) = r.append_uid else {
            return Err(e("APPEND: no [APPENDUID] in the OK response"));
        };

        c.set_cmd(|b| {
            let _ = write!(b, "UID STORE {new_uid} +FLAGS (\\Deleted)");
        });
        let t = Instant::now();
        c.run("UID STORE +FLAGS (\\Deleted)").await?;
        self.record(Kind::StoreDel, t);

        c.set_cmd(|b| {
            let _ = write!(b, "UID EXPUNGE {new_uid}");
        });
        let t = Instant::now();
        c.run("UID EXPUNGE").await?;
        self.record(Kind::Expunge, t);
        Ok(())
    }

    async fn logout(&mut self, c: &mut Conn) -> Result<(), Fail> {
        c.set_cmd(|b| b.extend_from_slice(b"LOGOUT"));
        let t = Instant::now();
        c.run("LOGOUT").await?;
        self.record(Kind::Logout, t);
        Ok(())
    }

    async fn session(&mut self) -> Result<(), Fail> {
        let mut c = self.open().await?;
        self.login_select(&mut c).await?;
        self.mix(&mut c).await?;
        self.logout(&mut c).await?;
        Ok(())
    }
}

fn stop_now(ctx: &Ctx) -> bool {
    ctx.shared.stop.load(Ordering::Relaxed) || Instant::now() >= ctx.end
}

async fn mix_client(ctx: Arc<Ctx>, i: usize) -> Lat {
    let mut cl = Client {
        ctx: &ctx,
        lat: Lat::new(),
        rng: Rng::new(ctx.args.seed ^ (i as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407)),
        user_idx: i % ctx.args.user_count,
    };
    let max = ctx.args.sessions;
    let mut fails = 0u32;
    while !stop_now(&ctx) {
        if max > 0 {
            let n = ctx.shared.sessions.load(Ordering::Relaxed);
            if n >= max {
                ctx.shared.stop.store(true, Ordering::Relaxed);
                break;
            }
        }
        match cl.session().await {
            Ok(()) => {
                fails = 0;
                ctx.shared.sessions.fetch_add(1, Ordering::Relaxed);
            }
            Err(x) => {
                ctx.shared.note_error(x.0);
                fails += 1;
                tokio::time::sleep(Duration::from_millis(10 << fails.min(6))).await;
            }
        }
    }
    cl.lat
}

async fn commands_client(ctx: Arc<Ctx>, i: usize) -> Lat {
    let mut cl = Client {
        ctx: &ctx,
        lat: Lat::new(),
        rng: Rng::new(ctx.args.seed ^ (i as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407)),
        user_idx: i % ctx.args.user_count,
    };
    let mut fails = 0u32;
    'outer: while !stop_now(&ctx) {
        let mut c = match cl.open().await {
            Ok(c) => c,
            Err(x) => {
                ctx.shared.note_error(x.0);
                fails += 1;
                tokio::time::sleep(Duration::from_millis(10 << fails.min(6))).await;
                continue;
            }
        };
        if let Err(x) = cl.login_select(&mut c).await {
            ctx.shared.note_error(x.0);
            fails += 1;
            tokio::time::sleep(Duration::from_millis(10 << fails.min(6))).await;
            continue;
        }
        while !stop_now(&ctx) {
            match cl.mix(&mut c).await {
                Ok(()) => {
                    fails = 0;
                    ctx.shared.sessions.fetch_add(1, Ordering::Relaxed);
                }
                Err(x) => {
                    ctx.shared.note_error(x.0);
                    fails += 1;
                    continue 'outer; // reconnect
                }
            }
        }
        let _ = cl.logout(&mut c).await;
    }
    cl.lat
}

/// Logs in once per user, selects the mailbox, learns its UIDs.
async fn warmup(args: &ImapArgs) -> Result<Vec<Vec<u32>>> {
    let io_t = Duration::from_secs(args.io_timeout.max(120));
    let mut set = tokio::task::JoinSet::new();
    let sem = Arc::new(tokio::sync::Semaphore::new(4));
    for u in 0..args.user_count {
        let user = format_rcpt(&args.user_template, args.user_first + u);
        let (addr, pass, mbox) = (
            args.addr.clone(),
            args.password.clone(),
            args.mailbox.clone(),
        );
        let sem = sem.clone();
        set.spawn(async move {
            let _p = sem.acquire().await;
            let r: Result<Vec<u32>, Fail> = async {
                let mut c = Conn::connect(&addr, io_t).await?;
                c.set_cmd(|b| {
                    let _ = write!(b, "LOGIN {} {}", quoted(&user), quoted(&pass));
                });
                c.run("LOGIN").await?;
                c.set_cmd(|b| {
                    let _ = write!(b, "SELECT {}", quoted(&mbox));
                });
                c.run("SELECT").await?;
                c.set_cmd(|b| b.extend_from_slice(b"UID SEARCH ALL"));
                c.send_cmd().await?;
                let mut r = c.finish("UID SEARCH ALL", true, false).await?;
                c.set_cmd(|b| b.extend_from_slice(b"LOGOUT"));
                let _ = c.run("LOGOUT").await;
                r.search.sort_unstable();
                Ok(r.search)
            }
            .await;
            (u, user, r)
        });
    }
    let mut out = vec![Vec::new(); args.user_count];
    while let Some(j) = set.join_next().await {
        let (u, user, r) = j?;
        match r {
            Ok(v) => out[u] = v,
            Err(x) => bail!("warm-up for {user}: {}", x.0),
        }
    }
    Ok(out)
}

fn append_message(size: usize) -> Vec<u8> {
    let mut m = String::with_capacity(size + 100);
    m.push_str(
        "From: \"Bench Sender\" <sender@daum.test>\r\nTo: <bench-user@naver.test>\r\n\
Subject: =?UTF-8?B?7J6E7IucIOyggOyepQ==?= draft\r\nDate: Sun, 22 Nov 2026 10:00:00 +0900\r\n\
Message-ID: <append-bench@naver.test>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
    );
    let line = "This is a draft saved by the webmail client, 임시 저장된 메일입니다.\r\n";
    while m.len() + line.len() + 2 <= size {
        m.push_str(line);
    }
    while m.len() + 2 < size {
        m.push('x');
    }
    m.push_str("\r\n");
    m.into_bytes()
}

// ---------------------------------------------------------------------------
// memory

/// (PSS kB, RSS kB, processes) summed over the process trees.
fn tree_mem_kb(roots: &[u32]) -> (u64, u64, usize) {
    let pids = tree_pids(roots);
    let (mut pss, mut rss) = (0, 0);
    for p in &pids {
        let Ok(s) = std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")) else {
            continue;
        };
        for l in s.lines() {
            let mut it = l.split_ascii_whitespace();
            match (it.next(), it.next().and_then(|v| v.parse::<u64>().ok())) {
                (Some("Pss:"), Some(v)) => pss += v,
                (Some("Rss:"), Some(v)) => rss += v,
                _ => {}
            }
        }
    }
    (pss, rss, pids.len())
}

// ---------------------------------------------------------------------------
// main

pub(crate) fn imap_main(args: ImapArgs) -> Result<i32> {
    crate::check_server_pids(&args.server_pid)?;
    if args.user_count == 0 || args.concurrency == 0 {
        bail!("--user-count and --concurrency must be > 0");
    }
    let rt = crate::runtime(args.threads)?;
    let code = match args.mode {
        Mode::Mix | Mode::Commands => run_load(&rt, args)?,
        Mode::IdleConnections => run_idle(&rt, args)?,
        Mode::Select => run_select(&rt, args)?,
    };
    drop(rt);
    let _ = std::io::stdout().flush();
    Ok(code)
}

fn label_of(a: &ImapArgs) -> String {
    if a.label.is_empty() {
        String::new()
    } else {
        format!("[{}] ", a.label)
    }
}

fn errors_json(errors: &[(String, u64)]) -> String {
    let v: Vec<String> = errors
        .iter()
        .map(|(e, n)| format!("{{\"error\":{},\"count\":{n}}}", json_str(e)))
        .collect();
    format!("[{}]", v.join(","))
}

fn run_load(rt: &tokio::runtime::Runtime, args: ImapArgs) -> Result<i32> {
    let tck = clk_tck() as f64;
    let hard = if args.timeout > 0 {
        args.timeout
    } else {
        args.duration + args.io_timeout + 30
    };
    eprintln!(
        "warm-up: {} users (login, SELECT, UID SEARCH ALL) ...",
        args.user_count
    );
    let tw = Instant::now();
    let uids = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(600), warmup(&args))
            .await
            .map_err(|_| anyhow::anyhow!("warm-up did not finish in 600 s"))?
    })?;
    let msgs: usize = uids.iter().map(Vec::len).sum();
    eprintln!(
        "warm-up done in {:.1} s: {} messages in {} mailboxes",
        tw.elapsed().as_secs_f64(),
        msgs,
        uids.len()
    );
    let mode = args.mode;
    let append_msg = append_message(args.append_size);
    let t0 = Instant::now();
    let ctx = Arc::new(Ctx {
        end: t0 + Duration::from_secs(args.duration),
        t0,
        args,
        shared: Shared::default(),
        uids,
        append_msg,
    });
    let args = &ctx.args;
    let server_before = tree_cpu_ticks(&args.server_pid);
    let self_before = self_cpu_ticks();
    let mach_before = machine_cpu();
    let t0 = Instant::now();
    let (lat, timed_out) = rt.block_on(async {
        let mut handles = Vec::new();
        for i in 0..args.concurrency {
            let c = ctx.clone();
            handles.push(match mode {
                Mode::Mix => tokio::spawn(mix_client(c, i)),
                _ => tokio::spawn(commands_client(c, i)),
            });
        }
        let aborts: Vec<_> = handles.iter().map(|h| h.abort_handle()).collect();
        let all = async {
            let mut lat = Lat::new();
            for h in handles {
                if let Ok(l) = h.await {
                    lat.merge(l);
                }
            }
            lat
        };
        match tokio::time::timeout(Duration::from_secs(hard), all).await {
            Ok(l) => (l, false),
            Err(_) => {
                for a in aborts {
                    a.abort();
                }
                (Lat::new(), true)
            }
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));
    let server_after = tree_cpu_ticks(&args.server_pid);
    let self_after = self_cpu_ticks();
    let mach_after = machine_cpu();

    let sh = &ctx.shared;
    let sessions = sh.sessions.load(Ordering::Relaxed);
    let commands = sh.commands.load(Ordering::Relaxed);
    let errors_total = sh.errors_total.load(Ordering::Relaxed);
    let server_cpu = server_after.saturating_sub(server_before) as f64 / tck;
    let self_cpu = self_after.saturating_sub(self_before) as f64 / tck;
    let mach_busy = {
        let db = mach_after.0.saturating_sub(mach_before.0) as f64;
        let dt = mach_after.1.saturating_sub(mach_before.1) as f64;
        if dt > 0.0 { db / dt * 100.0 } else { f64::NAN }
    };
    let sess_rate = sessions as f64 / secs;
    let cmd_rate = commands as f64 / secs;
    let measured = !args.server_pid.is_empty();
    let cpu_per_sess = if measured && sessions > 0 {
        server_cpu * 1000.0 / sessions as f64
    } else {
        f64::NAN
    };
    let cpu_per_cmd = if measured && commands > 0 {
        server_cpu * 1000.0 / commands as f64
    } else {
        f64::NAN
    };
    let mut out = String::new();
    let label = label_of(args);
    let mname = if mode == Mode::Mix { "mix" } else { "commands" };
    let _ = writeln!(
        out,
        "{label}imap {mname} {} C={} duration={}s users={} search={:?} page={}",
        args.addr, args.concurrency, args.duration, args.user_count, args.search, args.page
    );
    let unit = if mode == Mode::Mix {
        "sessions"
    } else {
        "mix rounds (7 commands)"
    };
    let _ = writeln!(
        out,
        "  {sessions} {unit} in {secs:.2} s = {sess_rate:.1}/s;  {commands} commands = {cmd_rate:.1} commands/s;  errors {errors_total}"
    );
    if measured {
        let _ = writeln!(
            out,
            "  server CPU  {server_cpu:.2} s = {cpu_per_sess:.3} ms/{} , {cpu_per_cmd:.4} ms/command ({:.0}% of one core)",
            if mode == Mode::Mix {
                "session"
            } else {
                "round"
            },
            server_cpu / secs * 100.0
        );
    }
    let _ = writeln!(
        out,
        "  generator   {self_cpu:.2} s CPU = {:.4} ms/command; machine CPU busy {mach_busy:.0}% (all cores)",
        self_cpu * 1000.0 / commands.max(1) as f64
    );
    let slow_us = (args.slow_ms * 1000).min(u32::MAX as u64) as u32;
    let _ = writeln!(
        out,
        "  latency ms         count      p50      p99      max  >={}ms",
        args.slow_ms
    );
    let mut lat_json = Vec::new();
    for k in KINDS {
        let mut v = lat.us[k.idx()].clone();
        if v.is_empty() {
            continue;
        }
        v.sort_unstable();
        let (p50, p99, pmax) = (
            percentile(&v, 50.0),
            percentile(&v, 99.0),
            percentile(&v, 100.0),
        );
        let slow_n = v.len() - v.partition_point(|&x| x < slow_us);
        let _ = writeln!(
            out,
            "  {:<19} {:>8} {p50:>8.2} {p99:>8.2} {pmax:>8.1} {slow_n:>7}",
            k.name(),
            v.len()
        );
        lat_json.push(format!(
            "\"{}\":{{\"n\":{},\"slow\":{slow_n},\"p50_ms\":{},\"p99_ms\":{},\"max_ms\":{}}}",
            k.key(),
            v.len(),
            json_num(p50),
            json_num(p99),
            json_num(pmax)
        ));
    }
    let slow = sh.slow.lock().unwrap().clone();
    if slow.0 > 0 {
        let _ = writeln!(
            out,
            "  {} commands took >= {} ms, e.g.:",
            slow.0, args.slow_ms
        );
        for s in &slow.1 {
            let _ = writeln!(out, "    {s}");
        }
    }
    let errors = sh.errors.lock().unwrap().clone();
    for (e, n) in &errors {
        let _ = writeln!(out, "  error x{n}: {e}");
    }
    if timed_out {
        let _ = writeln!(
            out,
            "  TIMEOUT: hard limit of {hard} s hit, clients aborted"
        );
    }
    print!("{out}");
    if args.json {
        println!(
            "{{\"label\":{},\"mode\":\"{mname}\",\"addr\":{},\"concurrency\":{},\"duration\":{},\"users\":{},\
\"secs\":{},\"sessions\":{sessions},\"commands\":{commands},\"sessions_per_s\":{},\"commands_per_s\":{},\
\"errors_total\":{errors_total},\"server_cpu_secs\":{},\"server_cpu_ms_per_session\":{},\"server_cpu_ms_per_command\":{},\
\"gen_cpu_secs\":{},\"machine_busy_pct\":{},\"slow_commands\":{},\"timed_out\":{timed_out},\"latency\":{{{}}},\"errors\":{}}}",
            json_str(&args.label),
            json_str(&args.addr),
            args.concurrency,
            args.duration,
            args.user_count,
            json_num(secs),
            json_num(sess_rate),
            json_num(cmd_rate),
            json_num(server_cpu),
            json_num(cpu_per_sess),
            json_num(cpu_per_cmd),
            json_num(self_cpu),
            json_num(mach_busy),
            slow.0,
            lat_json.join(","),
            errors_json(&errors)
        );
    }
    Ok(if timed_out {
        2
    } else if errors_total > 0 || sessions == 0 {
        1
    } else {
        0
    })
}

async fn idle_one(
    addr: String,
    user: String,
    pass: String,
    mbox: String,
    io_t: Duration,
) -> Result<(Conn, u32), Fail> {
    let mut c = Conn::connect(&addr, io_t).await?;
    c.set_cmd(|b| {
        let _ = write!(b, "LOGIN {} {}", quoted(&user), quoted(&pass));
    });
    c.run("LOGIN").await?;
    c.set_cmd(|b| {
        let _ = write!(b, "SELECT {}", quoted(&mbox));
    });
    let r = c.run("SELECT").await?;
    c.set_cmd(|b| b.extend_from_slice(b"IDLE"));
    c.send_cmd().await?;
    c.continuation("IDLE").await?;
    Ok((c, r.exists.unwrap_or(0)))
}

struct IdleRound {
    held: usize,
    alive: usize,
    setup_secs: f64,
    setup_p50: f64,
    setup_p99: f64,
    before: (u64, u64, usize),
    holding: (u64, u64, usize),
    after: (u64, u64, usize),
    timed_out: bool,
    capped: bool,
    /// mean EXISTS of the selected mailboxes
    exists: f64,
}

impl IdleRound {
    fn per_conn(&self) -> (f64, f64) {
        if self.held == 0 {
            return (f64::NAN, f64::NAN);
        }
        let n = self.held as f64;
        (
            (self.holding.0 as f64 - self.before.0 as f64) / n,
            (self.holding.1 as f64 - self.before.1 as f64) / n,
        )
    }
}

fn idle_round(
    rt: &tokio::runtime::Runtime,
    args: &ImapArgs,
    shared: &Shared,
    deadline: Instant,
) -> IdleRound {
    let io_t = Duration::from_secs(args.io_timeout);
    let before = tree_mem_kb(&args.server_pid);
    let t0 = Instant::now();
    let n = args.connections;
    let batch = args.batch.max(1);
    let mut setup_us: Vec<u32> = Vec::with_capacity(n);
    let mut conns: Vec<Conn> = Vec::with_capacity(n);
    let mut capped = false;
    let mut exists_sum = 0u64;
    let timed_out = rt.block_on(async {
        let mut i = 0;
        while i < n {
            if Instant::now() >= deadline {
                return true;
            }
            if args.mem_cap_mib > 0 && tree_mem_kb(&args.server_pid).1 > args.mem_cap_mib * 1024 {
                capped = true;
                return false;
            }
            let mut set = tokio::task::JoinSet::new();
            for j in i..(i + batch).min(n) {
                let user = format_rcpt(&args.user_template, args.user_first + j % args.user_count);
                let (addr, pass, mbox) = (
                    args.addr.clone(),
                    args.password.clone(),
                    args.mailbox.clone(),
                );
                set.spawn(async move {
                    let t = Instant::now();
                    let r = idle_one(addr, user, pass, mbox, io_t).await;
                    (t.elapsed(), r)
                });
            }
            while let Some(j) = set.join_next().await {
                match j {
                    Ok((d, Ok((c, ex)))) => {
                        setup_us.push(d.as_micros().min(u32::MAX as u128) as u32);
                        exists_sum += ex as u64;
                        conns.push(c);
                    }
                    Ok((_, Err(x))) => shared.note_error(x.0),
                    Err(x) => shared.note_error(format!("task: {x}")),
                }
            }
            i += batch;
        }
        false
    });
    let setup_secs = t0.elapsed().as_secs_f64();
    let held = conns.len();
    std::thread::sleep(Duration::from_secs_f64(args.hold.max(0.0)));
    let holding = tree_mem_kb(&args.server_pid);
    // still open? nothing (or an untagged response) to read = idling; EOF = closed
    let alive = rt.block_on(async {
        let mut alive = 0;
        for c in conns.iter_mut() {
            let mut b = [0u8; 1];
            match tokio::time::timeout(Duration::from_millis(1), c.io.get_mut().peek(&mut b)).await
            {
                Err(_) => alive += 1,
                Ok(Ok(k)) if k > 0 => alive += 1,
                _ => {}
            }
        }
        alive
    });
    drop(conns);
    std::thread::sleep(Duration::from_secs(2));
    let after = tree_mem_kb(&args.server_pid);
    setup_us.sort_unstable();
    IdleRound {
        held,
        alive,
        setup_secs,
        setup_p50: percentile(&setup_us, 50.0),
        setup_p99: percentile(&setup_us, 99.0),
        before,
        holding,
        after,
        timed_out,
        capped,
        exists: exists_sum as f64 / held.max(1) as f64,
    }
}

fn run_idle(rt: &tokio::runtime::Runtime, args: ImapArgs) -> Result<i32> {
    let hard = Duration::from_secs(if args.timeout > 0 { args.timeout } else { 900 });
    let deadline = Instant::now() + hard;
    let shared = Shared::default();
    let n = args.connections;
    let label = label_of(&args);
    let mib = |kb: u64| kb as f64 / 1024.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{label}imap idle-connections {} N={n} batch={} users={} mailbox={} rounds={}",
        args.addr, args.batch, args.user_count, args.mailbox, args.rounds
    );
    let mut rounds = Vec::new();
    std::thread::sleep(Duration::from_millis(300));
    for r in 0..args.rounds.max(1) {
        let ir = idle_round(rt, &args, &shared, deadline);
        let (pss, rss) = ir.per_conn();
        let _ = writeln!(
            out,
            "  round {}: {}/{n} idling after {:.1} s (LOGIN+SELECT+IDLE p50 {:.1} ms, p99 {:.1} ms), {} open at the sample; mean EXISTS {:.0}{}",
            r + 1,
            ir.held,
            ir.setup_secs,
            ir.setup_p50,
            ir.setup_p99,
            ir.alive,
            ir.exists,
            if ir.capped {
                format!(
                    "; STOPPED OPENING: server RSS above --mem-cap-mib {}",
                    args.mem_cap_mib
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            out,
            "    server PSS/RSS MiB: before {:.1}/{:.1} ({} procs), holding {:.1}/{:.1} ({} procs), 2 s after closing {:.1}/{:.1} ({} procs)",
            mib(ir.before.0),
            mib(ir.before.1),
            ir.before.2,
            mib(ir.holding.0),
            mib(ir.holding.1),
            ir.holding.2,
            mib(ir.after.0),
            mib(ir.after.1),
            ir.after.2
        );
        let _ = writeln!(
            out,
            "    per connection: PSS {pss:.1} KiB, RSS {rss:.1} KiB"
        );
        let stop = ir.timed_out || ir.capped;
        rounds.push(ir);
        if stop {
            break;
        }
    }
    let errors = shared.errors.lock().unwrap().clone();
    let errors_total = shared.errors_total.load(Ordering::Relaxed);
    for (e, n) in &errors {
        let _ = writeln!(out, "  error x{n}: {e}");
    }
    let timed_out = rounds.iter().any(|r| r.timed_out);
    if timed_out {
        let _ = writeln!(out, "  TIMEOUT while connecting");
    }
    print!("{out}");
    let last = rounds.last().expect("at least one round");
    let first = &rounds[0];
    if args.json {
        let (pss, rss) = last.per_conn();
        let (pss1, rss1) = first.per_conn();
        println!(
            "{{\"label\":{},\"mode\":\"idle-connections\",\"addr\":{},\"connections\":{n},\"rounds\":{},\"held\":{},\"alive\":{},\
\"setup_secs\":{},\"setup_p50_ms\":{},\"pss_before_kb\":{},\"pss_holding_kb\":{},\"pss_after_close_kb\":{},\
\"rss_before_kb\":{},\"rss_holding_kb\":{},\"rss_after_close_kb\":{},\"procs_holding\":{},\
\"pss_kb_per_conn\":{},\"rss_kb_per_conn\":{},\"first_round_pss_kb_per_conn\":{},\"first_round_rss_kb_per_conn\":{},\
\"first_round_pss_before_kb\":{},\"capped\":{},\"mem_cap_mib\":{},\"exists\":{},\"user_first\":{},\"user_count\":{},\"errors_total\":{errors_total},\"timed_out\":{timed_out},\"errors\":{}}}",
            json_str(&args.label),
            json_str(&args.addr),
            rounds.len(),
            last.held,
            last.alive,
            json_num(last.setup_secs),
            json_num(last.setup_p50),
            last.before.0,
            last.holding.0,
            last.after.0,
            last.before.1,
            last.holding.1,
            last.after.1,
            last.holding.2,
            json_num(pss),
            json_num(rss),
            json_num(pss1),
            json_num(rss1),
            first.before.0,
            rounds.iter().any(|r| r.capped),
            args.mem_cap_mib,
            json_num(last.exists),
            args.user_first,
            args.user_count,
            errors_json(&errors)
        );
    }
    Ok(if timed_out {
        2
    } else if rounds.iter().any(|r| r.held < n && !r.capped) {
        1
    } else {
        0
    })
}

fn run_select(rt: &tokio::runtime::Runtime, args: ImapArgs) -> Result<i32> {
    let io_t = Duration::from_secs(args.io_timeout.max(120));
    let user = format_rcpt(&args.user_template, args.user_first);
    let verb = if args.examine { "EXAMINE" } else { "SELECT" };
    let k = args.iterations.max(1);
    let hard = Duration::from_secs(if args.timeout > 0 { args.timeout } else { 600 });
    // (command, its round-trip times in µs) for the SELECT and each --then command.
    type Timings = Vec<(String, Vec<u32>)>;
    let res: Result<(Timings, u32, f64), Fail> = rt.block_on(async {
        let work = async {
            let mut c = Conn::connect(&args.addr, io_t).await?;
            c.set_cmd(|b| {
                let _ = write!(b, "LOGIN {} {}", quoted(&user), quoted(&args.password));
            });
            let tl = Instant::now();
            c.run("LOGIN").await?;
            let login_ms = tl.elapsed().as_secs_f64() * 1000.0;
            let mut times = Vec::with_capacity(k);
            let mut exists = 0;
            for _ in 0..k {
                c.set_cmd(|b| {
                    let _ = write!(b, "{verb} {}", quoted(&args.mailbox));
                });
                let t = Instant::now();
                let r = c.run(verb).await?;
                times.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                exists = r.exists.unwrap_or(0);
            }
            let mut all = vec![(format!("{verb} {}", args.mailbox), times)];
            for cmd in &args.then {
                let mut times = Vec::with_capacity(k);
                for _ in 0..k {
                    c.set_cmd(|b| b.extend_from_slice(cmd.as_bytes()));
                    let t = Instant::now();
                    c.run("query").await?;
                    times.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                }
                all.push((cmd.clone(), times));
            }
            c.set_cmd(|b| b.extend_from_slice(b"LOGOUT"));
            let _ = c.run("LOGOUT").await;
            Ok((all, exists, login_ms))
        };
        match tokio::time::timeout(hard, work).await {
            Ok(r) => r,
            Err(_) => Err(e("TIMEOUT")),
        }
    });
    let (all, exists, login_ms) = match res {
        Ok(v) => v,
        Err(x) => {
            println!(
                "{}imap select {}: error: {}",
                label_of(&args),
                args.addr,
                x.0
            );
            if args.json {
                println!(
                    "{{\"label\":{},\"mode\":\"select\",\"error\":{}}}",
                    json_str(&args.label),
                    json_str(&x.0)
                );
            }
            return Ok(1);
        }
    };
    for (n, (command, times)) in all.iter().enumerate() {
        let first = times[0] as f64 / 1000.0;
        let mut warm: Vec<u32> = if times.len() > 1 {
            times[1..].to_vec()
        } else {
            times.clone()
        };
        warm.sort_unstable();
        let (min, p50, p99) = (
            warm[0] as f64 / 1000.0,
            percentile(&warm, 50.0),
            percentile(&warm, 99.0),
        );
        // The SELECT line keeps its original shape; each --then command gets a "query" line.
        let mode = if n == 0 { "select" } else { "query" };
        println!(
            "{}imap {mode} {} user={user} {command} x{k}: {exists} messages; LOGIN {login_ms:.1} ms; first {first:.2} ms; then min {min:.2} p50 {p50:.2} p99 {p99:.2} ms",
            label_of(&args),
            args.addr,
        );
        if args.json {
            println!(
                "{{\"label\":{},\"mode\":\"{mode}\",\"addr\":{},\"verb\":\"{verb}\",\"command\":{},\"iterations\":{k},\"exists\":{exists},\
\"login_ms\":{},\"first_ms\":{},\"min_ms\":{},\"p50_ms\":{},\"p99_ms\":{}}}",
                json_str(&args.label),
                json_str(&args.addr),
                json_str(command),
                json_num(login_ms),
                json_num(first),
                json_num(min),
                json_num(p50),
                json_num(p99)
            );
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {123}\r\n"), Some(123));
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {12+}\r\n"), Some(12));
        assert_eq!(literal_len(b"* 1 FETCH (FLAGS ())\r\n"), None);
        assert_eq!(literal_len(b"a1 OK done\r\n"), None);
    }

    #[test]
    fn append_message_size() {
        for s in [300, 1500, 4096] {
            assert_eq!(append_message(s).len(), s);
        }
    }
}
