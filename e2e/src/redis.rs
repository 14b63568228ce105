//! A Redis server of a test's own, on a free port, that the test may restart
//! without disturbing any other test.

use std::{process::Child, time::Duration};

pub struct Private {
    port: u16,
    child: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn spawn(port: u16) -> Child {
    std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is installed")
}

impl Private {
    pub async fn start() -> Private {
        let port = free_port();
        let p = Private { port, child: spawn(port) };
        p.wait_up().await;
        p
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    async fn wait_up(&self) {
        crate::wait::eventually(Duration::from_secs(10), "redis to answer", || async {
            let client = redis::Client::open(self.url()).map_err(|e| e.to_string())?;
            let mut conn = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
            redis::cmd("PING").query_async::<String>(&mut conn).await.map(|_| ()).map_err(|e| e.to_string())
        })
        .await
    }

    /// Stops the server (losing everything in it), waits, starts it again empty.
    pub async fn restart(mut self, down: Duration) -> Private {
        let _ = self.child.kill();
        let _ = self.child.wait();
        tokio::time::sleep(down).await;
        let p = Private { port: self.port, child: spawn(self.port) };
        p.wait_up().await;
        p
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
