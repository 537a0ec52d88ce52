//! Record templates of the cached encoder: what every record of one
//! process (one thread, one image) writes the same way, kept as two byte
//! strings, so that such a record is the classification's bytes, the
//! first template, the fields that change, the second template and the
//! kind's own fields, written straight into the output buffer with no
//! JSON writer state:
//!
//! - `b`: from closing `event` to the end of the process's groups:
//!   `},"host":{...},"process":{"pid":...,"parent":{...}},"user":{...},"group":{...}}`
//!   (host, pid, thread, name, image, start, parent, users, groups,
//!   container), with the place of `process.exit_code` remembered;
//! - `c`: after `vigil.sensor`, from the user namespace fields to the end
//!   of the lineage (`,"process":{"ns_pid":...},"ns":{...},"cgroup":{...},"ancestors":[...]`).
//!
//! A process's templates are built from the record that needs them: the
//! image written directly, the parent-and-users group and the lineage
//! group (which the children of one parent share) copied from their own
//! small caches, filled by the JSON writer. Each cache entry is used only
//! for a record whose inputs are the same values and the same shared
//! objects (`Arc`s, held by the entry, so not freed and reused while held)
//! as the record it was made for ([`ProcId::matches`]). The kinds written
//! here ([`direct_kind`]) are the ones processes emit in bulk; every other
//! record goes through the writer. The bytes are the writer's
//! (`cached_encoding_is_byte_identical`, `direct_records_are_byte_identical`).

use super::*;
use vigil_outputs::json::{write_i64, write_str, write_u64};

/// Process template slots (direct-mapped by pid and thread id).
const PROC_SLOTS: usize = 64;

/// Classification slots (direct-mapped by the action name).
const HEAD_SLOTS: usize = 32;

/// Parent-and-users and lineage group slots (direct-mapped by parent pid
/// and credentials, and by cgroup and parent pid).
const GROUP_SLOTS: usize = 32;

/// The templates of the processes, classifications and shared groups
/// seen last.
pub(super) struct Templates {
    heads: Vec<Option<HeadTmpl>>,
    procs: Vec<Option<ProcTmpl>>,
    parent_users: Vec<ParentUserSlot>,
    lineages: Vec<LineageSlot>,
    flags: FlagsText,
    /// Records written here with their process's templates as they were.
    pub(super) hits: u64,
}

impl Default for Templates {
    fn default() -> Self {
        Templates {
            heads: (0..HEAD_SLOTS).map(|_| None).collect(),
            procs: (0..PROC_SLOTS).map(|_| None).collect(),
            parent_users: (0..GROUP_SLOTS).map(|_| None).collect(),
            lineages: (0..GROUP_SLOTS).map(|_| None).collect(),
            flags: FlagsText::default(),
            hits: 0,
        }
    }
}

/// A cached parent-and-users group: its identity, bytes and the depth
/// they end at.
type ParentUserSlot = Option<(ParentUserId, Vec<u8>, usize)>;

/// A cached lineage group: its identity, bytes and the depth they end at.
type LineageSlot = Option<(LineageId, Vec<u8>, usize)>;

/// `,"event":{"kind":...,"module":"vigil","sequence":` for one
/// `event.kind` and classification.
struct HeadTmpl {
    event_kind: String,
    class: (&'static str, &'static str, &'static str),
    bytes: Vec<u8>,
}

/// One process's two templates and what they were built from.
struct ProcTmpl {
    id: ProcId,
    /// `},"host":...` to the end of the top-level `group` or `container`
    /// object, closed (the top level is open).
    b: Vec<u8>,
    /// Where `process.exit_code` goes in `b`.
    split: usize,
    /// The user namespace fields to the end of the lineage.
    c: Vec<u8>,
    /// Objects open at the end of `c`: 1 (`vigil`) or more (`vigil.cgroup`).
    c_depth: usize,
}

/// What the templates are written from: the values, and the shared
/// objects they read (held, so an allocation is not freed and reused while
/// it is compared by address). The container comes with the process
/// record, the parent's image with the ancestor chain.
struct ProcId {
    host: String,
    pid: u32,
    tid: u32,
    comm: [u8; 16],
    ns_pid: u32,
    auid: u32,
    /// ppid, uid, euid, gid.
    ids: [u32; 4],
    /// pid, mnt and net namespaces, cgroup id.
    ns: [u64; 4],
    start: Option<i64>,
    process: Option<Arc<ProcInfo>>,
    ancestors: Arc<[crate::event::Ancestor]>,
    names: [Option<Arc<str>>; 3],
    meta: Option<Arc<ContainerMeta>>,
    cgroup_path: Option<Arc<str>>,
    ns_user: Option<crate::event::NsUser>,
}

impl ProcId {
    fn of(ev: &Event, hostname: &str) -> ProcId {
        let h = &ev.k.hdr;
        ProcId {
            host: hostname.to_owned(),
            pid: h.pid,
            tid: h.tid,
            comm: h.comm,
            ns_pid: h.ns_pid,
            auid: h.auid,
            ids: ParentUserId::ids(ev),
            ns: LineageId::ns(ev),
            start: process_start(ev),
            process: ev.process.clone(),
            ancestors: ev.ancestors.clone(),
            names: [ev.user.clone(), ev.euser.clone(), ev.group.clone()],
            meta: ev.container_meta.clone(),
            cgroup_path: ev.cgroup_path.clone(),
            ns_user: ev.ns_user.clone(),
        }
    }

    /// Makes this the identity of `ev`, reusing the host name's buffer.
    fn set(&mut self, ev: &Event, hostname: &str) {
        let mut host = std::mem::take(&mut self.host);
        host.clear();
        host.push_str(hostname);
        *self = ProcId {
            host,
            ..ProcId::of(ev, "")
        };
    }

    /// Whether `ev` would write the templates' bytes: the same values and
    /// the same shared objects as the record they were built from (for
    /// the ancestors: the same chain, or one whose members are the same
    /// objects).
    fn matches(&self, ev: &Event, hostname: &str) -> bool {
        let h = &ev.k.hdr;
        let chain = Arc::ptr_eq(&self.ancestors, &ev.ancestors)
            || (self.ancestors.len() == ev.ancestors.len()
                && self
                    .ancestors
                    .iter()
                    .zip(ev.ancestors.iter())
                    .enumerate()
                    .all(|(i, (x, a))| {
                        x.pid == a.pid
                            && same_arc(&x.exe, &a.exe)
                            && (i > 0
                                || (same_arc(&x.args, &a.args)
                                    && same_arc(&x.cmdline, &a.cmdline)
                                    && same_opt(&x.hash, &a.hash)))
                    }));
        self.pid == h.pid
            && self.tid == h.tid
            && self.comm == h.comm
            && self.ns_pid == h.ns_pid
            && self.auid == h.auid
            && self.ids == ParentUserId::ids(ev)
            && self.ns == LineageId::ns(ev)
            && same_image(&self.process, &ev.process)
            && self.start == process_start(ev)
            && chain
            && same_opt(&self.names[0], &ev.user)
            && same_opt(&self.names[1], &ev.euser)
            && same_opt(&self.names[2], &ev.group)
            && same_opt(&self.meta, &ev.container_meta)
            && same_opt(&self.cgroup_path, &ev.cgroup_path)
            && self.ns_user == ev.ns_user
            && *self.host == *hostname
    }
}

/// Whether two process table entries write the same bytes: the same
/// entry, or one that differs from it only in `exited_ns` (the enricher
/// marks a process exited with a changed copy of its entry when the old one
/// is shared, which it is while a template holds it; no field of a record
/// is written from `exited_ns`). The other shared members are compared by
/// address: the template holds `a`, so they are not freed and reused.
fn same_image(a: &Option<Arc<ProcInfo>>, b: &Option<Arc<ProcInfo>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            if Arc::ptr_eq(a, b) {
                return true;
            }
            // every field named, so that a new one is decided on here
            let ProcInfo {
                pid,
                ppid,
                start_ns,
                exe,
                args,
                cmdline,
                args_truncated,
                cwd,
                container,
                updated_ns,
                exited_ns: _,
                uid_map,
                hash,
            } = &**a;
            *pid == b.pid
                && *ppid == b.ppid
                && *start_ns == b.start_ns
                && same_arc(exe, &b.exe)
                && same_arc(args, &b.args)
                && same_arc(cmdline, &b.cmdline)
                && *args_truncated == b.args_truncated
                && same_arc(cwd, &b.cwd)
                && same_opt(container, &b.container)
                && *updated_ns == b.updated_ns
                && same_opt(uid_map, &b.uid_map)
                && same_opt(hash, &b.hash)
        }
        (None, None) => true,
        _ => false,
    }
}

fn mix(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn proc_slot(ev: &Event) -> usize {
    let h = &ev.k.hdr;
    (mix(u64::from(h.pid) << 32 | u64::from(h.tid)) >> 58) as usize % PROC_SLOTS
}

fn head_slot(class: (&str, &str, &str)) -> usize {
    (mix(class.2.as_ptr() as usize as u64 ^ class.0.len() as u64) >> 59) as usize % HEAD_SLOTS
}

fn parent_user_slot(ev: &Event) -> usize {
    let h = &ev.k.hdr;
    (mix(u64::from(h.ppid) << 32 | u64::from(h.uid ^ h.euid.rotate_left(8) ^ h.gid.rotate_left(16)))
        >> 59) as usize
        % GROUP_SLOTS
}

fn lineage_slot(ev: &Event) -> usize {
    let h = &ev.k.hdr;
    (mix(h.cgroup_id ^ u64::from(h.ppid) << 32 ^ u64::from(h.mntns)) >> 59) as usize % GROUP_SLOTS
}

/// Whether a record's kind and flags are written here: exec (without
/// environment variables), fork, exit, open, socket calls, TCP state
/// changes and capability checks, without hash state or escape fields.
fn direct_kind(ev: &Event) -> bool {
    if ev.hash_pending || ev.hash_skipped.is_some() || ev.hash_known_bad || ev.escape.is_some() {
        return false;
    }
    match &ev.k.body {
        Body::Exec { env, .. } => env.is_empty(),
        Body::Fork(_)
        | Body::Exit(_)
        | Body::Open { .. }
        | Body::Sock { .. }
        | Body::TcpState(_)
        | Body::Capable(_) => true,
        _ => false,
    }
}

/// The classification's bytes for `event_kind` and `class`, built by the
/// writer the first time.
fn head<'a>(
    heads: &'a mut [Option<HeadTmpl>],
    event_kind: &str,
    class: (&'static str, &'static str, &'static str),
) -> &'a [u8] {
    let slot = &mut heads[head_slot(class)];
    let hit = slot
        .as_ref()
        .is_some_and(|t| t.class == class && t.event_kind == event_kind);
    if !hit {
        let mut w = Writer::new();
        w.raw(key!("@timestamp"), b"0");
        let from = w.position();
        write_class(&mut w, event_kind, class);
        w.u64(key!("event.sequence"), 0);
        let to = w.position() - 1;
        let bytes = w.finish()[from..to].to_vec();
        *slot = Some(HeadTmpl {
            event_kind: event_kind.to_owned(),
            class,
            bytes,
        });
    }
    match slot {
        Some(t) => &t.bytes,
        None => &[],
    }
}

/// What `write` writes after `prelude` put a fresh writer in the state
/// it starts from, and the writer's depth after it.
fn cut(
    scratch: &mut WriterScratch,
    buf: &mut Vec<u8>,
    prelude: impl FnOnce(&mut Writer),
    write: impl FnOnce(&mut Writer),
) -> (usize, usize) {
    buf.clear();
    let mut w = Writer::appending(std::mem::take(buf), scratch);
    prelude(&mut w);
    let from = w.position();
    write(&mut w);
    let (to, depth) = (w.position(), w.depth());
    *buf = w.finish_into(scratch);
    buf.truncate(to);
    buf.drain(..from);
    (buf.len(), depth)
}

/// process.executable, command_line, args, working_directory, hash
/// ([`write_image`] for a record without environment variables), inside
/// `process`; a `hash` object is closed.
fn image(out: &mut Vec<u8>, ev: &Event) {
    let Some(p) = &ev.process else {
        return;
    };
    if !p.exe.is_empty() {
        str_field(out, b",\"executable\":", &p.exe);
    }
    if !p.args.is_empty() {
        str_field(out, b",\"command_line\":", &p.cmdline);
        out.extend_from_slice(b",\"args\":[");
        for (i, a) in p.args.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, a);
        }
        out.push(b']');
        u64_field(out, b",\"args_count\":", p.args.len() as u64);
    }
    if !p.cwd.is_empty() {
        str_field(out, b",\"working_directory\":", &p.cwd);
    }
    if let Some(x) = &p.hash {
        str_field(out, b",\"hash\":{\"sha256\":", x.as_bytes());
        out.push(b'}');
    }
}

/// Builds the templates of `ev`'s process into `t`.
fn build(
    t: &mut ProcTmpl,
    ev: &Event,
    hostname: &str,
    start_ts: &mut TsText,
    groups: (&mut [ParentUserSlot], &mut [LineageSlot]),
    scratch: &mut WriterScratch,
) {
    let h = &ev.k.hdr;
    let (parent_users, lineages) = groups;
    let b = &mut t.b;
    b.clear();
    str_field(b, b"},\"host\":{\"hostname\":", hostname.as_bytes());
    u64_field(b, b"},\"process\":{\"pid\":", h.pid.into());
    u64_field(b, b",\"thread\":{\"id\":", h.tid.into());
    str_field(b, b"},\"name\":", ev.k.comm());
    image(b, ev);
    if let Some(start) = process_start(ev) {
        b.extend_from_slice(b",\"start\":");
        b.extend_from_slice(start_ts.get(start));
    }
    t.split = b.len();
    // parent, users, groups, container: inside `process`, ends inside a
    // top-level object
    let slot = &mut parent_users[parent_user_slot(ev)];
    if !slot.as_ref().is_some_and(|(id, _, _)| id.matches(ev)) {
        let mut bytes = slot.take().map(|s| s.1).unwrap_or_default();
        let (_, depth) = cut(
            scratch,
            &mut bytes,
            |w| {
                w.u64(key!("process.pid"), 0);
            },
            |w| write_parent_user(w, ev),
        );
        *slot = Some((ParentUserId::of(ev), bytes, depth));
    }
    if let Some((_, bytes, depth)) = slot {
        b.extend_from_slice(bytes);
        // close `group` or `container` (and `container.image`)
        for _ in 0..*depth {
            b.push(b'}');
        }
    }
    let c = &mut t.c;
    c.clear();
    if let Some(u) = &ev.ns_user
        && (u.id.is_some() || u.name.is_some())
    {
        c.extend_from_slice(b",\"user\":{\"ns\":{");
        if let Some(id) = u.id {
            u64_field(c, b"\"id\":", id.into());
        }
        if let Some(n) = &u.name {
            let name: &[u8] = if u.id.is_some() {
                b",\"name\":"
            } else {
                b"\"name\":"
            };
            str_field(c, name, n.as_bytes());
        }
        c.extend_from_slice(b"}}");
    }
    u64_field(c, b",\"process\":{\"ns_pid\":", h.ns_pid.into());
    u64_field(c, b",\"auid\":", h.auid.into());
    c.push(b'}');
    let slot = &mut lineages[lineage_slot(ev)];
    if !slot.as_ref().is_some_and(|(id, _, _)| id.matches(ev)) {
        let mut bytes = slot.take().map(|s| s.1).unwrap_or_default();
        let (_, depth) = cut(
            scratch,
            &mut bytes,
            |w| {
                w.str(key!("vigil.sensor"), "");
            },
            |w| write_lineage(w, ev),
        );
        *slot = Some((LineageId::of(ev), bytes, depth));
    }
    if let Some((_, bytes, depth)) = slot {
        c.extend_from_slice(bytes);
        t.c_depth = *depth;
    }
    t.id.set(ev, hostname);
}

/// Writes `ev` from its process's templates (built first when it has
/// none, or none for what it is now), when its kind is written here;
/// returns whether it did (else nothing is written).
pub(super) fn encode(
    ev: &Event,
    hostname: &str,
    event_kind: &str,
    cache: &mut EncodeCache,
    out: &mut Vec<u8>,
) -> bool {
    if !direct_kind(ev) {
        return false;
    }
    let tmpl = &mut cache.tmpl;
    let slot = &mut tmpl.procs[proc_slot(ev)];
    match slot {
        Some(t) if t.id.matches(ev, hostname) => tmpl.hits += 1,
        _ => {
            let t = slot.get_or_insert_with(|| ProcTmpl {
                id: ProcId::of(ev, hostname),
                b: Vec::new(),
                split: 0,
                c: Vec::new(),
                c_depth: 1,
            });
            build(
                t,
                ev,
                hostname,
                &mut cache.ts[1],
                (&mut tmpl.parent_users, &mut tmpl.lineages),
                &mut cache.writer,
            );
        }
    }
    let Some(t) = slot.as_ref() else {
        return false;
    };
    let h = &ev.k.hdr;
    let ret = syscall_ret(ev);
    let head = head(&mut tmpl.heads, event_kind, classify_event(ev));
    out.reserve(head.len() + t.b.len() + t.c.len() + 512);
    out.extend_from_slice(b"{\"@timestamp\":");
    out.extend_from_slice(cache.ts[0].get(ev.unix_ns));
    out.extend_from_slice(head);
    write_u64(out, ev.seq);
    if let Some(r) = ret {
        out.extend_from_slice(b",\"outcome\":\"");
        out.extend_from_slice(outcome(h.kind, r).as_bytes());
        out.push(b'"');
    }
    match &ev.k.body {
        Body::Exit(x) => {
            out.extend_from_slice(&t.b[..t.split]);
            out.extend_from_slice(b",\"exit_code\":");
            write_i64(out, i64::from((x.status >> 8) & 0xff));
            out.extend_from_slice(&t.b[t.split..]);
        }
        _ => out.extend_from_slice(&t.b),
    }
    // file.*, source.*, destination.*, server.*, network.*, error.*
    file(out, ev);
    match &ev.k.body {
        Body::Sock { info, .. } => socket(out, ev, info),
        Body::TcpState(s) => {
            if let Some(a) = ip(s.family, &s.saddr) {
                endpoint(out, b",\"source\":{", a, s.sport);
            }
            if let Some(a) = ip(s.family, &s.daddr) {
                endpoint(out, b",\"destination\":{", a, s.dport);
            }
            out.extend_from_slice(b",\"network\":{\"transport\":\"tcp\"}");
        }
        _ => {}
    }
    if let Some(r) = ret
        && r < 0
    {
        out.extend_from_slice(b",\"error\":{\"code\":");
        write_str(out, errno_str(r).as_bytes());
        out.push(b'}');
    }
    // vigil.*
    out.extend_from_slice(b",\"vigil\":{\"sensor\":");
    if h.flags & abi::flags::COMPAT != 0 {
        out.extend_from_slice(b"\"compat\",\"compat\":true");
    } else {
        out.extend_from_slice(sensor_text(h.kind));
    }
    out.extend_from_slice(&t.c);
    // back inside `vigil` (the lineage may end inside `vigil.cgroup`)
    for _ in 1..t.c_depth {
        out.push(b'}');
    }
    let mut trunc = Truncated::default();
    body(out, ev, &mut trunc, &mut tmpl.flags);
    if trunc.n > 0 {
        out.extend_from_slice(b",\"truncated\":[");
        for (i, f) in trunc.fields[..trunc.n].iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, f.as_bytes());
        }
        out.push(b']');
    }
    if ev.k.after_loss() {
        out.extend_from_slice(b",\"after_loss\":true");
    }
    out.extend_from_slice(b"}}");
    true
}

/// The quoted `vigil.sensor` of a kind.
fn sensor_text(k: u16) -> &'static [u8] {
    static TEXT: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    let t = TEXT.get_or_init(|| {
        let max = vigil_bpf::sensors::all_kinds().max().unwrap_or(0);
        (0..=max)
            .map(|k| {
                let mut v = Vec::new();
                write_str(&mut v, sensor_name(k).as_bytes());
                v
            })
            .collect()
    });
    match t.get(usize::from(k)) {
        Some(v) => v,
        None => b"\"?\"",
    }
}

/// The `vigil.open.flags` arrays written last, by flags value.
#[derive(Default)]
struct FlagsText {
    slots: [(u32, Vec<u8>); 8],
}

impl FlagsText {
    /// Appends the JSON array of `flags`' names.
    fn write(&mut self, out: &mut Vec<u8>, flags: u32) {
        let (f, text) = &mut self.slots[(flags ^ flags >> 7 ^ flags >> 17) as usize % 8];
        if *f != flags || text.is_empty() {
            text.clear();
            text.push(b'[');
            for (i, n) in open_flags(flags).enumerate() {
                if i > 0 {
                    text.push(b',');
                }
                write_str(text, n.as_bytes());
            }
            text.push(b']');
            *f = flags;
        }
        out.extend_from_slice(text);
    }
}

/// The ECS fields a record's truncated strings fed (`vigil.truncated`).
#[derive(Default)]
struct Truncated {
    fields: [&'static str; 4],
    n: usize,
}

impl Truncated {
    fn push(&mut self, f: &'static str) {
        if self.n < self.fields.len() {
            self.fields[self.n] = f;
            self.n += 1;
        }
    }
}

/// `,"name":` then a JSON string.
#[inline]
fn str_field(out: &mut Vec<u8>, name: &[u8], v: &[u8]) {
    out.extend_from_slice(name);
    write_str(out, v);
}

/// `,"name":` then a number.
#[inline]
fn u64_field(out: &mut Vec<u8>, name: &[u8], v: u64) {
    out.extend_from_slice(name);
    write_u64(out, v);
}

/// `,"name":` then a signed number.
#[inline]
fn i64_field(out: &mut Vec<u8>, name: &[u8], v: i64) {
    out.extend_from_slice(name);
    write_i64(out, v);
}

/// `,"name":` then `true` or `false`.
#[inline]
fn bool_field(out: &mut Vec<u8>, name: &[u8], v: bool) {
    out.extend_from_slice(name);
    out.extend_from_slice(if v { b"true" } else { b"false" });
}

/// `file.path`, `file.name`, `file.inode` ([`write_file`]).
fn file(out: &mut Vec<u8>, ev: &Event) {
    let ino = match &ev.k.body {
        Body::Open { info, .. } if info.ino != 0 => Some(info.ino),
        _ => None,
    };
    match (&ev.file_path, ino) {
        (Some(f), _) => {
            str_field(out, b",\"file\":{\"path\":", f);
            str_field(out, b",\"name\":", basename(f));
            if let Some(i) = ino {
                u64_field(out, b",\"inode\":", i);
            }
            out.push(b'}');
        }
        (None, Some(i)) => {
            u64_field(out, b",\"file\":{\"inode\":", i);
            out.push(b'}');
        }
        (None, None) => {}
    }
}

/// An `ip` and `port` object opened by `open` ([`write_endpoint`]).
fn endpoint(out: &mut Vec<u8>, open: &[u8], a: IpAddr, port: u16) {
    out.extend_from_slice(open);
    out.extend_from_slice(b"\"ip\":");
    write_str(out, IpText::new(&a).as_bytes());
    u64_field(out, b",\"port\":", port.into());
    out.push(b'}');
}

/// A socket call's ends and `network.*` ([`write_socket`], for the kinds
/// of `Body::Sock`).
fn socket(out: &mut Vec<u8>, ev: &Event, info: &abi::Sock) {
    let k = ev.k.hdr.kind;
    let local = ip(info.family, &info.laddr);
    let remote = ip(info.family, &info.raddr);
    if k == kind::LISTEN {
        if let Some(a) = local {
            endpoint(out, b",\"server\":{", a, info.lport);
        }
    } else {
        let (src, dst) = match k {
            kind::ACCEPT => ((remote, info.rport), (local, info.lport)),
            _ => ((local, info.lport), (remote, info.rport)),
        };
        let bound = |a: &IpAddr, port: u16| port != 0 || !a.is_unspecified();
        if let Some(a) = src.0.filter(|a| bound(a, src.1)) {
            endpoint(out, b",\"source\":{", a, src.1);
        }
        let dst_ip = dst.0.filter(|a| bound(a, dst.1));
        if dst_ip.is_some() || ev.domain.is_some() {
            out.extend_from_slice(b",\"destination\":{");
            if let Some(a) = dst_ip {
                out.extend_from_slice(b"\"ip\":");
                write_str(out, IpText::new(&a).as_bytes());
                u64_field(out, b",\"port\":", dst.1.into());
                if let Some(d) = &ev.domain {
                    str_field(out, b",\"domain\":", d.as_bytes());
                }
            } else if let Some(d) = &ev.domain {
                str_field(out, b"\"domain\":", d.as_bytes());
            }
            out.push(b'}');
        }
    }
    out.extend_from_slice(b",\"network\":{");
    let transport = match i32::from(info.protocol) {
        libc::IPPROTO_TCP => Some("tcp"),
        libc::IPPROTO_UDP => Some("udp"),
        _ => None,
    };
    let family = match i32::from(info.family) {
        libc::AF_INET => Some("ipv4"),
        libc::AF_INET6 => Some("ipv6"),
        libc::AF_UNIX => Some("unix"),
        _ => None,
    };
    if let Some(t) = transport {
        str_field(out, b"\"transport\":", t.as_bytes());
        out.push(b',');
    }
    if let Some(f) = family {
        str_field(out, b"\"type\":", f.as_bytes());
        out.push(b',');
    }
    let direction = match k {
        kind::CONNECT | kind::UDP_SEND => "egress",
        kind::ACCEPT => "ingress",
        _ => "unknown",
    };
    str_field(out, b"\"direction\":", direction.as_bytes());
    out.push(b'}');
}

/// The kind's own `vigil.*` fields, written inside `vigil` after its
/// lineage ([`write_body`] for the kinds of [`direct_kind`]).
fn body(out: &mut Vec<u8>, ev: &Event, trunc: &mut Truncated, flags: &mut FlagsText) {
    let h = &ev.k.hdr;
    match &ev.k.body {
        Body::Exec { info, filename, .. } => {
            let flag = |f: u32| info.exec_flags & f != 0;
            if flag(abi::exec_flags::ENV_TRUNC) {
                trunc.push("process.env_vars");
                out.extend_from_slice(b",\"env\":{\"truncated\":true}");
            }
            str_field(out, b",\"exec\":{\"filename\":", filename);
            u64_field(out, b",\"inode\":", info.ino);
            u64_field(out, b",\"argc\":", info.argc.into());
            bool_field(out, b",\"memfd\":", flag(abi::exec_flags::MEMFD));
            bool_field(
                out,
                b",\"world_writable_dir\":",
                flag(abi::exec_flags::WWDIR),
            );
            bool_field(out, b",\"unlinked\":", flag(abi::exec_flags::UNLINKED));
            bool_field(out, b",\"setuid\":", flag(abi::exec_flags::SETUID));
            bool_field(out, b",\"setgid\":", flag(abi::exec_flags::SETGID));
            if flag(abi::exec_flags::STDIN_PIPE) {
                out.extend_from_slice(b",\"stdin\":\"pipe\"");
            } else if flag(abi::exec_flags::STDIN_INET) {
                out.extend_from_slice(b",\"stdin\":\"network\"");
            }
            if flag(abi::exec_flags::STDOUT_INET) {
                out.extend_from_slice(b",\"stdout\":\"network\"");
            }
            if let Some(r) = ev.replaced.as_deref().filter(|r| !r.exe.is_empty()) {
                str_field(out, b",\"replaced\":{\"executable\":", &r.exe);
                if !r.args.is_empty() {
                    str_field(out, b",\"command_line\":", &r.cmdline);
                }
                out.push(b'}');
            }
            out.push(b'}');
            if ev.k.truncated(0) {
                trunc.push("process.executable");
            }
            if ev.k.truncated(1) {
                trunc.push("process.args");
            }
        }
        Body::Fork(f) => {
            u64_field(out, b",\"child\":{\"pid\":", f.child_pid.into());
            u64_field(out, b",\"ns_pid\":", f.child_ns_pid.into());
            u64_field(out, b",\"ns\":{\"pid\":", f.child_pidns.into());
            u64_field(out, b",\"mnt\":", f.child_mntns.into());
            u64_field(out, b",\"net\":", f.child_netns.into());
            out.extend_from_slice(b"},\"new_namespaces\":[");
            let mut first = true;
            for n in ns_flags(f.ns_flags.into()) {
                if !first {
                    out.push(b',');
                }
                first = false;
                write_str(out, n.as_bytes());
            }
            out.extend_from_slice(b"]}");
        }
        Body::Exit(x) => {
            u64_field(out, b",\"exit\":{\"signal\":", (x.status & 0x7f).into());
            out.push(b'}');
        }
        Body::Open { info, name, .. } => {
            out.extend_from_slice(b",\"open\":{\"flags\":");
            flags.write(out, info.flags);
            u64_field(out, b",\"mode\":", info.mode.into());
            i64_field(out, b",\"ret\":", info.ret);
            if info.ret >= 0 {
                bool_field(out, b",\"created\":", info.flags & abi::OPEN_CREATED != 0);
            }
            if !name.is_empty() {
                str_field(out, b",\"name\":", name);
            }
            if info.foreign_mntns != 0 {
                u64_field(out, b",\"foreign_mntns\":", info.foreign_mntns.into());
            }
            bool_field(
                out,
                b"},\"file\":{\"written\":",
                info.flags & OPEN_WRITE_FLAGS != 0,
            );
            if ev.overwrites > 0 {
                u64_field(out, b",\"overwrites\":", ev.overwrites.into());
            }
            out.push(b'}');
            if ev.k.truncated(0) || ev.k.truncated(1) {
                trunc.push("file.path");
            }
        }
        Body::Sock { info, unix_path } => {
            if !unix_path.is_empty() {
                str_field(out, b",\"unix\":{\"path\":", unix_path);
                out.push(b'}');
            }
            i64_field(out, b",\"socket\":{\"ret\":", info.ret);
            i64_field(out, b",\"fd\":", info.fd.into());
            if h.kind == kind::LISTEN {
                u64_field(out, b",\"backlog\":", info.backlog.into());
            }
            out.push(b'}');
        }
        Body::TcpState(t) => {
            str_field(
                out,
                b",\"tcp\":{\"old_state\":",
                tcp_state(t.oldstate).as_bytes(),
            );
            str_field(out, b",\"new_state\":", tcp_state(t.newstate).as_bytes());
            out.push(b'}');
        }
        Body::Capable(c) => {
            str_field(
                out,
                b",\"capability\":{\"name\":",
                cap_name(c.cap).as_bytes(),
            );
            i64_field(out, b",\"id\":", c.cap.into());
            u64_field(out, b",\"userns\":", c.target_userns.into());
            i64_field(out, b",\"syscall_nr\":", c.syscall_nr.into());
            out.push(b'}');
        }
        _ => {}
    }
}
