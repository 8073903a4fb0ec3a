//! systemd's service notification protocol (sd_notify(3)) for `Type=notify` units.
//!
//! A unit started by systemd gets `$NOTIFY_SOCKET` (a datagram socket, a path or an abstract
//! name starting with `@`) and, with `WatchdogSec=`, `$WATCHDOG_USEC` (and `$WATCHDOG_PID`).
//! medos sends `READY=1` when a master serves its API or an agent has registered, `STATUS=`
//! lines while it runs, and `WATCHDOG=1` every half watchdog period. Without `$NOTIFY_SOCKET`
//! (not under systemd) every call does nothing.
//!
//! Written on std's `UnixDatagram` rather than a crate: the messages are one datagram each,
//! and a notifier built from explicit values (not the process environment, which tests could
//! only change with `unsafe`) is tested against a real socket.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

/// Where to send notifications (nothing when not started by systemd).
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// A notifier that sends nothing.
    pub fn disabled() -> Self {
        Self { target: None, watchdog: None }
    }

    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`; disabled when unset or
    /// unusable (logged).
    pub fn from_env() -> Self {
        let socket = std::env::var("NOTIFY_SOCKET").ok();
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        let watchdog = watchdog_period(usec.as_deref(), pid.as_deref(), std::process::id());
        match socket.as_deref() {
            None | Some("") => Self::disabled(),
            Some(path) => Self::new(path, watchdog).unwrap_or_else(|e| {
                tracing::warn!(socket = path, error = %e, "cannot use $NOTIFY_SOCKET; systemd will not hear from medos");
                Self::disabled()
            }),
        }
    }

    /// Sends to the socket at `path` (`@name` for an abstract socket).
    pub fn new(path: &str, watchdog: Option<Duration>) -> io::Result<Self> {
        let addr = match path.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name.as_bytes())?
            }
            None => SocketAddr::from_pathname(path)?,
        };
        Ok(Self { target: Some((UnixDatagram::unbound()?, addr)), watchdog })
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// How often to send `WATCHDOG=1` (half the unit's `WatchdogSec=`), if at all.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.target.as_ref().and(self.watchdog).map(|d| d / 2)
    }

    fn send(&self, message: &str) {
        if let Some((socket, addr)) = &self.target
            && let Err(e) = socket.send_to_addr(message.as_bytes(), addr)
        {
            tracing::debug!(error = %e, "could not notify systemd");
        }
    }

    /// Start-up is complete.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// The one-line status `systemctl status` shows.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// The service is alive (keeps the watchdog from restarting it).
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// The service is shutting down.
    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// The watchdog period systemd asked for, if it asked this process (`WATCHDOG_PID` unset or
/// our pid).
pub fn watchdog_period(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(own_pid)
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    Some(Duration::from_micros(usec))
}

/// Sends `WATCHDOG=1` every half period until the runtime stops (nothing without a watchdog).
/// The pings come from the async runtime, so a wedged runtime gets the unit restarted.
pub fn spawn_watchdog(notifier: Arc<Notifier>) -> Option<tokio::task::JoinHandle<()>> {
    let every = notifier.watchdog_interval()?;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            notifier.watchdog();
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(socket: &UnixDatagram) -> String {
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).expect("a datagram within 5 s");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn messages_reach_a_real_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let systemd = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::new(path.to_str().unwrap(), Some(Duration::from_secs(30))).unwrap();
        assert!(notifier.enabled());
        notifier.ready("serving https://10.0.0.1:7443\nsecond line");
        assert_eq!(receive(&systemd), "READY=1\nSTATUS=serving https://10.0.0.1:7443 second line");
        notifier.status("leader master-1");
        assert_eq!(receive(&systemd), "STATUS=leader master-1");
        notifier.watchdog();
        assert_eq!(receive(&systemd), "WATCHDOG=1");
        notifier.stopping();
        assert_eq!(receive(&systemd), "STOPPING=1");
        assert_eq!(notifier.watchdog_interval(), Some(Duration::from_secs(15)));
    }

    #[test]
    fn abstract_sockets_work_and_no_socket_sends_nothing() {
        let name = format!("medos-notify-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let systemd = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        let notifier = Notifier::new(&format!("@{name}"), None).unwrap();
        notifier.ready("up");
        assert_eq!(receive(&systemd), "READY=1\nSTATUS=up");
        assert_eq!(notifier.watchdog_interval(), None);

        let off = Notifier::disabled();
        assert!(!off.enabled());
        off.ready("nobody hears this");
        assert_eq!(off.watchdog_interval(), None);
    }

    #[test]
    fn the_watchdog_period_is_for_this_process_only() {
        assert_eq!(watchdog_period(Some("30000000"), None, 7), Some(Duration::from_secs(30)));
        assert_eq!(watchdog_period(Some("30000000"), Some("7"), 7), Some(Duration::from_secs(30)));
        assert_eq!(watchdog_period(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_period(Some("0"), None, 7), None);
        assert_eq!(watchdog_period(Some("x"), None, 7), None);
        assert_eq!(watchdog_period(None, None, 7), None);
    }
}
