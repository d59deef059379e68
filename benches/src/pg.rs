//! A throw-away PostgreSQL server for benchmarks: found among the installed binaries, created
//! with `initdb` in a data directory of its own, started with `pg_ctl` on loopback only (a unix
//! socket beside the data, or 127.0.0.1 on a free port when that path is too long for a
//! socket), stopped when dropped.
//!
//! `initdb` refuses to run as root, so a root caller runs every server command as the `postgres`
//! OS user (`runuser -u postgres --`), and the data and socket directories are handed to that
//! user; another caller runs them as itself.
//!
//! The server keeps `initdb`'s defaults (fsync and synchronous commit on, `shared_buffers` 128
//! MB, `max_wal_size` 1 GB, autovacuum on); only where it listens and where it logs are set.

use anyhow::{anyhow, bail, Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable naming the directory of PostgreSQL's binaries.
pub const PG_BIN_ENV: &str = "PORTLOG_PG_BIN";

/// An installation of PostgreSQL's server binaries.
#[derive(Debug, Clone)]
pub struct PgInstall {
    /// Directory holding `initdb`, `pg_ctl` and `postgres`.
    pub bin: PathBuf,
    /// `postgres --version`.
    pub version: String,
}

/// Finds PostgreSQL's server binaries: `explicit`, else `$PORTLOG_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout), else `initdb` on the `PATH`. `Err` says why
/// none is usable (the caller skips the peer with that message).
pub fn find_install(explicit: Option<&Path>) -> std::result::Result<PgInstall, String> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = explicit {
        candidates.push(p.to_path_buf());
    } else if let Some(p) = std::env::var_os(PG_BIN_ENV) {
        candidates.push(PathBuf::from(p));
    } else {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path().join("bin"))))
            .collect();
        versions.sort();
        candidates.extend(versions.into_iter().rev().map(|(_, p)| p));
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&path));
        }
    }
    for bin in candidates {
        if bin.join("initdb").is_file() && bin.join("pg_ctl").is_file() && bin.join("postgres").is_file() {
            let version = Command::new(bin.join("postgres"))
                .arg("--version")
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            return Ok(PgInstall { bin, version });
        }
    }
    Err(match explicit {
        Some(p) => format!("no initdb, pg_ctl and postgres in {}", p.display()),
        None => "PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin, $PORTLOG_PG_BIN or the PATH; \
                 Debian: apt-get install postgresql)"
            .into(),
    })
}

/// The effective user id of this process, from `/proc/self/status`.
fn euid() -> Option<u32> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find_map(|l| l.strip_prefix("Uid:")?.split_whitespace().nth(1)?.parse().ok())
}

/// Uid and gid of an OS user, from `/etc/passwd`.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let s = std::fs::read_to_string("/etc/passwd").ok()?;
    s.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// Who runs the server's commands: `None` this process's user, `Some` an OS user via runuser.
fn run_as() -> Result<Option<(String, u32, u32)>> {
    if euid() != Some(0) {
        return Ok(None);
    }
    let (uid, gid) = user_ids("postgres")
        .ok_or_else(|| anyhow!("running as root, and initdb refuses root: no `postgres` OS user to run it as"))?;
    Ok(Some(("postgres".into(), uid, gid)))
}

/// Where the server listens.
#[derive(Debug, Clone)]
enum Listen {
    /// A unix socket in this directory.
    Socket(PathBuf),
    /// 127.0.0.1 on this port.
    Tcp(u16),
}

/// A running throw-away server (see the module docs). Dropping it stops it (`-m immediate`
/// when [`PgServer::stop`] was not called).
#[derive(Debug)]
pub struct PgServer {
    install: PgInstall,
    data: PathBuf,
    log: PathBuf,
    listen: Listen,
    user: Option<(String, u32, u32)>,
    port: u16,
    pid: u32,
    running: bool,
}

/// Socket paths are limited to 107 bytes; `.s.PGSQL.NNNNN` takes 15 of them.
const SOCKET_DIR_MAX: usize = 90;

impl PgServer {
    /// Creates a cluster in `dir/pgdata` (`dir` must not hold one) and starts it.
    pub fn start(install: &PgInstall, dir: &Path) -> Result<Self> {
        let user = run_as()?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let data = dir.join("pgdata");
        let sock = dir.join("sock");
        std::fs::create_dir_all(&data)?;
        std::fs::create_dir_all(&sock)?;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))?;
        if let Some((_, uid, gid)) = &user {
            // The server's user must reach its directories: open the way through `dir` and its
            // parent (a scratch directory of mode 0700), and give it the rest.
            for p in [dir.parent(), Some(dir.as_path())].into_iter().flatten() {
                let mode = std::fs::metadata(p)?.permissions().mode();
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode | 0o711))?;
            }
            for p in [&data, &sock] {
                std::os::unix::fs::chown(p, Some(*uid), Some(*gid))
                    .with_context(|| format!("chown {} to postgres", p.display()))?;
            }
        }
        let listen = if sock.as_os_str().len() <= SOCKET_DIR_MAX {
            Listen::Socket(sock)
        } else {
            // A free port now; another process could take it before the server binds, in
            // which case the start fails and says so.
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            Listen::Tcp(l.local_addr()?.port())
        };
        let port = match &listen {
            Listen::Socket(_) => 5432,
            Listen::Tcp(p) => *p,
        };
        let log = dir.join("postgres.log");
        let mut s = PgServer { install: install.clone(), data, log, listen, user, port, pid: 0, running: false };
        s.run(
            "initdb",
            &["-D", &s.data_str(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
        )?;
        let (listen_addresses, sockets) = match &s.listen {
            Listen::Socket(d) => (String::new(), d.display().to_string()),
            Listen::Tcp(_) => ("127.0.0.1".to_string(), String::new()),
        };
        let conf = format!(
            "\n# portlog benchmarks: loopback only\nlisten_addresses = '{listen_addresses}'\nport = {}\n\
             unix_socket_directories = '{sockets}'\nlogging_collector = off\n",
            s.port
        );
        use std::io::Write as _;
        std::fs::OpenOptions::new()
            .append(true)
            .open(s.data.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(conf.as_bytes()))
            .context("writing postgresql.conf")?;
        // pg_ctl's log file is opened by the server's user: create it for them.
        std::fs::write(&s.log, b"")?;
        if let Some((_, uid, gid)) = &s.user {
            std::os::unix::fs::chown(&s.log, Some(*uid), Some(*gid))?;
        }
        let log = s.log.display().to_string();
        s.run("pg_ctl", &["-D", &s.data_str(), "-l", &log, "-w", "-t", "120", "-s", "start"])?;
        s.running = true;
        let pidfile = std::fs::read_to_string(s.data.join("postmaster.pid")).context("reading postmaster.pid")?;
        s.pid =
            pidfile.lines().next().and_then(|l| l.trim().parse().ok()).ok_or_else(|| anyhow!("bad postmaster.pid"))?;
        Ok(s)
    }

    fn data_str(&self) -> String {
        self.data.display().to_string()
    }

    /// Runs one of the server's binaries as the server's user; fails with its output.
    fn run(&self, tool: &str, args: &[&str]) -> Result<()> {
        let exe = self.install.bin.join(tool);
        let mut cmd = match &self.user {
            Some((name, _, _)) => {
                let mut c = Command::new("runuser");
                c.args(["-u", name, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        // The server's user may not be able to enter the caller's working directory.
        cmd.args(args).current_dir("/");
        let out = cmd.output().with_context(|| format!("running {}", exe.display()))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            bail!(
                "{tool} {} failed ({}): {}{}\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(())
    }

    /// A connection string for the `postgres` crate (user `postgres`, database `postgres`).
    pub fn conn_string(&self) -> String {
        match &self.listen {
            Listen::Socket(d) => format!("host={} port={} user=postgres dbname=postgres", d.display(), self.port),
            Listen::Tcp(p) => format!("host=127.0.0.1 port={p} user=postgres dbname=postgres"),
        }
    }

    /// Pid of the postmaster (the parent of every server process).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The installation it runs.
    pub fn install(&self) -> &PgInstall {
        &self.install
    }

    /// Stops the server (`-m fast`: disconnects clients, then a shutdown checkpoint).
    pub fn stop(&mut self) -> Result<()> {
        if self.running {
            self.running = false;
            self.run("pg_ctl", &["-D", &self.data_str(), "-m", "fast", "-w", "-t", "120", "-s", "stop"])?;
        }
        Ok(())
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            self.running = false;
            let _ = self.run("pg_ctl", &["-D", &self.data_str(), "-m", "immediate", "-w", "-s", "stop"]);
        }
    }
}

/// Stops a server left running in `dir/pgdata` (a benchmark process that died): the caller's
/// safety net. Does nothing when no server runs there.
pub fn stop_leftover(install: &PgInstall, dir: &Path) {
    let data = dir.join("pgdata");
    if !data.join("postmaster.pid").exists() {
        return;
    }
    let user = run_as().ok().flatten();
    let exe = install.bin.join("pg_ctl");
    let mut cmd = match &user {
        Some((name, _, _)) => {
            let mut c = Command::new("runuser");
            c.args(["-u", name, "--"]).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    let _ = cmd.arg("-D").arg(&data).args(["-m", "immediate", "-w", "-s", "stop"]).current_dir("/").output();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_status_parse() {
        assert_eq!(user_ids("root"), Some((0, 0)));
        assert!(euid().is_some());
        assert!(find_install(Some(Path::new("/nonexistent"))).is_err());
    }
}
