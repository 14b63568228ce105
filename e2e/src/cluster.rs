//! Private RabbitMQ servers that tests and benchmarks may kill, stop and
//! start: the three-node cluster of `scripts/rabbit-cluster` and a single
//! node of the same script, with their data under the repository's `var/`.
//! The machine's own RabbitMQ (5672) is never touched.

use std::path::PathBuf;

use crate::rabbit::Target;

/// One set of private nodes run by `scripts/rabbit-cluster`.
pub struct Private {
    /// Node numbers: 1, 2, 3 for the cluster; 0 for the single node.
    pub nodes: Vec<u8>,
    dir: PathBuf,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

impl Private {
    /// The three-node cluster (docket1..3@localhost, AMQP 5681..5683).
    pub fn cluster() -> Private {
        Private { nodes: vec![1, 2, 3], dir: repo().join("var/rabbit-cluster") }
    }

    /// A single node of its own (docket0@localhost, AMQP 5680).
    pub fn single() -> Private {
        Private { nodes: vec![0], dir: repo().join("var/rabbit-solo") }
    }

    /// Runs the script with `args`; its output, or a panic with its errors.
    pub async fn run(&self, args: &[&str]) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(u8::to_string).collect();
        let out = tokio::process::Command::new(repo().join("scripts/rabbit-cluster"))
            .args(args)
            .env("RABBIT_CLUSTER_DIR", &self.dir)
            .env("RABBIT_CLUSTER_NODES", nodes.join(" "))
            .output()
            .await
            .expect("scripts/rabbit-cluster runs");
        assert!(
            out.status.success(),
            "scripts/rabbit-cluster {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts every node that is down (the first time, forms the cluster).
    pub async fn start(&self) {
        self.run(&["start"]).await;
    }

    /// Where a test's vhost lives on these nodes.
    pub fn target(&self) -> Target {
        Target {
            nodes: self.nodes.iter().map(|n| format!("127.0.0.1:{}", 5680 + u16::from(*n))).collect(),
            management: self.nodes.iter().map(|n| format!("http://127.0.0.1:{}", 15680 + u16::from(*n))).collect(),
        }
    }

    /// SIGKILL of the node's Erlang VM.
    pub async fn kill(&self, node: u8) {
        self.run(&["kill", &node.to_string()]).await;
    }

    pub async fn stop_node(&self, node: u8) {
        self.run(&["stop-node", &node.to_string()]).await;
    }

    /// Starts the node and waits until it runs (it rejoins by itself).
    pub async fn start_node(&self, node: u8) {
        self.run(&["start-node", &node.to_string()]).await;
    }

    /// Waits until every quorum queue would keep a majority without `node`.
    pub async fn safe_to_stop(&self, node: u8) {
        self.run(&["safe-to-stop", &node.to_string()]).await;
    }

    /// The Erlang VM's PID of a node, if it runs.
    pub async fn pid(&self, node: u8) -> Option<u32> {
        self.run(&["pid", &node.to_string()]).await.trim().parse().ok()
    }

    /// How many of the vhost's queues each node leads, most first.
    pub async fn leaders(&self, vhost: &str) -> Vec<(u8, usize)> {
        let out = self.run(&["leaders", vhost]).await;
        let mut counts: Vec<(u8, usize)> = out
            .lines()
            .filter_map(|line| {
                // "  leader of      12 docket2@localhost"
                let mut words = line.split_whitespace().skip(2);
                let count = words.next()?.parse().ok()?;
                let node = words.next()?.strip_prefix("docket")?.split('@').next()?.parse().ok()?;
                Some((node, count))
            })
            .collect();
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        counts
    }
}
