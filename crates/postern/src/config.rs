//! The configuration file: one TOML file, every key defaulted, unknown keys and bad values
//! rejected with the key's name before anything starts. See README.md for the reference.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Our name in greetings and Received headers.
    pub hostname: String,
    /// Where the store and the generated TLS certificate live.
    pub data_dir: PathBuf,
    /// Listener addresses. No `[listen]` table: the loopback defaults. A `[listen]` table:
    /// exactly the listeners it names (absent = off).
    pub listen: Option<Listen>,
    /// Certificate and key; absent: self-signed, generated into `data_dir/tls/`.
    pub tls: Tls,
    /// Resolver for outbound MX lookups.
    pub dns: Dns,
    /// Static next hops.
    pub relay: Relay,
    /// Sizes, counts and timeouts.
    pub limits: Limits,
    /// Authentication policy.
    pub auth: Auth,
    /// IMAP protocol options.
    pub imap: Imap,
    /// Store options.
    pub store: StoreConfig,
}

/// Listener addresses (`host:port`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// SMTP, the MX role (port 25 in production).
    pub smtp: Option<SocketAddr>,
    /// Submission with STARTTLS (587).
    pub submission: Option<SocketAddr>,
    /// Submission over implicit TLS (465).
    pub submissions: Option<SocketAddr>,
    /// IMAP with STARTTLS (143).
    pub imap: Option<SocketAddr>,
    /// IMAP over implicit TLS (993).
    pub imaps: Option<SocketAddr>,
    /// POP3 with STLS (110).
    pub pop3: Option<SocketAddr>,
    /// POP3 over implicit TLS (995).
    pub pop3s: Option<SocketAddr>,
    /// Webmail HTTP.
    pub http: Option<SocketAddr>,
}

impl Listen {
    /// Loopback high ports, for trying Postern out without root.
    pub fn loopback_defaults() -> Listen {
        let a = |p: u16| Some(SocketAddr::from(([127, 0, 0, 1], p)));
        Listen {
            smtp: a(2025),
            submission: a(2587),
            submissions: a(2465),
            imap: a(2143),
            imaps: a(2993),
            pop3: a(2110),
            pop3s: a(2995),
            http: a(8080),
        }
    }
}

/// TLS files.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
}

/// DNS settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// Nameservers (`ip:port`); absent: the system resolver (/etc/resolv.conf).
    pub nameservers: Option<Vec<SocketAddr>>,
}

/// Outbound delivery (the queue runner).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Relay {
    /// Domain -> `host:port`, used instead of the MX lookup for that domain.
    pub routes: BTreeMap<String, String>,
    /// TCP port of MX hosts (25; another value only for tests and labs).
    pub port: u16,
    /// Relay outbound mail (domains in `routes` excepted) through this `host:port`, e.g. a
    /// provider's submission port when port 25 is blocked.
    pub smarthost: Option<String>,
    /// AUTH user for the smarthost.
    pub smarthost_user: Option<String>,
    /// AUTH password for the smarthost ...
    pub smarthost_password: Option<String>,
    /// ... or a file whose first line is the password.
    pub smarthost_password_file: Option<PathBuf>,
    /// Verify the smarthost's TLS certificate against the bundled Mozilla roots (default true).
    pub smarthost_verify_certificate: bool,
    /// Seconds a message may wait in the queue before it is returned to the sender (5 days).
    pub lifetime: u64,
    /// Seconds before the first retry (300); each further retry waits twice as long ...
    pub retry_initial: u64,
    /// ... up to this many seconds (3600).
    pub retry_max: u64,
    /// Seconds after which the sender is told a message is delayed, once (14400); 0 = never.
    pub delay_warning: u64,
    /// Outbound SMTP connections at once (100).
    pub max_connections: usize,
    /// Outbound SMTP connections at once to one destination (20).
    pub max_connections_per_domain: usize,
    /// Messages per connection before it is closed and a new one opened (100).
    pub messages_per_connection: usize,
    /// Seconds to wait for a TCP connection (30).
    pub connect_timeout: u64,
    /// Local address outbound connections come from (default: chosen by the system).
    pub source_address: Option<IpAddr>,
}

impl Default for Relay {
    fn default() -> Relay {
        Relay {
            routes: BTreeMap::new(),
            port: 25,
            smarthost: None,
            smarthost_user: None,
            smarthost_password: None,
            smarthost_password_file: None,
            smarthost_verify_certificate: true,
            lifetime: 5 * 24 * 3600,
            retry_initial: 300,
            retry_max: 3600,
            delay_warning: 4 * 3600,
            max_connections: 100,
            max_connections_per_domain: 20,
            messages_per_connection: 100,
            connect_timeout: 30,
            source_address: None,
        }
    }
}

/// `host:port` split, the port required.
fn host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

/// Limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest message accepted, in bytes (advertised with SIZE).
    pub max_message_size: u64,
    /// Recipients per SMTP transaction (RFC 5321 4.5.3.1.8 requires at least 100).
    pub max_recipients: usize,
    /// Concurrent connections per listener.
    pub max_connections: usize,
    /// Concurrent connections per client IP per listener.
    pub max_connections_per_ip: usize,
    /// Seconds an SMTP server waits for the next command (RFC 5321 4.5.3.2.7: 5 minutes).
    pub smtp_command_timeout: u64,
    /// Seconds an SMTP server waits for the next chunk of DATA (RFC 5321 4.5.3.2.6: 3 minutes).
    pub smtp_data_timeout: u64,
    /// Protocol errors tolerated in one SMTP session before it is closed.
    pub smtp_max_errors: u32,
    /// Seconds an authenticated IMAP client may stay silent, IDLE included (RFC 9051 5.4:
    /// at least 30 minutes).
    pub imap_idle_timeout: u64,
    /// Storage quota per account in bytes (IMAP QUOTA, SMTP "mailbox full"); 0 = unlimited.
    pub mailbox_quota: u64,
    /// Seconds a logged-in POP3 client may stay silent (RFC 1939 3: at least 10 minutes);
    /// before login the limit is 60 s, or this if shorter.
    pub pop3_timeout: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_connections: 1000,
            max_connections_per_ip: 50,
            smtp_command_timeout: 300,
            smtp_data_timeout: 180,
            smtp_max_errors: 20,
            imap_idle_timeout: 1800,
            mailbox_quota: 0,
            pop3_timeout: 600,
        }
    }
}

/// Authentication policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Allow passwords over unencrypted connections from non-loopback clients.
    pub allow_plaintext: bool,
    /// Treat loopback clients as local, allowing passwords without TLS (default true).
    pub plaintext_on_loopback: bool,
    /// Failed logins from one IP within `failure_window` before it is locked out.
    pub max_failures: u32,
    /// Seconds over which failures are counted.
    pub failure_window: u64,
    /// Seconds an IP stays locked out.
    pub lockout: u64,
}

impl Default for Auth {
    fn default() -> Auth {
        Auth {
            allow_plaintext: false,
            plaintext_on_loopback: true,
            max_failures: 5,
            failure_window: 300,
            lockout: 300,
        }
    }
}

/// IMAP protocol options (IMAP sizes and timeouts are in `[limits]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Imap {
    /// Advertise LITERAL- instead of LITERAL+ (RFC 7888): non-synchronising literals over
    /// 4096 octets are refused with BAD [TOOBIG]. Default false (LITERAL+, like Dovecot).
    pub literal_minus: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            hostname: default_hostname(),
            data_dir: PathBuf::from("./data"),
            listen: None,
            tls: Tls::default(),
            dns: Dns::default(),
            relay: Relay::default(),
            limits: Limits::default(),
            auth: Auth::default(),
            imap: Imap::default(),
            store: StoreConfig::default(),
        }
    }
}

/// Store options (`[store]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// MiB of zeros the SQLite write-ahead log gets when the server starts it afresh, so that
    /// commits overwrite allocated blocks instead of growing the file (cheaper fdatasync).
    /// Default 64 (the WAL is checkpointed and restarted at about that size); 0 turns it off.
    pub wal_preallocate_mib: u64,
    /// MiB of zeros kept written ahead of the blob log's append point, so that a large body's
    /// fdatasync overwrites allocated blocks. Default 8; 0 turns it off.
    pub log_zeros_ahead_mib: u64,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            wal_preallocate_mib: 64,
            log_zeros_ahead_mib: 8,
        }
    }
}

/// A TOML error as one line led by the dotted key it is about: `limits.max_recipients:
/// invalid type: string "ten", expected usize (line 2, column 18)`; toml's own report (which
/// shows the line) when there is no such key.
fn toml_error(text: &str, e: &toml::de::Error) -> anyhow::Error {
    let Some((at, key)) = e
        .span()
        .and_then(|span| Some((span.start, key_at(text, span.start)?)))
    else {
        return anyhow::anyhow!("{e}");
    };
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    anyhow::anyhow!(
        "{key}: {} (line {}, column {})",
        e.message().trim_end(),
        text[..at].matches('\n').count() + 1,
        text[line_start..at].chars().count() + 1
    )
}

/// The dotted key of the `key = value` line holding byte `offset`: the last `[table]` header
/// above it and the key before the `=`. None for lines of another shape (a multi-line value).
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("");
    let key = line.split_once('=').map_or(line, |(k, _)| k).trim();
    if key.is_empty() || key.starts_with(['[', '#']) || key.contains(char::is_whitespace) {
        return None;
    }
    let table = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|h| h.trim_matches(['[', ']']).trim());
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}

fn default_hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

impl Config {
    /// Reads and validates `path`, or the defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let config = match path {
            None => Config::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read config file {}", p.display()))?;
                Config::parse(&text).with_context(|| format!("config file {}", p.display()))?
            }
        };
        Ok(config)
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        config.validate()?;
        Ok(config)
    }

    /// The listeners in effect.
    pub fn listeners(&self) -> Listen {
        self.listen
            .clone()
            .unwrap_or_else(Listen::loopback_defaults)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let h = &self.hostname;
        if h.is_empty()
            || h.len() > 253
            || !h
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            bail!("hostname: {h:?} is not a valid host name");
        }
        if self.data_dir.as_os_str().is_empty() {
            bail!("data_dir: must not be empty");
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            bail!("tls: set both tls.cert and tls.key, or neither (for a self-signed certificate)");
        }
        let l = &self.limits;
        let positive = [
            ("limits.max_message_size", l.max_message_size),
            ("limits.max_recipients", l.max_recipients as u64),
            ("limits.max_connections", l.max_connections as u64),
            (
                "limits.max_connections_per_ip",
                l.max_connections_per_ip as u64,
            ),
            ("limits.smtp_command_timeout", l.smtp_command_timeout),
            ("limits.smtp_data_timeout", l.smtp_data_timeout),
            ("limits.smtp_max_errors", l.smtp_max_errors as u64),
            ("limits.imap_idle_timeout", l.imap_idle_timeout),
            ("limits.pop3_timeout", l.pop3_timeout),
            ("auth.max_failures", self.auth.max_failures as u64),
        ];
        for (key, v) in positive {
            if v == 0 {
                bail!("{key}: must be greater than 0");
            }
        }
        if l.max_message_size > 1 << 30 {
            bail!("limits.max_message_size: at most 1 GiB (1073741824)");
        }
        let r = &self.relay;
        for (domain, hop) in &r.routes {
            if host_port(hop).is_none() {
                bail!("relay.routes.\"{domain}\": {hop:?} is not host:port");
            }
        }
        if let Some(hop) = &r.smarthost
            && host_port(hop).is_none()
        {
            bail!("relay.smarthost: {hop:?} is not host:port");
        }
        if r.smarthost_password.is_some() && r.smarthost_password_file.is_some() {
            bail!("relay.smarthost_password_file: set it or relay.smarthost_password, not both");
        }
        let has_password = r.smarthost_password.is_some() || r.smarthost_password_file.is_some();
        if r.smarthost_user.is_some() != has_password {
            bail!("relay.smarthost_user: set it together with relay.smarthost_password (or _file)");
        }
        if r.smarthost_user.is_some() && r.smarthost.is_none() {
            bail!("relay.smarthost_user: there is no relay.smarthost");
        }
        let positive = [
            ("relay.port", u64::from(r.port)),
            ("relay.lifetime", r.lifetime),
            ("relay.retry_initial", r.retry_initial),
            ("relay.retry_max", r.retry_max),
            ("relay.max_connections", r.max_connections as u64),
            (
                "relay.max_connections_per_domain",
                r.max_connections_per_domain as u64,
            ),
            (
                "relay.messages_per_connection",
                r.messages_per_connection as u64,
            ),
            ("relay.connect_timeout", r.connect_timeout),
        ];
        for (key, v) in positive {
            if v == 0 {
                bail!("{key}: must be greater than 0");
            }
        }
        if r.retry_max < r.retry_initial {
            bail!("relay.retry_max: must not be below relay.retry_initial");
        }
        // Both become byte counts; more than a blob-log segment (1 GiB) or the WAL's usual
        // size many times over is a mistake, not a setting.
        for (key, v) in [
            ("store.wal_preallocate_mib", self.store.wal_preallocate_mib),
            ("store.log_zeros_ahead_mib", self.store.log_zeros_ahead_mib),
        ] {
            if v > 1024 {
                bail!("{key}: at most 1024 (MiB)");
            }
        }
        Ok(())
    }

    /// The queue runner's settings (reads the smarthost password file).
    pub fn relay_settings(&self) -> anyhow::Result<queue::RelaySettings> {
        let r = &self.relay;
        let mut s = queue::RelaySettings::new(self.hostname.clone());
        s.port = r.port;
        for (domain, hop) in &r.routes {
            let (host, port) = host_port(hop).context("relay.routes")?;
            s.routes.insert(
                domain.trim_end_matches('.').to_ascii_lowercase(),
                queue::NextHop { host, port },
            );
        }
        if let Some(hop) = &r.smarthost {
            let (host, port) = host_port(hop).context("relay.smarthost")?;
            let password = match (&r.smarthost_password, &r.smarthost_password_file) {
                (Some(p), _) => Some(p.clone()),
                (None, Some(file)) => Some(
                    std::fs::read_to_string(file)
                        .with_context(|| {
                            format!(
                                "relay.smarthost_password_file: cannot read {}",
                                file.display()
                            )
                        })?
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_owned(),
                ),
                (None, None) => None,
            };
            s.smarthost = Some(queue::Smarthost {
                hop: queue::NextHop { host, port },
                credentials: r.smarthost_user.clone().zip(password),
                verify_certificate: r.smarthost_verify_certificate,
            });
        }
        s.lifetime = Duration::from_secs(r.lifetime);
        s.retry_initial = Duration::from_secs(r.retry_initial);
        s.retry_max = Duration::from_secs(r.retry_max);
        s.delay_warning = (r.delay_warning > 0).then(|| Duration::from_secs(r.delay_warning));
        s.max_connections = r.max_connections;
        s.max_per_destination = r.max_connections_per_domain;
        s.messages_per_connection = r.messages_per_connection;
        s.timeouts.connect = Duration::from_secs(r.connect_timeout);
        s.source_address = r.source_address;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.listeners(), Listen::loopback_defaults());
        assert_eq!(c.limits.max_recipients, 100);
        assert!(!c.imap.literal_minus);
        assert_eq!(c.store.wal_preallocate_mib, 64);
        assert_eq!(c.store.log_zeros_ahead_mib, 8);
    }

    #[test]
    fn relay_table() {
        let c = Config::parse("").unwrap();
        let s = c.relay_settings().unwrap();
        assert_eq!(s.port, 25);
        assert_eq!(s.lifetime, Duration::from_secs(432000));
        assert_eq!(s.delay_warning, Some(Duration::from_secs(14400)));
        assert!(s.smarthost.is_none() && s.routes.is_empty());
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\nignored\n").unwrap();
        let c = Config::parse(&format!(
            "[relay]\nport = 2525\ndelay_warning = 0\nsmarthost = \"[Relay.Example]:587\"\n\
             smarthost_user = \"me\"\nsmarthost_password_file = \"{}\"\nsource_address = \"127.0.0.2\"\n\
             [relay.routes]\n\"Daum.Test\" = \"127.0.0.3:2525\"\n",
            pw.display()
        ))
        .unwrap();
        let s = c.relay_settings().unwrap();
        assert_eq!((s.port, s.delay_warning), (2525, None));
        let sh = s.smarthost.unwrap();
        assert_eq!((sh.hop.host.as_str(), sh.hop.port), ("relay.example", 587));
        assert_eq!(sh.credentials, Some(("me".into(), "s3cret".into())));
        assert_eq!(s.routes["daum.test"].port, 2525);
        assert_eq!(s.source_address, Some("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn imap_table() {
        let c = Config::parse("[imap]\nliteral_minus = true\n").unwrap();
        assert!(c.imap.literal_minus);
    }

    #[test]
    fn listen_table_names_exactly_the_listeners() {
        let c = Config::parse("[listen]\nsmtp = \"127.0.0.1:25\"\n").unwrap();
        let l = c.listeners();
        assert_eq!(l.smtp, Some("127.0.0.1:25".parse().unwrap()));
        assert_eq!(l.submission, None);
    }

    #[test]
    fn toml_errors_lead_with_the_dotted_key() {
        for (text, lead) in [
            (
                "[limits]\nmax_message_size = \"big\"",
                "limits.max_message_size: invalid type",
            ),
            (
                "[listen]\nsmpt = \"127.0.0.1:25\"",
                "listen.smpt: unknown field",
            ),
            ("hostnam = \"x\"", "hostnam: unknown field"),
            (
                "[relay.routes]\n\"daum.test\" = 5",
                "relay.routes.\"daum.test\": invalid type",
            ),
            (
                "[store]\n# [not a table]\nlog_zeros_ahead_mib = \"8\"",
                "store.log_zeros_ahead_mib: invalid type",
            ),
        ] {
            let err = format!("{:#}", Config::parse(text).unwrap_err());
            assert!(err.starts_with(lead), "{text:?}: {err}");
            assert!(err.contains(" (line "), "{err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("hostnam = \"x\"", "hostnam"),
            ("[listen]\nsmpt = \"127.0.0.1:25\"", "smpt"),
            ("[listen]\nsmtp = \"nonsense\"", "smtp"),
            ("[limits]\nmax_message_size = \"big\"", "max_message_size"),
            ("[limits]\nmax_recipients = 0", "limits.max_recipients"),
            ("[limits]\npop3_timeout = 0", "limits.pop3_timeout"),
            ("[tls]\ncert = \"/x.pem\"", "tls.key"),
            ("hostname = \"bad host\"", "hostname"),
            ("[relay.routes]\n\"daum.test\" = \"nohost\"", "relay.routes"),
            ("[relay]\nsmarthost = \"relay.example\"", "relay.smarthost"),
            (
                "[relay]\nsmarthost = \"relay.example:587\"\nsmarthost_user = \"u\"",
                "relay.smarthost_user",
            ),
            (
                "[relay]\nretry_initial = 600\nretry_max = 60",
                "relay.retry_max",
            ),
            ("[relay]\nlifetime = 0", "relay.lifetime"),
            ("[relay]\nlifetim = 1", "lifetim"),
            ("[imap]\nliteral_plus = true", "literal_plus"),
            ("[store]\nwal_prealloc = 1", "wal_prealloc"),
            ("[store]\nwal_preallocate_mib = -1", "wal_preallocate_mib"),
            (
                "[store]\nlog_zeros_ahead_mib = \"8\"",
                "log_zeros_ahead_mib",
            ),
            ("[imap]\nliteral_minus = 1", "literal_minus"),
            (
                "[store]\nlog_zeros_ahead_mib = 1025",
                "store.log_zeros_ahead_mib",
            ),
            (
                "[store]\nwal_preallocate_mib = 17592186044416",
                "store.wal_preallocate_mib",
            ),
        ] {
            let err = format!("{:#}", Config::parse(text).unwrap_err());
            assert!(
                err.contains(key),
                "error for {text:?} does not name {key}: {err}"
            );
        }
    }
}
