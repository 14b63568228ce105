//! An S3-compatible server of a test's own (moto, from PyPI), so the
//! pipeline's `s3://` storage and scratch are tested against real HTTP.

use std::{process::Child, time::Duration};

pub struct Moto {
    pub port: u16,
    child: Child,
}

impl Moto {
    /// Starts `moto_server` on a free port and creates `buckets`.
    pub async fn start(buckets: &[&str]) -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server is installed (pip install 'moto[server]'; the test script does)");
        let moto = Moto { port, child };
        let http = reqwest::Client::new();
        crate::wait::eventually(Duration::from_secs(30), "moto to answer", || async {
            http.get(moto.endpoint()).send().await.map(|_| ()).map_err(|e| e.to_string())
        })
        .await;
        for bucket in buckets {
            let r = http.put(format!("{}/{bucket}", moto.endpoint())).send().await.expect("creating a bucket");
            assert!(r.status().is_success(), "creating bucket {bucket}: {}", r.status());
        }
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The settings that point docket's `s3://` stores at this server.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "docket".into()),
            ("AWS_SECRET_ACCESS_KEY", "docket-secret".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
