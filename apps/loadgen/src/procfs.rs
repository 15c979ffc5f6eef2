//! The server's resident memory and CPU time, read from `/proc/<pid>`.

use anyhow::Context;

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

/// Reads `/proc/<pid>/status` (VmRSS) and `/proc/<pid>/stat` (utime + stime).
pub fn sample(pid: u32) -> anyhow::Result<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .context("no VmRSS")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("bad stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ')' field 0 is the state (field 3 of stat(5)); utime is field 14, stime 15.
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let cpu_secs = (ticks(11) + ticks(12)) as f64 / USER_HZ;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| entries.count() as u64)
        .unwrap_or(0);
    Ok(Sample {
        rss_kib,
        cpu_secs,
        fds,
    })
}

/// The sum over `pids` (RSS, CPU time and open files of several nodes added up); `None`
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
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
}
