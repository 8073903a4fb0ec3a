//! `medos image load|list|remove`: images without a registry.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

use super::config::Target;
use super::output;
use crate::api::images::RegisterImage;
use crate::image::{BlobStore, import_archive};

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Load an OCI image-layout or `docker save` tarball into the cluster.
    Load {
        file: std::path::PathBuf,
        /// Name the image (instead of the names in the archive).
        #[arg(long)]
        tag: Option<String>,
    },
    /// Images in the cluster.
    #[command(alias = "ls")]
    List,
    /// Forget an image (by name or digest).
    #[command(alias = "rm")]
    Remove { reference: String },
    /// Write a busybox image archive built from this host's static busybox (Debian's
    /// `busybox-static`), for clusters without a registry: `sh` and the core utilities, every
    /// other applet as `busybox APPLET`. Needs no cluster.
    BuildBusybox {
        /// The archive to write.
        file: std::path::PathBuf,
        /// The image's name.
        #[arg(long, default_value = "medos/busybox:1")]
        tag: String,
        /// `oci` (an OCI image layout) or `docker` (`docker save`).
        #[arg(long, default_value = "oci", value_parser = ["oci", "docker"])]
        format: String,
    },
}

/// `medos image build-busybox`.
fn build_busybox(file: &std::path::Path, tag: &str, format: &str, json: bool) -> Result<()> {
    use crate::image::testing::{ArchiveFormat, BUSYBOX, ImageSpec, busybox_image};
    if !std::path::Path::new(BUSYBOX).exists() {
        bail!("{BUSYBOX} is missing: install Debian's busybox-static (apt-get install busybox-static)");
    }
    let format = if format == "docker" { ArchiveFormat::DockerSave } else { ArchiveFormat::OciLayout };
    let built = busybox_image(file, &ImageSpec::new(tag, format))
        .with_context(|| format!("building the busybox image at {}", file.display()))?;
    if json {
        output::json(&serde_json::json!({"file": file, "names": built.names, "config": built.config.to_string()}));
    } else {
        eprintln!("wrote {} ({tag}); load it with: medos image load {}", file.display(), file.display());
    }
    Ok(())
}

fn bar(len: u64, message: String) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}

fn human(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

pub async fn run(cmd: ImageCommand, json: bool) -> Result<()> {
    if let ImageCommand::BuildBusybox { file, tag, format } = &cmd {
        return build_busybox(file, tag, format, json);
    }
    let client = Target::resolve()?.client()?;
    match cmd {
        ImageCommand::Load { file, tag } => {
            // Verify and unpack the archive locally first: nothing reaches the cluster unless
            // every digest checks out.
            let staging = super::scratch_dir("image");
            let result = load_archive(&client, &file, tag, &staging, json).await;
            let _ = std::fs::remove_dir_all(&staging);
            if json {
                output::json(&result?);
            } else {
                result?;
            }
        }
        ImageCommand::List => {
            let images = client.images().await?;
            if json {
                output::json(&images);
            } else {
                let rows = images
                    .iter()
                    .map(|i| {
                        vec![
                            if i.names.is_empty() { "<none>".into() } else { i.names.join(", ") },
                            i.manifest.chars().take(19).collect(),
                            i.layers.len().to_string(),
                            human(i.size),
                        ]
                    })
                    .collect();
                output::table(&["name", "manifest", "layers", "size"], rows);
            }
        }
        ImageCommand::BuildBusybox { .. } => {}
        ImageCommand::Remove { reference } => {
            let removed = client.remove_image(&reference).await?;
            if json {
                output::json(&removed);
            } else {
                eprintln!("removed {}", removed["removed"].as_str().unwrap_or(&reference));
            }
        }
    }
    Ok(())
}

/// Verifies an archive locally (in `staging`), uploads the blobs the cluster lacks, and
/// registers its images. `quiet` hides the progress bars.
pub async fn load_archive(
    client: &crate::api::client::Client,
    file: &std::path::Path,
    tag: Option<String>,
    staging: &std::path::Path,
    json: bool,
) -> Result<Vec<crate::core::ImageRecord>> {
    let size = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?.len();
    let store = Arc::new(BlobStore::new(staging)?);
    let verify = if json { ProgressBar::hidden() } else { bar(size, "verifying".into()) };
    let images = {
        let (store, file, verify) = (store.clone(), file.to_path_buf(), verify.clone());
        tokio::task::spawn_blocking(move || import_archive(&store, &file, &mut |p| verify.set_position(p.done)))
            .await??
    };
    verify.finish_and_clear();
    if images.is_empty() {
        bail!("{} holds no image", file.display());
    }
    if tag.is_some() && images.len() > 1 {
        bail!("{} holds {} images; --tag names exactly one", file.display(), images.len());
    }
    let mut loaded = Vec::new();
    for image in images {
        for digest in image.blobs() {
            let d = digest.to_string();
            if client.has_blob(&d).await? {
                continue;
            }
            let len = store.size(&digest)?;
            let upload = if json { ProgressBar::hidden() } else { bar(len, format!("uploading {}", digest.short())) };
            let b = upload.clone();
            client.upload_blob(&d, &store.path(&digest), move |sent| b.set_position(sent)).await?;
            upload.finish_and_clear();
        }
        if image.names.is_empty() && tag.is_none() {
            eprintln!("note: the archive names no image; refer to it by digest or load it with --tag NAME");
        }
        let record = client.register_image(&RegisterImage { image, tag: tag.clone() }).await?;
        if !json {
            eprintln!("loaded {} ({}, {})", record.names.join(", "), record.manifest, human(record.size));
        }
        loaded.push(record);
    }
    Ok(loaded)
}
