//! nginx (Debian's `nginx-light`) as the load balancer in front of several gateways, with the
//! same proxy settings as `docker/demo/nginx.conf`. Stopped by PID on drop, the way nginx
//! shuts down cleanly (SIGTERM to the master).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::free_port;
use super::gateway::scratch_dir;

pub struct Nginx {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Nginx {
    /// Round robin over `127.0.0.1:<port>` for each of `upstreams`.
    pub fn start(upstreams: &[u16]) -> Nginx {
        let dir = scratch_dir();
        let port = free_port();
        let demo = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docker/demo/nginx.conf"),
        )
        .unwrap();
        // The demo's config with this test's ports and writable paths.
        let servers: String = upstreams
            .iter()
            .map(|p| format!("    server 127.0.0.1:{p};\n"))
            .collect();
        let mut conf = String::new();
        let mut in_upstream = false;
        for line in demo.lines() {
            if line.trim_start().starts_with("upstream portcullis") {
                in_upstream = true;
                conf.push_str(line);
                conf.push('\n');
                conf.push_str(&servers);
                continue;
            }
            if in_upstream && line.trim_start().starts_with("server ") {
                continue;
            }
            if in_upstream && line.trim() == "}" {
                in_upstream = false;
            }
            let line = line
                .replace("listen 8080;", &format!("listen 127.0.0.1:{port};"))
                .replace(
                    "pid /tmp/nginx-demo.pid;",
                    &format!("pid {}/nginx.pid;", dir.display()),
                );
            conf.push_str(&line);
            conf.push('\n');
            if line.trim_start().starts_with("http {") {
                for temp in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
                    conf.push_str(&format!("  {temp}_temp_path {}/{temp};\n", dir.display()));
                }
                conf.push_str(&format!("  error_log {}/error.log;\n", dir.display()));
            }
        }
        assert!(
            conf.contains(&format!("listen 127.0.0.1:{port};")),
            "{conf}"
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&path)
            .args(["-e", "stderr", "-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx (apt install nginx-light)");
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nginx did not start"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        Nginx { child, port, dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    /// SIGTERM to the master, which stops its workers and exits; SIGKILL would orphan the
    /// worker, still listening after the suite. SIGKILL only if it does not exit in time.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
