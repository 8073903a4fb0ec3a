//! Keeps this master's blob store equal to what the images in the state need: fetches
//! missing blobs from peers (a master that was down or new), and deletes blobs no image uses
//! any more (after a grace period, so blobs uploaded for an image not yet registered stay).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;

use super::node::Master;
use crate::image::Digest;

/// Unreferenced blobs younger than this are kept (an upload may still be registering).
const ORPHAN_GRACE: Duration = Duration::from_secs(15 * 60);
const PERIOD: Duration = Duration::from_secs(5);

pub async fn run(master: Arc<Master>) {
    loop {
        tokio::time::sleep(PERIOD).await;
        if let Err(e) = sync_once(&master).await {
            tracing::warn!(error = %e, "blob sync: will retry");
        }
    }
}

fn needed(master: &Master) -> HashSet<Digest> {
    let state = master.state.read().expect("state lock");
    state.images.values().flat_map(|i| i.blobs()).filter_map(|d| Digest::parse(&d, "digest").ok()).collect()
}

/// One pass: fetch what is missing, collect what is unused. Returns how many blobs it fetched.
pub async fn sync_once(master: &Master) -> Result<usize, String> {
    let needed = needed(master);
    let mut fetched = 0;
    for digest in needed.iter().filter(|d| !master.blobs.has(d)) {
        fetch(master, digest).await?;
        fetched += 1;
    }
    let store = master.blobs.clone();
    tokio::task::spawn_blocking(move || -> Result<(), String> {
        for blob in store.list().map_err(|e| e.to_string())? {
            if needed.contains(&blob.digest) {
                continue;
            }
            let age = std::fs::metadata(store.path(&blob.digest))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .unwrap_or_default();
            if age > ORPHAN_GRACE {
                tracing::info!(digest = %blob.digest, "deleting a blob no image uses");
                store.remove(&blob.digest).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| e.to_string())??;
    Ok(fetched)
}

async fn fetch(master: &Master, digest: &Digest) -> Result<(), String> {
    let mut last = String::from("no other master");
    for peer in master.members().into_iter().filter(|p| p.id != master.id) {
        let resp = match master.peers.get(format!("{}/internal/v1/blobs/{digest}", peer.api)).send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                last = format!("{} answered {}", peer.name, r.status());
                continue;
            }
            Err(e) => {
                last = format!("{}: {e}", peer.name);
                continue;
            }
        };
        let stream = resp.bytes_stream().map_err(std::io::Error::other);
        let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
        let store = master.blobs.clone();
        let d = *digest;
        match tokio::task::spawn_blocking(move || store.put_verified(&d, reader)).await.map_err(|e| e.to_string())? {
            Ok(size) => {
                tracing::info!(%digest, size, from = %peer.name, "fetched a missing blob");
                return Ok(());
            }
            Err(e) => last = format!("{}: {e}", peer.name),
        }
    }
    Err(format!("cannot fetch {digest}: {last}"))
}
