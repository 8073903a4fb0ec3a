//! `medos package bundle` and `medos package add`: packages for clusters without a network.
//! The bundle format and its checks are `packages::bundle`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use super::output;
use crate::packages::bundle;

#[derive(Debug, Args)]
pub struct BundleArgs {
    /// A package version directory in Universe's layout (package.json, config.json,
    /// marathon.json.mustache, resource.json), e.g. `universe/packages/H/httpd/0`.
    pub dir: PathBuf,
    /// The archive (`docker save` or OCI layout) of an image the package references,
    /// `NAME=FILE` (repeatable). Images not named here are looked for in DIR/images/.
    #[arg(long = "image", value_name = "NAME=FILE")]
    pub images: Vec<String>,
    /// Where to write the bundle (default: NAME-VERSION.bundle in the current directory).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// A bundle made by `medos package bundle`.
    pub bundle: PathBuf,
}

fn parse_images(specs: &[String]) -> Result<BTreeMap<String, PathBuf>> {
    let mut images = BTreeMap::new();
    for spec in specs {
        let Some((name, file)) = spec.split_once('=') else {
            bail!("--image {spec:?} must be NAME=FILE, such as medos/busybox:1=busybox.tar");
        };
        if name.is_empty() || file.is_empty() {
            bail!("--image {spec:?} must be NAME=FILE with both parts given");
        }
        if images.insert(name.to_string(), PathBuf::from(file)).is_some() {
            bail!("--image names {name:?} twice");
        }
    }
    Ok(images)
}

/// `medos package bundle DIR`.
pub fn run_bundle(args: BundleArgs, json: bool) -> Result<()> {
    let images = parse_images(&args.images)?;
    let package = bundle::read_package_dir(&args.dir)?;
    let out = args.output.unwrap_or_else(|| PathBuf::from(format!("{}-{}.bundle", package.name, package.version)));
    let work = super::scratch_dir("bundle");
    let result = bundle::build(&args.dir, &images, &out, &work);
    let _ = std::fs::remove_dir_all(&work);
    let manifest = result?;
    if json {
        output::json(&serde_json::json!({"bundle": out, "manifest": manifest}));
    } else {
        let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        eprintln!(
            "wrote {} ({} {}, {} image(s), {}); on the cluster: medos package add {}",
            out.display(),
            manifest.name,
            manifest.version,
            manifest.images.len(),
            indicatif::HumanBytes(size),
            out.display()
        );
    }
    Ok(())
}

/// `medos package add BUNDLE`: checks the whole bundle, uploads its images, then adds the
/// package to the cluster-local repository (`local`). Nothing is uploaded from a bundle that
/// fails a check; a failed upload can be rerun (blobs the cluster has are skipped).
pub async fn run_add(client: &crate::api::client::Client, args: AddArgs, json: bool) -> Result<()> {
    let work = super::scratch_dir("bundle-add");
    let result = add_bundle(client, &args.bundle, &work, json).await;
    let _ = std::fs::remove_dir_all(&work);
    let (opened, added) = result?;
    if json {
        output::json(&serde_json::json!({"package": added, "images": opened.manifest.images}));
    } else {
        eprintln!(
            "added {} {} to the cluster's local repository with {} image(s); install it with: medos package install {} --package-version {}",
            opened.package.name,
            opened.package.version,
            opened.images.len(),
            opened.package.name,
            opened.package.version
        );
    }
    Ok(())
}

/// Checks the bundle at `file` (unpacked under `work`), uploads its images, then adds its
/// package to the cluster's `local` repository; `quiet` hides progress bars. Also used by
/// `medos installer deploy` for `preload_packages`.
pub async fn add_bundle(
    client: &crate::api::client::Client,
    file: &std::path::Path,
    work: &std::path::Path,
    quiet: bool,
) -> Result<(bundle::Opened, serde_json::Value)> {
    let opened = {
        let (file, dir) = (file.to_path_buf(), work.join("unpacked"));
        tokio::task::spawn_blocking(move || bundle::open(&file, &dir)).await??
    };
    for (i, (name, archive)) in opened.images.iter().enumerate() {
        let staging = work.join(format!("staging-{i}"));
        super::image::load_archive(client, archive, Some(name.clone()), &staging, quiet)
            .await
            .with_context(|| format!("loading image {name} from the bundle"))?;
    }
    let added = client.package_add(&opened.package_json).await.context("adding the package to the local repository")?;
    Ok((opened, added))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_flags_are_name_equals_file() {
        let got = parse_images(&["medos/busybox:1=bb.tar".into(), "a=b=c".into()]).unwrap();
        assert_eq!(got["medos/busybox:1"], PathBuf::from("bb.tar"));
        assert_eq!(got["a"], PathBuf::from("b=c"));
        for bad in ["nofile", "=x.tar", "name="] {
            let err = parse_images(&[bad.to_string()]).unwrap_err();
            assert!(err.to_string().contains("NAME=FILE"), "{bad}: {err}");
        }
        assert!(parse_images(&["a=1".into(), "a=2".into()]).unwrap_err().to_string().contains("twice"));
    }
}
