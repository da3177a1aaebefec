//! Where requests go: the route table picks a route, the route names a cluster, the cluster picks
//! a healthy destination. Discovery (DNS) and active health checks run as background services.

mod cluster;
mod discovery;
mod health;
mod routes;

pub use self::cluster::{Cluster, Upstream};
pub use self::routes::{Route, RouteTable};
