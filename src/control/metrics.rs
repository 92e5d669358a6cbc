//! The Prometheus text exposition format, version 0.0.4: families of
//! samples, each with `# HELP` and `# TYPE`, label values escaped (`\\`,
//! `\"`, `\n`), counters named `…_total`. Pure: it writes into a `String`.

use std::fmt::Write;

/// The media type of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// Only goes up (name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// Writes families one after another.
#[derive(Default)]
pub struct Writer {
    out: String,
    families: Vec<String>,
}

/// One family being written.
pub struct Family<'a> {
    writer: &'a mut Writer,
    name: &'static str,
}

impl Writer {
    /// An empty exposition.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// Starts family `name` (each name once; a second start of the same name
    /// panics, as it would be an invalid exposition).
    pub fn family(&mut self, name: &'static str, kind: Type, help: &str) -> Family<'_> {
        assert!(
            !self.families.iter().any(|f| f == name),
            "metric family {name} written twice"
        );
        debug_assert_eq!(kind == Type::Counter, name.ends_with("_total"), "{name}");
        self.families.push(name.to_owned());
        let kind = match kind {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
        };
        let _ = writeln!(
            self.out,
            "# HELP {name} {}",
            help.replace('\\', "\\\\").replace('\n', "\\n")
        );
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        Family { writer: self, name }
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

impl Family<'_> {
    /// One sample with `labels` (name, value).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        let out = &mut self.writer.out;
        out.push_str(self.name);
        if !labels.is_empty() {
            out.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(name);
                out.push_str("=\"");
                for c in value.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '"' => out.push_str("\\\""),
                        '\n' => out.push_str("\\n"),
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
            out.push('}');
        }
        let _ = if value.is_nan() {
            writeln!(out, " NaN")
        } else if value.is_infinite() {
            writeln!(out, " {}Inf", if value > 0.0 { "+" } else { "-" })
        } else {
            writeln!(out, " {value}")
        };
        self
    }
}

/// CPU seconds (user + system) and resident bytes of this process, from
/// `/proc/self/stat` and `/proc/self/statm`; `None` where there is no /proc.
pub fn process() -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let (utime, stime): (f64, f64) = (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
    // SAFETY: sysconf only reads a system constant.
    let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident: u64 = statm.split(' ').nth(1)?.parse().ok()?;
    Some(((utime + stime) / ticks.max(1) as f64, resident * page.max(1) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_written_with_help_type_and_escaped_labels() {
        let mut w = Writer::new();
        w.family("eyrie_frames_total", Type::Counter, "Frames.\nOut.")
            .sample(&[("node", "cam\"0\\"), ("kind", "a\nb")], 3.0)
            .sample(&[], 0.5);
        w.family("eyrie_fps", Type::Gauge, "Rate")
            .sample(&[], f64::NAN)
            .sample(&[], f64::INFINITY);
        assert_eq!(
            w.finish(),
            "# HELP eyrie_frames_total Frames.\\nOut.\n# TYPE eyrie_frames_total counter\n\
             eyrie_frames_total{node=\"cam\\\"0\\\\\",kind=\"a\\nb\"} 3\neyrie_frames_total 0.5\n\
             # HELP eyrie_fps Rate\n# TYPE eyrie_fps gauge\neyrie_fps NaN\neyrie_fps +Inf\n"
        );
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let (cpu, rss) = process().unwrap();
        assert!(cpu >= 0.0 && rss > 1 << 20, "{cpu} {rss}");
    }
}
