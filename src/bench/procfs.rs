//! What a process has cost, from `/proc`: CPU time (user + system, every thread, live or
//! ended) and memory (resident now, and the kernel's peak).

use std::time::Duration;

/// Which process: this one, or another by pid (the operator the bench started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pid {
    This,
    Of(u32),
}

impl Pid {
    fn dir(self) -> String {
        match self {
            Pid::This => "/proc/self".to_owned(),
            Pid::Of(pid) => format!("/proc/{pid}"),
        }
    }
}

/// CPU time the process has used (user + system); zero once it is gone.
pub fn cpu_time(pid: Pid) -> Duration {
    let ticks = std::fs::read_to_string(format!("{}/stat", pid.dir()))
        .ok()
        .and_then(|s| parse_stat_ticks(&s))
        .unwrap_or(0);
    // USER_HZ is 100 on every Linux this runs on.
    Duration::from_millis(ticks * 10)
}

/// utime + stime of a `/proc/PID/stat` line, in clock ticks.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name (which may hold spaces) in parentheses: utime and
    // stime are the 12th and 13th of them.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let user = fields.next()?.parse::<u64>().ok()?;
    let system = fields.next()?.parse::<u64>().ok()?;
    Some(user + system)
}

/// Resident memory now and at its peak (`VmRSS`, `VmHWM`), in bytes; zeros once gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub rss: u64,
    pub peak: u64,
}

pub fn memory(pid: Pid) -> Memory {
    let status = std::fs::read_to_string(format!("{}/status", pid.dir())).unwrap_or_default();
    Memory {
        rss: status_kib(&status, "VmRSS:") * 1024,
        peak: status_kib(&status, "VmHWM:") * 1024,
    }
}

fn status_kib(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ticks_past_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (omtd (a b)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 9 0";
        assert_eq!(parse_stat_ticks(stat), Some(281));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn this_process_has_used_cpu_and_memory() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {}
        assert!(cpu_time(Pid::This) > Duration::ZERO);
        let m = memory(Pid::This);
        assert!(m.rss > 0 && m.peak >= m.rss, "{m:?}");
        assert_eq!(memory(Pid::Of(u32::MAX)), Memory::default());
    }
}
