//! DNS messages seen by the `udp_send` (queries) and `dns` (answers)
//! sensors: a bounds-checked wire-format parser (RFC 1035; the bytes come
//! from any process on the host, so they are hostile) and the IP -> name
//! cache that gives connection events their `destination.domain`.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// At most this many questions and answers are read from one message.
const MAX_RECORDS: usize = 64;
/// At most this many compression pointers are followed in one name.
const MAX_JUMPS: usize = 16;
/// Longest name kept (RFC 1035: 255 octets on the wire).
const MAX_NAME: usize = 255;

/// One question of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The name asked for, lower-cased, without the final dot.
    pub name: String,
    /// QTYPE (1 = A, 28 = AAAA, ...).
    pub qtype: u16,
}

/// The data of one answer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// A or AAAA.
    Addr(IpAddr),
    /// CNAME, NS, PTR: a name.
    Name(String),
    /// Anything else (not decoded).
    Other,
}

/// One answer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Owner name.
    pub name: String,
    /// TYPE.
    pub rtype: u16,
    /// TTL in seconds.
    pub ttl: u32,
    /// Decoded data.
    pub data: Data,
}

/// A parsed message. Parsing stops at the first malformed or missing byte
/// and keeps what was read before it (`truncated`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Transaction id.
    pub id: u16,
    /// QR bit: a response.
    pub response: bool,
    /// Response code (RCODE).
    pub rcode: u8,
    /// Questions (usually one).
    pub questions: Vec<Question>,
    /// Answer section.
    pub answers: Vec<Answer>,
    /// The message ended, or was malformed, before all its sections.
    pub truncated: bool,
}

impl Message {
    /// Addresses in the answer section.
    pub fn resolved_ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.answers.iter().filter_map(|a| match a.data {
            Data::Addr(ip) => Some(ip),
            _ => None,
        })
    }
}

/// Why a message could not be parsed at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than the 12-byte header.
    #[error("shorter than a DNS header")]
    Short,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from(self.u8()?) << 8 | u16::from(self.u8()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from(self.u16()?) << 16 | u32::from(self.u16()?))
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// A possibly compressed name. Labels are lower-cased; bytes outside
    /// printable ASCII and the dot inside a label are written `\DDD`
    /// (dig's presentation format), so a hostile label cannot forge a
    /// different name or inject control characters.
    fn name(&mut self) -> Option<String> {
        let mut out = String::new();
        let mut pos = self.pos;
        let mut jumped = false;
        let mut jumps = 0;
        loop {
            let len = *self.buf.get(pos)?;
            match len & 0xc0 {
                0x00 => {
                    pos += 1;
                    if len == 0 {
                        break;
                    }
                    let label = self.buf.get(pos..pos + usize::from(len))?;
                    pos += usize::from(len);
                    if !out.is_empty() {
                        out.push('.');
                    }
                    for &c in label {
                        match c {
                            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => out.push(c as char),
                            b'A'..=b'Z' => out.push(c.to_ascii_lowercase() as char),
                            0x21..=0x7e if c != b'.' && c != b'\\' => out.push(c as char),
                            _ => out.push_str(&format!("\\{c:03}")),
                        }
                    }
                    if out.len() > MAX_NAME * 4 {
                        return None;
                    }
                }
                0xc0 => {
                    let lo = *self.buf.get(pos + 1)?;
                    let target = usize::from(len & 0x3f) << 8 | usize::from(lo);
                    jumps += 1;
                    // a pointer must point backwards: no loops
                    if jumps > MAX_JUMPS || target >= pos {
                        return None;
                    }
                    if !jumped {
                        self.pos = pos + 2;
                        jumped = true;
                    }
                    pos = target;
                }
                _ => return None,
            }
        }
        if !jumped {
            self.pos = pos;
        }
        Some(out)
    }
}

/// Parses a DNS message (wire format).
pub fn parse(buf: &[u8]) -> Result<Message, ParseError> {
    if buf.len() < 12 {
        return Err(ParseError::Short);
    }
    let mut r = Reader { buf, pos: 0 };
    let mut m = Message::default();
    let (Some(id), Some(flags), Some(qd), Some(an)) = (r.u16(), r.u16(), r.u16(), r.u16()) else {
        return Err(ParseError::Short);
    };
    r.pos = 12;
    m.id = id;
    m.response = flags & 0x8000 != 0;
    m.rcode = (flags & 0x000f) as u8;
    let parsed = (|| -> Option<()> {
        for _ in 0..usize::from(qd).min(MAX_RECORDS) {
            let name = r.name()?;
            let qtype = r.u16()?;
            let _class = r.u16()?;
            m.questions.push(Question { name, qtype });
        }
        if usize::from(qd) > MAX_RECORDS {
            return None;
        }
        for _ in 0..usize::from(an).min(MAX_RECORDS) {
            let name = r.name()?;
            let rtype = r.u16()?;
            let _class = r.u16()?;
            let ttl = r.u32()?;
            let rdlen = usize::from(r.u16()?);
            let rdata_start = r.pos;
            let rdata = r.bytes(rdlen)?;
            let data = match (rtype, rdlen) {
                (1, 4) => Data::Addr(IpAddr::V4(Ipv4Addr::new(
                    rdata[0], rdata[1], rdata[2], rdata[3],
                ))),
                (28, 16) => {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(rdata);
                    Data::Addr(IpAddr::V6(Ipv6Addr::from(a)))
                }
                (5 | 2 | 12, _) => {
                    let mut sub = Reader {
                        buf,
                        pos: rdata_start,
                    };
                    match sub.name() {
                        Some(n) => Data::Name(n),
                        None => Data::Other,
                    }
                }
                _ => Data::Other,
            };
            m.answers.push(Answer {
                name,
                rtype,
                ttl,
                data,
            });
        }
        Some(())
    })();
    m.truncated = parsed.is_none() || usize::from(an) > MAX_RECORDS;
    Ok(m)
}

/// The mnemonic of a record type (`TYPE65534` for unknown ones, RFC 3597).
pub fn type_name(t: u16) -> String {
    let s = match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        43 => "DS",
        46 => "RRSIG",
        48 => "DNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        252 => "AXFR",
        255 => "ANY",
        257 => "CAA",
        _ => return format!("TYPE{t}"),
    };
    s.to_string()
}

/// The mnemonic of a response code.
pub fn rcode_name(r: u8) -> String {
    let s = match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => return format!("RCODE{r}"),
    };
    s.to_string()
}

/// IP -> name learned from DNS answers, for `destination.domain`.
///
/// Bounded: at most `capacity` addresses; the oldest entry goes first.
/// An entry is kept for its TTL, but at least [`Cache::MIN_KEEP_S`] (a
/// program may connect after the record expired from its own cache) and at
/// most [`Cache::MAX_KEEP_S`]. The name is the one the program asked for
/// (the question), not the end of a CNAME chain.
#[derive(Debug)]
pub struct Cache {
    map: HashMap<IpAddr, (Arc<str>, u64)>,
    order: VecDeque<(IpAddr, u64)>,
    capacity: usize,
}

impl Cache {
    /// Shortest time an answer is remembered, seconds.
    pub const MIN_KEEP_S: u64 = 300;
    /// Longest time an answer is remembered, seconds.
    pub const MAX_KEEP_S: u64 = 86_400;

    /// An empty cache for at most `capacity` addresses.
    pub fn new(capacity: usize) -> Cache {
        Cache {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records the addresses of an answer, at `now_s` (any monotonic
    /// seconds clock).
    pub fn learn(&mut self, m: &Message, now_s: u64) {
        if !m.response || m.rcode != 0 {
            return;
        }
        let Some(q) = m.questions.first() else {
            return;
        };
        let name: Arc<str> = Arc::from(q.name.as_str());
        for a in &m.answers {
            let Data::Addr(ip) = a.data else {
                continue;
            };
            let keep = u64::from(a.ttl).clamp(Self::MIN_KEEP_S, Self::MAX_KEEP_S);
            let expires = now_s.saturating_add(keep);
            self.map.insert(ip, (name.clone(), expires));
            self.order.push_back((ip, expires));
        }
        self.evict(now_s);
    }

    fn evict(&mut self, now_s: u64) {
        while let Some(&(ip, exp)) = self.order.front() {
            let stale = match self.map.get(&ip) {
                Some(&(_, e)) => e != exp,
                None => true,
            };
            if stale {
                // superseded by a later answer for the same address
                self.order.pop_front();
            } else if exp <= now_s || self.map.len() > self.capacity {
                self.order.pop_front();
                self.map.remove(&ip);
            } else {
                break;
            }
        }
        // keep the queue from growing on repeated answers
        if self.order.len() > self.capacity.saturating_mul(4) {
            self.order
                .retain(|(ip, e)| self.map.get(ip).is_some_and(|v| v.1 == *e));
        }
    }

    /// The name an address was last resolved from, if still remembered.
    pub fn lookup(&self, ip: &IpAddr, now_s: u64) -> Option<Arc<str>> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(*ip),
            _ => *ip,
        };
        match self.map.get(&ip) {
            Some((n, exp)) if *exp > now_s => Some(n.clone()),
            _ => None,
        }
    }

    /// Number of addresses remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(out: &mut Vec<u8>, n: &str) {
        for l in n.split('.') {
            out.push(l.len() as u8);
            out.extend_from_slice(l.as_bytes());
        }
        out.push(0);
    }

    /// An answer for `q` with A records (compressed owner names) and a CNAME.
    pub(crate) fn answer(id: u16, q: &str, qtype: u16, ips: &[[u8; 4]], ttl: u32) -> Vec<u8> {
        let mut m = vec![];
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&0x8180u16.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&(ips.len() as u16 + 1).to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        name(&mut m, q);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        // CNAME q -> edge.cdn
        m.extend_from_slice(&[0xc0, 12]);
        m.extend_from_slice(&5u16.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&ttl.to_be_bytes());
        let mut cname = vec![];
        name(&mut cname, "edge.cdn");
        m.extend_from_slice(&(cname.len() as u16).to_be_bytes());
        let cname_at = m.len();
        m.extend_from_slice(&cname);
        for ip in ips {
            m.extend_from_slice(&[0xc0, cname_at as u8]);
            m.extend_from_slice(&1u16.to_be_bytes());
            m.extend_from_slice(&1u16.to_be_bytes());
            m.extend_from_slice(&ttl.to_be_bytes());
            m.extend_from_slice(&4u16.to_be_bytes());
            m.extend_from_slice(ip);
        }
        m
    }

    #[test]
    fn parses_a_query() {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        name(&mut m, "WWW.Example.com");
        m.extend_from_slice(&[0, 28, 0, 1]);
        let p = parse(&m).unwrap();
        assert_eq!(p.id, 0x1234);
        assert!(!p.response);
        assert!(!p.truncated);
        assert_eq!(
            p.questions,
            vec![Question {
                name: "www.example.com".into(),
                qtype: 28
            }]
        );
    }

    #[test]
    fn parses_compressed_answers_and_cname() {
        let m = answer(7, "svc.test", 1, &[[10, 0, 0, 1], [10, 0, 0, 2]], 60);
        let p = parse(&m).unwrap();
        assert!(p.response && !p.truncated);
        assert_eq!(p.answers.len(), 3);
        assert_eq!(p.answers[0].data, Data::Name("edge.cdn".into()));
        assert_eq!(p.answers[1].name, "edge.cdn");
        let ips: Vec<_> = p.resolved_ips().map(|i| i.to_string()).collect();
        assert_eq!(ips, ["10.0.0.1", "10.0.0.2"]);
    }

    #[test]
    fn hostile_messages_do_not_panic_or_loop() {
        // pointer to itself, forward pointer, oversized label, truncation
        let mut selfptr = vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        selfptr.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(parse(&selfptr).unwrap().truncated);
        let mut fwd = vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        fwd.extend_from_slice(&[0xc0, 20, 0, 1, 0, 1]);
        assert!(parse(&fwd).unwrap().truncated);
        let mut long = vec![0, 1, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 63];
        long.extend_from_slice(&[b'a'; 10]);
        assert!(parse(&long).unwrap().truncated);
        assert_eq!(parse(&[1, 2, 3]), Err(ParseError::Short));
        let full = answer(7, "svc.test", 1, &[[10, 0, 0, 1]], 60);
        for cut in 0..full.len() {
            let _ = parse(&full[..cut]);
        }
        // every byte value in every position: no panic
        for i in 0..full.len() {
            for v in [0u8, 0x3f, 0x40, 0xc0, 0xff] {
                let mut m = full.clone();
                m[i] = v;
                let _ = parse(&m);
            }
        }
    }

    #[test]
    fn labels_cannot_forge_names_or_inject_control_bytes() {
        let mut m = vec![0, 1, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&[7, b'e', b'v', b'i', b'l', b'.', b'c', b'\n', 0, 0, 1, 0, 1]);
        let p = parse(&m).unwrap();
        assert_eq!(p.questions[0].name, "evil\\046c\\010");
    }

    #[test]
    fn cache_maps_addresses_to_the_question_and_expires() {
        let mut c = Cache::new(2);
        let p = parse(&answer(7, "svc.test", 1, &[[10, 0, 0, 1]], 30)).unwrap();
        c.learn(&p, 1000);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(c.lookup(&ip, 1000).as_deref(), Some("svc.test"));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(c.lookup(&mapped, 1000).as_deref(), Some("svc.test"));
        // kept for at least MIN_KEEP_S even with a 30 s TTL
        assert!(c.lookup(&ip, 1000 + Cache::MIN_KEEP_S - 1).is_some());
        assert!(c.lookup(&ip, 1000 + Cache::MIN_KEEP_S).is_none());
        // bounded: the oldest address goes first
        c.learn(
            &parse(&answer(8, "b.test", 1, &[[10, 0, 0, 2], [10, 0, 0, 3]], 60)).unwrap(),
            1001,
        );
        assert_eq!(c.len(), 2);
        assert!(c.lookup(&ip, 1001).is_none());
        // NXDOMAIN teaches nothing
        let mut nx = answer(9, "c.test", 1, &[[10, 0, 0, 4]], 60);
        nx[3] = 0x83;
        c.learn(&parse(&nx).unwrap(), 1002);
        assert!(c.lookup(&"10.0.0.4".parse().unwrap(), 1002).is_none());
    }
}
