//! openraft's own storage test suite, run against medos's sled-backed store: the same
//! checks every openraft storage implementation must pass.

use std::sync::Arc;

use medos::master::engine::{Engine, SledEngine};
use medos::master::store::{LogStore, StateMachineStore};
use medos::master::types::{NodeId, TypeConfig};
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for SledBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine: Arc<dyn Engine> = Arc::new(SledEngine::open(dir.path(), 8 << 20).expect("open sled"));
        let sm = StateMachineStore::open(engine.clone())?;
        Ok((dir, LogStore::new(engine), sm))
    }
}

#[test]
fn sled_store_passes_the_openraft_storage_suite() {
    Suite::test_all(SledBuilder).unwrap();
}
