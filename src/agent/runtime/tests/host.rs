//! Host-command tasks (Mesos command tasks): isolation, exit statuses, limits, kills, users, logs.

use std::time::{Duration, Instant};

use super::support::{ChildGuard, TestRuntime, eventually, field, own_namespace};
use crate::agent::runtime::cgroup::CgroupVersion;
use crate::agent::runtime::spec::{CommandSpec, LogPolicy, Network, Resources};
use crate::agent::runtime::status::Termination;
use crate::agent::runtime::{ContainerRuntime, ContainerState, RuntimeError};

#[tokio::test]
async fn host_task_has_its_own_pid_uts_and_ipc_namespaces() {
    let t = TestRuntime::new();
    let mut spec = t.spec(
        "isolated",
        r#"echo "pid=$$"
echo "ppid=$PPID"
echo "hostname=$(hostname)"
for ns in pid uts ipc net mnt; do echo "$ns=$(readlink /proc/self/ns/$ns)"; done
echo "procs=$(ls /proc | grep -c '^[0-9]')"
echo "sandbox=$MESOS_SANDBOX"
echo "cwd=$(pwd)"
echo "task=$MESOS_TASK_ID""#,
    );
    spec.hostname = Some("isolated-task".into());
    let sandbox = spec.sandbox.clone();
    let id = spec.id.clone();
    t.rt().launch(spec).await.unwrap();
    let status = t.rt().wait(&id).await.unwrap();
    let out = t.read_log("isolated", "stdout");
    assert_eq!(status.code(), Some(0), "{status:?}\n{out}\n{}", t.read_log("isolated", "stderr"));

    // PID 1 is the container init; the shell is its child, with a small pid.
    assert_eq!(field(&out, "ppid"), Some("1"), "{out}");
    let pid: u32 = field(&out, "pid").unwrap().parse().unwrap();
    assert!(pid < 10, "{out}");
    assert_eq!(field(&out, "hostname"), Some("isolated-task"));
    for ns in ["pid", "uts", "ipc", "mnt"] {
        assert_ne!(field(&out, ns), Some(own_namespace(ns).as_str()), "{ns} namespace must be new");
    }
    assert_eq!(field(&out, "net"), Some(own_namespace("net").as_str()), "host network by default");
    // init, sh, the $(…) subshell, ls and grep: no host process is visible.
    let procs: u32 = field(&out, "procs").unwrap().parse().unwrap();
    assert!(procs <= 5, "{procs} processes visible:\n{out}");
    assert_eq!(field(&out, "sandbox"), Some(sandbox.to_str().unwrap()));
    assert_eq!(field(&out, "cwd"), Some(sandbox.to_str().unwrap()));
    assert_eq!(field(&out, "task"), Some("task-isolated"));
    assert!(!status.oom_killed && !status.kill_requested);
}

#[tokio::test]
async fn exit_codes_and_signals_propagate() {
    let t = TestRuntime::new();
    let cases: Vec<(&str, CommandSpec, Termination)> = vec![
        ("exit42", CommandSpec::shell("exit 42"), Termination::Exited { code: 42 }),
        (
            "argv",
            CommandSpec {
                shell: false,
                value: "/bin/sh".into(),
                arguments: vec!["sh".into(), "-c".into(), "exit 7".into()],
            },
            Termination::Exited { code: 7 },
        ),
        ("path-lookup", CommandSpec::argv(["true"]), Termination::Exited { code: 0 }),
        ("self-kill", CommandSpec::shell("kill -9 $$"), Termination::Signaled { signal: 9 }),
        ("term", CommandSpec::shell("kill -TERM $$; sleep 5"), Termination::Signaled { signal: 15 }),
    ];
    let mut launched = Vec::new();
    for (name, command, expect) in cases {
        let mut spec = t.spec(name, "unused");
        spec.command = command;
        launched.push((spec.id.clone(), expect));
        t.rt().launch(spec).await.unwrap();
    }
    for (id, expect) in launched {
        assert_eq!(t.rt().wait(&id).await.unwrap().termination, expect, "{id}");
    }

    // A command that cannot be executed fails the launch and leaves nothing behind.
    let mut spec = t.spec("missing", "unused");
    spec.command = CommandSpec::argv(["/nonexistent/medos-command"]);
    let err = t.rt().launch(spec).await.unwrap_err().to_string();
    assert!(err.contains("cannot be executed") && err.contains("/nonexistent/medos-command"), "{err}");
    assert!(!t.state_entries().contains(&"missing".to_string()));
}

#[tokio::test]
async fn memory_limit_oom_kill_is_reported() {
    let t = TestRuntime::new();
    let mut spec = t.spec("oom", "head -c 200M /dev/zero | tail");
    spec.resources.memory_bytes = Some(32 << 20);
    let id = spec.id.clone();
    t.rt().launch(spec).await.unwrap();
    let status = t.rt().wait(&id).await.unwrap();
    assert!(status.oom_killed, "{status:?}");
    assert!(!status.success());
    // `tail` was killed; the shell reports 128 + SIGKILL.
    assert_eq!(status.shell_code(), 137, "{status:?}");
}

#[tokio::test]
async fn limits_are_applied_to_the_task_cgroup() {
    let t = TestRuntime::new();
    // An inner shell starts more sleepers than pids.max allows and dies at the first failed
    // fork (as dash does); the task itself lives on. (The limit counts threads too; in these
    // tests the container init is the multi-threaded test harness.)
    let mut spec = t.spec("limits", "sh -c 'for i in $(seq 24); do sleep 30 & done'; echo survived; exec sleep 600");
    spec.resources = Resources { cpus: Some(0.5), memory_bytes: Some(64 << 20), pids_limit: Some(16) };
    let id = spec.id.clone();
    let container = t.rt().launch(spec).await.unwrap();
    t.wait_for_log("limits", "stdout", "survived").await;
    assert!(t.read_log("limits", "stderr").contains("fork"), "{}", t.read_log("limits", "stderr"));
    let handle = t.rt().inner.handle(&id).unwrap();
    let cgroup = &handle.plan.cgroup;
    let procs = cgroup.procs(t.rt().inner.cgroups.fs()).unwrap();
    assert!(procs.contains(&(container.task_pid.unwrap() as i32)), "task in its cgroup: {procs:?}");
    assert!(procs.len() <= 16, "pids.max holds: {procs:?}");
    let dir = |controller: &str| {
        cgroup.dirs.iter().find(|d| d.controller == controller || d.controller == "unified").unwrap().path.clone()
    };
    let read = |controller: &str, file: &str| std::fs::read_to_string(dir(controller).join(file)).unwrap();
    match t.rt().cgroup_version() {
        CgroupVersion::V1 => {
            assert_eq!(read("cpu", "cpu.shares").trim(), "512");
            assert_eq!(read("cpu", "cpu.cfs_quota_us").trim(), "50000");
            assert_eq!(read("memory", "memory.limit_in_bytes").trim(), (64u64 << 20).to_string());
            assert_eq!(read("pids", "pids.max").trim(), "16");
        }
        CgroupVersion::V2 => {
            assert_eq!(read("unified", "cpu.max").trim(), "50000 100000");
            assert_eq!(read("unified", "memory.max").trim(), (64u64 << 20).to_string());
            assert_eq!(read("unified", "pids.max").trim(), "16");
        }
    }
    let status = t.rt().kill(&id, Duration::ZERO).await.unwrap();
    assert_eq!(status.signal(), Some(9));
    t.rt().destroy(&id).await.unwrap();
    for d in &cgroup.dirs {
        assert!(!d.path.exists(), "{} removed", d.path.display());
    }
    assert!(t.state_entries().is_empty());
}

#[tokio::test]
async fn kill_grace_lets_a_trapping_task_exit_cleanly() {
    let t = TestRuntime::new();
    let spec = t.spec("graceful", "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.1; done");
    let id = spec.id.clone();
    t.rt().launch(spec).await.unwrap();
    t.wait_for_log("graceful", "stdout", "ready").await;
    let started = Instant::now();
    let status = t.rt().kill(&id, Duration::from_secs(20)).await.unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(status.kill_requested);
    assert!(started.elapsed() < Duration::from_secs(10), "exited within the grace period");
    assert!(t.read_log("graceful", "stdout").contains("got-term"));
    assert!(matches!(t.rt().state(&id).unwrap(), ContainerState::Exited(_)));
}

#[tokio::test]
async fn kill_grace_escalates_to_sigkill_for_a_task_ignoring_sigterm() {
    let t = TestRuntime::new();
    let spec = t.spec("stubborn", "trap '' TERM; echo ready; while true; do sleep 0.1; done");
    let id = spec.id.clone();
    t.rt().launch(spec).await.unwrap();
    t.wait_for_log("stubborn", "stdout", "ready").await;
    let grace = Duration::from_millis(500);
    let started = Instant::now();
    let status = t.rt().kill(&id, grace).await.unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert!(status.kill_requested);
    assert!(started.elapsed() >= grace, "SIGKILL only after the grace period");
    assert!(matches!(t.rt().signal(&id, nix::sys::signal::Signal::SIGTERM), Err(RuntimeError::NotRunning { .. })));
}

#[tokio::test]
async fn tasks_run_as_the_requested_user() {
    let t = TestRuntime::new();
    let mut spec = t.spec("as-nobody", "echo uid=$(id -u); echo gid=$(id -g); touch owned; stat -c owner=%U owned");
    spec.user = Some("nobody".into());
    let id = spec.id.clone();
    t.rt().launch(spec).await.unwrap();
    let status = t.rt().wait(&id).await.unwrap();
    let out = t.read_log("as-nobody", "stdout");
    assert_eq!(status.code(), Some(0), "{out}{}", t.read_log("as-nobody", "stderr"));
    assert_eq!(field(&out, "uid"), Some("65534"));
    assert_eq!(field(&out, "owner"), Some("nobody"));

    let mut spec = t.spec("ghost", "true");
    spec.user = Some("medos-no-such-user".into());
    let err = t.rt().launch(spec).await.unwrap_err();
    assert!(matches!(err, RuntimeError::UnknownUser { .. }), "{err}");
    assert!(err.to_string().contains("unknown user `medos-no-such-user`"), "{err}");
    assert_eq!(t.state_entries(), vec!["as-nobody".to_string()], "the failed launch left nothing");
}

#[tokio::test]
async fn logs_are_rotated_with_a_size_bound() {
    let t = TestRuntime::new();
    let mut spec =
        t.spec("chatty", r#"i=0; while [ $i -lt 3000 ]; do echo "line $i"; i=$((i+1)); done; echo err-line >&2"#);
    spec.logs = LogPolicy { max_file_bytes: 4096, max_files: 3 };
    let id = spec.id.clone();
    t.rt().launch(spec).await.unwrap();
    assert_eq!(t.rt().wait(&id).await.unwrap().code(), Some(0));

    let sandbox = t.dir.path().join("sandboxes/chatty");
    let size = |name: &str| std::fs::metadata(sandbox.join(name)).map(|m| m.len()).ok();
    for name in ["stdout", "stdout.1", "stdout.2"] {
        let size = size(name).unwrap_or_else(|| panic!("{name} exists"));
        assert!(size <= 4096, "{name} is {size} bytes");
    }
    assert_eq!(size("stdout.3"), None, "only 3 files are kept");
    let newest: String = ["stdout.2", "stdout.1", "stdout"].iter().map(|n| t.read_log("chatty", n)).collect();
    assert_eq!(newest.len(), 4096 * 2 + size("stdout").unwrap() as usize);
    assert!(newest.ends_with("line 2998\nline 2999\n"), "the newest output is kept");
    // The kept bytes are one contiguous tail of the output.
    let all: String = (0..3000).map(|i| format!("line {i}\n")).collect();
    assert!(all.ends_with(&newest));
    assert_eq!(t.read_log("chatty", "stderr"), "err-line\n");
}

#[tokio::test]
async fn network_join_puts_the_task_in_the_given_namespace() {
    let t = TestRuntime::new();
    let holder = ChildGuard(std::process::Command::new("unshare").args(["--net", "sleep", "600"]).spawn().unwrap());
    let netns = format!("/proc/{}/ns/net", holder.0.id());
    let host_net = own_namespace("net");
    eventually("the namespace holder to unshare", Duration::from_secs(10), || {
        std::fs::read_link(&netns).is_ok_and(|l| l.to_string_lossy() != host_net)
    })
    .await;
    let expected = std::fs::read_link(&netns).unwrap().to_string_lossy().into_owned();
    let mut spec =
        t.spec("netns", "echo net=$(readlink /proc/self/ns/net); echo devices=$(tail -n +3 /proc/net/dev | wc -l)");
    spec.network = Network::Join { path: netns.into() };
    let id = spec.id.clone();
    t.rt().launch(spec).await.unwrap();
    assert_eq!(t.rt().wait(&id).await.unwrap().code(), Some(0));
    let out = t.read_log("netns", "stdout");
    assert_eq!(field(&out, "net"), Some(expected.as_str()));
    assert_eq!(field(&out, "devices"), Some("1"), "only lo: {out}");
}
