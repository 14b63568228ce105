//! A PostgreSQL server of a test's own, from Debian's `initdb` and `pg_ctl`:
//! its own port and data directory (under the workspace's `var/`, or the
//! temporary directory where `var/` is out of the server's reach), trust
//! authentication, and nothing shared with the machine's server. PostgreSQL
//! refuses to run as root, so under root its commands run as the
//! `postgres` user (`runuser`), which then owns the data directory.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

pub struct Postgres {
    port: u16,
    bin: PathBuf,
    /// Holds `data/`, the socket and the server's log; removed on drop.
    dir: tempfile::TempDir,
}

/// The newest installed server's programs (`/usr/lib/postgresql/<major>/bin`).
fn bin_dir() -> PathBuf {
    let mut majors: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server programs are installed under /usr/lib/postgresql")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    majors.sort_unstable();
    let major = majors.last().expect("a PostgreSQL major version under /usr/lib/postgresql");
    PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"))
}

/// The workspace's `var/`, if the `postgres` user can reach it (a checkout
/// under `/root` is not); the system's temporary directory otherwise.
fn parent() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let var = Path::new(env!("CARGO_MANIFEST_DIR")).join("../var");
    let reachable = std::fs::create_dir_all(&var).is_ok()
        && var.ancestors().all(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0));
    if reachable || !is_root() { var } else { std::env::temp_dir() }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// A command of the server's, as the `postgres` user when we are root.
fn command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut c: Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    /// Creates a cluster and starts it.
    pub async fn start() -> Postgres {
        let dir = tempfile::Builder::new().prefix("docket-pg-").tempdir_in(parent()).expect("a data directory");
        if is_root() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
            let status = Command::new("chown").arg("postgres:postgres").arg(dir.path()).status().expect("chown");
            assert!(status.success(), "chown of {} to postgres", dir.path().display());
        }
        let pg = Postgres { port: free_port(), bin: bin_dir(), dir };
        let mut initdb = command(&pg.bin.join("initdb"));
        initdb.arg("-D").arg(pg.data()).args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]);
        let blocking = tokio::task::spawn_blocking(move || {
            run(initdb, "initdb");
            pg
        });
        let pg = blocking.await.expect("initdb ran");
        pg.start_again().await;
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server, without a database: `{url}/{database}` connects.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut c = command(&self.bin.join("pg_ctl"));
        c.arg("-D").arg(self.data()).args(args);
        c
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub async fn start_again(&self) {
        // Only TCP on our port; the socket in our own directory (pg_ctl -w
        // uses it); fsync off since the test never survives a power cut.
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        let c = self.pg_ctl(&["start", "-w", "-t", "60", "-o", &options, "-l", &log.display().to_string()]);
        tokio::task::spawn_blocking(move || run(c, "pg_ctl start")).await.expect("pg_ctl ran");
    }

    /// Stops the server: `fast` ends every session at once, as a
    /// supervisor's stop does; `immediate` is a crash (recovery on start).
    pub async fn stop(&self, mode: &str) {
        let c = self.pg_ctl(&["stop", "-w", "-t", "60", "-m", mode]);
        tokio::task::spawn_blocking(move || run(c, "pg_ctl stop")).await.expect("pg_ctl ran");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-w", "-m", "immediate"]).output();
    }
}
