//! Remote commands and file copies on many hosts in parallel, through the system's OpenSSH
//! client, so the user's ssh config, agent, keys and known_hosts apply as they do for `ssh`.
//!
//! Every command runs as `ssh -o BatchMode=yes -o ConnectTimeout=… -o StrictHostKeyChecking=…
//! -p PORT -l USER [-i KEY] HOST -- COMMAND` with a per-command deadline (the process is killed
//! when it passes). Files are copied with `cat` into a temporary name next to the target, then
//! `chmod` and `mv`, so a host never sees a half-written file under its final name.
//!
//! Everything sent and received is appended to `LOG_DIR/<host>.log` (the full output of every
//! command); errors carry only the tail. ssh's own failures (exit status 255) are told apart
//! from the command's by ssh's messages ([`classify`], pure and table-tested): unreachable
//! host, authentication refused (check user and key), host key mismatch.
//!
//! [`Runner::on_hosts`] runs one step on all hosts at once with a progress bar per host
//! (indicatif draws nothing when stderr is not a terminal) and returns one [`Outcome`] per
//! host; [`summary_table`] renders them.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::AsyncWriteExt;

use super::config::SshSettings;

/// ssh's exit status for its own errors (connection, authentication, host key).
pub const SSH_ERROR_EXIT: i32 = 255;
/// Lines of output kept in an error.
const TAIL_LINES: usize = 15;

/// `StrictHostKeyChecking`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostKeyChecking {
    /// Unknown hosts are added to known_hosts; changed keys are refused.
    #[default]
    AcceptNew,
    /// Only hosts already in known_hosts.
    Yes,
    /// Anything (not recommended: a changed key is accepted too).
    No,
}

impl HostKeyChecking {
    fn option(self) -> &'static str {
        match self {
            HostKeyChecking::AcceptNew => "accept-new",
            HostKeyChecking::Yes => "yes",
            HostKeyChecking::No => "no",
        }
    }
}

/// Everything that decides how ssh is invoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshOptions {
    pub settings: SshSettings,
    pub host_key_checking: HostKeyChecking,
    /// `ConnectTimeout`.
    pub connect_timeout: Duration,
    /// `-F`: an ssh config to use instead of the user's.
    pub config_file: Option<PathBuf>,
    /// `UserKnownHostsFile`.
    pub known_hosts: Option<PathBuf>,
}

impl SshOptions {
    /// The defaults around `settings`: accept-new host keys, 10 s to connect.
    pub fn new(settings: SshSettings) -> Self {
        SshOptions {
            settings,
            host_key_checking: HostKeyChecking::default(),
            connect_timeout: Duration::from_secs(10),
            config_file: None,
            known_hosts: None,
        }
    }

    /// ssh's arguments up to and including the host, before the remote command.
    pub fn args(&self, host: &str) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(config) = &self.config_file {
            args.push("-F".to_string());
            args.push(config.display().to_string());
        }
        args.extend(["-o".into(), "BatchMode=yes".into()]);
        args.extend(["-o".into(), format!("ConnectTimeout={}", self.connect_timeout.as_secs().max(1))]);
        args.extend(["-o".into(), format!("StrictHostKeyChecking={}", self.host_key_checking.option())]);
        // Dead connections are noticed instead of hanging until the step's deadline.
        args.extend(["-o".into(), "ServerAliveInterval=5".into(), "-o".into(), "ServerAliveCountMax=3".into()]);
        if let Some(known) = &self.known_hosts {
            args.extend(["-o".into(), format!("UserKnownHostsFile={}", known.display())]);
        }
        if let Some(key) = &self.settings.key_path {
            args.extend(["-i".into(), key.display().to_string(), "-o".into(), "IdentitiesOnly=yes".into()]);
        }
        args.extend(["-p".into(), self.settings.port.to_string(), "-l".into(), self.settings.user.clone()]);
        args.push("--".into());
        args.push(host.to_string());
        args
    }
}

/// Why a remote command did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshError {
    /// ssh could not connect.
    #[error(
        "cannot reach {host}:{port}: {detail}; check the address, that sshd runs there and that no firewall blocks port {port}"
    )]
    Unreachable { host: String, port: u16, detail: String },
    /// The host refused the login.
    #[error(
        "{host} refused the login as {user:?}: {detail}; check ssh_user, ssh_key_path (or the ssh agent) and that the key is in ~{user}/.ssh/authorized_keys there"
    )]
    AuthFailed { host: String, user: String, detail: String },
    /// The host's key does not match known_hosts (or is unknown with strict checking).
    #[error(
        "{host}'s host key is not the one expected: {detail}; if the host was reinstalled, remove its old key with `ssh-keygen -R {host}`"
    )]
    HostKey { host: String, detail: String },
    /// Another failure of ssh itself (exit status 255).
    #[error("ssh to {host} failed: {detail}")]
    Ssh { host: String, detail: String },
    /// The remote command exited with a non-zero status.
    #[error("{what} failed on {host} (exit status {code}):\n{tail}")]
    Failed { host: String, what: String, code: i32, tail: String },
    /// The deadline passed; ssh was killed.
    #[error("{what} on {host} did not finish within {}s", after.as_secs())]
    Timeout { host: String, what: String, after: Duration },
    /// ssh could not be run at all, or local I/O failed.
    #[error("{0}")]
    Local(String),
}

/// What ssh's failure (exit status 255) was, judged from its stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshFailure {
    Unreachable,
    Auth,
    HostKey,
    Other,
}

/// Classifies ssh's stderr after an exit status of 255 (pure).
pub fn classify(stderr: &str) -> SshFailure {
    let s = stderr.to_ascii_lowercase();
    const HOST_KEY: &[&str] = &[
        "host key verification failed",
        "remote host identification has changed",
        "no matching host key type",
        "host key for",
    ];
    const AUTH: &[&str] = &[
        "permission denied",
        "too many authentication failures",
        "no more authentication methods",
        "authentications that can continue",
        "load key",
        "invalid format",
        "bad permissions",
    ];
    const UNREACHABLE: &[&str] = &[
        "connection refused",
        "connection timed out",
        "operation timed out",
        "no route to host",
        "network is unreachable",
        "could not resolve hostname",
        "name or service not known",
        "temporary failure in name resolution",
        "connection closed by",
        "connection reset",
        "kex_exchange_identification",
        "banner exchange",
        "host is down",
    ];
    if HOST_KEY.iter().any(|p| s.contains(p)) {
        SshFailure::HostKey
    } else if AUTH.iter().any(|p| s.contains(p)) {
        SshFailure::Auth
    } else if UNREACHABLE.iter().any(|p| s.contains(p)) {
        SshFailure::Unreachable
    } else {
        SshFailure::Other
    }
}

/// The last `n` non-empty lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Quotes `s` for a POSIX shell (single quotes).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// What a successful remote command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdOutput {
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// The result of one step on one host.
#[derive(Debug)]
pub struct Outcome<T> {
    pub host: String,
    pub step: String,
    pub result: Result<T, SshError>,
    pub elapsed: Duration,
}

/// Runs commands on hosts over ssh; see the module docs.
pub struct Runner {
    options: SshOptions,
    log_dir: PathBuf,
    progress: MultiProgress,
}

impl Runner {
    /// Creates `log_dir` (the per-host logs go there).
    pub fn new(options: SshOptions, log_dir: &Path) -> Result<Self, SshError> {
        std::fs::create_dir_all(log_dir)
            .map_err(|e| SshError::Local(format!("cannot create the log dir {}: {e}", log_dir.display())))?;
        Ok(Runner {
            options,
            log_dir: log_dir.to_path_buf(),
            progress: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
        })
    }

    pub fn options(&self) -> &SshOptions {
        &self.options
    }

    /// `LOG_DIR/<host>.log`.
    pub fn log_path(&self, host: &str) -> PathBuf {
        let safe: String = host.chars().map(|c| if c == '/' || c.is_control() { '_' } else { c }).collect();
        self.log_dir.join(format!("{safe}.log"))
    }

    fn log(&self, host: &str, entry: &str) {
        let path = self.log_path(host);
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(entry.as_bytes()));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the host log");
        }
    }

    /// Runs `command` on `host` (through the login shell), feeding it `stdin`; `what` names
    /// it in logs and errors.
    pub async fn run(
        &self,
        host: &str,
        what: &str,
        command: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<CmdOutput, SshError> {
        let start = Instant::now();
        let args = self.options.args(host);
        tracing::debug!(host, what, command, "ssh");
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.args(&args)
            .arg(command)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| SshError::Local(format!("cannot run ssh (is the OpenSSH client installed?): {e}")))?;
        let feed = match (stdin, child.stdin.take()) {
            (Some(data), Some(mut pipe)) => {
                let data = data.to_vec();
                Some(tokio::spawn(async move {
                    // The remote side may exit early; its status tells what happened.
                    let _ = pipe.write_all(&data).await;
                    let _ = pipe.shutdown().await;
                }))
            }
            _ => None,
        };
        let waited = tokio::time::timeout(timeout, child.wait_with_output()).await;
        if let Some(feed) = feed {
            feed.abort();
        }
        let elapsed = start.elapsed();
        let output = match waited {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => return Err(SshError::Local(format!("waiting for ssh: {e}"))),
            Err(_) => {
                self.log(host, &format!("==== {what} ({:.1}s): timed out\n$ {command}\n", elapsed.as_secs_f64()));
                return Err(SshError::Timeout { host: host.into(), what: what.into(), after: timeout });
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let code = output.status.code().unwrap_or(-1);
        self.log(
            host,
            &format!(
                "==== {what} ({:.1}s): exit {code}\n$ ssh {} {command}\n---- stdout\n{stdout}\n---- stderr\n{stderr}\n",
                elapsed.as_secs_f64(),
                args.join(" ")
            ),
        );
        if output.status.success() {
            return Ok(CmdOutput { stdout, stderr, elapsed });
        }
        Err(self.error(host, what, code, &stdout, &stderr))
    }

    fn error(&self, host: &str, what: &str, code: i32, stdout: &str, stderr: &str) -> SshError {
        let host_s = host.to_string();
        if code == SSH_ERROR_EXIT {
            let detail = tail(stderr, 3).replace('\n', "; ");
            match classify(stderr) {
                SshFailure::Unreachable => {
                    return SshError::Unreachable { host: host_s, port: self.options.settings.port, detail };
                }
                SshFailure::Auth => {
                    return SshError::AuthFailed { host: host_s, user: self.options.settings.user.clone(), detail };
                }
                SshFailure::HostKey => return SshError::HostKey { host: host_s, detail },
                // 255 without an ssh message may be the remote command's own status.
                SshFailure::Other if stdout.is_empty() && !stderr.is_empty() && stderr.starts_with("ssh:") => {
                    return SshError::Ssh { host: host_s, detail };
                }
                SshFailure::Other => {}
            }
        }
        let mut out = tail(stdout, TAIL_LINES);
        let err = tail(stderr, TAIL_LINES);
        if !err.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&err);
        }
        if out.is_empty() {
            out = "(no output)".into();
        }
        SshError::Failed { host: host_s, what: what.into(), code, tail: out }
    }

    /// Copies `data` to `remote_path` on `host` with `mode` (octal, as for chmod): written to
    /// a temporary name in the same directory (created if missing), then renamed.
    pub async fn copy(
        &self,
        host: &str,
        data: &[u8],
        remote_path: &str,
        mode: u32,
        timeout: Duration,
    ) -> Result<(), SshError> {
        let (dir, _) = remote_path.rsplit_once('/').unwrap_or((".", remote_path));
        let dir = if dir.is_empty() { "/" } else { dir };
        let tmp = format!("{remote_path}.medos-tmp");
        let command = format!(
            "set -e; umask 077; mkdir -p {d}; cat > {t}; chmod {mode:o} {t}; mv -f {t} {p}",
            d = shell_quote(dir),
            t = shell_quote(&tmp),
            p = shell_quote(remote_path),
        );
        self.run(host, &format!("copy to {remote_path}"), &command, Some(data), timeout).await.map(|_| ())
    }

    /// Runs `step` on every host at once: `f(host)` does the work; a progress line per host
    /// shows it. Outcomes come back in the order of `hosts`.
    pub async fn on_hosts<'a, T, F, Fut>(&'a self, hosts: &'a [String], step: &str, f: F) -> Vec<Outcome<T>>
    where
        F: Fn(&'a str) -> Fut,
        Fut: Future<Output = Result<T, SshError>> + 'a,
    {
        let width = hosts.iter().map(|h| h.len()).max().unwrap_or(0);
        let style = ProgressStyle::with_template("{spinner} {prefix} {msg} {elapsed:>4}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let runs = hosts.iter().map(|host| {
            let bar = self.progress.add(ProgressBar::new_spinner());
            bar.set_style(style.clone());
            bar.set_prefix(format!("{host:width$}"));
            bar.set_message(format!("{step}…"));
            bar.enable_steady_tick(Duration::from_millis(120));
            let work = f(host);
            async move {
                let start = Instant::now();
                let result = work.await;
                let elapsed = start.elapsed();
                match &result {
                    Ok(_) => bar.finish_with_message(format!("{step}: ok")),
                    Err(e) => {
                        let first = e.to_string().lines().next().unwrap_or_default().to_string();
                        bar.finish_with_message(format!("{step}: FAILED: {first}"));
                    }
                }
                Outcome { host: host.clone(), step: step.to_string(), result, elapsed }
            }
        });
        futures_util::future::join_all(runs).await
    }
}

/// A table of outcomes: host, step, result, time, error (first line).
pub fn summary_table<T>(outcomes: &[Outcome<T>]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    t.set_header(["HOST", "STEP", "RESULT", "TIME", "ERROR"]);
    for o in outcomes {
        let (result, error) = match &o.result {
            Ok(_) => ("ok".to_string(), String::new()),
            Err(e) => ("FAILED".to_string(), one_line(&e.to_string(), 160)),
        };
        t.add_row([o.host.clone(), o.step.clone(), result, format!("{:.1}s", o.elapsed.as_secs_f64()), error]);
    }
    t.to_string().lines().map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end()).collect::<Vec<_>>().join("\n")
}

/// `text` on one line (lines joined with " | "), at most `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let joined = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" | ");
    if joined.chars().count() <= max {
        joined
    } else {
        let cut: String = joined.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

impl fmt::Display for HostKeyChecking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.option())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_tells_ssh_failures_apart() {
        let check = |stderr: &str, want: SshFailure| assert_eq!(classify(stderr), want, "{stderr}");
        check("nobody@10.0.0.1: Permission denied (publickey,password).", SshFailure::Auth);
        check("Received disconnect from 10.0.0.1 port 22:2: Too many authentication failures", SshFailure::Auth);
        check("Load key \"/tmp/k\": invalid format\nroot@10.0.0.1: Permission denied (publickey).", SshFailure::Auth);
        check("ssh: connect to host 10.0.0.9 port 22: Connection refused", SshFailure::Unreachable);
        check("ssh: connect to host 10.0.0.9 port 22: Connection timed out", SshFailure::Unreachable);
        check("ssh: connect to host 10.0.0.9 port 22: No route to host", SshFailure::Unreachable);
        check("ssh: Could not resolve hostname nowhere: Name or service not known", SshFailure::Unreachable);
        check("kex_exchange_identification: read: Connection reset by peer", SshFailure::Unreachable);
        check(
            "@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.",
            SshFailure::HostKey,
        );
        check(
            "No ED25519 host key is known for 10.0.0.1 and you have requested strict checking.\nHost key verification failed.",
            SshFailure::HostKey,
        );
        check("something else entirely", SshFailure::Other);
    }

    #[test]
    fn args_carry_the_settings() {
        let mut o =
            SshOptions::new(SshSettings { user: "core".into(), port: 2222, key_path: Some(PathBuf::from("/keys/id")) });
        o.known_hosts = Some(PathBuf::from("/kh"));
        let args = o.args("10.0.0.1").join(" ");
        for want in [
            "-o BatchMode=yes",
            "-o ConnectTimeout=10",
            "-o StrictHostKeyChecking=accept-new",
            "-o UserKnownHostsFile=/kh",
            "-i /keys/id -o IdentitiesOnly=yes",
            "-p 2222 -l core -- 10.0.0.1",
        ] {
            assert!(args.contains(want), "{want:?} missing in {args}");
        }
        assert!(args.ends_with("-- 10.0.0.1"), "the host comes last: {args}");
        o.host_key_checking = HostKeyChecking::Yes;
        o.settings.key_path = None;
        let args = o.args("h").join(" ");
        assert!(args.contains("StrictHostKeyChecking=yes") && !args.contains("-i "), "{args}");
    }

    #[test]
    fn shell_quote_survives_anything() {
        assert_eq!(shell_quote("/etc/medos/master.toml"), "/etc/medos/master.toml");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn one_line_joins_and_cuts() {
        assert_eq!(one_line("a failed (exit 3):\nx\n\ny\n", 100), "a failed (exit 3): | x | y");
        assert_eq!(one_line("abcdef", 4), "abc…");
    }

    #[test]
    fn tail_keeps_the_last_non_empty_lines() {
        assert_eq!(tail("a\nb\n\nc\n", 2), "b\nc");
        assert_eq!(tail("", 3), "");
    }

    #[test]
    fn failures_name_host_and_what_to_check() {
        let runner = Runner::new(
            SshOptions::new(SshSettings { user: "nobody".into(), port: 22, key_path: None }),
            &std::env::temp_dir(),
        )
        .unwrap();
        let e = runner.error("h1", "probe", 255, "", "nobody@h1: Permission denied (publickey).\n");
        assert!(matches!(e, SshError::AuthFailed { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("h1") && text.contains("\"nobody\"") && text.contains("ssh_key_path"), "{text}");
        let e = runner.error("h1", "install", 3, "step 1\nstep 2\n", "boom\n");
        assert_eq!(e.to_string(), "install failed on h1 (exit status 3):\nstep 1\nstep 2\nboom");
        let e = runner.error("h2", "probe", 255, "", "ssh: connect to host h2 port 22: No route to host\n");
        assert!(
            e.to_string().starts_with("cannot reach h2:22: ssh: connect to host h2 port 22: No route to host"),
            "{e}"
        );
    }

    #[test]
    fn summary_lists_every_outcome() {
        let outcomes = vec![
            Outcome {
                host: "10.0.0.1".into(),
                step: "preflight".into(),
                result: Ok(()),
                elapsed: Duration::from_millis(1200),
            },
            Outcome {
                host: "10.0.0.2".into(),
                step: "preflight".into(),
                result: Err(SshError::Timeout {
                    host: "10.0.0.2".into(),
                    what: "probe".into(),
                    after: Duration::from_secs(5),
                }),
                elapsed: Duration::from_secs(5),
            },
        ];
        let table = summary_table(&outcomes);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("HOST") && lines[0].contains("ERROR"), "{table}");
        assert!(lines[1].contains("10.0.0.1") && lines[1].contains("ok") && lines[1].contains("1.2s"), "{table}");
        assert!(lines[2].contains("FAILED") && lines[2].contains("did not finish within 5s"), "{table}");
    }
}
