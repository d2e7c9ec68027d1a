//! The configuration file: one TOML file, every key defaulted, unknown keys and bad values
//! rejected with the key's name before anything starts. See README.md for the reference.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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

/// Relay settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relay {
    /// Domain -> `host:port`, used instead of the MX lookup for that domain.
    pub routes: BTreeMap<String, String>,
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
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            wal_preallocate_mib: 64,
        }
    }
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
        let config: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
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
        for (domain, hop) in &self.relay.routes {
            let ok = hop
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                bail!("relay.routes.\"{domain}\": {hop:?} is not host:port");
            }
        }
        Ok(())
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
            ("[imap]\nliteral_plus = true", "literal_plus"),
            ("[store]\nwal_prealloc = 1", "wal_prealloc"),
            ("[store]\nwal_preallocate_mib = -1", "wal_preallocate_mib"),
            ("[imap]\nliteral_minus = 1", "literal_minus"),
        ] {
            let err = format!("{:#}", Config::parse(text).unwrap_err());
            assert!(
                err.contains(key),
                "error for {text:?} does not name {key}: {err}"
            );
        }
    }
}
