//! Where requests go: the route table picks a route, the route names a cluster, the cluster picks
//! a healthy destination. Discovery (DNS) and active health checks run as background services.

mod addresses;
mod cluster;
mod discovery;
mod health;
mod routes;

pub use self::addresses::Upstream;
pub use self::cluster::Cluster;
pub use self::routes::{Route, RouteTable};
