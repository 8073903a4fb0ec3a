//! genconf end to end in a temporary directory: config.yaml in, serve/ out.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;

const CONFIG: &str = "\
cluster_name: test
master_list: [10.77.0.1, 10.77.0.2, 10.77.0.3]
agent_list: [10.77.0.11, 10.77.0.12]
public_agent_list: [10.77.0.21]
ssh_user: root
resolvers: [10.77.0.53]
dns_forward_zones:
  corp.example: ['10.77.0.54']
preload_images: [images/busybox.tar]
";

const NOW: u64 = 1_800_000_000;

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    binary: PathBuf,
}

fn fixture(config: &str) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("genconf");
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::write(dir.join(CONFIG_FILE), config).unwrap();
    std::fs::write(dir.join("images/busybox.tar"), b"not really an image").unwrap();
    let binary = tmp.path().join("medos-binary");
    std::fs::write(&binary, b"\x7fELF pretend binary").unwrap();
    Fixture { dir, binary, _tmp: tmp }
}

fn options(f: &Fixture, force: bool) -> Options {
    Options { dir: f.dir.clone(), force, binary: f.binary.clone(), now_secs: NOW }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Checks `cert` chains to `ca` and is valid for `ip`, as a TLS client would.
fn verify(ca_pem: &str, cert_pem: &str, ip: &str) {
    use rustls::client::danger::ServerCertVerifier;
    let ca = pki::tls::certs_from_pem(ca_pem.as_bytes(), Path::new("ca")).unwrap();
    let cert = pki::tls::certs_from_pem(cert_pem.as_bytes(), Path::new("cert")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca[0].clone()).unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    let name = rustls_pki_types::ServerName::from(ip.parse::<std::net::IpAddr>().unwrap());
    verifier
        .verify_server_cert(&cert[0], &[], &name, &[], rustls_pki_types::UnixTime::now())
        .unwrap_or_else(|e| panic!("certificate for {ip} does not verify: {e}"));
}

#[test]
fn genconf_generates_a_verifiable_cluster_and_reruns_identically() {
    let f = fixture(CONFIG);
    let summary = run(&options(&f, false)).unwrap();
    assert!(summary.created_ca);
    assert_eq!(summary.nodes.len(), 6);
    let serve = f.dir.join(SERVE_DIR);
    assert_eq!(summary.serve, serve);

    // Shared files.
    assert_eq!(std::fs::read(serve.join("medos")).unwrap(), std::fs::read(&f.binary).unwrap());
    assert_eq!(mode(&serve.join("medos")), 0o755);
    assert_eq!(mode(&serve.join("install.sh")), 0o755);
    assert!(read(&serve.join("ip-detect")).contains("10.77.0.1"), "the default ip-detect asks for the first master");
    for unit in ["medos-master.service", "medos-agent.service", "medos-agent-public.service"] {
        assert!(read(&serve.join("units").join(unit)).contains("Type=notify"));
    }
    assert_eq!(read(&serve.join("preload/images/busybox.tar")), "not really an image");
    let cluster: ClusterFile = serde_json::from_str(&read(&serve.join("cluster.json"))).unwrap();
    assert_eq!(cluster.masters[2], "https://10.77.0.3:7443");
    assert_eq!(cluster.preload_images, ["preload/images/busybox.tar"]);
    assert_eq!(cluster.ca_fingerprint, summary.ca_fingerprint);

    // Secrets are 0600, in genconf/ and on the way to the hosts.
    let ca_pem = read(&f.dir.join("pki/ca.crt"));
    for secret in [
        f.dir.join("pki/ca.key"),
        f.dir.join("pki/master-10-77-0-1.key"),
        f.dir.join("secrets/admin-password"),
        f.dir.join("secrets/token-secret"),
        f.dir.join("secrets/join-token-agent"),
        serve.join("nodes/10.77.0.1/root/etc/medos/pki/ca.key"),
        serve.join("nodes/10.77.0.1/root/etc/medos/pki/master-10-77-0-1.key"),
        serve.join("nodes/10.77.0.1/root/etc/medos/secrets/admin-password"),
        serve.join("nodes/10.77.0.1/root/etc/medos/secrets/token-secret"),
        serve.join("nodes/10.77.0.11/root/etc/medos/pki/agent-10-77-0-11.key"),
        serve.join("join/agent.toml.in"),
    ] {
        assert_eq!(mode(&secret), 0o600, "{}", secret.display());
    }
    assert_eq!(mode(&f.dir.join("pki")), 0o700);
    // Agents' directories carry no CA key and no master secrets.
    assert!(!serve.join("nodes/10.77.0.11/root/etc/medos/pki/ca.key").exists());
    assert!(!serve.join("nodes/10.77.0.11/root/etc/medos/secrets").exists());

    // Every node's certificate verifies against the CA for its address, its key matches, and
    // its config loads with the real loaders.
    for node in &summary.nodes {
        let root = serve.join("nodes").join(&node.ip).join("root");
        assert_eq!(read(&serve.join("nodes").join(&node.ip).join("role")).trim(), node.role);
        let pki_dir = root.join("etc/medos/pki");
        let cert = read(&pki_dir.join(format!("{}.crt", node.name)));
        verify(&ca_pem, &cert, &node.ip);
        assert_eq!(read(&pki_dir.join("ca.crt")), ca_pem);
        let files = TlsFiles {
            ca: pki_dir.join("ca.crt"),
            cert: pki_dir.join(format!("{}.crt", node.name)),
            key: pki_dir.join(format!("{}.key", node.name)),
        };
        pki::install_crypto_provider();
        files.server_config().unwrap_or_else(|e| panic!("{}: {e}", node.name));
        let identity = pki::tls::peer_identity(&pki::tls::load_certs(&files.cert).unwrap()[0]).unwrap();
        assert_eq!(identity.name, node.name);
        if node.role == "master" {
            let config = MasterConfig::load(Some(&root.join("etc/medos/master.toml")), Default::default()).unwrap();
            assert_eq!(config.advertise, format!("https://{}:7443", node.ip));
            assert_eq!(config.initial_masters.len(), 3);
            assert_eq!(config.dns.resolvers, ["10.77.0.53"]);
            assert_eq!(config.dns.forward_zones["corp.example"], ["10.77.0.54"]);
            assert_eq!(config.tls.key, PathBuf::from(format!("/etc/medos/pki/{}.key", node.name)));
            assert_eq!(identity.role, Role::Master);
        } else {
            let config = AgentConfig::load(&root.join("etc/medos/agent.toml")).unwrap();
            assert_eq!(config.address, node.ip);
            assert_eq!(config.masters.len(), 3);
            assert_eq!(config.public, node.role == "agent_public");
            assert_eq!(identity.role, Role::Agent);
        }
    }

    // The join tokens verify against the secret the masters get, for this CA.
    let secret = read(&f.dir.join("secrets/token-secret")).trim().to_string();
    assert_eq!(read(&serve.join("nodes/10.77.0.2/root/etc/medos/secrets/token-secret")).trim(), secret);
    let template = read(&serve.join("join/agent-public.toml.in"));
    let filled = template.replace("@NAME@", "agent-10-77-0-99").replace("@ADDRESS@", "10.77.0.99");
    let path = f.dir.join("joined.toml");
    std::fs::write(&path, filled).unwrap();
    let joined = AgentConfig::load(&path).unwrap();
    assert!(joined.public);
    let token = JoinToken::parse(joined.join_token.as_deref().unwrap()).unwrap();
    assert_eq!(token.kind, JoinKind::Public);
    token.verify(&secret, &summary.ca_fingerprint, NOW + 3600).unwrap();

    // SHA256SUMS covers every file, in `sha256sum -c` form.
    let sums = read(&serve.join("SHA256SUMS"));
    assert_eq!(sums.lines().count(), summary.files);
    assert!(sums.lines().any(|l| l.ends_with("  medos")), "{sums}");
    if let Ok(out) =
        std::process::Command::new("sha256sum").args(["-c", "--quiet", "SHA256SUMS"]).current_dir(&serve).output()
    {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }

    // A rerun keeps everything: the same serve/, byte for byte.
    let again = run(&options(&f, false)).unwrap();
    assert!(!again.created_ca);
    assert_eq!(again.ca_fingerprint, summary.ca_fingerprint);
    assert_eq!(read(&serve.join("SHA256SUMS")), sums);
    assert!(!f.dir.join("serve.new").exists());

    // A new agent gets a certificate; the others keep theirs.
    let master_cert = read(&f.dir.join("pki/master-10-77-0-1.crt"));
    std::fs::write(
        f.dir.join(CONFIG_FILE),
        CONFIG.replace("[10.77.0.11, 10.77.0.12]", "[10.77.0.11, 10.77.0.12, 10.77.0.13]"),
    )
    .unwrap();
    let grown = run(&options(&f, false)).unwrap();
    assert_eq!(grown.nodes.len(), 7);
    assert_eq!(read(&f.dir.join("pki/master-10-77-0-1.crt")), master_cert);
    verify(&ca_pem, &read(&f.dir.join("pki/agent-10-77-0-13.crt")), "10.77.0.13");

    // --force starts over with a new CA and new secrets.
    let forced = run(&options(&f, true)).unwrap();
    assert!(forced.created_ca);
    assert_ne!(forced.ca_fingerprint, summary.ca_fingerprint);
    assert_ne!(read(&f.dir.join("secrets/token-secret")).trim(), secret);
    verify(&read(&f.dir.join("pki/ca.crt")), &read(&f.dir.join("pki/master-10-77-0-1.crt")), "10.77.0.1");
}

#[test]
fn an_own_ip_detect_is_shipped_and_checked() {
    let f = fixture(CONFIG);
    let script = f.dir.join(IP_DETECT_FILE);
    std::fs::write(&script, "#!/bin/sh\necho 10.77.0.1\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = run(&options(&f, false)).unwrap_err().to_string();
    assert!(err.contains("`ip-detect`") && err.contains("chmod +x"), "{err}");
    assert!(!f.dir.join(SERVE_DIR).exists(), "nothing is generated from a bad input");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    run(&options(&f, false)).unwrap();
    assert_eq!(read(&f.dir.join("serve/ip-detect")), "#!/bin/sh\necho 10.77.0.1\n");
}

#[test]
fn files_the_config_names_must_exist() {
    let f = fixture(&format!("{CONFIG}ssh_key_path: /nonexistent/id_ed25519\n"));
    std::fs::remove_file(f.dir.join("images/busybox.tar")).unwrap();
    let err = run(&options(&f, false)).unwrap_err().to_string();
    assert!(err.contains("`ssh_key_path`: /nonexistent/id_ed25519 is not a file"), "{err}");
    assert!(err.contains("`preload_images[0]`"), "{err}");
    // A missing config says where it was looked for.
    let empty = tempfile::tempdir().unwrap();
    let err = load_config(empty.path()).unwrap_err().to_string();
    assert!(err.contains("config.yaml") && err.contains("--genconf-dir"), "{err}");
    // YAML errors carry the file, line and column.
    let f = fixture("cluster_name: [unclosed\n");
    let err = run(&options(&f, false)).unwrap_err().to_string();
    assert!(err.contains("config.yaml is invalid") && err.contains("line "), "{err}");
}
