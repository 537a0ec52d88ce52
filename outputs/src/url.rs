//! `--output` URLs.
//!
//! ```text
//! stdout[?format=json|rfc5424|rfc3164|cef]
//! file:///var/log/vigil.json?rotate_mb=100&keep=5
//! syslog+unix:///dev/log?format=rfc3164           (also plain `syslog`)
//! syslog+udp://127.0.0.1:514?format=rfc5424
//! syslog+tcp://host:6514?format=cef&framing=octet|newline
//! syslog+tls://host:6514?ca=/etc/ca.pem&cert=/etc/c.pem&key=/etc/k.pem&server_name=siem.example
//! syslog+relp://host:20514                        (acknowledged delivery)
//! ```
//!
//! Parameters for every sink: `format`, `min_severity`
//! (info|low|medium|high|critical), `kinds` (comma list of
//! alert,event,metric), `max_size` (bytes), `queue`, `memory` (records),
//! `facility` (syslog name or 0-23), `app_name`, `bom` (auto|never|always),
//! `cef_header` (none|rfc3164|rfc5424). Network sinks: `spool_mb` (0
//! disables the spool). Ports default to 514 (udp, tcp), 6514 (tls) and 20514 (relp).
//! Values are percent-decoded. An unknown parameter is an error.
//!
//! The syntax is parsed here, not with a URL crate (`url`, WHATWG): a bare
//! `stdout` or `syslog` is no URL there; its query decoding
//! (`application/x-www-form-urlencoded`) turns `+` into a space, which would
//! change a path such as `ca=/etc/a+b.pem`; and `file:` is a special scheme
//! whose path it normalizes (`..`, `%2F`), so the file written would not be
//! the one named. The syntax part (split at `?` and `://`, `%XX` decoding,
//! `host:port` with `[v6]`) is under a hundred lines and tested below;
//! the rest is the parameters' meaning, which no URL crate would provide.

use std::path::PathBuf;

use crate::encode::{Bom, CefHeader, EncoderConfig, FACILITIES, Format};
use crate::record::{Kind, Severity};
use crate::sink::{Filter, SinkConfig};
use crate::transport::{Framing, TlsSettings, TransportConfig};

/// A bad `--output` URL: names the URL and the part that is wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("output `{url}`: {part}: {reason}")]
pub struct UrlError {
    /// The whole URL.
    pub url: String,
    /// The offending part (`scheme`, `port`, `parameter format`, ...).
    pub part: String,
    /// What is wrong with it.
    pub reason: String,
}

fn pct_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in `{s}`"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{s}` is not UTF-8 once decoded"))
}

/// Parses one `--output` URL into a sink configuration.
pub fn parse(url: &str) -> Result<SinkConfig, UrlError> {
    let err = |part: &str, reason: String| UrlError {
        url: url.to_string(),
        part: part.to_string(),
        reason,
    };
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let (scheme, rest) = match base.split_once("://") {
        Some((s, r)) => (s, Some(r)),
        None => (base.trim_end_matches(':'), None),
    };
    let mut params: Vec<(String, String)> = Vec::new();
    if let Some(q) = query {
        for kv in q.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| err(&format!("parameter `{kv}`"), "expected name=value".into()))?;
            let v = pct_decode(v).map_err(|e| err(&format!("parameter {k}"), e))?;
            if params.iter().any(|(p, _)| p == k) {
                return Err(err(&format!("parameter {k}"), "given twice".into()));
            }
            params.push((k.to_string(), v));
        }
    }
    let host_port = |rest: Option<&str>, default_port: u16| -> Result<(String, u16), UrlError> {
        let r = rest
            .filter(|r| !r.is_empty())
            .ok_or_else(|| err("host", "missing (scheme://host:port)".into()))?;
        let r = r.trim_end_matches('/');
        if r.contains('/') {
            return Err(err("host", format!("`{r}` has a path; expected host:port")));
        }
        let (host, port) = if let Some(v6) = r.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| err("host", format!("`{r}`: unclosed `[`")))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(err("host", format!("`{r}`: junk after `]`"))),
            };
            (h.to_string(), port)
        } else {
            match r.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (r.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(err("host", "empty".into()));
        }
        let port = match port {
            None => default_port,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| err("port", format!("`{p}` is not a port number 1-65535")))?,
        };
        Ok((host, port))
    };
    let path_of = |rest: Option<&str>, what: &str| -> Result<PathBuf, UrlError> {
        let p = rest.unwrap_or("");
        if !p.starts_with('/') {
            return Err(err(
                "path",
                format!("`{p}`: {what} needs an absolute path (three slashes: {scheme}:///path)"),
            ));
        }
        Ok(PathBuf::from(pct_decode(p).map_err(|e| err("path", e))?))
    };
    let mut take = |name: &str| -> Option<String> {
        let i = params.iter().position(|(k, _)| k == name)?;
        Some(params.remove(i).1)
    };
    let transport = match scheme {
        "stdout" => {
            if rest.is_some_and(|r| !r.is_empty()) {
                return Err(err("path", "stdout takes no path".into()));
            }
            TransportConfig::Stdout
        }
        "file" => {
            let path = path_of(rest, "file")?;
            let rotate_mb = match take("rotate_mb") {
                Some(v) => v.parse::<u64>().map_err(|_| {
                    err(
                        "parameter rotate_mb",
                        format!("`{v}` is not a whole number of MiB"),
                    )
                })?,
                None => 0,
            };
            let keep = match take("keep") {
                Some(v) => v
                    .parse::<u32>()
                    .map_err(|_| err("parameter keep", format!("`{v}` is not a count")))?,
                None => 5,
            };
            TransportConfig::File {
                path,
                rotate_bytes: rotate_mb << 20,
                keep,
            }
        }
        "syslog" | "syslog+unix" => TransportConfig::Unix {
            path: match rest {
                None | Some("") if scheme == "syslog" => PathBuf::from("/dev/log"),
                _ => path_of(rest, "syslog+unix")?,
            },
        },
        "syslog+udp" => {
            let (host, port) = host_port(rest, 514)?;
            TransportConfig::Udp { host, port }
        }
        "syslog+relp" => {
            let (host, port) = host_port(rest, 20514)?;
            TransportConfig::Relp { host, port }
        }
        "syslog+tcp" | "syslog+tls" => {
            let default_port = if scheme == "syslog+tls" { 6514 } else { 514 };
            let (host, port) = host_port(rest, default_port)?;
            let framing = match take("framing").as_deref() {
                None | Some("octet") | Some("octet-counting") => Framing::OctetCounting,
                Some("newline") | Some("lf") => Framing::Newline,
                Some(v) => {
                    return Err(err(
                        "parameter framing",
                        format!("`{v}` (expected octet or newline)"),
                    ));
                }
            };
            if scheme == "syslog+tcp" {
                TransportConfig::Tcp {
                    host,
                    port,
                    framing,
                }
            } else {
                let ca = take("ca").ok_or_else(|| {
                    err(
                        "parameter ca",
                        "missing: TLS needs the CA file that signed the server certificate (?ca=/path/ca.pem)"
                            .into(),
                    )
                })?;
                let cert = take("cert").map(PathBuf::from);
                let key = take("key").map(PathBuf::from);
                if cert.is_some() != key.is_some() {
                    return Err(err(
                        "parameter cert/key",
                        "give both a client certificate and its key, or neither".into(),
                    ));
                }
                TransportConfig::Tls {
                    host,
                    port,
                    framing,
                    tls: TlsSettings {
                        ca: PathBuf::from(ca),
                        cert,
                        key,
                        server_name: take("server_name"),
                    },
                }
            }
        }
        "" => return Err(err("scheme", "missing".into())),
        s => {
            return Err(err(
                "scheme",
                format!(
                    "`{s}` is not one of stdout, file, syslog, syslog+unix, syslog+udp, syslog+tcp, syslog+tls, syslog+relp"
                ),
            ));
        }
    };
    let format = match take("format") {
        Some(v) => Format::parse(&v).ok_or_else(|| {
            err(
                "parameter format",
                format!("`{v}` (expected json, rfc5424, rfc3164 or cef)"),
            )
        })?,
        None if transport.is_network() => Format::Rfc5424,
        None => Format::Json,
    };
    let mut enc = EncoderConfig::new(format);
    enc.max_size = transport.default_max_size();
    if transport.is_network() {
        enc.cef_header = CefHeader::Rfc3164;
    }
    if let Some(v) = take("max_size") {
        enc.max_size = v
            .parse::<usize>()
            .ok()
            .filter(|&n| n >= 64)
            .ok_or_else(|| err("parameter max_size", format!("`{v}` (bytes, at least 64)")))?;
    }
    if let Some(v) = take("facility") {
        enc.facility = FACILITIES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&v))
            .map(|(_, f)| *f)
            .or_else(|| v.parse::<u8>().ok().filter(|&f| f < 24))
            .ok_or_else(|| {
                err(
                    "parameter facility",
                    format!("`{v}` (a syslog facility name such as authpriv or local0, or 0-23)"),
                )
            })?;
    }
    if let Some(v) = take("app_name") {
        if v.is_empty() || v.len() > 48 || !v.bytes().all(|b| (33..=126).contains(&b)) {
            return Err(err(
                "parameter app_name",
                format!("`{v}` (1-48 printable ASCII characters)"),
            ));
        }
        enc.app_name = v;
    }
    if let Some(v) = take("bom") {
        enc.bom = match v.as_str() {
            "auto" => Bom::Auto,
            "never" => Bom::Never,
            "always" => Bom::Always,
            _ => {
                return Err(err(
                    "parameter bom",
                    format!("`{v}` (expected auto, never or always)"),
                ));
            }
        };
    }
    if let Some(v) = take("cef_header") {
        enc.cef_header = match v.as_str() {
            "none" => CefHeader::None,
            "rfc3164" => CefHeader::Rfc3164,
            "rfc5424" => CefHeader::Rfc5424,
            _ => {
                return Err(err(
                    "parameter cef_header",
                    format!("`{v}` (expected none, rfc3164 or rfc5424)"),
                ));
            }
        };
    }
    let min_severity = match take("min_severity") {
        Some(v) => v
            .parse::<Severity>()
            .map_err(|e| err("parameter min_severity", e))?,
        None => Severity::Info,
    };
    let kinds: Vec<Kind> = match take("kinds") {
        Some(v) => v
            .split(',')
            .map(|k| k.trim().parse::<Kind>())
            .collect::<Result<_, _>>()
            .map_err(|e| err("parameter kinds", e))?,
        None => Kind::ALL.to_vec(),
    };
    if kinds.is_empty() {
        return Err(err("parameter kinds", "empty".into()));
    }
    let mut cfg = SinkConfig::new(url, transport, enc);
    cfg.filter = Filter::new(min_severity, &kinds);
    let count = |name: &str, v: String| -> Result<usize, UrlError> {
        v.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
            err(
                &format!("parameter {name}"),
                format!("`{v}` (a positive count)"),
            )
        })
    };
    if let Some(v) = take("queue") {
        cfg.queue = count("queue", v)?;
    }
    if let Some(v) = take("memory") {
        cfg.memory = count("memory", v)?;
    }
    if let Some(v) = take("spool_mb") {
        if !cfg.transport.is_network() {
            return Err(err(
                "parameter spool_mb",
                "only network and socket sinks have a spool".into(),
            ));
        }
        cfg.spool_bytes = v
            .parse::<u64>()
            .map_err(|_| err("parameter spool_mb", format!("`{v}` (MiB)")))?
            << 20;
    }
    if let Some((k, _)) = params.first() {
        return Err(err(
            &format!("parameter {k}"),
            format!("unknown for {scheme} outputs"),
        ));
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_urls() {
        let c = parse("stdout").unwrap();
        assert_eq!(c.transport, TransportConfig::Stdout);
        assert_eq!(c.encoder.format, Format::Json);

        let c = parse("file:///var/log/vigil.json?rotate_mb=100&keep=5").unwrap();
        assert_eq!(
            c.transport,
            TransportConfig::File {
                path: "/var/log/vigil.json".into(),
                rotate_bytes: 100 << 20,
                keep: 5
            }
        );

        let c = parse("syslog+udp://127.0.0.1:514?format=rfc5424&min_severity=high&kinds=alert")
            .unwrap();
        assert_eq!(
            c.transport,
            TransportConfig::Udp {
                host: "127.0.0.1".into(),
                port: 514
            }
        );
        assert_eq!(c.encoder.max_size, 2048);
        assert_eq!(c.filter, Filter::new(Severity::High, &[Kind::Alert]));

        let c =
            parse("syslog+tcp://[::1]:6514?format=cef&framing=newline&facility=local3").unwrap();
        assert_eq!(
            c.transport,
            TransportConfig::Tcp {
                host: "::1".into(),
                port: 6514,
                framing: Framing::Newline
            }
        );
        assert_eq!(c.encoder.format, Format::Cef);
        assert_eq!(c.encoder.facility, 19);

        let c = parse("syslog+tls://siem.example?ca=/etc/ca%20dir/ca.pem&cert=/c&key=/k").unwrap();
        let TransportConfig::Tls { port, tls, .. } = c.transport else {
            panic!()
        };
        assert_eq!(port, 6514);
        assert_eq!(tls.ca, PathBuf::from("/etc/ca dir/ca.pem"));

        let c = parse("syslog+relp://siem.example").unwrap();
        assert_eq!(
            c.transport,
            TransportConfig::Relp {
                host: "siem.example".into(),
                port: 20514
            }
        );

        let c = parse("syslog").unwrap();
        assert_eq!(
            c.transport,
            TransportConfig::Unix {
                path: "/dev/log".into()
            }
        );
        let c = parse("syslog+unix:///run/x.sock?format=rfc3164").unwrap();
        assert_eq!(c.encoder.format, Format::Rfc3164);
    }

    /// (url, the part the error must name, a piece of its reason)
    const BAD: &[(&str, &str, &str)] = &[
        ("", "scheme", "missing"),
        ("http://x", "scheme", "`http` is not one of"),
        ("syslog+udp://", "host", "missing"),
        ("syslog+udp://h:99999", "port", "`99999` is not a port"),
        ("syslog+udp://h:0", "port", "`0`"),
        ("syslog+tcp://h:1?framing=cr", "parameter framing", "`cr`"),
        ("syslog+tcp://h:1?format=xml", "parameter format", "`xml`"),
        ("syslog+tls://h", "parameter ca", "missing"),
        ("syslog+tls://h?ca=/a&cert=/c", "parameter cert/key", "both"),
        ("file://relative.json", "path", "absolute"),
        ("file:///a?rotate_mb=lots", "parameter rotate_mb", "`lots`"),
        (
            "stdout?min_severity=urgent",
            "parameter min_severity",
            "`urgent`",
        ),
        ("stdout?kinds=alert,weird", "parameter kinds", "`weird`"),
        ("stdout?colour=red", "parameter colour", "unknown"),
        ("stdout?format=json&format=cef", "parameter format", "twice"),
        (
            "syslog+udp://h?facility=local9",
            "parameter facility",
            "`local9`",
        ),
        ("stdout?spool_mb=5", "parameter spool_mb", "only network"),
        (
            "syslog+udp://h?max_size=10",
            "parameter max_size",
            "at least 64",
        ),
        ("syslog+udp://h/x", "host", "has a path"),
        ("stdout?x", "parameter `x`", "name=value"),
        (
            "stdout?app_name=%zz",
            "parameter app_name",
            "bad percent escape",
        ),
        (
            "stdout?app_name=a%4",
            "parameter app_name",
            "bad percent escape",
        ),
        ("stdout?app_name=%ff", "parameter app_name", "not UTF-8"),
        ("file:///a%zz", "path", "bad percent escape"),
        ("syslog+udp://[::1", "host", "unclosed `[`"),
        ("syslog+udp://[::1]x", "host", "junk after `]`"),
        ("syslog+udp://:514", "host", "empty"),
        ("syslog+udp://h:-1", "port", "`-1`"),
        ("stdout:///x", "path", "stdout takes no path"),
    ];

    #[test]
    fn the_syntax_keeps_what_a_form_decoder_or_path_normalizer_would_change() {
        // `+` is a plus, not a space; `%2B` is one too.
        let c = parse("syslog+tls://h?ca=/etc/a+b.pem&server_name=x%2By").unwrap();
        let TransportConfig::Tls { tls, .. } = c.transport else {
            panic!()
        };
        assert_eq!(tls.ca, PathBuf::from("/etc/a+b.pem"));
        assert_eq!(tls.server_name.as_deref(), Some("x+y"));
        // A file path is decoded, never normalized.
        let c = parse("file:///var/log/../log/a%20b.json").unwrap();
        let TransportConfig::File { path, .. } = c.transport else {
            panic!()
        };
        assert_eq!(path, PathBuf::from("/var/log/../log/a b.json"));
        // `=` inside a value, an empty `&&` pair, a trailing slash after
        // host:port, an upper-case escape.
        let c = parse("syslog+udp://h:1/?app_name=a%3Db&&kinds=alert").unwrap();
        assert_eq!(
            c.transport,
            TransportConfig::Udp {
                host: "h".into(),
                port: 1
            }
        );
        assert_eq!(c.encoder.app_name, "a=b");
        let c = parse("stdout?app_name=x=y").unwrap();
        assert_eq!(c.encoder.app_name, "x=y");
        // `stdout:` and `syslog:` are the bare names.
        assert_eq!(parse("stdout:").unwrap().transport, TransportConfig::Stdout);
        assert_eq!(
            parse("syslog://").unwrap().transport,
            TransportConfig::Unix {
                path: "/dev/log".into()
            }
        );
    }

    #[test]
    fn bad_urls_name_the_part() {
        for (url, part, reason) in BAD {
            let e = parse(url).expect_err(url);
            assert_eq!(e.url, *url);
            assert_eq!(e.part, *part, "{url}: {e}");
            assert!(e.reason.contains(reason), "{url}: {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("output `{url}`: {part}: "))
            );
        }
    }
}
