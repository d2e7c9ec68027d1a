//! DNS for outbound mail behind a small trait: MX records and host addresses. The real
//! implementation is hickory-resolver; unit tests use a table.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;

/// Why a lookup gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// NXDOMAIN: the name does not exist (a permanent failure for mail).
    #[error("{0}: no such domain (NXDOMAIN)")]
    NoSuchDomain(String),
    /// SERVFAIL, a timeout, no nameserver reachable: try again later.
    #[error("{name}: DNS lookup failed: {reason}")]
    Temporary {
        /// The name looked up.
        name: String,
        /// What went wrong.
        reason: String,
    },
}

/// One MX record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mx {
    /// Preference: lower is tried first.
    pub preference: u16,
    /// The exchange host, lower-case, without the final dot; empty for the RFC 7505 null MX (".").
    pub exchange: String,
}

/// What the queue runner asks DNS.
#[async_trait::async_trait]
pub trait Resolver: Send + Sync {
    /// The MX records of `domain`; an empty list when the domain exists but has none (then
    /// its own address is the mail exchanger, RFC 5321 5.1).
    async fn mx(&self, domain: &str) -> Result<Vec<Mx>, DnsError>;
    /// The IPv4 and IPv6 addresses of `host` (empty when it has none).
    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError>;
}

/// hickory-resolver over the configured nameservers, or the system's (/etc/resolv.conf).
pub struct HickoryResolver {
    inner: TokioResolver,
}

impl HickoryResolver {
    /// A resolver asking `nameservers` (UDP, then TCP for truncated answers), or the system
    /// configuration when `None`.
    pub fn new(nameservers: Option<&[SocketAddr]>) -> Result<HickoryResolver, DnsError> {
        let setup_error = |e: NetError| DnsError::Temporary {
            name: "resolver".into(),
            reason: e.to_string(),
        };
        let mut builder = match nameservers {
            Some(list) => {
                let servers = list
                    .iter()
                    .map(|addr| {
                        let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                        for c in &mut ns.connections {
                            c.port = addr.port();
                        }
                        ns
                    })
                    .collect();
                TokioResolver::builder_with_config(
                    ResolverConfig::from_parts(None, vec![], servers),
                    TokioRuntimeProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio().map_err(setup_error)?,
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        // Names are always absolute here: never try search domains.
        opts.ndots = 0;
        opts.timeout = Duration::from_secs(5);
        opts.attempts = 2;
        let inner = builder.build().map_err(setup_error)?;
        Ok(HickoryResolver { inner })
    }
}

/// Absolute form, so no search domain is appended.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

/// Maps a lookup error: NXDOMAIN is permanent, "no records" an empty answer, the rest temporary.
fn classify<T>(name: &str, e: NetError) -> Result<Vec<T>, DnsError> {
    match &e {
        NetError::Dns(HickoryDnsError::NoRecordsFound(nr)) => {
            if nr.response_code == ResponseCode::NXDomain {
                Err(DnsError::NoSuchDomain(name.to_owned()))
            } else {
                Ok(Vec::new())
            }
        }
        _ => Err(DnsError::Temporary {
            name: name.to_owned(),
            reason: e.to_string(),
        }),
    }
}

#[async_trait::async_trait]
impl Resolver for HickoryResolver {
    async fn mx(&self, domain: &str) -> Result<Vec<Mx>, DnsError> {
        match self.inner.mx_lookup(fqdn(domain)).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some(Mx {
                        preference: mx.preference,
                        exchange: mx
                            .exchange
                            .to_ascii()
                            .trim_end_matches('.')
                            .to_ascii_lowercase(),
                    }),
                    _ => None,
                })
                .collect()),
            Err(e) => classify(domain, e),
        }
    }

    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        match self.inner.lookup_ip(fqdn(host)).await {
            Ok(lookup) => Ok(lookup.iter().collect()),
            Err(e) => classify(host, e),
        }
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A table-driven resolver for unit tests.

    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    /// Answers from tables; names missing from both are NXDOMAIN, names in `fail` SERVFAIL.
    #[derive(Default)]
    pub(crate) struct FakeResolver {
        pub(crate) mx: Mutex<HashMap<String, Vec<Mx>>>,
        pub(crate) hosts: Mutex<HashMap<String, Vec<IpAddr>>>,
        pub(crate) fail: Mutex<Vec<String>>,
    }

    impl FakeResolver {
        pub(crate) fn mx(&self, domain: &str, records: &[(u16, &str)]) {
            self.mx.lock().unwrap().insert(
                domain.into(),
                records
                    .iter()
                    .map(|(p, e)| Mx {
                        preference: *p,
                        exchange: (*e).into(),
                    })
                    .collect(),
            );
        }
        pub(crate) fn host(&self, host: &str, ips: &[IpAddr]) {
            self.hosts.lock().unwrap().insert(host.into(), ips.to_vec());
        }
        fn check(&self, name: &str) -> Result<(), DnsError> {
            if self.fail.lock().unwrap().iter().any(|f| f == name) {
                return Err(DnsError::Temporary {
                    name: name.into(),
                    reason: "SERVFAIL".into(),
                });
            }
            Ok(())
        }
        fn exists(&self, name: &str) -> bool {
            self.mx.lock().unwrap().contains_key(name)
                || self.hosts.lock().unwrap().contains_key(name)
        }
    }

    #[async_trait::async_trait]
    impl Resolver for FakeResolver {
        async fn mx(&self, domain: &str) -> Result<Vec<Mx>, DnsError> {
            self.check(domain)?;
            if !self.exists(domain) {
                return Err(DnsError::NoSuchDomain(domain.into()));
            }
            Ok(self
                .mx
                .lock()
                .unwrap()
                .get(domain)
                .cloned()
                .unwrap_or_default())
        }
        async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
            self.check(host)?;
            if !self.exists(host) {
                return Err(DnsError::NoSuchDomain(host.into()));
            }
            Ok(self
                .hosts
                .lock()
                .unwrap()
                .get(host)
                .cloned()
                .unwrap_or_default())
        }
    }
}
