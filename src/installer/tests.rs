//! The shipped units and scripts: `systemd-analyze verify`, shellcheck, and `install.sh`
//! run for real against a staged root with a recording `systemctl`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::genconf::{self, Options};

fn have(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
}

fn write_exec(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn units_are_clean_under_systemd_analyze_verify() {
    for (name, text) in super::UNITS {
        assert!(text.contains("Type=notify") && text.contains("Restart=always"), "{name}");
        assert!(text.contains("After=network-online.target") && text.contains("Wants=network-online.target"), "{name}");
        assert!(text.contains("LimitNOFILE=") && text.contains("WatchdogSec="), "{name}");
        assert!(text.contains(&format!("ExecStart={} ", super::host::BIN)), "{name}");
        if name.contains("agent") {
            assert!(text.contains("KillMode=process") && text.contains("Delegate=yes"), "{name}");
        }
    }
    if !have("systemd-analyze") || !Path::new("/lib/systemd/system/sysinit.target").exists() {
        eprintln!("systemd-analyze (or systemd's own units) missing: skipping the verify run");
        return;
    }
    // A staged root: systemd's units, ours, and an executable where ExecStart points.
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("usr/lib/systemd")).unwrap();
    let copy = Command::new("cp").arg("-a").arg("/lib/systemd/system").arg(r.join("usr/lib/systemd/system")).status();
    assert!(copy.unwrap().success());
    write_exec(&r.join(super::host::BIN.trim_start_matches('/')), "#!/bin/sh\n");
    for (name, text) in super::UNITS {
        let path = r.join("etc/systemd/system").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
    }
    for (name, _) in super::UNITS {
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", r.display()))
            .arg(name)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.trim().is_empty(), "{name}: {stderr}");
    }
    // The check can fail: without the binary, verify refuses the unit.
    std::fs::remove_file(r.join(super::host::BIN.trim_start_matches('/'))).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", r.display()))
        .arg("medos-master.service")
        .output()
        .unwrap();
    assert!(!out.status.success(), "verify accepted a unit whose ExecStart is missing");
}

#[test]
fn shipped_scripts_are_shellcheck_clean() {
    if !have("shellcheck") {
        eprintln!("shellcheck missing: skipping (CI installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let files = [("install.sh", super::INSTALL_SH), ("ip-detect", super::IP_DETECT_DEFAULT)];
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("shellcheck")
        .arg(dir.path().join("install.sh"))
        .arg(dir.path().join("ip-detect"))
        .args(
            ["packaging/build.sh", "packaging/deb/postinst", "packaging/deb/prerm", "packaging/deb/postrm"]
                .map(|p| repo.join(p)),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

struct Stage {
    _tmp: tempfile::TempDir,
    serve: PathBuf,
    root: PathBuf,
    calls: PathBuf,
    systemctl: PathBuf,
}

/// genconf for 1 master, 1 agent, 1 public agent with an ip-detect that prints `$TEST_IP`, and
/// a `systemctl` that records its arguments (and knows no enabled units).
fn stage() -> Stage {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("genconf");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.yaml"),
        "cluster_name: t\nmaster_list: [10.77.0.1]\nagent_list: [10.77.0.11]\npublic_agent_list: [10.77.0.21]\nresolvers: [10.77.0.53]\n",
    )
    .unwrap();
    write_exec(&dir.join("ip-detect"), "#!/bin/sh\necho \"$TEST_IP\"\n");
    let binary = tmp.path().join("medos");
    write_exec(&binary, "#!/bin/sh\necho medos\n");
    genconf::run(&Options { dir: dir.clone(), force: false, binary, now_secs: 1_800_000_000 }).unwrap();
    let calls = tmp.path().join("systemctl.log");
    let systemctl = tmp.path().join("systemctl");
    write_exec(
        &systemctl,
        &format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\ncase \"$1\" in is-enabled) exit 1 ;; esac\nexit 0\n",
            calls.display()
        ),
    );
    Stage { serve: dir.join("serve"), root: tmp.path().join("root"), calls, systemctl, _tmp: tmp }
}

impl Stage {
    fn install(&self, role: &str, ip: &str) -> (bool, String) {
        let out = Command::new("bash")
            .arg(self.serve.join("install.sh"))
            .arg(role)
            .env("MEDOS_INSTALL_ROOT", &self.root)
            .env("MEDOS_SYSTEMCTL", &self.systemctl)
            .env("TEST_IP", ip)
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// systemctl calls since the last look, without the is-enabled probes.
    fn take_calls(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.calls).unwrap_or_default();
        std::fs::write(&self.calls, "").unwrap();
        text.lines().filter(|l| !l.starts_with("is-enabled")).map(String::from).collect()
    }

    fn mode(&self, path: &str) -> u32 {
        std::fs::metadata(self.root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}")).permissions().mode() & 0o777
    }
}

#[test]
fn install_sh_installs_a_master_idempotently() {
    let s = stage();
    let (ok, log) = s.install("master", "10.77.0.1");
    assert!(ok, "{log}");
    assert_eq!(s.mode("opt/medos/bin/medos"), 0o755);
    assert_eq!(std::fs::read_link(s.root.join("usr/local/bin/medos")).unwrap(), Path::new(super::host::BIN));
    assert_eq!(s.mode("etc/medos/master.toml"), 0o644);
    assert_eq!(s.mode("etc/medos/pki/ca.crt"), 0o644);
    assert_eq!(s.mode("etc/medos/pki/master-10-77-0-1.key"), 0o600);
    assert_eq!(s.mode("etc/medos/pki/ca.key"), 0o600);
    assert_eq!(s.mode("etc/medos/secrets/admin-password"), 0o600);
    assert_eq!(s.mode("etc/medos/secrets"), 0o700);
    assert_eq!(s.mode("etc/systemd/system/medos-master.service"), 0o644);
    let config = crate::master::MasterConfig::load(Some(&s.root.join("etc/medos/master.toml")), Default::default());
    assert_eq!(config.unwrap().advertise, "https://10.77.0.1:7443");
    assert_eq!(
        s.take_calls(),
        [
            "daemon-reload",
            "enable --quiet medos-master.service",
            "restart medos-master.service",
            "show -p StatusText --value medos-master.service"
        ]
    );

    // Again: nothing changes, nothing restarts.
    let (ok, log) = s.install("master", "10.77.0.1");
    assert!(ok && log.contains("nothing changed"), "{log}");
    assert_eq!(
        s.take_calls(),
        [
            "enable --quiet medos-master.service",
            "start medos-master.service",
            "show -p StatusText --value medos-master.service"
        ]
    );

    // A changed file on the host is put back, and the unit restarted.
    std::fs::write(s.root.join("etc/medos/master.toml"), "edited").unwrap();
    let (ok, log) = s.install("master", "10.77.0.1");
    assert!(ok && log.contains("installed /etc/medos/master.toml"), "{log}");
    assert!(s.take_calls().contains(&"restart medos-master.service".to_string()));
}

#[test]
fn install_sh_refuses_bad_copies_and_wrong_roles() {
    let s = stage();
    // The wrong role for a listed host.
    let (ok, log) = s.install("agent", "10.77.0.1");
    assert!(!ok && log.contains("config.yaml lists 10.77.0.1 as master, not agent"), "{log}");
    // A master that is not listed.
    let (ok, log) = s.install("master", "10.77.0.9");
    assert!(!ok && log.contains("10.77.0.9 (from ip-detect) is not in master_list"), "{log}");
    // ip-detect printing garbage.
    let (ok, log) = s.install("agent", "not an address");
    assert!(!ok && log.contains("ip-detect must print"), "{log}");
    // Usage.
    let (ok, log) = s.install("worker", "10.77.0.11");
    assert!(!ok && log.contains("usage: bash install.sh master|agent|agent_public"), "{log}");
    // A damaged copy is refused before anything is installed.
    std::fs::write(s.serve.join("nodes/10.77.0.11/root/etc/medos/agent.toml"), "tampered").unwrap();
    let (ok, log) = s.install("agent", "10.77.0.11");
    assert!(!ok && log.contains("do not match SHA256SUMS"), "{log}");
    assert!(!s.root.join("opt").exists(), "nothing was installed");
    assert!(s.take_calls().is_empty());
}

#[test]
fn install_sh_sets_up_listed_and_unlisted_agents() {
    let s = stage();
    // Only the shared files and this host's directory are needed.
    std::fs::remove_dir_all(s.serve.join("nodes/10.77.0.1")).unwrap();
    let (ok, log) = s.install("agent_public", "10.77.0.21");
    assert!(ok, "{log}");
    let config = crate::agent::AgentConfig::load(&s.root.join("etc/medos/agent.toml")).unwrap();
    assert!(config.public);
    assert_eq!(s.mode("etc/medos/pki/public-10-77-0-21.key"), 0o600);
    assert!(!s.root.join("etc/medos/pki/ca.key").exists(), "agents never get the CA key");
    assert!(s.take_calls().contains(&"restart medos-agent-public.service".to_string()));

    // A host that is not listed joins with the token.
    let s = stage();
    let (ok, log) = s.install("agent", "10.77.0.99");
    assert!(ok && log.contains("joins with a token as agent-10-77-0-99"), "{log}");
    assert_eq!(s.mode("etc/medos/agent.toml"), 0o600);
    let config = crate::agent::AgentConfig::load(&s.root.join("etc/medos/agent.toml")).unwrap();
    assert_eq!((config.name.as_str(), config.address.as_str()), ("agent-10-77-0-99", "10.77.0.99"));
    assert!(config.join_token.is_some() && !config.public);
    assert!(s.take_calls().contains(&"restart medos-agent.service".to_string()));
    let (ok, log) = s.install("agent", "10.77.0.99");
    assert!(ok && log.contains("nothing changed"), "{log}");
}

#[test]
fn packaging_builds_a_tarball_and_a_deb() {
    if !have("dpkg-deb") {
        eprintln!("dpkg-deb missing: skipping");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let binary = tmp.path().join("medos");
    write_exec(&binary, "#!/bin/sh\necho medos\n");
    let out_dir = tmp.path().join("dist");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(repo.join("packaging/build.sh"))
        .arg(&out_dir)
        .env("MEDOS_BIN", &binary)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let version = env!("CARGO_PKG_VERSION");
    let names: Vec<String> =
        std::fs::read_dir(&out_dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    let deb = names.iter().find(|n| n.ends_with(".deb")).unwrap_or_else(|| panic!("no .deb in {names:?}"));
    let tarball = names.iter().find(|n| n.ends_with(".tar.gz")).unwrap_or_else(|| panic!("no tarball in {names:?}"));
    assert!(deb.starts_with(&format!("medos_{version}_")), "{deb}");
    let field = |name: &str| {
        let out = Command::new("dpkg-deb").arg("-f").arg(out_dir.join(deb)).arg(name).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(field("Package"), "medos");
    assert_eq!(field("Version"), version);
    // The package's files: binary, link, units (as shipped), installer, one conffile.
    let unpacked = tmp.path().join("deb");
    assert!(Command::new("dpkg-deb").arg("-R").arg(out_dir.join(deb)).arg(&unpacked).status().unwrap().success());
    assert!(unpacked.join("opt/medos/bin/medos").is_file());
    assert_eq!(std::fs::read_link(unpacked.join("usr/bin/medos")).unwrap(), Path::new(super::host::BIN));
    for (name, text) in super::UNITS {
        assert_eq!(std::fs::read_to_string(unpacked.join("lib/systemd/system").join(name)).unwrap(), *text);
    }
    assert_eq!(
        std::fs::read_to_string(unpacked.join("usr/share/medos/installer/install.sh")).unwrap(),
        super::INSTALL_SH
    );
    assert_eq!(std::fs::read_to_string(unpacked.join("DEBIAN/conffiles")).unwrap(), "/etc/default/medos\n");
    let postinst = std::fs::read_to_string(unpacked.join("DEBIAN/postinst")).unwrap();
    assert!(!postinst.contains("systemctl start") && !postinst.contains("systemctl enable"), "{postinst}");
    // The tarball checks itself.
    assert!(
        Command::new("tar").arg("xzf").arg(out_dir.join(tarball)).arg("-C").arg(tmp.path()).status().unwrap().success()
    );
    let tree = tmp.path().join(tarball.trim_end_matches(".tar.gz"));
    let check = Command::new("sha256sum").args(["-c", "--quiet", "SHA256SUMS"]).current_dir(&tree).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    for file in ["bin/medos", "installer/install.sh", "installer/ip-detect", "systemd/medos-master.service"] {
        assert!(tree.join(file).is_file(), "{file}");
    }
    let sums = std::fs::read_to_string(out_dir.join("SHA256SUMS")).unwrap();
    assert!(sums.contains(deb.as_str()) && sums.contains(tarball.as_str()), "{sums}");
}
