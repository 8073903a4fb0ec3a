//! Image tasks: an overlay root built from busybox layers, with the Mesos sandbox mounted in.

use super::support::{TestRuntime, busybox_image, field, own_namespace};
use crate::agent::runtime::spec::RootfsSpec;
use crate::agent::runtime::{ContainerRuntime, RuntimeError};

#[tokio::test]
async fn image_task_runs_in_an_overlay_root_with_a_minimal_dev() {
    let t = TestRuntime::new();
    let image = busybox_image(&t.dir.path().join("image"));
    let resolv = t.dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 198.51.100.53 # medos-test\n").unwrap();
    let rootfs = |name: &str| RootfsSpec {
        layers: image.layers.clone(),
        upper_dir: t.dir.path().join(format!("upper-{name}")),
        work_dir: t.dir.path().join(format!("work-{name}")),
    };

    let mut spec = t.spec(
        "image",
        r#"echo "root=$(ls / | tr '\n' ' ')"
echo "layer=$(cat /etc/layer)"
echo "resolv=$(cat /etc/resolv.conf)"
echo "hostname=$(hostname)"
echo "devices=$(ls /dev | tr '\n' ' ')"
test -c /dev/null && echo "devnull=char"
echo "procs=$(ls /proc | grep -c '^[0-9]')"
echo "pidns=$(readlink /proc/self/ns/pid)"
echo "cwd=$(pwd) sandbox=$MESOS_SANDBOX"
echo written > /created-by-task
echo hello > "$MESOS_SANDBOX/from-task"
echo "resolv-write=$(echo x 2>/dev/null > /etc/resolv.conf && echo allowed || echo refused)""#,
    );
    spec.rootfs = Some(rootfs("image"));
    spec.hostname = Some("image-host".into());
    spec.resolv_conf = resolv.clone();
    let sandbox = spec.sandbox.clone();
    let id = spec.id.clone();
    t.rt().launch(spec).await.unwrap();
    let status = t.rt().wait(&id).await.unwrap();
    let out = t.read_log("image", "stdout");
    assert_eq!(status.code(), Some(0), "{status:?}\n{out}\n{}", t.read_log("image", "stderr"));

    let root: Vec<&str> = field(&out, "root").unwrap().split_whitespace().collect();
    for expected in ["bin", "dev", "etc", "mnt", "proc", "sys"] {
        assert!(root.contains(&expected), "/{expected} in {root:?}");
    }
    for host_only in ["usr", "home", "var", "work"] {
        assert!(!root.contains(&host_only), "the host's /{host_only} leaked into {root:?}");
    }
    assert_eq!(field(&out, "layer"), Some("top"), "the top layer wins");
    assert_eq!(field(&out, "resolv"), Some("nameserver 198.51.100.53 # medos-test"));
    assert_eq!(field(&out, "resolv-write"), Some("refused"), "resolv.conf is read-only");
    assert_eq!(field(&out, "hostname"), Some("image-host"));
    let devices: Vec<&str> = field(&out, "devices").unwrap().split_whitespace().collect();
    for dev in ["null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx", "fd", "mqueue"] {
        assert!(devices.contains(&dev), "/dev/{dev} in {devices:?}");
    }
    assert_eq!(field(&out, "devnull"), Some("char"));
    let procs: u32 = field(&out, "procs").unwrap().parse().unwrap();
    assert!(procs <= 5, "init, sh, subshell, ls, grep: {out}");
    assert_ne!(field(&out, "pidns"), Some(own_namespace("pid").as_str()));
    assert_eq!(field(&out, "cwd"), Some("/mnt/mesos/sandbox sandbox=/mnt/mesos/sandbox"));

    // Writes land in the task's upper dir, never in the shared layers; the sandbox is the host's.
    let upper = t.dir.path().join("upper-image");
    assert_eq!(std::fs::read_to_string(upper.join("created-by-task")).unwrap(), "written\n");
    assert!(image.layers.iter().all(|l| !l.join("created-by-task").exists()));
    assert_eq!(std::fs::read_to_string(sandbox.join("from-task")).unwrap(), "hello\n");
    assert_eq!(std::fs::read_to_string(resolv).unwrap(), "nameserver 198.51.100.53 # medos-test\n");
    // No container mount is visible on the host.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(t.dir.path().to_str().unwrap()), "container mounts leaked to the host");

    // Users come from the image's /etc/passwd.
    let mut spec = t.spec("image-user", "id -u");
    spec.rootfs = Some(rootfs("image-user"));
    spec.user = Some("nobody".into());
    let id = spec.id.clone();
    t.rt().launch(spec).await.unwrap();
    assert_eq!(t.rt().wait(&id).await.unwrap().code(), Some(0));
    assert_eq!(t.read_log("image-user", "stdout"), "65534\n");

    // `daemon` exists on the host but not in the image.
    let mut spec = t.spec("image-unknown-user", "true");
    spec.rootfs = Some(rootfs("image-unknown-user"));
    spec.user = Some("daemon".into());
    let err = t.rt().launch(spec).await.unwrap_err();
    assert!(matches!(err, RuntimeError::UnknownUser { .. }), "{err}");
    assert!(err.to_string().contains("layer1/etc/passwd") || err.to_string().contains("layer0/etc/passwd"), "{err}");
}
