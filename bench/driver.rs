//! The benchmark driver behind `bench/run`: measures remo through a real
//! front door and the OpenSSH baseline in the same run, and prints medians
//! and ratios. Not a test: nothing here asserts timings.
//!
//! Configuration comes from the environment (bench/run sets it):
//! `REMO_URL`, `REMO_USER`, `REMO_KEY` (unencrypted), `REMOD_PID`,
//! `SSH_ARGS` (e.g. `-p 2222 -i KEY -o … root@127.0.0.1`), `SSH_CTL`
//! (ControlPath of a running master), `SCP_ARGS`, `BENCH_DIR` (a scratch
//! directory, ideally tmpfs), `BENCH_FILE_MB` (default 1024),
//! `BENCH_SESSIONS` (default 10000), `BENCH_XFER_REPS` (put + get
//! repetitions, default 5, 3 when quick), `BENCH_NO_WARM=1` (see
//! `warm_memory`), `BENCH_QUICK=1` for a short run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use remo::client::conn::{http_client, info, DataStream, Session};
use remo::keyfile::{load_identity, PassphraseSource};
use remo::proto::identity::{IdentityKey, PublicKey};
use serde_json::json;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn env(name: &str) -> Res<String> {
    std::env::var(name).map_err(|_| format!("{name} is not set (run bench/run)").into())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: &str) -> f64 {
    stat_secs(pid, 11)
}

/// CPU seconds (user + system) of the children a process has reaped so
/// far: for remod, the commands it ran.
fn child_cpu_secs(pid: &str) -> f64 {
    stat_secs(pid, 13)
}

/// The sum of two adjacent tick fields of `/proc/PID/stat`, counted from
/// the state field (index 0): 11 is utime + stime, 13 cutime + cstime.
fn stat_secs(pid: &str, first: usize) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces): state is
    // field 3, utime 14, stime 15, cutime 16, cstime 17.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(first) + ticks(first + 1)) / 100.0
}

/// The processes whose CPU time a transfer or a command run is charged
/// with: remod, the nginx workers (children of `NGINX_PID`), this driver
/// and, for commands, the children remod reaped.
struct CpuMeter {
    pids: Vec<CpuGroup>,
}

/// A name, its processes, and how to read one process's seconds.
type CpuGroup = (&'static str, Vec<String>, fn(&str) -> f64);

impl CpuMeter {
    fn new(remod: u32, with_children: bool) -> Self {
        let mut nginx = Vec::new();
        if let Ok(master) = std::env::var("NGINX_PID") {
            if let Ok(dir) = std::fs::read_dir("/proc") {
                for e in dir.flatten() {
                    let name = e.file_name().to_string_lossy().to_string();
                    let stat =
                        std::fs::read_to_string(format!("/proc/{name}/stat")).unwrap_or_default();
                    let ppid = stat
                        .rsplit_once(')')
                        .and_then(|(_, r)| r.split_whitespace().nth(1))
                        .unwrap_or("");
                    if ppid == master {
                        nginx.push(name);
                    }
                }
            }
        }
        let mut pids: Vec<CpuGroup> = vec![
            ("remod", vec![remod.to_string()], cpu_secs),
            ("nginx", nginx, cpu_secs),
            ("client", vec!["self".to_string()], cpu_secs),
        ];
        if with_children {
            pids.push(("children", vec![remod.to_string()], child_cpu_secs));
        }
        CpuMeter { pids }
    }

    fn sample(&self) -> Vec<f64> {
        self.pids
            .iter()
            .map(|(_, ps, secs)| ps.iter().map(|p| secs(p)).sum())
            .collect()
    }

    /// CPU seconds used by each process group since `before`.
    fn since(&self, before: &[f64]) -> Vec<f64> {
        self.sample()
            .iter()
            .zip(before)
            .map(|(a, b)| a - b)
            .collect()
    }

    /// "remod 0.61, nginx 0.20, client 0.55": CPU seconds (times `scale`)
    /// per unit (a GB moved, a command), from the totals of
    /// [`CpuMeter::since`] over all repetitions.
    fn per(&self, used: &[f64], units: f64, scale: f64) -> String {
        self.pids
            .iter()
            .zip(used)
            .map(|((n, _, _), u)| format!("{n} {:.2}", u * scale / units))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Adds one repetition's CPU seconds to a running total.
fn add_cpu(total: &mut [f64], used: &[f64]) {
    for (t, u) in total.iter_mut().zip(used) {
        *t += u;
    }
}

struct Row {
    what: String,
    remo: String,
    base: String,
    ratio: String,
}

fn row(what: &str, remo: f64, base: f64, unit: &str, higher_is_better: bool) -> Row {
    let ratio = if base.is_finite() && base > 0.0 {
        if higher_is_better {
            format!("{:.2}x", remo / base)
        } else {
            format!("{:.2}x", base / remo)
        }
    } else {
        "-".into()
    };
    Row {
        what: what.into(),
        remo: format!("{remo:.2} {unit}"),
        base: if base.is_finite() {
            format!("{base:.2} {unit}")
        } else {
            "-".into()
        },
        ratio,
    }
}

fn ssh(args: &str, extra: &[&str]) -> Res<()> {
    let mut argv: Vec<String> = args.split_whitespace().map(str::to_string).collect();
    argv.extend(extra.iter().map(|s| s.to_string()));
    let st = Command::new("ssh")
        .args(&argv)
        .stdin(std::process::Stdio::null())
        .status()?;
    if !st.success() {
        return Err(format!("ssh {argv:?} failed: {st}").into());
    }
    Ok(())
}

/// The framing the server offers (`/info`), set once at start: the
/// library sessions use it as `remo` does (binary where offered).
static FRAMING: std::sync::OnceLock<remo::proto::framing::Framing> = std::sync::OnceLock::new();

async fn login(url: &str, user: &str, id: &IdentityKey, pin: &PublicKey) -> Res<Session> {
    let mut s = Session::login_with(http_client()?, url, user, id, pin).await?;
    if let Some(f) = FRAMING.get() {
        s.set_framing(*f);
    }
    Ok(s)
}

/// One `cmd` measurement: a program run `total` times by `conc` clients on
/// one session, three times, with remod's CPU split and, as baselines, the
/// same program spawned locally and (if given) run through ssh.
struct CmdRun<'a> {
    s: &'a Arc<Session>,
    meter: &'a CpuMeter,
    conc: usize,
    total: usize,
}

impl CmdRun<'_> {
    async fn rows(&self, name: &str, prog: &str, ssh: Option<(&str, &str)>) -> Res<Vec<Row>> {
        let (conc, total) = (self.conc, self.total);
        let mut r = Vec::new();
        let mut b = Vec::new();
        let mut local = Vec::new();
        let mut cpu = vec![0.0; self.meter.pids.len()];
        let (mut local_self, mut local_child) = (0.0, 0.0);
        for _ in 0..3 {
            let before = self.meter.sample();
            r.push(cmd_rate(self.s.clone(), prog, conc, total).await?);
            add_cpu(&mut cpu, &self.meter.since(&before));
            if let Some((args, ctl)) = ssh {
                b.push(ssh_rate(args, ctl, conc, total / 20)?);
            }
            let (me, kids) = (cpu_secs("self"), child_cpu_secs("self"));
            local.push(local_spawn_rate(prog, conc, total)?);
            local_self += cpu_secs("self") - me;
            local_child += child_cpu_secs("self") - kids;
        }
        let mut rows = Vec::new();
        // Where a command's CPU goes, against a bare local spawn: the
        // child's share is the same program in both.
        let runs = (3 * (total / conc) * conc) as f64;
        rows.push(Row {
            what: format!("cmd {name}, {conc} client(s): CPU ms per command"),
            remo: self.meter.per(&cpu, runs, 1e3),
            base: format!(
                "spawner {:.2}, child {:.2}",
                local_self * 1e3 / runs,
                local_child * 1e3 / runs
            ),
            ratio: "-".into(),
        });
        let remo = median(r);
        if ssh.is_some() {
            rows.push(row(
                &format!("cmd {name}, {conc} client(s) (vs ssh ControlMaster)"),
                remo,
                median(b),
                "req/s",
                true,
            ));
        }
        // How close to the machine's own limit: the same number of local
        // spawns, with no transport, crypto or server at all.
        rows.push(row(
            &format!("cmd {name}, {conc} client(s) (vs local spawn, {conc} threads)"),
            remo,
            median(local),
            "req/s",
            true,
        ));
        Ok(rows)
    }
}

async fn cmd_rate(s: Arc<Session>, prog: &str, conc: usize, total: usize) -> Res<f64> {
    let t = Instant::now();
    let per = total / conc;
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let s = s.clone();
        let argv = json!({"argv": [prog]});
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                let c = s.call_raw(remo::ops::OpName::Cmd, &argv).await?;
                if c.result.is_err() {
                    return Err::<(), Box<dyn std::error::Error + Send + Sync>>(
                        "cmd failed".into(),
                    );
                }
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((per * conc) as f64 / t.elapsed().as_secs_f64())
}

/// Runs `job` `total` times spread over `conc` threads; jobs per second.
fn thread_rate(conc: usize, total: usize, job: impl Fn() -> Res<()> + Sync) -> Res<f64> {
    let per = total / conc;
    let job = &job;
    let t = Instant::now();
    std::thread::scope(|sc| -> Res<()> {
        let hs: Vec<_> = (0..conc)
            .map(|_| sc.spawn(move || (0..per).try_for_each(|_| job())))
            .collect();
        for h in hs {
            h.join().map_err(|_| "thread panicked")??;
        }
        Ok(())
    })?;
    Ok((per * conc) as f64 / t.elapsed().as_secs_f64())
}

/// `ssh true` through the running ControlMaster, per second.
fn ssh_rate(args: &str, ctl: &str, conc: usize, total: usize) -> Res<f64> {
    let path = format!("ControlPath={ctl}");
    thread_rate(conc, total, || {
        ssh(args, &["-o", &path, "-o", "ControlMaster=no", "true"])
    })
}

/// Spawns of `prog` per second from this process with `conc` threads, no
/// network and no remod: the ceiling for `cmd` of that program on this
/// machine, since every remote run costs at least one such start.
fn local_spawn_rate(prog: &str, conc: usize, total: usize) -> Res<f64> {
    thread_rate(conc, total, || {
        if Command::new(prog).status()?.success() {
            Ok(())
        } else {
            Err(format!("{prog} failed").into())
        }
    })
}

fn file_stream(path: &Path) -> Res<DataStream> {
    Ok(remo::client::input::file_stream(std::fs::File::open(path)?))
}

/// Makes guest memory ready for use before a transfer of `bytes` (and 64
/// MiB more, for the buffers on the way) that fills as much page cache. On a VM the host backs guest pages lazily and
/// takes freed ones back, so the first touch of a page costs a host fault:
/// here that is about 2.5 s per GiB, more than remod's whole share of a put,
/// and it lands on whichever transfer happens to get cold pages. Touching
/// and freeing the memory first (for remo and scp alike) measures the
/// transfer instead of the hypervisor. `BENCH_NO_WARM=1` turns it off.
fn warm_memory(bytes: f64) {
    if std::env::var_os("BENCH_NO_WARM").is_some() {
        return;
    }
    let mut v = vec![0u8; bytes as usize + (64 << 20)];
    for b in v.iter_mut().step_by(4096) {
        *b = 1;
    }
    std::hint::black_box(&v);
}

/// What one put + get of a file measured.
struct Transfer {
    put_mbs: f64,
    get_mbs: f64,
    /// CPU seconds by process (see [`CpuMeter`]) during the put and the get.
    put_cpu: Vec<f64>,
    get_cpu: Vec<f64>,
    /// remod's highest RSS seen during either, in KiB.
    peak_kib: u64,
}

/// Put then get one file: MB/s each way, remod's peak RSS, and the CPU
/// seconds each process used for each direction.
async fn transfer(
    s: &Session,
    local: &Path,
    remote: &Path,
    meter: &CpuMeter,
    pid: u32,
) -> Res<Transfer> {
    let size = std::fs::metadata(local)?.len() as f64;
    warm_memory(size);
    let mut peak = rss_kib(pid, "VmRSS:");
    let cpu0 = meter.sample();
    let t = Instant::now();
    let mut resp = s
        .request_raw(
            remo::ops::OpName::Put,
            &json!({"path": remote.to_str()}),
            Some(file_stream(local)?),
        )
        .await?;
    while let Some(item) = resp.next().await? {
        peak = peak.max(rss_kib(pid, "VmRSS:"));
        if let remo::client::conn::ResponseItem::Done(r) = item {
            r?;
        }
    }
    let put_mbs = size / t.elapsed().as_secs_f64() / 1e6;
    let put_cpu = meter.since(&cpu0);
    warm_memory(size);
    let cpu0 = meter.sample();
    let t = Instant::now();
    let mut resp = s
        .request_raw(
            remo::ops::OpName::Get,
            &json!({"path": remote.to_str()}),
            None,
        )
        .await?;
    let mut n = 0u64;
    let mut last = Instant::now();
    while let Some(item) = resp.next().await? {
        match item {
            remo::client::conn::ResponseItem::Stdout(b) => n += b.len() as u64,
            remo::client::conn::ResponseItem::Done(r) => {
                r?;
            }
            _ => {}
        }
        if last.elapsed() > Duration::from_millis(20) {
            peak = peak.max(rss_kib(pid, "VmRSS:"));
            last = Instant::now();
        }
    }
    if n as f64 != size {
        return Err(format!("get returned {n} bytes, expected {size}").into());
    }
    let get_mbs = size / t.elapsed().as_secs_f64() / 1e6;
    let get_cpu = meter.since(&cpu0);
    let _ = std::fs::remove_file(remote);
    Ok(Transfer {
        put_mbs,
        get_mbs,
        put_cpu,
        get_cpu,
        peak_kib: peak,
    })
}

/// Median milliseconds of the client's handshake work (start + finish) and
/// of the server's (parse, verify M1, ephemeral key, ECDH, sign M2, HKDF).
fn handshake_costs(user: &IdentityKey, n: usize) -> Res<(f64, f64)> {
    use remo::proto::handshake::{
        new_session_id, server_accept, ClientHandshake, Ephemeral, ParsedAuth,
    };
    let server = IdentityKey::generate();
    let (mut c, mut sv) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64;
        let t = Instant::now();
        let (hs, req) = ClientHandshake::start("bench", user, now);
        let mut client = t.elapsed();
        let body = serde_json::to_vec(&req)?;
        let t = Instant::now();
        let parsed = ParsedAuth::parse(&body)?;
        parsed.verify(&user.public(), now)?;
        let (resp, _) = server_accept(
            &parsed,
            &server,
            &Ephemeral::generate(),
            &new_session_id(),
            600,
        )?;
        sv.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        hs.finish(&resp, &server.public())?;
        client += t.elapsed();
        c.push(client.as_secs_f64() * 1e3);
    }
    Ok((median(c), median(sv)))
}

/// MB/s of one transfer of `bytes` done by `job` (a process run to its
/// end), after the same memory warm-up every transfer gets.
fn timed_transfer(bytes: f64, job: impl FnOnce() -> Res<()>) -> Res<f64> {
    warm_memory(bytes);
    let t = Instant::now();
    job()?;
    Ok(bytes / t.elapsed().as_secs_f64() / 1e6)
}

/// The `remo` command line, as a user runs it: `remo put` (which hashes
/// the file before it sends it, so a file changing under it fails instead
/// of landing torn) and `remo get` (which writes the file and checks its
/// digest), each a process of its own like scp. MB/s up and down.
fn cli_rates(cli: &Cli, local: &Path, remote: &Path, back: &Path, bytes: f64) -> Res<(f64, f64)> {
    let up = timed_transfer(bytes, || {
        cli.run(&["put".as_ref(), local.as_os_str(), remote.as_os_str()])
    })?;
    let down = timed_transfer(bytes, || {
        cli.run(&["get".as_ref(), remote.as_os_str(), back.as_os_str()])
    })?;
    if std::fs::metadata(back)?.len() as f64 != bytes {
        return Err("remo get wrote a file of the wrong size".into());
    }
    let _ = std::fs::remove_file(remote);
    let _ = std::fs::remove_file(back);
    Ok((up, down))
}

/// How to run the `remo` binary against the bench's server: its own HOME
/// (known-hosts pin, no session cache in the user's home) and the bench
/// user's key.
struct Cli {
    bin: String,
    home: PathBuf,
    url: String,
    user: String,
    key: String,
}

impl Cli {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("HOME", &self.home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_CACHE_HOME")
            .args(["--server", &self.url, "-l", &self.user, "-i", &self.key]);
        c
    }

    /// Runs one `remo` command to its end (standard output discarded).
    fn run(&self, args: &[&std::ffi::OsStr]) -> Res<()> {
        let st = self
            .command()
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()?;
        if st.success() {
            Ok(())
        } else {
            Err(format!("remo {:?} failed: {st}", args.first()).into())
        }
    }

    /// Pins the server's key (first use), so later commands run unattended.
    fn pin(&self) -> Res<()> {
        std::fs::create_dir_all(&self.home)?;
        self.run(&["info".as_ref()])
    }
}

/// scp up and down of the same file: the baseline for put and get, in MB/s.
fn scp_rates(args: &str, local: &Path, remote: &Path, back: &Path, mb: u64) -> Res<(f64, f64)> {
    let mut argv: Vec<String> = args.split_whitespace().map(str::to_string).collect();
    let host = argv.pop().ok_or("SCP_ARGS must end with user@host")?;
    let scp = |from: &std::ffi::OsStr, to: &std::ffi::OsStr| -> Res<()> {
        let st = Command::new("scp").args(&argv).arg(from).arg(to).status()?;
        if st.success() {
            Ok(())
        } else {
            Err(format!("scp failed: {st}").into())
        }
    };
    let bytes = mb as f64 * 1048576.0;
    let at_host = format!("{host}:{}", remote.display());
    let up = timed_transfer(bytes, || scp(local.as_os_str(), at_host.as_ref()))?;
    let down = timed_transfer(bytes, || scp(at_host.as_ref(), back.as_os_str()))?;
    Ok((up, down))
}

fn main() -> Res<()> {
    // As the binaries do: the library's bulk buffers reused, not re-mapped.
    remo::alloc::tune();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Res<()> {
    let url = env("REMO_URL")?;
    let user = env("REMO_USER")?;
    let id = load_identity(Path::new(&env("REMO_KEY")?), &PassphraseSource::None)?;
    let pid: u32 = env("REMOD_PID")?.parse()?;
    let ssh_args = env("SSH_ARGS")?;
    let ctl = env("SSH_CTL")?;
    let scp_args = env("SCP_ARGS")?;
    let dir = PathBuf::from(env("BENCH_DIR")?);
    let quick = std::env::var("BENCH_QUICK").is_ok();
    let file_mb: u64 = std::env::var("BENCH_FILE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 64 } else { 1024 });
    let n_sessions: usize = std::env::var("BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 1000 } else { 10_000 });
    let reps = if quick { 5 } else { 21 };
    // Each transfer repetition moves the file twice (put and get) per side.
    let xfer_reps: usize = std::env::var("BENCH_XFER_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 3 } else { 5 });
    // BENCH_ONLY=login,cmd,idt,xfer,sessions runs a subset (for profiling).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    // BENCH_NO_SSH=1 leaves the OpenSSH baseline out (for profiling).
    let baseline = std::env::var("BENCH_NO_SSH").is_err();
    let part = |name: &str| only.is_empty() || only.split(',').any(|p| p == name);
    let server = info(&url).await?;
    let pin = server.public_key()?;
    let _ = FRAMING.set(server.best_framing());
    let mut rows = Vec::new();

    // Login, end to end: fresh connection, /auth, M2 check, key derivation.
    if part("login") {
        let mut remo_ms = Vec::new();
        for _ in 0..reps * 3 {
            let t = Instant::now();
            let s = login(&url, &user, &id, &pin).await?;
            remo_ms.push(t.elapsed().as_secs_f64() * 1e3);
            s.logout().await?;
        }
        let mut ssh_ms = Vec::new();
        for _ in 0..if baseline { reps } else { 0 } {
            let t = Instant::now();
            ssh(
                &ssh_args,
                &["-o", "ControlMaster=no", "-o", "ControlPath=none", "true"],
            )?;
            ssh_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        // Where a login's time goes: the client's and the server's P-256
        // work measured in this process, the rest is transport and remod.
        let (client_ms, server_ms) = handshake_costs(&id, reps * 3)?;
        rows.push(Row {
            what: "login: P-256 work of client / server (in process)".into(),
            remo: format!("{client_ms:.2} ms / {server_ms:.2} ms"),
            base: "-".into(),
            ratio: "-".into(),
        });
        rows.push(row(
            "login (remo auth vs ssh true)",
            median(remo_ms),
            median(ssh_ms),
            "ms",
            false,
        ));
    }

    // Command round trips on one session.
    let s = Arc::new(login(&url, &user, &id, &pin).await?);
    if part("cmd") {
        let total = if quick { 400 } else { 4000 };
        // BENCH_CMD_CLIENTS=1,8,16 overrides the concurrency levels.
        let levels: Vec<usize> = std::env::var("BENCH_CMD_CLIENTS")
            .ok()
            .map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect())
            .unwrap_or_else(|| vec![1, 8]);
        let meter = CpuMeter::new(pid, true);
        let ssh = baseline.then_some((ssh_args.as_str(), ctl.as_str()));
        for &conc in &levels {
            let m = CmdRun {
                s: &s,
                meter: &meter,
                conc,
                total,
            };
            rows.extend(m.rows("true", "/usr/bin/true", ssh).await?);
        }
        // The same with a child that costs next to nothing (bench/run
        // builds it), at the highest concurrency: what remo itself carries
        // when the child's start-up is taken out.
        if let (Ok(exit0), Some(&conc)) = (std::env::var("BENCH_EXIT0"), levels.iter().max()) {
            let m = CmdRun {
                s: &s,
                meter: &meter,
                conc,
                total,
            };
            rows.extend(m.rows("static exit(0)", &exit0, None).await?);
        }
    }

    // Interactive echo latency.
    if part("idt") {
        let c = s
            .call_raw(
                remo::ops::OpName::Icm,
                &json!({"argv": ["cat"], "wait_ms": 0}),
            )
            .await?;
        let pid_id = c.result.map_err(|e| e.to_string())?["id"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let mut lat = Vec::new();
        for _ in 0..(if quick { 50 } else { 300 }) {
            let t = Instant::now();
            let input: DataStream = Box::pin(futures_util::stream::once(async {
                Ok(bytes::Bytes::from_static(b"x"))
            }));
            let mut resp = s
                .request_raw(
                    remo::ops::OpName::Idt,
                    &json!({"id": pid_id, "wait_ms": 1000}),
                    Some(input),
                )
                .await?;
            let mut got = 0;
            while let Some(item) = resp.next().await? {
                if let remo::client::conn::ResponseItem::Stdout(b) = item {
                    got += b.len();
                }
            }
            if got != 1 {
                return Err(format!("echo returned {got} bytes").into());
            }
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
        s.call_raw(
            remo::ops::OpName::Kill,
            &json!({"id": pid_id, "signal": "KILL"}),
        )
        .await?;
        rows.push(row(
            "interactive echo (idt round trip)",
            median(lat),
            f64::NAN,
            "ms",
            false,
        ));
    }

    // File transfer.
    if part("xfer") {
        let local = dir.join("bench.bin");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&local)?;
            let mut block = vec![0u8; 1 << 20];
            let mut x: u64 = 0x9e3779b97f4a7c15;
            for _ in 0..file_mb {
                for b in block.iter_mut() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *b = x as u8;
                }
                f.write_all(&block)?;
            }
        }
        let remote = dir.join("bench.remote");
        let scp_target = dir.join("bench.scp");
        let scp_back = dir.join("bench.back");
        let meter = CpuMeter::new(pid, false);
        let rss0 = rss_kib(pid, "VmRSS:");
        let size = (file_mb << 20) as f64;
        // Repetitions alternate remo and scp, so a slow phase of the
        // machine does not land on one side only.
        let (mut put, mut get, mut scp_put, mut scp_get) = (vec![], vec![], vec![], vec![]);
        let (mut cli_put, mut cli_get) = (vec![], vec![]);
        let cli = Cli {
            bin: env("REMO_BIN")?,
            home: dir.join("cli-home"),
            url: url.clone(),
            user: user.clone(),
            key: env("REMO_KEY")?,
        };
        cli.pin()?;
        let (cli_remote, cli_back) = (dir.join("bench.cli"), dir.join("bench.cli.back"));
        let groups = meter.pids.len();
        let (mut put_cpu, mut get_cpu) = (vec![0.0; groups], vec![0.0; groups]);
        let mut peak = rss0;
        for _ in 0..xfer_reps {
            let x = transfer(&s, &local, &remote, &meter, pid).await?;
            put.push(x.put_mbs);
            get.push(x.get_mbs);
            add_cpu(&mut put_cpu, &x.put_cpu);
            add_cpu(&mut get_cpu, &x.get_cpu);
            peak = peak.max(x.peak_kib);
            let (up, down) = cli_rates(&cli, &local, &cli_remote, &cli_back, size)?;
            cli_put.push(up);
            cli_get.push(down);
            if baseline {
                let (up, down) = scp_rates(&scp_args, &local, &scp_target, &scp_back, file_mb)?;
                scp_put.push(up);
                scp_get.push(down);
                let _ = std::fs::remove_file(&scp_target);
                let _ = std::fs::remove_file(&scp_back);
            }
        }
        let moved = size * xfer_reps as f64;
        let (put_cpu, get_cpu) = (
            meter.per(&put_cpu, moved / 1e9, 1.0),
            meter.per(&get_cpu, moved / 1e9, 1.0),
        );
        let all = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "transfers, MB/s per repetition: remo put {}; remo get {}; library put {}; library get {}; scp up {}; scp down {}",
            all(&cli_put),
            all(&cli_get),
            all(&put),
            all(&get),
            all(&scp_put),
            all(&scp_get)
        );
        let (scp_up, scp_down) = (median(scp_put), median(scp_get));
        rows.push(row(
            &format!("remo put, {file_mb} MiB (vs scp upload)"),
            median(cli_put),
            scp_up,
            "MB/s",
            true,
        ));
        rows.push(row(
            &format!("remo get, {file_mb} MiB (vs scp download)"),
            median(cli_get),
            scp_down,
            "MB/s",
            true,
        ));
        // The protocol path alone: the client library streams the file
        // without hashing it first and counts what comes back without
        // writing it.
        rows.push(row(
            &format!("put {file_mb} MiB, client library (vs scp upload)"),
            median(put),
            scp_up,
            "MB/s",
            true,
        ));
        rows.push(row(
            &format!("get {file_mb} MiB, client library (vs scp download)"),
            median(get),
            scp_down,
            "MB/s",
            true,
        ));
        let _ = std::fs::remove_file(&local);
        for (dir, cpu) in [("put", put_cpu), ("get", get_cpu)] {
            rows.push(Row {
                what: format!("CPU seconds per GB, {dir} (client library)"),
                remo: cpu,
                base: "-".into(),
                ratio: "-".into(),
            });
        }
        rows.push(Row {
            what: "remod RSS during the transfers".into(),
            remo: format!(
                "{:.1} MiB peak (from {:.1} MiB)",
                peak as f64 / 1024.0,
                rss0 as f64 / 1024.0
            ),
            base: "-".into(),
            ratio: "-".into(),
        });
    }
    s.logout().await?;

    // Idle sessions.
    if part("sessions") {
        let before = rss_kib(pid, "VmRSS:");
        let http = http_client()?;
        let t = Instant::now();
        let mut held = Vec::with_capacity(n_sessions);
        for _ in 0..n_sessions {
            held.push(Session::login_with(http.clone(), &url, &user, &id, &pin).await?);
        }
        let login_rate = n_sessions as f64 / t.elapsed().as_secs_f64();
        let after = rss_kib(pid, "VmRSS:");
        drop(held);
        rows.push(Row {
            what: format!("remod RSS with {n_sessions} idle sessions"),
            remo: format!(
                "{:.1} MiB (from {:.1} MiB; {:.0} logins/s sequential)",
                after as f64 / 1024.0,
                before as f64 / 1024.0,
                login_rate
            ),
            base: "-".into(),
            ratio: "-".into(),
        });
    }

    println!();
    println!("| measurement | remo | baseline | ratio |");
    println!("|---|---|---|---|");
    for r in &rows {
        println!("| {} | {} | {} | {} |", r.what, r.remo, r.base, r.ratio);
    }
    Ok(())
}
