//! The address table a cluster shares with its discovery and health checks: written by
//! discovery, read by health checks and on every request (lock-free).

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::upstreams::peer::HttpPeer;

use crate::config::Destination;

/// One destination address: the destination it came from and a ready-made peer.
pub struct Upstream {
    pub destination: Arc<Destination>,
    pub peer: HttpPeer,
}

/// Address -> upstream, replaced whole by discovery.
pub type Upstreams = Arc<ArcSwap<HashMap<std::net::SocketAddr, Arc<Upstream>>>>;
