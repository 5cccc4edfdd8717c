//! The `xbond` command: the daemon and the tools that talk to it.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Duration;
use xbond_control::config::{Config, DEFAULT_RUN_DIR};
use xbond_control::daemon::{self, RunOptions};
use xbond_control::hashcmd::{FlowSpec, HashReport};
use xbond_control::ipc::{self, Request};
use xbond_control::stats::{format_stats, StatsView};
use xbond_control::status::BondStatus;
use xbond_dataplane::wire::MacAddr;

#[derive(Parser, Debug)]
#[command(name = "xbond", version, about = "Userspace Linux bonding on AF_XDP")]
struct Cli {
    /// Where daemons keep their control sockets.
    #[arg(long, global = true, env = "XBOND_RUN_DIR")]
    run_dir: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the bonds of CONFIG in the foreground until SIGINT/SIGTERM.
    ///
    /// CONFIG is a file, or a directory whose *.toml files run together (as
    /// xbond.service runs /etc/xbond). Under systemd (Type=notify) it says
    /// READY=1 once every bond is up and feeds WATCHDOG=1 while every
    /// control loop answers.
    Run {
        config: PathBuf,
        /// Remove XDP programs that other tools attached to members.
        #[arg(long)]
        replace_xdp: bool,
        /// Serve Prometheus metrics at http://ADDR/metrics (IP:PORT, or
        /// :PORT for every address); over `[daemon] metrics`.
        #[arg(long, value_name = "ADDR", value_parser = parse_metrics_addr)]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Validate CONFIG; every error names the file and the key.
    Check { config: PathBuf },
    /// The bond's state in the layout of /proc/net/bonding/BOND.
    Status {
        bond: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Per-port packets, bytes and drops by reason.
    Stats {
        bond: Option<String>,
        #[arg(long)]
        json: bool,
        /// Print rates per second over this many seconds, like sar -n DEV.
        #[arg(long)]
        interval: Option<f64>,
    },
    /// Which member a flow leaves on, and the kernel's hash arithmetic that
    /// decides it. Give a whole frame (--frame) or the flow's fields.
    Hash(HashArgs),
    /// balance-tlb/alb: each member's MAC and load, the client table
    /// (peer IP, peer MAC, assigned member) and the transmit table.
    Alb {
        bond: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// 802.1Q VLAN sub-interfaces of a running bond.
    Vlan {
        #[command(subcommand)]
        op: VlanOp,
    },
    /// Print xbond TOML for the bonds of an existing configuration, with a
    /// warning (on stderr) for everything that could not be carried over.
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
    /// Print the completion script for SHELL (bash, zsh, fish, elvish,
    /// powershell) on stdout.
    Completions { shell: clap_complete::Shell },
    /// Write the man pages (xbond.8 and one per subcommand) into DIR.
    #[command(hide = true)]
    Manpages { dir: PathBuf },
    /// Change an option at runtime (active_slave, primary, miimon, ...).
    Set {
        bond: String,
        key: String,
        /// The value; `-IFNAME` (releasing a member) is a value, not a flag.
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
}

#[derive(clap::Args, Debug)]
struct HashArgs {
    bond: Option<String>,
    /// The frame as hex (Ethernet header first), e.g. from tcpdump -xx.
    #[arg(long, conflicts_with_all = ["src", "dst", "proto", "sport", "dport", "smac", "dmac", "vlan"])]
    frame: Option<String>,
    #[arg(long)]
    src: Option<std::net::IpAddr>,
    #[arg(long)]
    dst: Option<std::net::IpAddr>,
    /// tcp, udp (default) or icmp (--sport is then the echo identifier).
    #[arg(long)]
    proto: Option<String>,
    #[arg(long)]
    sport: Option<u16>,
    #[arg(long)]
    dport: Option<u16>,
    /// Source MAC; the bond's MAC when not given.
    #[arg(long)]
    smac: Option<String>,
    /// Destination MAC (the peer or gateway); zero when not given.
    #[arg(long)]
    dmac: Option<String>,
    /// An 802.1Q tag (TCI) on the frame.
    #[arg(long)]
    vlan: Option<u16>,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum VlanOp {
    /// Add VLAN ID: host interface BOND.ID (or --name), tagged on the members.
    Add {
        bond: String,
        id: u16,
        #[arg(long)]
        name: Option<String>,
        /// At most the bond's MTU; the bond's when not given.
        #[arg(long)]
        mtu: Option<u32>,
        /// ADDRESS/PREFIX to put on the VLAN interface; may be repeated.
        #[arg(long = "address")]
        addresses: Vec<String>,
    },
    /// Remove VLAN ID and its host interface.
    Del { bond: String, id: u16 },
    /// The bond's VLANs.
    List {
        bond: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ImportFrom {
    /// initscripts (ifcfg-bond0 with BONDING_OPTS, ifcfg-eth0 with
    /// MASTER=bond0 SLAVE=yes) or SUSE sysconfig (BONDING_MASTER,
    /// BONDING_MODULE_OPTS, BONDING_SLAVEn) files in DIR.
    Ifcfg { dir: PathBuf },
    /// A Talos machine config: machine.network.interfaces[].bond and vlans.
    Talos { file: PathBuf },
    /// netplan YAML: a file, or a directory such as /etc/netplan (its
    /// *.yaml in name order, later over earlier): network.bonds with
    /// parameters, their ethernets, and vlans on them.
    Netplan { path: PathBuf },
    /// systemd-networkd: the .netdev (Kind=bond, [Bond]) and .network files
    /// (Bond=, VLAN=, Address=) of DIR, such as /etc/systemd/network.
    Networkd { dir: PathBuf },
    /// NetworkManager keyfiles in DIR, such as
    /// /etc/NetworkManager/system-connections: type=bond connections,
    /// their ports (controller=/master=) and VLANs (parent=).
    Nm { dir: PathBuf },
    /// nmstate YAML (nmstatectl show, or a NodeNetworkConfigurationPolicy).
    Nmstate { file: PathBuf },
    /// A shell script of modprobe bonding, ip link/addr, ifenslave and
    /// sysfs writes.
    Iproute2 { file: PathBuf },
}

fn parse_metrics_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    xbond_control::config::parse_listen(s)
}

fn main() {
    let cli = Cli::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    // Under systemd the journal stamps every line already.
    if daemon::systemd::logs_to_journal() {
        log.without_time().init();
    } else {
        log.init();
    }
    if let Err(e) = real_main(cli) {
        eprintln!("xbond: {e:#}");
        std::process::exit(1);
    }
}

/// Print a daemon's reply: as JSON with `--json`, else as the text `show`
/// makes of it (`what` names the reply in an error).
fn print_reply<T: serde::de::DeserializeOwned>(
    v: serde_json::Value,
    json: bool,
    what: &str,
    show: impl FnOnce(T) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let r: T = serde_json::from_value(v).with_context(|| format!("{what} reply"))?;
        print!("{}", show(r));
    }
    Ok(())
}

fn run_dir(cli_dir: &Option<PathBuf>, config: Option<&Config>) -> PathBuf {
    cli_dir
        .clone()
        .or_else(|| config.map(|c| c.run_dir.clone()))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RUN_DIR))
}

fn bond_name(dir: &std::path::Path, given: Option<String>) -> anyhow::Result<String> {
    match given {
        Some(b) => Ok(b),
        None => ipc::only_bond(dir),
    }
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    let dir = || run_dir(&cli.run_dir, None);
    match cli.cmd {
        Cmd::Run {
            config,
            replace_xdp,
            metrics,
        } => {
            let mut cfg = Config::load(&config)?;
            if let Some(d) = &cli.run_dir {
                cfg.run_dir = d.clone();
            }
            daemon::run(
                cfg,
                RunOptions {
                    replace_xdp,
                    metrics,
                },
            )
        }
        Cmd::Check { config } => check(&config),
        Cmd::Status { bond, json } => {
            let dir = dir();
            let bond = bond_name(&dir, bond)?;
            let v = ipc::call(&dir, &bond, &Request::Status)?;
            print_reply(v, json, "status", |st: BondStatus| st.to_proc())
        }
        Cmd::Stats {
            bond,
            json,
            interval,
        } => stats(&dir(), bond, json, interval),
        Cmd::Hash(args) => hash(&dir(), args),
        Cmd::Alb { bond, json } => {
            let dir = dir();
            let bond = bond_name(&dir, bond)?;
            let v = ipc::call(&dir, &bond, &Request::Alb)?;
            print_reply(v, json, "alb", |view: xbond_control::albview::AlbView| {
                xbond_control::albview::format_alb(&view)
            })
        }
        Cmd::Vlan { op } => vlan(&dir(), op),
        Cmd::Import { from } => {
            let out = match from {
                ImportFrom::Ifcfg { dir } => xbond_control::import::ifcfg::import_dir(&dir)?,
                ImportFrom::Talos { file } => xbond_control::import::talos::import_file(&file)?,
                ImportFrom::Netplan { path } => xbond_control::import::netplan::import_path(&path)?,
                ImportFrom::Networkd { dir } => xbond_control::import::networkd::import_dir(&dir)?,
                ImportFrom::Nm { dir } => xbond_control::import::nm::import_dir(&dir)?,
                ImportFrom::Nmstate { file } => xbond_control::import::nmstate::import_file(&file)?,
                ImportFrom::Iproute2 { file } => {
                    xbond_control::import::iproute2::import_file(&file)?
                }
            };
            for w in &out.warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", out.toml);
            Ok(())
        }
        Cmd::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "xbond", &mut script);
            use std::io::Write;
            // A closed pipe (`| head`) ends the output quietly.
            let _ = std::io::stdout().write_all(&script);
            Ok(())
        }
        Cmd::Manpages { dir } => manpages(&dir),
        Cmd::Set { bond, key, value } => {
            let v = ipc::call(&dir(), &bond, &Request::Set { key, value })?;
            if let Some(s) = v.as_str() {
                println!("{s}");
            }
            Ok(())
        }
    }
}

/// `xbond manpages DIR`: section 8 pages of the command and each
/// subcommand (xbond-run.8, xbond-vlan-add.8, ...), from the clap definitions.
fn manpages(dir: &Path) -> anyhow::Result<()> {
    fn write(dir: &Path, cmd: clap::Command, name: String) -> anyhow::Result<()> {
        let cmd = cmd.name(name.clone());
        let path = dir.join(format!("{name}.8"));
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd.clone())
            .section("8")
            .manual("System Administration")
            .source(format!("xbond {}", env!("CARGO_PKG_VERSION")))
            .render(&mut out)?;
        std::fs::write(&path, out).with_context(|| format!("write {}", path.display()))?;
        for sub in cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            write(dir, sub.clone(), format!("{name}-{}", sub.get_name()))?;
        }
        Ok(())
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let mut cmd = <Cli as clap::CommandFactory>::command();
    cmd.build();
    write(dir, cmd, "xbond".into())
}

/// `xbond check`: the config's warnings and what each bond would be, then
/// what `run` would refuse about this host's links.
fn check(config: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    for b in &cfg.bonds {
        for w in &b.warnings {
            println!("warning: {}: bond.{}: {w}", config.display(), b.name);
        }
        println!("{}", daemon::describe(b));
        daemon::check_on_this_host(&cfg, b)
            .map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    }
    println!("{}: OK", config.display());
    Ok(())
}

/// `xbond stats`: the counters now, or with `--interval` the rates over
/// that many seconds.
fn stats(
    dir: &Path,
    bond: Option<String>,
    json: bool,
    interval: Option<f64>,
) -> anyhow::Result<()> {
    let bond = bond_name(dir, bond)?;
    let fetch = || -> anyhow::Result<StatsView> {
        Ok(serde_json::from_value(ipc::call(
            dir,
            &bond,
            &Request::Stats,
        )?)?)
    };
    let first = fetch()?;
    match interval {
        None if json => println!("{}", serde_json::to_string_pretty(&first)?),
        None => print!("{}", format_stats(&first, None)),
        Some(s) => {
            if !(s > 0.0 && s <= 3600.0) {
                bail!("--interval: expected seconds in (0, 3600]");
            }
            let t0 = std::time::Instant::now();
            std::thread::sleep(Duration::from_secs_f64(s));
            let second = fetch()?;
            let rates = second.rates_since(&first, t0.elapsed().as_secs_f64());
            if json {
                println!("{}", serde_json::to_string_pretty(&rates)?);
            } else {
                print!("{}", format_stats(&second, Some(&rates)));
            }
        }
    }
    Ok(())
}

/// `xbond hash`: the frame given, or one built from the flow's fields
/// with the bond's MAC as the default source, explained by the daemon.
fn hash(dir: &Path, a: HashArgs) -> anyhow::Result<()> {
    let bond = bond_name(dir, a.bond)?;
    let frame = match a.frame {
        Some(hex) => hex,
        None => {
            let mac = |what: &str, v: Option<String>| -> anyhow::Result<Option<MacAddr>> {
                v.map(|s| {
                    MacAddr::parse(&s)
                        .ok_or_else(|| anyhow::anyhow!("--{what}: '{s}' is not a MAC address"))
                })
                .transpose()
            };
            let spec = FlowSpec {
                smac: mac("smac", a.smac)?,
                dmac: mac("dmac", a.dmac)?,
                vlan: a.vlan,
                src: a.src,
                dst: a.dst,
                proto: a.proto,
                sport: a.sport,
                dport: a.dport,
            };
            let bond_mac: MacAddr = ipc::call(dir, &bond, &Request::Mac)?
                .as_str()
                .and_then(MacAddr::parse)
                .context("the daemon's MAC reply")?;
            spec.frame(bond_mac)?
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }
    };
    let v = ipc::call(dir, &bond, &Request::Hash { frame })?;
    print_reply(v, a.json, "hash", |r: HashReport| r.explanation)
}

/// `xbond vlan add|del|list`.
fn vlan(dir: &Path, op: VlanOp) -> anyhow::Result<()> {
    match op {
        VlanOp::Add {
            bond,
            id,
            name,
            mtu,
            addresses,
        } => {
            let req = Request::VlanAdd {
                id,
                name,
                mtu,
                addresses,
            };
            if let Some(s) = ipc::call(dir, &bond, &req)?.as_str() {
                println!("{s}");
            }
        }
        VlanOp::Del { bond, id } => {
            if let Some(s) = ipc::call(dir, &bond, &Request::VlanDel { id })?.as_str() {
                println!("{s}");
            }
        }
        VlanOp::List { bond, json } => {
            let bond = bond_name(dir, bond)?;
            let v = ipc::call(dir, &bond, &Request::VlanList)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{:<6} {:<16} {:>6}", "VLAN", "INTERFACE", "MTU");
                for row in v.as_array().into_iter().flatten() {
                    println!(
                        "{:<6} {:<16} {:>6}",
                        row["id"],
                        row["name"].as_str().unwrap_or("-"),
                        row["mtu"]
                    );
                }
            }
        }
    }
    Ok(())
}
