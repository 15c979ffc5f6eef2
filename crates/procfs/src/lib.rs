//! A process's resident memory, CPU time, open files and start time, read from Linux's
//! `/proc/<pid>`: what the server exports as `process_*` metrics and what the load generator
//! samples of the servers it drives. No dependency; elsewhere than on Linux every read fails
//! (`/proc` is not there) and callers go without.

use std::io::{Error, ErrorKind, Result};

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// `VmRSS` in KiB.
    pub rss_kib: u64,
    /// User + system CPU time in seconds.
    pub cpu_secs: f64,
    /// Open file descriptors.
    pub fds: u64,
}

fn invalid(what: String) -> Error {
    Error::new(ErrorKind::InvalidData, what)
}

fn read(pid: u32, file: &str) -> Result<String> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .map_err(|error| Error::new(error.kind(), format!("read /proc/{pid}/{file}: {error}")))
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces and
/// parentheses): index 0 is the state (field 3 of proc(5)), so field `n` of proc(5) is at
/// `n - 3`.
fn stat_fields(pid: u32) -> Result<Vec<u64>> {
    let stat = read(pid, "stat")?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| invalid(format!("/proc/{pid}/stat has no command name")))?;
    // The state is a letter: it reads as 0, like any field that is not a number.
    Ok(after
        .split_whitespace()
        .map(|value| value.parse().unwrap_or(0))
        .collect())
}

/// Reads `/proc/<pid>/status` (VmRSS), `/proc/<pid>/stat` (utime + stime) and counts
/// `/proc/<pid>/fd`.
pub fn sample(pid: u32) -> Result<Sample> {
    let status = read(pid, "status")?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| invalid(format!("/proc/{pid}/status has no VmRSS")))?;
    let fields = stat_fields(pid)?;
    // utime and stime are fields 14 and 15.
    let ticks = |field: usize| fields.get(field - 3).copied().unwrap_or(0);
    let cpu_secs = (ticks(14) + ticks(15)) as f64 / USER_HZ;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| entries.count() as u64)
        .unwrap_or(0);
    Ok(Sample {
        rss_kib,
        cpu_secs,
        fds,
    })
}

/// The sum over `pids` (RSS, CPU time and open files of several processes added up); `None`
/// when no pid is given or one of them cannot be read.
pub fn maybe_sample(pids: &[u32]) -> Option<Sample> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().try_fold(Sample::default(), |total, pid| {
        let one = sample(*pid).ok()?;
        Some(Sample {
            rss_kib: total.rss_kib + one.rss_kib,
            cpu_secs: total.cpu_secs + one.cpu_secs,
            fds: total.fds + one.fds,
        })
    })
}

/// When the process started, in seconds since the Unix epoch: the boot time (`btime` of
/// `/proc/stat`) plus its start in ticks after boot (field 22 of `/proc/<pid>/stat`).
pub fn start_time(pid: u32) -> Result<f64> {
    let boot = std::fs::read_to_string("/proc/stat")?
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse::<u64>().ok())
        .ok_or_else(|| invalid("/proc/stat has no btime".to_owned()))?;
    let started = stat_fields(pid)?
        .get(22 - 3)
        .copied()
        .ok_or_else(|| invalid(format!("/proc/{pid}/stat is short")))?;
    Ok(boot as f64 + started as f64 / USER_HZ)
}

/// The most file descriptors the process may open (the soft limit of `Max open files` in
/// `/proc/<pid>/limits`); `None` when unlimited.
pub fn max_fds(pid: u32) -> Result<Option<u64>> {
    let limits = read(pid, "limits")?;
    let soft = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| invalid(format!("/proc/{pid}/limits has no Max open files")))?;
    if soft == "unlimited" {
        return Ok(None);
    }
    soft.parse()
        .map(Some)
        .map_err(|_| invalid(format!("/proc/{pid}/limits: Max open files is {soft}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;

    #[test]
    fn reads_this_process() {
        let reading = sample(std::process::id()).unwrap();
        assert!(reading.rss_kib > 0);
        assert!(reading.fds > 0);
    }

    #[test]
    fn sums_several_processes() {
        let own = std::process::id();
        assert!(maybe_sample(&[]).is_none());
        let twice = maybe_sample(&[own, own]).unwrap();
        assert!(twice.rss_kib > 0);
        assert!(twice.fds >= 2);
        // A process that does not exist spoils the sum rather than leaving it short.
        assert!(maybe_sample(&[own, u32::MAX]).is_none());
    }

    #[test]
    fn start_time_and_limits_of_this_process() {
        let own = std::process::id();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let started = start_time(own).unwrap();
        // Started before now, and within the last day (ticks are 10 ms; btime is whole seconds).
        assert!(
            started <= now + 1.0 && started > now - 86_400.0,
            "{started} vs {now}"
        );
        let limit = max_fds(own).unwrap();
        assert!(limit.is_none_or(|limit| limit >= sample(own).unwrap().fds));
        assert!(start_time(u32::MAX).is_err());
    }
}
