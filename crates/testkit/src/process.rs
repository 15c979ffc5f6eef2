//! What every private server of this crate is made of: a guarded child process that dies with
//! the test process, free ports, a temporary directory removed on drop, tool lookup on `PATH`,
//! and polling with a deadline.
//!
//! The guard is a tiny `sh` whose standard input is a pipe held by this process. A watcher in
//! it blocks reading that pipe; when the pipe closes (on drop, or when the test process dies in
//! any way, even by `SIGKILL`) it sends `SIGKILL` to the child, and the guard exits once the
//! child is gone. When the child exits on its own, the guard exits too, so a server that could
//! not start (a port taken, a bad option) is noticed at once instead of at a timeout.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Runs `"$@"`, kills it when standard input closes, and exits with its status.
///
/// Standard input is copied to descriptor 3 because an asynchronous list of a non-interactive
/// shell reads `/dev/null` unless redirected explicitly; the child gets neither.
const GUARD_SCRIPT: &str = r#"exec 3<&0
"$@" 3<&- </dev/null & pid=$!
{ read _ignored <&3; kill -9 "$pid" 2>/dev/null; } & watcher=$!
wait "$pid"; status=$?
kill "$watcher" 2>/dev/null
exit "$status""#;

/// How much of a log [`log_tail`] returns.
const LOG_TAIL_BYTES: u64 = 2048;

/// A child process under the guard: dropping it kills the child and waits until it is gone.
#[derive(Debug)]
pub(crate) struct Guarded {
    guard: Child,
    lifeline: Option<ChildStdin>,
}

impl Guarded {
    /// Starts `program` with `arguments` under a guard. Its standard output and error are
    /// appended to `output`, or discarded when that is `None`.
    pub(crate) fn spawn<S: AsRef<OsStr>>(
        program: &str,
        arguments: &[S],
        output: Option<&Path>,
    ) -> io::Result<Self> {
        let (stdout, stderr) = match output {
            Some(path) => {
                let file = OpenOptions::new().create(true).append(true).open(path)?;
                (Stdio::from(file.try_clone()?), Stdio::from(file))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let mut guard = Command::new("sh")
            .arg("-c")
            .arg(GUARD_SCRIPT)
            .arg(format!("chat-testkit-{program}"))
            .arg(program)
            .args(arguments)
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()?;
        let lifeline = guard
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("no stdin pipe to the guard"))?;
        Ok(Self {
            guard,
            lifeline: Some(lifeline),
        })
    }

    /// The exit status, when the child has already exited on its own.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.guard.try_wait().ok().flatten()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // Closing the pipe makes the guard kill the child and wait for it.
        drop(self.lifeline.take());
        if self.guard.wait().is_err() {
            let _ = self.guard.kill();
        }
    }
}

/// A port nobody listens on right now (the kernel's pick for port 0).
pub(crate) fn free_port() -> io::Result<u16> {
    Ok(reserve()?.1)
}

/// `count` distinct ports nobody listens on right now. All are probed at once, so none repeats;
/// another process may still take one before our server binds it (callers retry).
pub(crate) fn free_ports(count: usize) -> io::Result<Vec<u16>> {
    let held = (0..count)
        .map(|_| reserve())
        .collect::<io::Result<Vec<_>>>()?;
    Ok(held.into_iter().map(|(_, port)| port).collect())
}

/// `count` distinct free ports `p` whose cluster bus port `p + 10000` is free too.
pub(crate) fn free_cluster_ports(count: usize) -> io::Result<Vec<u16>> {
    const BUS_OFFSET: u16 = 10_000;
    let mut held = Vec::with_capacity(count * 2);
    let mut ports = Vec::with_capacity(count);
    let mut tries = 0;
    while ports.len() < count {
        tries += 1;
        if tries > 200 * count.max(1) {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "no free port p with p + 10000 free",
            ));
        }
        let (listener, port) = reserve()?;
        let Some(bus) = port.checked_add(BUS_OFFSET) else {
            continue;
        };
        if let Ok(bus_listener) = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, bus))) {
            held.push(listener);
            held.push(bus_listener);
            ports.push(port);
        }
    }
    Ok(ports)
}

fn reserve() -> io::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// A fresh, empty directory under the system's temporary directory, removed with all it holds
/// on drop.
#[derive(Debug)]
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `chat-testkit-<label>-<pid>-<serial>`. The first call of a process also removes
    /// the directories left by test processes that are gone (killed before their drops ran).
    pub(crate) fn new(label: &str) -> io::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        static SWEPT: OnceLock<()> = OnceLock::new();
        SWEPT.get_or_init(remove_orphans);
        let serial = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{DIRECTORY_PREFIX}{label}-{}-{serial}", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path)?;
        Ok(Self { path })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// What the names of [`TempDir`]s start with.
const DIRECTORY_PREFIX: &str = "chat-testkit-";

/// Removes the [`TempDir`]s whose process no longer runs, where `/proc` tells (Linux).
fn remove_orphans() {
    let processes = Path::new("/proc");
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    if !processes.join("self").exists() {
        return;
    }
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|name| name.strip_prefix(DIRECTORY_PREFIX))
        else {
            continue;
        };
        // `<label>-<pid>-<serial>`: the pid is the next to last field.
        let mut fields = rest.rsplit('-');
        let (Some(serial), Some(pid)) = (fields.next(), fields.next()) else {
            continue;
        };
        let numeric =
            |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
        if numeric(serial) && numeric(pid) && !processes.join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Whether an executable named `tool` is in a directory of `PATH`.
pub(crate) fn on_path(tool: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|directory| directory.join(tool).is_file())
}

/// Whether the tests run in CI (`CI=true`), where a missing tool fails instead of skipping.
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

/// Calls `probe` every `every` until it returns `Ok(Some(_))` or an error, or until `timeout`
/// has passed: then fails with [`io::ErrorKind::TimedOut`], naming `what` and the last
/// `Ok(None)`'s reason.
pub(crate) fn poll<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut probe: impl FnMut() -> io::Result<Result<T, String>>,
) -> io::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let reason = match probe()? {
            Ok(value) => return Ok(value),
            Err(reason) => reason,
        };
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{what}: not after {timeout:?} ({reason})"),
            ));
        }
        std::thread::sleep(every);
    }
}

/// Runs `command` to completion with its output captured, killing it after `timeout`.
/// A non-zero exit is an error carrying what it printed.
pub(crate) fn run(command: &mut Command, timeout: Duration) -> io::Result<String> {
    let what = format!("{:?}", command.get_program());
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| io::Error::new(error.kind(), format!("{what}: {error}")))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let waited = poll(&what, timeout, Duration::from_millis(5), || {
        Ok(child.try_wait()?.ok_or_else(|| "running".to_owned()))
    });
    let status = match waited {
        Ok(status) => status,
        Err(error) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(error);
        }
    };
    let stdout = String::from_utf8_lossy(&stdout.join().unwrap_or_default()).into_owned();
    if status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
    Err(io::Error::other(format!(
        "{what} failed ({status}): {} {}",
        stdout.trim(),
        stderr.trim()
    )))
}

/// Reads a pipe to its end on a thread.
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// The last couple of kilobytes of a log file (empty when it cannot be read).
pub(crate) fn log_tail(path: &Path) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let length = file.metadata().map(|metadata| metadata.len()).unwrap_or(0);
    if file
        .seek(SeekFrom::Start(length.saturating_sub(LOG_TAIL_BYTES)))
        .is_err()
    {
        return String::new();
    }
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_child_that_exits_is_noticed_and_a_dropped_one_is_killed() {
        let mut quick = Guarded::spawn("sh", &["-c", "exit 3"], None).unwrap();
        let status = poll(
            "exit",
            Duration::from_secs(5),
            Duration::from_millis(10),
            || Ok(quick.exited().ok_or_else(|| "running".to_owned())),
        )
        .unwrap();
        assert_eq!(status.code(), Some(3));

        let directory = TempDir::new("guard-test").unwrap();
        let marker = directory.path().join("alive");
        let script = format!("while :; do touch '{}'; sleep 0.02; done", marker.display());
        let slow = Guarded::spawn("sh", &["-c", script.as_str()], None).unwrap();
        poll(
            "marker",
            Duration::from_secs(5),
            Duration::from_millis(10),
            || {
                Ok(if marker.exists() {
                    Ok(())
                } else {
                    Err("no marker".to_owned())
                })
            },
        )
        .unwrap();
        drop(slow);
        std::fs::remove_file(&marker).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !marker.exists(),
            "the child must be gone once the guard is dropped"
        );
        let path = directory.path().to_owned();
        drop(directory);
        assert!(!path.exists());
    }

    #[test]
    fn directories_of_dead_processes_are_swept() {
        // Far above any pid_max, so no such process runs.
        let orphan = std::env::temp_dir().join(format!("{DIRECTORY_PREFIX}sweep-test-999999999-0"));
        std::fs::create_dir_all(orphan.join("inside")).unwrap();
        let mine = TempDir::new("sweep-test").unwrap();
        remove_orphans();
        assert!(mine.path().is_dir(), "a live process's directory stays");
        if Path::new("/proc/self").exists() {
            assert!(!orphan.exists());
        } else {
            std::fs::remove_dir_all(&orphan).unwrap();
        }
    }

    #[test]
    fn ports_are_distinct_and_bus_ports_fit() {
        let ports = free_ports(8).unwrap();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 8);
        for port in free_cluster_ports(3).unwrap() {
            assert!(port.checked_add(10_000).is_some());
        }
    }
}
