//! Raft RPCs between masters: JSON over the masters' HTTPS port with mutual TLS.
//!
//! A connection failure maps to `RPCError::Unreachable` so openraft backs off instead of
//! retrying a dead peer in a tight loop. [`Faults`] lets in-process tests cut nodes apart.

use std::collections::HashSet;
use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::types::{MasterNode, NodeId, TypeConfig};

pub const PATH_APPEND: &str = "/internal/raft/append";
pub const PATH_VOTE: &str = "/internal/raft/vote";
pub const PATH_SNAPSHOT: &str = "/internal/raft/snapshot";
/// Header carrying the sender's cluster id, so a master of another cluster is refused.
pub const CLUSTER_HEADER: &str = "x-medos-cluster";

/// Injected network faults for in-process tests: an isolated node neither sends nor
/// receives Raft RPCs.
#[derive(Debug, Default)]
pub struct Faults {
    isolated: Mutex<HashSet<NodeId>>,
}

impl Faults {
    pub fn isolate(&self, node: NodeId) {
        self.isolated.lock().expect("faults lock").insert(node);
    }

    pub fn heal(&self) {
        self.isolated.lock().expect("faults lock").clear();
    }

    pub fn blocks(&self, from: NodeId, to: NodeId) -> bool {
        let isolated = self.isolated.lock().expect("faults lock");
        isolated.contains(&from) || isolated.contains(&to)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

/// Creates one [`PeerClient`] per target; all share one connection pool.
#[derive(Clone)]
pub struct Network {
    pub self_id: NodeId,
    pub http: reqwest::Client,
    pub cluster_id: Arc<dyn Fn() -> Option<String> + Send + Sync>,
    pub faults: Option<Arc<Faults>>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &MasterNode) -> PeerClient {
        PeerClient { net: self.clone(), target, node: node.clone() }
    }
}

pub struct PeerClient {
    net: Network,
    target: NodeId,
    node: MasterNode,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, MasterNode, RaftError<NodeId, E>>>;

impl PeerClient {
    async fn call<Req, Resp, E>(&self, path: &str, req: &Req, timeout: Duration) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: Error + DeserializeOwned,
    {
        if let Some(faults) = &self.net.faults
            && faults.blocks(self.net.self_id, self.target)
        {
            return Err(RPCError::Unreachable(Unreachable::new(&Message("partitioned by a test fault".into()))));
        }
        let mut request = self.net.http.post(format!("{}{path}", self.node.api)).timeout(timeout).json(req);
        if let Some(cluster_id) = (self.net.cluster_id)() {
            request = request.header(CLUSTER_HEADER, cluster_id);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_connect() {
                RPCError::Unreachable(Unreachable::new(&e))
            } else {
                RPCError::Network(NetworkError::new(&e))
            }
        })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            // A refusal (wrong cluster, not a master) will not heal by retrying quickly.
            let err = Message(format!("{} answered {status}: {body}", self.node.api));
            return Err(RPCError::Unreachable(Unreachable::new(&err)));
        }
        let result: Result<Resp, RaftError<NodeId, E>> =
            response.json().await.map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new_with_node(self.target, self.node.clone(), e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        self.call(PATH_APPEND, &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(PATH_SNAPSHOT, &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.call(PATH_VOTE, &rpc, option.hard_ttl()).await
    }
}
