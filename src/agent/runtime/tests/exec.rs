//! Exec: processes started inside a running container.

use std::io::{Read, Write};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::{TestRuntime, field, own_namespace};
use crate::agent::runtime::spec::{CommandSpec, ExecSpec, TtySize};
use crate::agent::runtime::{ContainerRuntime, RuntimeError};

#[tokio::test]
async fn exec_joins_the_containers_namespaces_and_cgroup() {
    let t = TestRuntime::new();
    let mut spec = t.spec("target", "echo ns=$(readlink /proc/self/ns/pid); echo ready; exec sleep 600");
    spec.hostname = Some("exec-host".into());
    spec.env = vec![("FROM_TASK".into(), "yes".into())];
    let id = spec.id.clone();
    t.rt().launch(spec).await.unwrap();
    t.wait_for_log("target", "stdout", "ready").await;
    let task_ns = field(&t.read_log("target", "stdout"), "ns").unwrap().to_string();

    let mut exec = ExecSpec::new(CommandSpec::shell(
        "read line; echo got=$line; echo host=$(hostname); echo ns=$(readlink /proc/self/ns/pid); \
         echo env=$FROM_TASK/$EXTRA; echo cgroup=$(grep -c target /proc/self/cgroup); echo oops >&2; exit 5",
    ));
    exec.env = vec![("EXTRA".into(), "added".into())];
    let mut process = t.rt().exec(&id, exec).await.unwrap();
    let mut stdin = process.stdin.take().unwrap();
    stdin.write_all(b"hello\n").await.unwrap();
    drop(stdin);
    let (mut stdout, mut stderr) = (process.stdout.take().unwrap(), process.stderr.take().unwrap());
    let (mut out, mut err) = (String::new(), String::new());
    stdout.read_to_string(&mut out).await.unwrap();
    stderr.read_to_string(&mut err).await.unwrap();
    let status = process.wait().await.unwrap();
    assert_eq!(status.code(), Some(5), "{status:?} {out} {err}");
    assert_eq!(field(&out, "got"), Some("hello"));
    assert_eq!(field(&out, "host"), Some("exec-host"));
    assert_eq!(field(&out, "ns"), Some(task_ns.as_str()), "same pid namespace");
    assert_eq!(field(&out, "env"), Some("yes/added"));
    assert_ne!(field(&out, "cgroup"), Some("0"), "in the task's cgroup: {out}");
    assert_eq!(err, "oops\n");

    // The task itself is untouched by the exec.
    assert!(matches!(t.rt().state(&id).unwrap(), crate::agent::runtime::ContainerState::Running));
    t.rt().kill(&id, Duration::ZERO).await.unwrap();
    let err = t.rt().exec(&id, ExecSpec::new(CommandSpec::shell("true"))).await.unwrap_err();
    assert!(matches!(err, RuntimeError::NotRunning { .. }), "{err}");
}

#[tokio::test]
async fn exec_with_a_terminal_gets_a_pty() {
    let t = TestRuntime::new();
    let mut spec = t.spec("tty-target", "echo ready; exec sleep 600");
    spec.hostname = Some("tty-host".into());
    let id = spec.id.clone();
    t.rt().launch(spec).await.unwrap();
    t.wait_for_log("tty-target", "stdout", "ready").await;

    let mut exec = ExecSpec::new(CommandSpec::shell("test -t 0 && echo is-a-tty; stty size; hostname"));
    exec.tty = Some(TtySize { rows: 33, cols: 101 });
    let mut process = t.rt().exec(&id, exec).await.unwrap();
    let mut master = process.pty.take().expect("a pty master");
    let output = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // Reads end with EIO once the process closed the terminal.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).replace('\r', "")
    });
    let status = process.wait().await.unwrap();
    let output = output.await.unwrap();
    assert_eq!(status.code(), Some(0), "{output}");
    assert_eq!(output, "is-a-tty\n33 101\ntty-host\n");
}

/// `medos task exec -it TASK sh`, then `exit 5`: the shell runs inside the task's pid namespace
/// (it sees the task's processes and has a pid of its own there), leads a session there whose
/// controlling terminal is the exec's, so job control works and the exact code comes back. A
/// shell whose session leader sat outside the pid namespace failed to restore the terminal's
/// foreground group on exit and ended with 2.
#[tokio::test]
async fn interactive_shell_on_a_terminal_is_inside_the_task_and_keeps_its_exit_code() {
    let t = TestRuntime::new();
    let spec = t.spec("shell-target", "echo ready; exec sleep 600");
    let id = spec.id.clone();
    let container = t.rt().launch(spec).await.unwrap();
    t.wait_for_log("shell-target", "stdout", "ready").await;
    let init_pid = container.init_pid.expect("a running container has an init");
    let task_ns = std::fs::read_link(format!("/proc/{init_pid}/ns/pid")).unwrap().to_string_lossy().into_owned();
    assert_ne!(task_ns, own_namespace("pid"), "the task has a pid namespace of its own");

    let mut exec = ExecSpec::new(CommandSpec::argv(["sh"]));
    exec.tty = Some(TtySize { rows: 24, cols: 80 });
    let mut process = t.rt().exec(&id, exec).await.unwrap();
    let master = process.pty.take().expect("a pty master");
    let mut input = master.try_clone().unwrap();
    let output = tokio::task::spawn_blocking(move || read_terminal(master));
    // Typed ahead: the terminal keeps the line until the shell reads it. The split keys keep
    // the terminal's echo of this line from looking like the shell's output.
    input
        .write_all(
            b"echo \"pi\"\"d=$$\" \"n\"\"s=$(readlink /proc/self/ns/pid)\" \"si\"\"d=$(cut -d' ' -f6 /proc/$$/stat)\" \
              \"pro\"\"cs=$(cat /proc/[0-9]*/comm | tr '\\n' ,)\"; exit 5\n",
        )
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), process.wait()).await.expect("the shell ends").unwrap();
    let output = output.await.unwrap();
    assert_eq!(status.code(), Some(5), "{status:?}; terminal: {output}");
    let pid: u32 = value(&output, "pid").and_then(|p| p.parse().ok()).expect(&output);
    assert!(pid > 1, "the shell is not the container's init: {output}");
    assert_eq!(value(&output, "sid"), Some(pid.to_string().as_str()), "the shell leads its session: {output}");
    assert_eq!(value(&output, "ns"), Some(task_ns.as_str()), "the shell is in the task's pid namespace: {output}");
    let procs = value(&output, "procs").unwrap_or_default();
    assert!(procs.split(',').any(|c| c == "sleep"), "the shell sees the task's processes: {output}");

    // Death by a signal is reported as the signal (shells and the CLI make it 128 + N).
    let mut process = t.rt().exec(&id, ExecSpec::new(CommandSpec::shell("kill -9 $$"))).await.unwrap();
    drop(process.stdin.take());
    let status = process.wait().await.unwrap();
    assert_eq!((status.signal(), status.shell_code()), (Some(9), 137), "{status:?}");
    t.rt().kill(&id, Duration::ZERO).await.unwrap();
}

/// Everything the terminal shows until the last process closes it (reads then fail with EIO).
fn read_terminal(mut master: std::fs::File) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = master.read(&mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).replace('\r', "")
}

/// The value of the first whitespace-separated `key=value` word in `output`.
fn value<'a>(output: &'a str, key: &str) -> Option<&'a str> {
    output.split_whitespace().find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}
