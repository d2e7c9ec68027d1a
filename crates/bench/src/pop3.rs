//! `postern-bench pop3` — a POP3 load generator.
//!
//! C clients (tokio tasks) each repeat a download session for `--duration` seconds: connect,
//! greeting, `USER`/`PASS`, `STAT`, `LIST`, `RETR` of every message (one at a time, as
//! fetchmail and most clients do), `QUIT` (nothing deleted, so the mailboxes stay the same).
//! Client `i` logs in as `--user-template` with number `--user-first + i % --user-count`, so
//! with C <= user-count no two clients share a maildrop (POP3 locks it per session).
//!
//! Reports sessions/s, messages/s and MB/s retrieved, latency p50/p99/max per command kind,
//! errors, and the server's CPU per session: utime+stime of the `--server-pid` process trees
//! sampled before and after the run (as the imap and smtp modes do).
//!
//! Every read has an `--io-timeout` and the run a hard deadline, so a run always ends.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::{
    clk_tck, format_rcpt, json_num, json_str, machine_cpu, percentile, self_cpu_ticks,
    tree_cpu_ticks,
};

#[derive(Args, Debug)]
pub(crate) struct Pop3Args {
    /// POP3 server address (host:port).
    #[arg(long, default_value = "127.0.0.1:2110")]
    addr: String,

    /// Concurrent clients.
    #[arg(short = 'c', long, default_value_t = 10)]
    concurrency: usize,

    /// Run time in seconds.
    #[arg(short = 'd', long, default_value_t = 20)]
    duration: u64,

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

    /// Server process (tree) to measure; may be repeated.
    #[arg(long = "server-pid", value_name = "PID")]
    server_pid: Vec<u32>,

    /// Per-read timeout in seconds.
    #[arg(long, default_value_t = 30)]
    io_timeout: u64,

    /// Name of this configuration, printed in the output.
    #[arg(long, default_value = "")]
    label: String,

    /// Also print one JSON line with the results.
    #[arg(long)]
    json: bool,

    /// Worker threads of the generator's runtime (default: number of CPUs).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Kind {
    Connect,
    Login,
    Stat,
    List,
    Retr,
    Quit,
}

const KINDS: [Kind; 6] = [
    Kind::Connect,
    Kind::Login,
    Kind::Stat,
    Kind::List,
    Kind::Retr,
    Kind::Quit,
];

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Connect => "connect",
            Kind::Login => "login",
            Kind::Stat => "stat",
            Kind::List => "list",
            Kind::Retr => "retr",
            Kind::Quit => "quit",
        }
    }
    fn idx(self) -> usize {
        KINDS.iter().position(|&k| k == self).unwrap_or(0)
    }
}

#[derive(Default)]
struct Shared {
    sessions: AtomicU64,
    messages: AtomicU64,
    octets: AtomicU64,
    errors_total: AtomicU64,
    errors: Mutex<Vec<(String, u64)>>,
}

impl Shared {
    fn note_error(&self, what: String) {
        self.errors_total.fetch_add(1, Ordering::Relaxed);
        let mut e = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(x) = e.iter_mut().find(|(s, _)| *s == what) {
            x.1 += 1;
        } else if e.len() < 10 {
            e.push((what, 1));
        }
    }
}

struct Conn {
    io: BufReader<TcpStream>,
    line: Vec<u8>,
    timeout: Duration,
}

impl Conn {
    async fn connect(addr: &str, timeout: Duration) -> Result<Conn, String> {
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let mut c = Conn {
            io: BufReader::with_capacity(64 * 1024, tcp),
            line: Vec::with_capacity(1024),
            timeout,
        };
        c.status("greeting").await?;
        Ok(c)
    }

    async fn read_line(&mut self) -> Result<(), String> {
        self.line.clear();
        match tokio::time::timeout(self.timeout, self.io.read_until(b'\n', &mut self.line)).await {
            Ok(Ok(0)) => Err("connection closed".into()),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("read: {e}")),
            Err(_) => Err("read timed out".into()),
        }
    }

    /// Reads a status line; an `-ERR` is an error.
    async fn status(&mut self, what: &str) -> Result<(), String> {
        self.read_line().await?;
        if self.line.starts_with(b"+OK") {
            Ok(())
        } else {
            Err(format!(
                "{what}: {}",
                String::from_utf8_lossy(&self.line).trim_end()
            ))
        }
    }

    async fn cmd(&mut self, line: &str, what: &str) -> Result<(), String> {
        let w = self.io.get_mut().write_all(line.as_bytes());
        tokio::time::timeout(self.timeout, w)
            .await
            .map_err(|_| format!("{what}: write timed out"))?
            .map_err(|e| format!("{what}: write: {e}"))?;
        self.status(what).await
    }

    /// Reads a multi-line body up to the "." line; calls `each` with every line (stuffed, with
    /// its line end); returns the octets read.
    async fn body(&mut self, mut each: impl FnMut(&[u8])) -> Result<u64, String> {
        let mut n = 0;
        loop {
            self.read_line().await?;
            if self.line == b".\r\n" {
                return Ok(n);
            }
            n += self.line.len() as u64;
            each(&self.line);
        }
    }
}

struct Ctx {
    args: Pop3Args,
    shared: Shared,
    end: Instant,
}

type Lat = Vec<Vec<u32>>;

fn record(lat: &mut Lat, k: Kind, start: Instant) {
    let us = start.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
    lat[k.idx()].push(us);
}

/// One download session.
async fn session(ctx: &Ctx, user: &str, lat: &mut Lat) -> Result<(), String> {
    let a = &ctx.args;
    let t = Instant::now();
    let mut c = Conn::connect(&a.addr, Duration::from_secs(a.io_timeout)).await?;
    record(lat, Kind::Connect, t);
    let t = Instant::now();
    c.cmd(&format!("USER {user}\r\n"), "USER").await?;
    c.cmd(&format!("PASS {}\r\n", a.password), "PASS").await?;
    record(lat, Kind::Login, t);
    let t = Instant::now();
    c.cmd("STAT\r\n", "STAT").await?;
    let count: usize = String::from_utf8_lossy(&c.line)
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .ok_or("STAT: no message count")?;
    record(lat, Kind::Stat, t);
    let t = Instant::now();
    c.cmd("LIST\r\n", "LIST").await?;
    let mut listed = 0usize;
    c.body(|_| listed += 1).await?;
    record(lat, Kind::List, t);
    if listed != count {
        return Err(format!("LIST has {listed} lines, STAT said {count}"));
    }
    let mut cmd = String::with_capacity(16);
    for i in 1..=count {
        cmd.clear();
        let _ = write!(cmd, "RETR {i}\r\n");
        let t = Instant::now();
        c.cmd(&cmd, "RETR").await?;
        let n = c.body(|_| {}).await?;
        record(lat, Kind::Retr, t);
        ctx.shared.messages.fetch_add(1, Ordering::Relaxed);
        ctx.shared.octets.fetch_add(n, Ordering::Relaxed);
        if Instant::now() >= ctx.end + Duration::from_secs(a.io_timeout) {
            return Err("run deadline passed in the middle of a session".into());
        }
    }
    let t = Instant::now();
    c.cmd("QUIT\r\n", "QUIT").await?;
    record(lat, Kind::Quit, t);
    Ok(())
}

async fn client(ctx: Arc<Ctx>, i: usize) -> Lat {
    let user = format_rcpt(
        &ctx.args.user_template,
        ctx.args.user_first + i % ctx.args.user_count,
    );
    let mut lat: Lat = vec![Vec::new(); KINDS.len()];
    let mut fails = 0u32;
    while Instant::now() < ctx.end {
        match session(&ctx, &user, &mut lat).await {
            Ok(()) => {
                fails = 0;
                ctx.shared.sessions.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                ctx.shared.note_error(e);
                fails += 1;
                tokio::time::sleep(Duration::from_millis(10 << fails.min(6))).await;
            }
        }
    }
    lat
}

pub(crate) fn pop3_main(args: Pop3Args) -> Result<i32> {
    crate::check_server_pids(&args.server_pid)?;
    if args.user_count == 0 || args.concurrency == 0 {
        bail!("--user-count and --concurrency must be > 0");
    }
    let rt = crate::runtime(args.threads)?;
    let tck = clk_tck() as f64;
    let hard = args.duration + args.io_timeout * 2 + 30;
    let ctx = Arc::new(Ctx {
        end: Instant::now() + Duration::from_secs(args.duration),
        args,
        shared: Shared::default(),
    });
    let args = &ctx.args;
    let server_before = tree_cpu_ticks(&args.server_pid);
    let self_before = self_cpu_ticks();
    let mach_before = machine_cpu();
    let t0 = Instant::now();
    let (lat, timed_out) = rt.block_on(async {
        let handles: Vec<_> = (0..args.concurrency)
            .map(|i| tokio::spawn(client(ctx.clone(), i)))
            .collect();
        let aborts: Vec<_> = handles.iter().map(|h| h.abort_handle()).collect();
        let all = async {
            let mut lat: Lat = vec![Vec::new(); KINDS.len()];
            for h in handles {
                if let Ok(l) = h.await {
                    for (a, b) in lat.iter_mut().zip(l) {
                        a.extend(b);
                    }
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
                (vec![Vec::new(); KINDS.len()], true)
            }
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));
    let server_cpu = tree_cpu_ticks(&args.server_pid).saturating_sub(server_before) as f64 / tck;
    let self_cpu = self_cpu_ticks().saturating_sub(self_before) as f64 / tck;
    let mach_after = machine_cpu();
    let mach_busy = {
        let db = mach_after.0.saturating_sub(mach_before.0) as f64;
        let dt = mach_after.1.saturating_sub(mach_before.1) as f64;
        if dt > 0.0 { db / dt * 100.0 } else { f64::NAN }
    };
    let sh = &ctx.shared;
    let sessions = sh.sessions.load(Ordering::Relaxed);
    let messages = sh.messages.load(Ordering::Relaxed);
    let octets = sh.octets.load(Ordering::Relaxed);
    let errors_total = sh.errors_total.load(Ordering::Relaxed);
    let measured = !args.server_pid.is_empty();
    let per_session = if measured && sessions > 0 {
        server_cpu * 1000.0 / sessions as f64
    } else {
        f64::NAN
    };
    let label = if args.label.is_empty() {
        String::new()
    } else {
        format!("[{}] ", args.label)
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{label}pop3 {} C={} duration={}s users={}",
        args.addr, args.concurrency, args.duration, args.user_count
    );
    let _ = writeln!(
        out,
        "  {sessions} sessions in {secs:.2} s = {:.2}/s; {messages} messages = {:.0}/s, {:.1} MB/s; errors {errors_total}",
        sessions as f64 / secs,
        messages as f64 / secs,
        octets as f64 / secs / 1e6
    );
    if measured {
        let _ = writeln!(
            out,
            "  server CPU {server_cpu:.2} s = {per_session:.2} ms/session ({:.0}% of one core)",
            server_cpu / secs * 100.0
        );
    }
    let _ = writeln!(
        out,
        "  generator {self_cpu:.2} s CPU; machine CPU busy {mach_busy:.0}% (all cores)"
    );
    let _ = writeln!(out, "  latency ms        count      p50      p99      max");
    let mut lat_json = Vec::new();
    for k in KINDS {
        let mut v = lat[k.idx()].clone();
        if v.is_empty() {
            continue;
        }
        v.sort_unstable();
        let (p50, p99, max) = (
            percentile(&v, 50.0),
            percentile(&v, 99.0),
            percentile(&v, 100.0),
        );
        let _ = writeln!(
            out,
            "  {:<14} {:>9} {p50:>8.3} {p99:>8.3} {max:>8.1}",
            k.key(),
            v.len()
        );
        lat_json.push(format!(
            "\"{}\":{{\"n\":{},\"p50_ms\":{},\"p99_ms\":{},\"max_ms\":{}}}",
            k.key(),
            v.len(),
            json_num(p50),
            json_num(p99),
            json_num(max)
        ));
    }
    let errors = sh.errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
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
        let errs: Vec<String> = errors
            .iter()
            .map(|(e, n)| format!("{{\"error\":{},\"count\":{n}}}", json_str(e)))
            .collect();
        println!(
            "{{\"label\":{},\"mode\":\"pop3\",\"addr\":{},\"concurrency\":{},\"duration\":{},\"users\":{},\
\"secs\":{},\"sessions\":{sessions},\"messages\":{messages},\"octets\":{octets},\"sessions_per_s\":{},\
\"messages_per_s\":{},\"errors_total\":{errors_total},\"server_cpu_secs\":{},\"server_cpu_ms_per_session\":{},\
\"gen_cpu_secs\":{},\"machine_busy_pct\":{},\"timed_out\":{timed_out},\"latency\":{{{}}},\"errors\":[{}]}}",
            json_str(&args.label),
            json_str(&args.addr),
            args.concurrency,
            args.duration,
            args.user_count,
            json_num(secs),
            json_num(sessions as f64 / secs),
            json_num(messages as f64 / secs),
            json_num(server_cpu),
            json_num(per_session),
            json_num(self_cpu),
            json_num(mach_busy),
            lat_json.join(","),
            errs.join(",")
        );
    }
    drop(rt);
    let _ = std::io::stdout().flush();
    Ok(if timed_out {
        2
    } else if errors_total > 0 || sessions == 0 {
        1
    } else {
        0
    })
}
