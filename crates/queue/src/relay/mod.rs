//! Outbound delivery: the queue runner and what it needs.
//!
//! # Layout
//! * `runner`: [`QueueRunner`], the scheduler: claims due entries, groups recipients per
//!   destination, shares connections, applies results, retries, bounces.
//! * `route`: the hosts for a destination (relay routes, smarthost, MX, implicit MX).
//! * `dns`: the [`Resolver`] trait and its hickory implementation.
//! * `client`: the SMTP client session.
//! * `dsn`: RFC 3464 delivery status notifications.
//! * `tls`: TLS client configurations.
//! * `clock`: the runner's injectable clock.

pub(crate) mod client;
mod clock;
mod dns;
pub(crate) mod dsn;
mod route;
pub(crate) mod runner;
mod tls;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

pub use client::Timeouts;
pub use clock::{Clock, ShiftedClock, SystemClock};
pub use dns::{DnsError, HickoryResolver, Mx, Resolver};
pub use runner::{QueueRunner, RunnerHandle};
pub use tls::opportunistic as opportunistic_tls;

/// Why a recipient (or all recipients of a destination) could not be delivered this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// 5xx-class: give up and bounce. Otherwise retry later.
    pub(crate) permanent: bool,
    /// RFC 3463 status code.
    pub(crate) status: String,
    /// The peer's reply (`550 5.1.1 ...`) or what went wrong locally.
    pub(crate) text: String,
    /// The host that answered, `name[ip]`.
    pub(crate) remote_mta: Option<String>,
}

impl Failure {
    pub(crate) fn temporary(status: &str, text: impl Into<String>) -> Failure {
        Failure {
            permanent: false,
            status: status.into(),
            text: text.into(),
            remote_mta: None,
        }
    }

    pub(crate) fn permanent(status: &str, text: impl Into<String>) -> Failure {
        Failure {
            permanent: true,
            status: status.into(),
            text: text.into(),
            remote_mta: None,
        }
    }

    /// A negative reply from `peer`; the status is its enhanced code, or the class default.
    pub(crate) fn from_reply(reply: &proto_smtp::ParsedReply, peer: &str) -> Failure {
        let permanent = reply.is_permanent();
        Failure {
            permanent,
            status: reply
                .enhanced
                .clone()
                .unwrap_or_else(|| if permanent { "5.0.0" } else { "4.0.0" }.into()),
            text: client::reply_text(reply),
            remote_mta: Some(peer.to_owned()),
        }
    }
}

/// A configured next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHop {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Relay everything through one host.
#[derive(Debug, Clone)]
pub struct Smarthost {
    /// Where.
    pub hop: NextHop,
    /// AUTH user and password. With credentials, STARTTLS is required unless the smarthost
    /// is on a loopback address.
    pub credentials: Option<(String, String)>,
    /// Check the smarthost's certificate against the bundled Mozilla roots.
    pub verify_certificate: bool,
}

/// How the queue runner works.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Our name: EHLO, Reporting-MTA, MAILER-DAEMON@.
    pub hostname: String,
    /// The port of MX hosts (25; tests use a high port).
    pub port: u16,
    /// Static next hops per domain (lower-case), before MX lookups.
    pub routes: BTreeMap<String, NextHop>,
    /// Relay all mail through this host instead.
    pub smarthost: Option<Smarthost>,
    /// Give up (bounce) after this long in the queue.
    pub lifetime: Duration,
    /// First retry delay; each further one doubles ...
    pub retry_initial: Duration,
    /// ... up to this.
    pub retry_max: Duration,
    /// Warn the sender once a message has waited this long (`None`: never).
    pub delay_warning: Option<Duration>,
    /// Outbound connections at once, all destinations.
    pub max_connections: usize,
    /// Outbound connections at once to one destination.
    pub max_per_destination: usize,
    /// Messages sent over one connection before it is closed and a new one opened.
    pub messages_per_connection: usize,
    /// Client waits.
    pub timeouts: Timeouts,
    /// Connect from this local address.
    pub source_address: Option<IpAddr>,
}

impl RelaySettings {
    /// Defaults like a serious MTA's: port 25, 5 days, retries from 5 minutes doubling to an
    /// hour, a delay warning after 4 hours, 100 connections, 20 per destination.
    pub fn new(hostname: impl Into<String>) -> RelaySettings {
        RelaySettings {
            hostname: hostname.into(),
            port: 25,
            routes: BTreeMap::new(),
            smarthost: None,
            lifetime: Duration::from_secs(5 * 24 * 3600),
            retry_initial: Duration::from_secs(300),
            retry_max: Duration::from_secs(3600),
            delay_warning: Some(Duration::from_secs(4 * 3600)),
            max_connections: 100,
            max_per_destination: 20,
            messages_per_connection: 100,
            timeouts: Timeouts::default(),
            source_address: None,
        }
    }
}

#[cfg(test)]
mod tests;
