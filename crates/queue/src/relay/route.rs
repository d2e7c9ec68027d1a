//! Where mail for a domain goes: the hosts to try, in order (RFC 5321 5.1). A configured next
//! hop (a `relay.routes` entry, else the smarthost) wins; otherwise the MX records by preference, equal
//! preferences shuffled, and the domain's own address when it has no MX. A null MX
//! (RFC 7505) and a domain that does not exist are permanent failures; DNS trouble is
//! temporary.

use std::net::{IpAddr, SocketAddr};

use super::Failure;
use super::dns::{DnsError, Resolver};

/// MX hosts tried per destination at most (RFC 5321 5.1 asks for a configurable limit).
const MAX_HOSTS: usize = 10;
/// Addresses tried per host at most.
const MAX_ADDRESSES: usize = 4;

/// Where a group of recipients is sent: the unit of connection sharing and concurrency limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Destination {
    /// By MX lookup of this domain (lower-case), or an address literal `[192.0.2.1]`.
    Domain(String),
    /// A configured next hop: host (name or IP) and port.
    NextHop {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Domain(d) => f.write_str(d),
            Destination::NextHop { host, port } => write!(f, "[{host}]:{port}"),
        }
    }
}

/// One host to try, with its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hop {
    /// Its name (for logs, DSN Remote-MTA and the TLS server name).
    pub(crate) name: String,
    /// Addresses with the port.
    pub(crate) addrs: Vec<SocketAddr>,
}

/// The hosts for `dest`, in the order to try them; `port` is the SMTP port for MX hosts,
/// `myself` our host name (never an MX host to deliver to).
pub(crate) async fn hops(
    dest: &Destination,
    resolver: &dyn Resolver,
    port: u16,
    myself: &str,
) -> Result<Vec<Hop>, Failure> {
    match dest {
        Destination::NextHop { host, port } => {
            let hop = host_hop(resolver, host, *port).await?;
            if hop.addrs.is_empty() {
                return Err(Failure::temporary(
                    "4.4.4",
                    format!("next hop {host} has no address"),
                ));
            }
            Ok(vec![hop])
        }
        Destination::Domain(domain) => {
            if let Some(ip) = address_literal(domain) {
                return Ok(vec![Hop {
                    name: domain.clone(),
                    addrs: vec![SocketAddr::new(ip, port)],
                }]);
            }
            mx_hops(resolver, domain, port, myself).await
        }
    }
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 4.1.3).
fn address_literal(domain: &str) -> Option<IpAddr> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("ipv6:") => inner[5..].parse().ok(),
        _ => inner.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

fn dns_failure(e: DnsError, what: &str) -> Failure {
    match e {
        DnsError::NoSuchDomain(name) => Failure::permanent(
            "5.1.2",
            format!("{what}: domain {name} does not exist (NXDOMAIN)"),
        ),
        e => Failure::temporary("4.4.3", format!("{what}: {e}")),
    }
}

async fn host_hop(resolver: &dyn Resolver, host: &str, port: u16) -> Result<Hop, Failure> {
    let addrs = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => resolver
            .addresses(host)
            .await
            .map_err(|e| dns_failure(e, &format!("address of {host}")))?,
    };
    Ok(Hop {
        name: host.to_owned(),
        addrs: addrs
            .into_iter()
            .take(MAX_ADDRESSES)
            .map(|ip| SocketAddr::new(ip, port))
            .collect(),
    })
}

async fn mx_hops(
    resolver: &dyn Resolver,
    domain: &str,
    port: u16,
    myself: &str,
) -> Result<Vec<Hop>, Failure> {
    let mut records = resolver
        .mx(domain)
        .await
        .map_err(|e| dns_failure(e, &format!("MX lookup of {domain}")))?;
    if records.iter().any(|mx| mx.exchange.is_empty()) {
        // RFC 7505 3: a null MX says the domain accepts no mail.
        return Err(Failure::permanent(
            "5.1.10",
            format!("domain {domain} accepts no mail (null MX)"),
        ));
    }
    if records.is_empty() {
        // RFC 5321 5.1: no MX, so the domain itself is the exchanger ("implicit MX").
        let hop = host_hop(resolver, domain, port).await?;
        if hop.addrs.is_empty() {
            return Err(Failure::permanent(
                "5.4.4",
                format!("domain {domain} has neither MX nor address records"),
            ));
        }
        return Ok(vec![hop]);
    }
    // Lowest preference first; equal preferences in random order (RFC 5321 5.1).
    fastrand::shuffle(&mut records);
    records.sort_by_key(|mx| mx.preference);
    records.dedup_by(|a, b| a.exchange == b.exchange);
    // RFC 5321 5.1: if we are an MX of the domain, only the better-preferred ones may take it
    // from us; none left means the mail would come back here (we are its best MX but do not
    // host the domain).
    let myself = myself.trim_end_matches('.');
    if let Some(own) = records
        .iter()
        .find(|mx| mx.exchange.eq_ignore_ascii_case(myself))
        .map(|mx| mx.preference)
    {
        records.retain(|mx| mx.preference < own);
        if records.is_empty() {
            return Err(Failure::permanent(
                "5.4.6",
                format!("mail for {domain} loops back to myself: I am its best MX"),
            ));
        }
    }
    let mut hops = Vec::new();
    let mut last_error = None;
    let mut all_permanent = true;
    for mx in records.into_iter().take(MAX_HOSTS) {
        match host_hop(resolver, &mx.exchange, port).await {
            Ok(hop) if !hop.addrs.is_empty() => hops.push(hop),
            Ok(_) => {
                last_error = Some(Failure::permanent(
                    "5.4.4",
                    format!("MX host {} has no address", mx.exchange),
                ))
            }
            Err(f) => {
                all_permanent &= f.permanent;
                last_error = Some(f);
            }
        }
    }
    if hops.is_empty() {
        let mut f = last_error
            .unwrap_or_else(|| Failure::temporary("4.4.4", format!("no MX host for {domain}")));
        if !all_permanent {
            f.permanent = false;
            f.status = "4.4.3".into();
        }
        return Err(f);
    }
    Ok(hops)
}

#[cfg(test)]
mod tests {
    use super::super::dns::fake::FakeResolver;
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn names(hops: &[Hop]) -> Vec<&str> {
        hops.iter().map(|h| h.name.as_str()).collect()
    }

    fn dom(d: &str) -> Destination {
        Destination::Domain(d.into())
    }

    /// Our own host name in these tests.
    const ME: &str = "mx.daum.test";

    #[tokio::test]
    async fn our_own_mx_and_the_worse_ones_are_dropped() {
        let r = FakeResolver::default();
        r.mx(
            "naver.test",
            &[
                (10, "mx1.naver.test"),
                (20, "mx.daum.test"),
                (30, "mx3.naver.test"),
            ],
        );
        r.mx(
            "backup.test",
            &[(10, "mx.daum.test"), (20, "mx2.naver.test")],
        );
        for host in [
            "mx1.naver.test",
            "mx.daum.test",
            "mx3.naver.test",
            "mx2.naver.test",
        ] {
            r.host(host, &[ip("127.0.0.3")]);
        }
        let h = hops(&dom("naver.test"), &r, 25, ME).await.unwrap();
        assert_eq!(names(&h), ["mx1.naver.test"]);
        let f = hops(&dom("backup.test"), &r, 25, ME).await.unwrap_err();
        assert!(f.permanent && f.status == "5.4.6", "{f:?}");
    }

    #[tokio::test]
    async fn mx_order_fallbacks_and_failures() {
        let r = FakeResolver::default();
        r.mx(
            "naver.test",
            &[(20, "mx2.naver.test"), (10, "mx1.naver.test")],
        );
        r.host("mx1.naver.test", &[ip("127.0.0.3")]);
        r.host("mx2.naver.test", &[ip("127.0.0.4"), ip("::1")]);
        let h = hops(&dom("naver.test"), &r, 2525, ME).await.unwrap();
        assert_eq!(names(&h), ["mx1.naver.test", "mx2.naver.test"]);
        assert_eq!(h[0].addrs, ["127.0.0.3:2525".parse().unwrap()]);
        assert_eq!(h[1].addrs.len(), 2);

        // no MX: the domain's own address
        r.host("plain.test", &[ip("127.0.0.5")]);
        let h = hops(&dom("plain.test"), &r, 25, ME).await.unwrap();
        assert_eq!(h[0].addrs, ["127.0.0.5:25".parse().unwrap()]);

        // null MX and NXDOMAIN are permanent, SERVFAIL temporary
        r.mx("nullmx.test", &[(0, "")]);
        let f = hops(&dom("nullmx.test"), &r, 25, ME).await.unwrap_err();
        assert!(f.permanent && f.status == "5.1.10", "{f:?}");
        let f = hops(&dom("nowhere.test"), &r, 25, ME).await.unwrap_err();
        assert!(f.permanent && f.status == "5.1.2", "{f:?}");
        r.fail.lock().unwrap().push("broken.test".into());
        let f = hops(&dom("broken.test"), &r, 25, ME).await.unwrap_err();
        assert!(!f.permanent && f.status == "4.4.3", "{f:?}");

        // an MX host that cannot be resolved is skipped; if none is left, temporary wins
        r.mx(
            "half.test",
            &[(10, "gone.half.test"), (20, "mx1.naver.test")],
        );
        let h = hops(&dom("half.test"), &r, 25, ME).await.unwrap();
        assert_eq!(names(&h), ["mx1.naver.test"]);
        r.mx(
            "dead.test",
            &[(10, "gone.dead.test"), (20, "flaky.dead.test")],
        );
        r.fail.lock().unwrap().push("flaky.dead.test".into());
        let f = hops(&dom("dead.test"), &r, 25, ME).await.unwrap_err();
        assert!(!f.permanent, "{f:?}");
        r.mx("dead2.test", &[(10, "gone.dead2.test")]);
        let f = hops(&dom("dead2.test"), &r, 25, ME).await.unwrap_err();
        assert!(f.permanent, "{f:?}");
    }

    #[tokio::test]
    async fn equal_preferences_are_shuffled() {
        let r = FakeResolver::default();
        r.mx(
            "many.test",
            &[(10, "a.test"), (10, "b.test"), (5, "first.test")],
        );
        for h in ["a.test", "b.test", "first.test"] {
            r.host(h, &[ip("127.0.0.9")]);
        }
        let mut seen = std::collections::HashSet::new();
        for _ in 0..64 {
            let h = hops(&dom("many.test"), &r, 25, ME).await.unwrap();
            assert_eq!(h[0].name, "first.test");
            seen.insert(h[1].name.clone());
        }
        assert_eq!(
            seen.len(),
            2,
            "both orders of the equal-preference hosts occur"
        );
    }

    #[tokio::test]
    async fn literals_and_next_hops() {
        let r = FakeResolver::default();
        let h = hops(&dom("[127.0.0.7]"), &r, 25, ME).await.unwrap();
        assert_eq!(h[0].addrs, ["127.0.0.7:25".parse().unwrap()]);
        let h = hops(&dom("[IPv6:::1]"), &r, 25, ME).await.unwrap();
        assert_eq!(h[0].addrs, ["[::1]:25".parse().unwrap()]);
        let hop = Destination::NextHop {
            host: "127.0.0.8".into(),
            port: 2525,
        };
        let h = hops(&hop, &r, 25, ME).await.unwrap();
        assert_eq!(h[0].addrs, ["127.0.0.8:2525".parse().unwrap()]);
        r.host("relay.test", &[ip("127.0.0.6")]);
        let hop = Destination::NextHop {
            host: "relay.test".into(),
            port: 587,
        };
        assert_eq!(
            hops(&hop, &r, 25, ME).await.unwrap()[0].addrs,
            ["127.0.0.6:587".parse().unwrap()]
        );
    }
}
