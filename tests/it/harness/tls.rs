//! TLS material from the `openssl` CLI, and an HTTPS upstream (Python's `ssl` + `http.server`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::gateway::scratch_dir;

/// Runs the `openssl` CLI; its stdout.
pub fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A self-signed certificate for `localhost` and `127.0.0.1`.
pub struct SelfSigned {
    pub cert: PathBuf,
    pub key: PathBuf,
    dir: PathBuf,
}

impl SelfSigned {
    pub fn generate() -> SelfSigned {
        let dir = scratch_dir();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
            ])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        SelfSigned { cert, key, dir }
    }
}

impl Drop for SelfSigned {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const SERVER: &str = r#"
import http.server, json, ssl, sys
class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = json.dumps({"name": "tls-upstream", "path": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

/// An HTTPS echo server; stopped by its PID on drop.
pub struct TlsUpstream {
    child: Child,
    pub port: u16,
}

impl TlsUpstream {
    pub fn start(tls: &SelfSigned) -> TlsUpstream {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(SERVER)
            .arg(&tls.cert)
            .arg(&tls.key)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("python printed its port");
        TlsUpstream { child, port }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private CA and a server certificate it signed for `localhost`/`127.0.0.1` (what TLS
/// clients that reject self-signed leaf certificates, such as rustls, need).
pub struct PrivateCa {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    dir: PathBuf,
}

impl PrivateCa {
    pub fn generate() -> PrivateCa {
        let dir = scratch_dir();
        let ca = dir.join("ca.pem");
        let ca_key = dir.join("ca-key.pem");
        let (cert, key) = (dir.join("server.pem"), dir.join("server-key.pem"));
        let run = |args: Vec<String>| {
            let out = Command::new("openssl")
                .args(&args)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let p = |p: &PathBuf| p.display().to_string();
        run([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=portcullis test CA",
            "-keyout",
            &p(&ca_key),
            "-out",
            &p(&ca),
        ]
        .map(String::from)
        .to_vec());
        run([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-CA",
            &p(&ca),
            "-CAkey",
            &p(&ca_key),
            "-keyout",
            &p(&key),
            "-out",
            &p(&cert),
        ]
        .map(String::from)
        .to_vec());
        PrivateCa { ca, cert, key, dir }
    }
}

impl Drop for PrivateCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
