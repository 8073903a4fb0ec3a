//! Exec: processes started inside a running container.

use std::io::Read;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::{TestRuntime, field};
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
