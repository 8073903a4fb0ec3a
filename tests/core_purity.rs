//! Enforces the core's architecture invariant: `src/core` does no I/O, reads no clock,
//! draws no randomness and depends on neither tokio nor openraft.

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "tokio",
    "openraft",
    "std::net",
    "std::fs",
    "std::io",
    "std::process",
    "std::thread",
    "std::env",
    "SystemTime",
    "Instant::now",
    "rand::",
    "reqwest",
    "sled",
    "println!",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn core_does_no_io_reads_no_clock_and_uses_no_runtime() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut files = Vec::new();
    rust_files(&core, &mut files);
    assert!(!files.is_empty(), "src/core has no Rust files");
    let mut violations = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                if code.contains(word) {
                    violations.push(format!("{}:{}: uses {word}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(violations.is_empty(), "the pure core must stay pure:\n{}", violations.join("\n"));
}
