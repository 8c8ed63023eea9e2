//! A tiny authoritative-ish DNS server answering from a map that tests
//! mutate at runtime (the pebble-challtestsrv model). UDP and TCP share one
//! port on 127.0.0.1. TTLs are 0 so resolvers never hold stale answers.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CAA, CNAME, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::Tasks;

/// Longest CNAME chain we follow inside our own data.
const MAX_CHAIN: usize = 8;

#[derive(Default, Debug)]
struct Zone {
    a: HashMap<String, Vec<Ipv4Addr>>,
    aaaa: HashMap<String, Vec<Ipv6Addr>>,
    default_a: Option<Ipv4Addr>,
    txt: HashMap<String, Vec<String>>,
    caa: HashMap<String, Vec<(u8, String, String)>>,
    cname: HashMap<String, String>,
    servfail: HashSet<String>,
}

/// Map key: lower case, no trailing dot.
pub(crate) fn key(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

impl Zone {
    /// Whether the name owns data or has names below it (empty non-terminal).
    fn exists(&self, name: &str) -> bool {
        let suffix = format!(".{name}");
        let keys = self
            .a
            .keys()
            .chain(self.aaaa.keys())
            .chain(self.txt.keys())
            .chain(self.caa.keys())
            .chain(self.cname.keys());
        let mut keys = keys;
        keys.any(|k| k == name || k.ends_with(&suffix))
    }

    /// Records for one query, CNAMEs expanded; the response code to send.
    fn answer(&self, query: &Query) -> (ResponseCode, Vec<Record>) {
        let qtype = query.query_type();
        let mut owner = query.name().clone();
        let mut name = key(&owner.to_ascii());
        let mut records = Vec::new();
        for _ in 0..MAX_CHAIN {
            if self.servfail.contains(&name) {
                return (ResponseCode::ServFail, Vec::new());
            }
            let Some(target) = self.cname.get(&name).filter(|_| qtype != RecordType::CNAME) else {
                break;
            };
            let Ok(target_name) = Name::from_ascii(format!("{target}.")) else {
                break;
            };
            records.push(Record::from_rdata(
                owner.clone(),
                0,
                RData::CNAME(CNAME(target_name.clone())),
            ));
            owner = target_name;
            name = target.clone();
        }
        let data = self.rdata(&name, qtype);
        let found = !data.is_empty();
        records.extend(
            data.into_iter()
                .map(|d| Record::from_rdata(owner.clone(), 0, d)),
        );
        let code = if found || !records.is_empty() || self.exists(&name) || self.default_a.is_some()
        {
            ResponseCode::NoError
        } else {
            ResponseCode::NXDomain
        };
        (code, records)
    }

    fn rdata(&self, name: &str, qtype: RecordType) -> Vec<RData> {
        match qtype {
            RecordType::A => match self.a.get(name) {
                Some(ips) => ips.iter().map(|ip| RData::A(A(*ip))).collect(),
                None => self
                    .default_a
                    .map(|ip| RData::A(A(ip)))
                    .into_iter()
                    .collect(),
            },
            RecordType::AAAA => self
                .aaaa
                .get(name)
                .map(|ips| ips.iter().map(|ip| RData::AAAA(AAAA(*ip))).collect())
                .unwrap_or_default(),
            RecordType::TXT => self
                .txt
                .get(name)
                .map(|vals| vals.iter().map(|v| RData::TXT(txt(v))).collect())
                .unwrap_or_default(),
            RecordType::CAA => self
                .caa
                .get(name)
                .map(|recs| {
                    recs.iter()
                        .map(|(f, t, v)| RData::CAA(caa(*f, t, v)))
                        .collect()
                })
                .unwrap_or_default(),
            RecordType::CNAME => self
                .cname
                .get(name)
                .and_then(|t| Name::from_ascii(format!("{t}.")).ok())
                .map(|t| vec![RData::CNAME(CNAME(t))])
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// A TXT record; values longer than 255 bytes become several character strings.
fn txt(value: &str) -> TXT {
    let mut parts = Vec::new();
    let mut current = String::new();
    for c in value.chars() {
        if current.len() + c.len_utf8() > 255 {
            parts.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    parts.push(current);
    TXT::new(parts)
}

fn caa(flags: u8, tag: &str, value: &str) -> CAA {
    // CAA is non-exhaustive: start from a constructor, then set the raw fields.
    let mut rec = CAA::new_issue(flags & 0x80 != 0, None, Vec::new());
    rec.reserved_flags = flags & 0x7f;
    rec.tag = tag.to_owned();
    rec.value = value.as_bytes().to_vec();
    rec
}

/// Builds the wire response for one request, or `None` for garbage.
fn respond(zone: &Mutex<Zone>, request: &[u8], udp: bool) -> Option<Vec<u8>> {
    let req = Message::from_vec(request).ok()?;
    if req.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.metadata.authoritative = true;
    if req.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        resp.set_edns(edns);
    }
    match (req.metadata.op_code, req.queries.first()) {
        (OpCode::Query, Some(q)) => {
            resp.add_query(q.clone());
            let (code, answers) = lock(zone).answer(q);
            resp.metadata.response_code = code;
            resp.add_answers(answers);
        }
        _ => resp.metadata.response_code = ResponseCode::FormErr,
    }
    let bytes = resp.to_vec().ok()?;
    if udp && bytes.len() > usize::from(req.max_payload()) {
        // Too big for the client's UDP buffer: set TC so it retries over TCP.
        let mut tc = Message::response(req.metadata.id, req.metadata.op_code);
        tc.metadata.truncation = true;
        tc.add_queries(req.queries.iter().cloned());
        return tc.to_vec().ok();
    }
    Some(bytes)
}

fn lock(zone: &Mutex<Zone>) -> MutexGuard<'_, Zone> {
    // A panicking test thread must not wedge every other test's server.
    zone.lock().unwrap_or_else(|p| p.into_inner())
}

async fn serve_udp(socket: UdpSocket, zone: Arc<Mutex<Zone>>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(out) = respond(&zone, &buf[..n], true) {
            let _ = socket.send_to(&out, peer).await;
        }
    }
}

async fn serve_tcp_conn(mut stream: TcpStream, zone: Arc<Mutex<Zone>>) -> std::io::Result<()> {
    loop {
        let len = stream.read_u16().await?;
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await?;
        let Some(out) = respond(&zone, &buf, false) else {
            return Ok(());
        };
        let Ok(out_len) = u16::try_from(out.len()) else {
            return Ok(());
        };
        stream.write_u16(out_len).await?;
        stream.write_all(&out).await?;
    }
}

async fn serve_tcp(listener: TcpListener, zone: Arc<Mutex<Zone>>) {
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_tcp_conn(stream, Arc::clone(&zone)));
        }
    }
}

/// Binds UDP and TCP on the same port; with port 0, retries until a free
/// port is free for both protocols.
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..32 {
        let udp = UdpSocket::bind(addr)
            .await
            .context("binding DNS UDP socket")?;
        let bound = udp.local_addr()?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(e).context("binding DNS TCP socket"),
        }
    }
    Err(anyhow::anyhow!(
        "no port free for both UDP and TCP: {last:?}"
    ))
}

/// The test DNS server. Cloning shares the same data; the server stops when
/// the last clone is dropped.
#[derive(Clone)]
pub struct TestDns {
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for TestDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDns").field("addr", &self.addr).finish()
    }
}

impl TestDns {
    /// Starts on 127.0.0.1 with a random port. Panics if it cannot bind
    /// (test helper).
    pub async fn start() -> TestDns {
        Self::start_on("127.0.0.1:0".parse().expect("literal address"))
            .await
            .expect("start test DNS server")
    }

    /// Starts on a given address (port 0 picks one).
    pub async fn start_on(addr: SocketAddr) -> Result<TestDns> {
        let (udp, tcp) = bind_pair(addr).await?;
        let addr = udp.local_addr()?;
        let zone = Arc::new(Mutex::new(Zone::default()));
        let tasks = Tasks(vec![
            tokio::spawn(serve_udp(udp, Arc::clone(&zone))),
            tokio::spawn(serve_tcp(tcp, Arc::clone(&zone))),
        ]);
        tracing::debug!(%addr, "test DNS listening");
        Ok(TestDns {
            addr,
            zone,
            _tasks: Arc::new(tasks),
        })
    }

    /// UDP and TCP address of the server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn zone(&self) -> MutexGuard<'_, Zone> {
        lock(&self.zone)
    }

    /// Replaces the A records of `name`.
    pub fn set_a(&self, name: &str, ip: Ipv4Addr) {
        self.set_a_many(name, vec![ip]);
    }

    pub fn set_a_many(&self, name: &str, ips: Vec<Ipv4Addr>) {
        self.zone().a.insert(key(name), ips);
    }

    pub fn clear_a(&self, name: &str) {
        self.zone().a.remove(&key(name));
    }

    /// Replaces the AAAA records of `name`.
    pub fn set_aaaa(&self, name: &str, ips: Vec<Ipv6Addr>) {
        self.zone().aaaa.insert(key(name), ips);
    }

    pub fn clear_aaaa(&self, name: &str) {
        self.zone().aaaa.remove(&key(name));
    }

    /// Answer for every A query that has no record (pebble's -defaultIPv4).
    pub fn set_default_a(&self, ip: Option<Ipv4Addr>) {
        self.zone().default_a = ip;
    }

    /// Replaces the TXT records of `name` (one record per value).
    pub fn set_txt(&self, name: &str, values: Vec<String>) {
        self.zone().txt.insert(key(name), values);
    }

    /// Adds one TXT value to `name` (no duplicates).
    pub fn add_txt(&self, name: &str, value: &str) {
        let mut zone = self.zone();
        let vals = zone.txt.entry(key(name)).or_default();
        if !vals.iter().any(|v| v == value) {
            vals.push(value.to_owned());
        }
    }

    pub fn clear_txt(&self, name: &str) {
        self.zone().txt.remove(&key(name));
    }

    /// Replaces the CAA records of `name`: `(flags, tag, value)`.
    pub fn set_caa(&self, name: &str, records: Vec<(u8, String, String)>) {
        self.zone().caa.insert(key(name), records);
    }

    pub fn clear_caa(&self, name: &str) {
        self.zone().caa.remove(&key(name));
    }

    /// Makes `name` an alias of `target` (for every query type except CNAME).
    pub fn set_cname(&self, name: &str, target: &str) {
        self.zone().cname.insert(key(name), key(target));
    }

    pub fn clear_cname(&self, name: &str) {
        self.zone().cname.remove(&key(name));
    }

    /// Every query for `name` (or through a CNAME to it) answers SERVFAIL.
    pub fn set_servfail(&self, name: &str) {
        self.zone().servfail.insert(key(name));
    }

    pub fn clear_servfail(&self, name: &str) {
        self.zone().servfail.remove(&key(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, t: RecordType) -> Query {
        Query::query(Name::from_ascii(name).unwrap(), t)
    }

    #[test]
    fn answers_cname_chain_and_default_a() {
        let mut z = Zone::default();
        z.cname.insert("a.test".into(), "b.test".into());
        z.txt.insert("b.test".into(), vec!["v".into()]);
        let (code, recs) = z.answer(&query("A.test.", RecordType::TXT));
        assert_eq!(code, ResponseCode::NoError);
        assert_eq!(recs.len(), 2);
        let (code, recs) = z.answer(&query("nothing.test.", RecordType::A));
        assert_eq!((code, recs.len()), (ResponseCode::NXDomain, 0));
        z.default_a = Some(Ipv4Addr::LOCALHOST);
        let (code, recs) = z.answer(&query("nothing.test.", RecordType::A));
        assert_eq!((code, recs.len()), (ResponseCode::NoError, 1));
    }

    #[test]
    fn servfail_and_empty_non_terminal() {
        let mut z = Zone::default();
        z.servfail.insert("bad.test".into());
        z.txt.insert("x.y.test".into(), vec!["v".into()]);
        assert_eq!(
            z.answer(&query("bad.test.", RecordType::A)).0,
            ResponseCode::ServFail
        );
        assert_eq!(
            z.answer(&query("y.test.", RecordType::TXT)).0,
            ResponseCode::NoError
        );
    }

    #[test]
    fn long_txt_is_split() {
        let t = txt(&"x".repeat(600));
        assert_eq!(t.txt_data.len(), 3);
    }
}
