//! `containerbench`: the medos row of benchmark B3 in `benches/containers.sh`.
//!
//! Drives the agent's container runtime ([`LinuxRuntime`]) directly, the way the agent does for
//! a task with an image, on the same busybox root file system that runc and crun run: per run
//! it launches a container whose root is an overlayfs with that directory as its only (read-only)
//! layer and whose command is `/bin/true` (argv, no shell), waits for the task to end, and
//! destroys the container (cgroups and state removed). The wall time of the three calls is the
//! counterpart of `crun run --bundle B id` (create, start, wait) followed by `crun delete`.
//!
//! The runtime's helper processes are the real `medos` binary (`--medos`), re-executed exactly
//! as the agent re-executes itself (`medos __container-init …`), so start-up costs of the
//! binary are part of the figure. Cgroups: the agent's defaults (cpu, memory and pids limits
//! from `--cpus`/`--mem-mb`, parent `medos-bench-PID`); network: the host's (the Mesos default).
//!
//! `run` appends one JSON line per timed run to `--out` (`total_ms`, `launch_ms` until the task
//! runs, `wait_ms`, `destroy_ms`) and prints a summary line (median, p90, p99) on stdout.
//! `image PATH` writes the busybox test image of [`medos::image::testing`] (the same static
//! busybox) as a `docker save` archive, for the end-to-end rows through `medos image load`.
//!
//! Example: `cargo run --release --example containerbench -- run --medos target/release/medos \
//!   --rootfs /tmp/bundle/rootfs --runs 100 --out /tmp/medos.jsonl`

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use medos::agent::runtime::{
    CgroupConfig, CommandSpec, ContainerId, ContainerRuntime, ContainerSpec, InitProgram, LinuxRuntime, Resources,
    RootfsSpec, RuntimeConfig,
};
use medos::image::testing::{ArchiveFormat, ImageSpec, busybox_image};

#[derive(Debug, Parser)]
#[command(about = "Container start benchmark of the medos runtime (benches/containers.sh, B3)")]
enum Cli {
    /// Launch, wait for and destroy containers, timing each run.
    Run(RunArgs),
    /// Write the busybox test image as a `docker save` archive named `busybox:bench`.
    Image {
        path: PathBuf,
        #[arg(long, default_value = "busybox:bench")]
        name: String,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The medos binary whose `__container-init` stages the runtime runs.
    #[arg(long)]
    medos: PathBuf,
    /// The root file system to run (used as the single read-only overlay layer).
    #[arg(long)]
    rootfs: PathBuf,
    /// The command to run inside, argv (no shell).
    #[arg(long, default_value = "/bin/true")]
    command: String,
    #[arg(long, default_value_t = 100)]
    runs: usize,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Work directory for the runtime state, sandboxes and upper dirs (default: a temp dir).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Per-run JSON lines are appended here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Pause between runs (untimed), to time launches that do not follow one another closely.
    #[arg(long, default_value_t = 0)]
    pause_ms: u64,
    #[arg(long, default_value_t = 0.1)]
    cpus: f64,
    #[arg(long, default_value_t = 32)]
    mem_mb: u64,
}

fn main() -> std::process::ExitCode {
    // Runtime stages, when `--medos` names this binary (for profiling without the CLI).
    if let Some(args) = medos::agent::runtime::init::stage_args(std::env::args_os()) {
        return medos::agent::runtime::init::run(&args);
    }
    match bench() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn bench() -> Result<()> {
    let args = match Cli::parse() {
        Cli::Run(args) => args,
        Cli::Image { path, name } => {
            let spec = ImageSpec::new(&name, ArchiveFormat::DockerSave);
            busybox_image(&path, &spec).with_context(|| format!("write the busybox image to {}", path.display()))?;
            return Ok(());
        }
    };
    medos::process::init_logging(false, 0);
    if !nix::unistd::geteuid().is_root() {
        bail!("the container runtime needs root (namespaces, cgroups, mounts)");
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    rt.block_on(run(args))
}

#[derive(Default)]
struct Samples {
    total: Vec<f64>,
    launch: Vec<f64>,
    wait: Vec<f64>,
    destroy: Vec<f64>,
}

async fn run(cli: RunArgs) -> Result<()> {
    let medos = cli.medos.canonicalize().with_context(|| format!("medos binary {}", cli.medos.display()))?;
    let rootfs = cli.rootfs.canonicalize().with_context(|| format!("root file system {}", cli.rootfs.display()))?;
    let temp;
    let work = match &cli.work {
        Some(w) => w.clone(),
        None => {
            temp = tempfile::tempdir().context("temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let mut config = RuntimeConfig::new(work.join("state"));
    config.init = InitProgram::Subcommand { path: medos };
    config.cgroups = CgroupConfig { parent: format!("medos-bench-{}", std::process::id()), ..Default::default() };
    // Reap exited shims, as the agent must where PID 1 does not (containers, some VMs).
    config.subreaper = true;
    config.launch_timeout = Duration::from_secs(30);
    let runtime = LinuxRuntime::new(config.clone()).context("container runtime")?;

    let mut out = match &cli.out {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("open {}", path.display()))?,
        ),
        None => None,
    };
    let mut samples = Samples::default();
    for i in 0..cli.warmup + cli.runs {
        let id = ContainerId::new(format!("bench-{i}"))?;
        let base = work.join("tasks").join(id.as_str());
        let sandbox = base.join("sandbox");
        std::fs::create_dir_all(&sandbox).with_context(|| format!("create {}", sandbox.display()))?;
        let mut spec =
            ContainerSpec::new(id.clone(), format!("bench.{i}"), CommandSpec::argv([&cli.command]), &sandbox);
        spec.rootfs = Some(RootfsSpec {
            layers: vec![rootfs.clone()],
            upper_dir: base.join("upper"),
            work_dir: base.join("work"),
        });
        spec.resources =
            Resources { cpus: Some(cli.cpus), memory_bytes: Some(cli.mem_mb << 20), pids_limit: Some(1024) };

        if cli.pause_ms > 0 {
            tokio::time::sleep(Duration::from_millis(cli.pause_ms)).await;
        }
        let t0 = Instant::now();
        let timed = async {
            runtime.launch(spec).await.with_context(|| format!("launch run {i}"))?;
            let t1 = Instant::now();
            let status = runtime.wait(&id).await.with_context(|| format!("wait run {i}"))?;
            let t2 = Instant::now();
            runtime.destroy(&id).await.with_context(|| format!("destroy run {i}"))?;
            anyhow::Ok((t1, t2, Instant::now(), status))
        };
        let (t1, t2, t3, status) = match timed.await {
            Ok(times) => times,
            Err(e) => {
                // Leave nothing behind: the container (if it started) and the cgroup parent.
                let _ = runtime.destroy(&id).await;
                drop(runtime);
                remove_cgroup_parent(&config);
                return Err(e);
            }
        };
        if !status.success() {
            bail!("run {i}: `{}` did not succeed: {status:?}", cli.command);
        }
        std::fs::remove_dir_all(&base).with_context(|| format!("remove {}", base.display()))?;
        if i < cli.warmup {
            continue;
        }
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
        let (total, launch, wait, destroy) = (ms(t0, t3), ms(t0, t1), ms(t1, t2), ms(t2, t3));
        samples.total.push(total);
        samples.launch.push(launch);
        samples.wait.push(wait);
        samples.destroy.push(destroy);
        if let Some(out) = &mut out {
            writeln!(
                out,
                "{}",
                serde_json::json!({"run": i - cli.warmup, "total_ms": total, "launch_ms": launch, "wait_ms": wait, "destroy_ms": destroy})
            )?;
        }
    }
    drop(runtime);
    remove_cgroup_parent(&config);
    let summary = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        serde_json::json!({"median": percentile(v, 0.5), "p90": percentile(v, 0.9), "p99": percentile(v, 0.99)})
    };
    println!(
        "{}",
        serde_json::json!({
            "runs": cli.runs,
            "total_ms": summary(&mut samples.total),
            "launch_ms": summary(&mut samples.launch),
            "wait_ms": summary(&mut samples.wait),
            "destroy_ms": summary(&mut samples.destroy),
        })
    );
    Ok(())
}

fn remove_cgroup_parent(config: &RuntimeConfig) {
    if let Ok(cgroups) = medos::agent::runtime::cgroup::Cgroups::detect(&config.cgroups)
        && let Err(e) = cgroups.remove_parent()
    {
        eprintln!("warning: cannot remove the benchmark's cgroup parent: {e}");
    }
}

/// Nearest-rank percentile of sorted values (the median of an even count is the mean of the two
/// middle values, like the script's `stats`).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    if p == 0.5 {
        let n = sorted.len();
        return if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 };
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
