//! An xbond daemon in a topology's host namespace, and its CLI.

use crate::*;

/// `xbond run` inside a topology's host namespace.
pub struct Daemon {
    pub child: Option<Child>,
    pub run_dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub ns: String,
    /// Extra environment for the daemon (`start_with_env`).
    pub env: Vec<(String, String)>,
    /// A command the daemon runs under (`strace -f -o FILE`); signals go
    /// to the daemon, its child.
    pub wrap: Vec<String>,
}

impl Daemon {
    /// Write `config` (TOML; `RUN_DIR` is replaced by a fresh directory) and
    /// start the daemon; wait until its control socket answers.
    pub fn start(topo: &Topo, config: &str) -> anyhow::Result<Daemon> {
        Daemon::start_in(topo, &topo.host, "run", config)
    }

    /// As `start`, in namespace `ns`, with its own run directory named by
    /// `tag` (for a second daemon in the same topology).
    pub fn start_in(topo: &Topo, ns: &str, tag: &str, config: &str) -> anyhow::Result<Daemon> {
        Daemon::start_with_env(topo, ns, tag, config, &[])
    }

    /// As `start_in`, with `env` added to the daemon's environment (as
    /// systemd sets NOTIFY_SOCKET, WATCHDOG_USEC, JOURNAL_STREAM);
    /// `("WATCHDOG_PID", "PID")` gives the daemon's own pid.
    pub fn start_with_env(
        topo: &Topo,
        ns: &str,
        tag: &str,
        config: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Daemon> {
        let mut d = Daemon::prepare(topo, ns, tag, config)?;
        d.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        d.spawn()?;
        Ok(d)
    }

    /// As `start`, with the daemon run under `wrap` (a command and its
    /// arguments, before xbond's).
    pub fn start_wrapped(topo: &Topo, config: &str, wrap: &[&str]) -> anyhow::Result<Daemon> {
        let mut d = Daemon::prepare(topo, &topo.host, "run", config)?;
        d.wrap = wrap.iter().map(ToString::to_string).collect();
        d.spawn()?;
        Ok(d)
    }

    /// The run directory and config file, not started yet.
    fn prepare(topo: &Topo, ns: &str, tag: &str, config: &str) -> anyhow::Result<Daemon> {
        let dir = std::env::temp_dir().join(format!("{}-{tag}", topo.prefix));
        std::fs::create_dir_all(&dir)?;
        let cfg_path = dir.join("xbond.toml");
        std::fs::write(
            &cfg_path,
            config.replace("RUN_DIR", &dir.display().to_string()),
        )?;
        Ok(Daemon {
            child: None,
            run_dir: dir.clone(),
            config: cfg_path,
            log: dir.join("xbond.log"),
            ns: ns.to_string(),
            env: Vec::new(),
            wrap: Vec::new(),
        })
    }

    pub fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::File::create(&self.log)?;
        let bin = xbond_bin();
        let mut args = vec![bin.to_str().unwrap(), "run", self.config.to_str().unwrap()];
        // WATCHDOG_PID=PID in `env` stands for the daemon's own pid, which
        // systemd sets and sd_notify checks: a shell puts it there and
        // execs the daemon in its place.
        let with_pid = self
            .env
            .iter()
            .any(|(k, v)| k == "WATCHDOG_PID" && v == "PID");
        if with_pid {
            args.splice(
                0..0,
                ["sh", "-c", "export WATCHDOG_PID=$$; exec \"$0\" \"$@\""],
            );
        }
        args.splice(0..0, self.wrap.iter().map(String::as_str));
        let child = ns(&self.ns, &args)
            .env("RUST_LOG", "info")
            .envs(
                self.env
                    .iter()
                    .filter(|(k, _)| !(with_pid && k == "WATCHDOG_PID"))
                    .map(|(k, v)| (k, v)),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Some(c) = &mut self.child {
                if let Some(st) = c.try_wait()? {
                    self.child = None;
                    bail!("xbond exited at start ({st}):\n{}", self.log_text());
                }
            }
            if self.cli(&["status", "--json"]).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("xbond did not answer within 10 s:\n{}", self.log_text())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Run the CLI against this daemon.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = run(Command::new(xbond_bin())
            .arg("--run-dir")
            .arg(&self.run_dir)
            .args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn status(&self) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.cli(&["status", "--json"])?)?)
    }

    pub fn active(&self) -> anyhow::Result<Option<String>> {
        Ok(self.status()?["active_slave"].as_str().map(str::to_string))
    }

    /// Read `read` every 5 ms until `done` accepts it; returns how long
    /// that took, or fails after `timeout` with the last reading and the
    /// bond's status.
    pub fn poll_until<T: std::fmt::Debug>(
        &self,
        timeout: Duration,
        read: impl Fn(&Self) -> anyhow::Result<T>,
        done: impl Fn(&T) -> bool,
        want: &str,
    ) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        loop {
            let v = read(self)?;
            if done(&v) {
                return Ok(t0.elapsed());
            }
            if t0.elapsed() > timeout {
                bail!(
                    "{v:?}, not {want}, after {timeout:?}:\n{}",
                    self.cli(&["status"])?
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Poll until the active member is `want`, or time out.
    pub fn wait_active(&self, want: &str, timeout: Duration) -> anyhow::Result<Duration> {
        self.poll_until(
            timeout,
            Self::active,
            |a| a.as_deref() == Some(want),
            &format!("active member {want}"),
        )
    }

    /// The members in the bond's order, by name.
    pub fn member_names(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.status()?["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["name"].as_str().map(String::from))
            .collect())
    }

    /// 802.3ad: the members that are distributing, by name.
    pub fn distributing(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.status()?["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["ad"]["distributing"] == true)
            .filter_map(|m| m["name"].as_str().map(String::from))
            .collect())
    }

    /// Poll until exactly `want` are distributing; returns how long it took.
    pub fn wait_distributing(&self, want: &[&str], timeout: Duration) -> anyhow::Result<Duration> {
        self.poll_until(
            timeout,
            Self::distributing,
            |d| d == want,
            &format!("distributing {want:?}"),
        )
    }

    /// A member's link status (`up`, `down`, `going back`, ...).
    pub fn member_status(&self, name: &str) -> anyhow::Result<String> {
        let st = self.status()?;
        let m = st["members"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["name"] == name)
            .with_context(|| format!("no member {name}"))?;
        Ok(m["mii_status"].as_str().unwrap_or_default().to_string())
    }

    /// Poll until member `name`'s link status is `want`; returns how long
    /// it took.
    pub fn wait_member(
        &self,
        name: &str,
        want: &str,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        self.poll_until(
            timeout,
            |d| d.member_status(name),
            |s| s == want,
            &format!("{name} {want:?}"),
        )
    }

    /// Poll until every member's MII status is up (start-up updelays over).
    pub fn wait_members_up(&self, timeout: Duration) -> anyhow::Result<()> {
        let t0 = Instant::now();
        while self.status()?["members"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["mii_status"] != "up")
        {
            if t0.elapsed() > timeout {
                bail!("members not all up after {timeout:?}: {}", self.status()?);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Frames xbond put on `port`'s TX rings (all its queues), from
    /// `xbond stats --json`.
    pub fn port_tx(&self, port: &str) -> anyhow::Result<u64> {
        let v: serde_json::Value = serde_json::from_str(&self.cli(&["stats", "--json"])?)?;
        Ok(v["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["port"] == port)
            .filter_map(|p| p["tx_packets"].as_u64())
            .sum())
    }

    /// The daemon's pid (under a `wrap`, the wrapper's child).
    pub fn pid(&self) -> Option<i32> {
        let pid = self.child.as_ref()?.id() as i32;
        if self.wrap.is_empty() {
            return Some(pid);
        }
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.pid().context("not running")?;
        let mut c = self.child.take().context("not running")?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        let t0 = Instant::now();
        loop {
            if let Some(st) = c.try_wait()? {
                return Ok(st);
            }
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = c.kill();
                let _ = c.wait();
                bail!("xbond did not stop within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        let mut c = self.child.take().context("not running")?;
        c.kill()?;
        c.wait()?;
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}
