//! An in-process authoritative DNS server for the `test.` zone (hickory-server), on
//! 127.0.0.1 with UDP and TCP on one random port: the servers under test resolve MX and A
//! records through it with their real resolver.

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::proto::rr::rdata::{A, MX, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

/// One record of the zone.
pub enum Rec<'a> {
    /// `domain MX preference exchange` (exchange "." is the RFC 7505 null MX).
    Mx(&'a str, u16, &'a str),
    /// `host A address`.
    A(&'a str, Ipv4Addr),
}

pub struct TestDns {
    pub addr: SocketAddr,
    _server: Server<Catalog>,
}

fn name(s: &str) -> Name {
    let s = if s.ends_with('.') {
        s.to_string()
    } else {
        format!("{s}.")
    };
    Name::from_str(&s).unwrap()
}

impl TestDns {
    /// Serves `records` (plus the zone's SOA) for `test.`; everything else under `test.` is
    /// NXDOMAIN.
    pub async fn start(records: &[Rec<'_>]) -> TestDns {
        let origin = name("test.");
        let mut zone =
            InMemoryZoneHandler::<hickory_server::net::runtime::TokioRuntimeProvider>::empty(
                origin.clone(),
                ZoneType::Primary,
                AxfrPolicy::Deny,
            );
        let serial = 1;
        zone.upsert_mut(
            Record::from_rdata(
                origin.clone(),
                60,
                RData::SOA(SOA::new(
                    name("ns.test."),
                    name("hostmaster.test."),
                    serial,
                    3600,
                    600,
                    86400,
                    // negative answers are cached for a second only
                    1,
                )),
            ),
            serial,
        );
        for r in records {
            let record = match r {
                Rec::Mx(domain, pref, exchange) => {
                    Record::from_rdata(name(domain), 1, RData::MX(MX::new(*pref, name(exchange))))
                }
                Rec::A(host, ip) => Record::from_rdata(name(host), 1, RData::A(A(*ip))),
            };
            assert!(zone.upsert_mut(record, serial));
        }
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
        let mut server = Server::new(catalog);
        // UDP and TCP on the same port (the resolver falls back to TCP for long answers).
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let port = udp.local_addr().unwrap().port();
            if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 4096);
        TestDns {
            addr,
            _server: server,
        }
    }

    /// The `[dns]` table pointing a server at this one.
    pub fn config(&self) -> String {
        format!("[dns]\nnameservers = [\"{}\"]\n", self.addr)
    }
}
