//! `MotoServer`: moto's AWS server (PyPI `moto[server]`) on a free loopback port, killed by pid on drop.
//! Speaks SQS, S3 (with bucket notifications to SQS), STS and more; point the AWS SDK at [`MotoServer::url`]
//! with static credentials and path-style S3.

use crate::{free_port, wait_until, ChildGuard};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct MotoServer {
    pub port: u16,
    _guard: ChildGuard,
}

impl MotoServer {
    /// Starts `moto_server -H 127.0.0.1 -p <port>` and waits until it answers HTTP.
    pub fn start() -> MotoServer {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server (pip install 'moto[server]')");
        let guard = ChildGuard {
            child,
            name: "moto_server".into(),
        };
        wait_until(
            Duration::from_secs(30),
            "moto_server to answer HTTP",
            || http_ok(port),
        );
        MotoServer {
            port,
            _guard: guard,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn http_ok(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    matches!(s.read(&mut buf), Ok(n) if n >= 12 && buf.starts_with(b"HTTP/1."))
}
