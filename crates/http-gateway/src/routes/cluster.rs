//! `GET /api/cluster/nodes`: the live nodes of the deployment.

use actix_web::{HttpResponse, web};
use chat_domain::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use crate::openapi::schemas;
use crate::state::AppState;

/// One live node.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeInfo {
    /// The node's id (random per start; `local` on a single node without Redis).
    #[schema(min_length = 1, example = "5f0c3a9e2b7d4c1e8a6f0b2d4e6a8c0e")]
    pub id: String,
    /// When the node started.
    #[schema(value_type = schemas::Timestamp)]
    pub started_at: Timestamp,
    /// Its last heartbeat (on a single node: now).
    #[schema(value_type = schemas::Timestamp)]
    pub last_seen: Timestamp,
    /// How many sockets it held at its last heartbeat.
    #[schema(minimum = 0)]
    pub sockets: u64,
}

/// `200` of `GET /api/cluster/nodes`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterNodes {
    /// The live nodes, by id.
    pub nodes: Vec<NodeInfo>,
}

/// Mounts the cluster routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::resource("/api/cluster/nodes")
            .route(web::get().to(nodes))
            .default_service(web::to(super::method_not_allowed)),
    );
}

/// The live nodes: those whose heartbeat is recent (a node that died is gone from the list
/// within `CHAT__CLUSTER__NODE_TIMEOUT_SECS`). In memory mode, and while Redis is away, this
/// node alone.
#[utoipa::path(
    get,
    path = "/api/cluster/nodes",
    tag = "operations",
    responses(
        (status = 200, description = "The live nodes, by id.", body = ClusterNodes),
    )
)]
pub(crate) async fn nodes(state: web::Data<AppState>) -> HttpResponse {
    let nodes = state
        .hub
        .live_nodes()
        .await
        .into_iter()
        .map(|node| NodeInfo {
            id: node.id,
            started_at: node.started_at,
            last_seen: node.last_seen,
            sockets: node.sockets,
        })
        .collect();
    HttpResponse::Ok().json(ClusterNodes { nodes })
}
