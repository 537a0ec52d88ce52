//! The agent's own messages: one line each on stderr, starting `vigil: `.
//! The leaf crates and the engine write them through the `log` facade
//! (`log::warn!`, `log::info!`, ...), and [`init`] installs the writer.
//!
//! Under systemd, stderr is a stream to the journal (`JOURNAL_STREAM` names
//! its device and inode, and they match fd 2): each line then starts with
//! the kernel-style level prefix journald reads (`<3>` error, `<4>`
//! warning, `<6>` info, `<7>` debug; systemd's `SyslogLevelPrefix=`
//! defaults to on), so `journalctl -u vigil -p warning` shows the warnings
//! and errors and nothing else. Anywhere else the lines carry no prefix.
//! Messages of other crates (aya, rustls) are not shown, as before.

use std::io::Write as _;

/// The writer behind the `log` macros.
struct StderrLog {
    journal: bool,
}

/// The journald level prefix of a level.
fn prefix(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "<3>",
        log::Level::Warn => "<4>",
        log::Level::Info => "<6>",
        log::Level::Debug | log::Level::Trace => "<7>",
    }
}

/// The log target whose messages are written verbatim (no `vigil: `
/// added): the rows of the exit summary's tables, which tools parse as
/// they are.
pub const VERBATIM: &str = "vigil::summary";

/// The text written for one message: every line of it (a summary has
/// several) starts with the prefix when `journal`, and the first with
/// `vigil: ` unless the message already does or is `verbatim`.
pub fn format_line(journal: bool, level: log::Level, msg: &str, verbatim: bool) -> String {
    let mut out = String::with_capacity(msg.len() + 16);
    for (i, l) in msg.lines().enumerate() {
        if journal {
            out.push_str(prefix(level));
        }
        if i == 0 && !verbatim && !l.starts_with("vigil: ") {
            out.push_str("vigil: ");
        }
        out.push_str(l);
        out.push('\n');
    }
    if out.is_empty() {
        if journal {
            out.push_str(prefix(level));
        }
        out.push_str("vigil: \n");
    }
    out
}

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level() && m.target().starts_with("vigil")
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let text = format_line(
            self.journal,
            r.level(),
            &r.args().to_string(),
            r.target() == VERBATIM,
        );
        // One write per message, so lines of two threads do not interleave.
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }

    fn flush(&self) {}
}

/// Whether fd 2 is the journal stream `JOURNAL_STREAM` (`DEV:INODE`) names.
pub fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // SAFETY: fstat on fd 2 into a zeroed stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return false;
    }
    st.st_dev == dev && st.st_ino == ino
}

/// Installs the writer (once; later calls do nothing) at level info.
pub fn init() {
    let journal = stderr_is_journal();
    let writer: &'static StderrLog = Box::leak(Box::new(StderrLog { journal }));
    if log::set_logger(writer).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_their_form_and_gain_the_level_prefix_only_for_the_journal() {
        use log::Level::*;
        assert_eq!(
            format_line(false, Warn, "output x: cannot connect", false),
            "vigil: output x: cannot connect\n"
        );
        assert_eq!(
            format_line(false, Info, "vigil: ready", false),
            "vigil: ready\n"
        );
        assert_eq!(format_line(true, Error, "boom", false), "<3>vigil: boom\n");
        assert_eq!(format_line(true, Warn, "w", false), "<4>vigil: w\n");
        assert_eq!(format_line(true, Info, "i", false), "<6>vigil: i\n");
        assert_eq!(format_line(true, Debug, "d", false), "<7>vigil: d\n");
        // Every line of a multi-line message carries the prefix.
        assert_eq!(
            format_line(true, Info, "vigil: a\nvigil: b\n", false),
            "<6>vigil: a\n<6>vigil: b\n"
        );
        assert_eq!(format_line(true, Info, "", false), "<6>vigil: \n");
        // Summary table rows stay as they are.
        assert_eq!(
            format_line(true, Info, "exec   3  3", true),
            "<6>exec   3  3\n"
        );
        assert_eq!(
            format_line(false, Info, "exec   3  3", true),
            "exec   3  3\n"
        );
    }
}
