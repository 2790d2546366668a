//! The soak behind `bench/soak` (issue 17 §6): many commands and
//! interactive processes through a real front door from several users,
//! then checks that remod ends where it started: no zombies, descriptors
//! and RSS back within 10 % of the warmed-up baseline. Prints the figures;
//! exits non-zero if a check fails. Not part of the test command (it takes
//! minutes).
//!
//! Environment (bench/soak sets it): `REMO_URL`, `REMOD_PID`, `SOAK_USERS`
//! (`NAME=KEYFILE,…`, unencrypted keys), `SOAK_CMDS` (default 100000),
//! `SOAK_ICMS` (default 10000), `SOAK_CONC` (concurrent clients, default 8).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use remo::client::conn::{http_client, info, Session};
use remo::keyfile::{load_identity, PassphraseSource};
use serde_json::{json, Value};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn env(name: &str) -> Res<String> {
    std::env::var(name).map_err(|_| format!("{name} is not set").into())
}

fn env_num(name: &str, default: usize) -> Res<usize> {
    match std::env::var(name) {
        Ok(v) => Ok(v.parse()?),
        Err(_) => Ok(default),
    }
}

/// remod's open descriptors and resident memory (KiB).
fn usage(pid: u32) -> Res<(usize, u64)> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .ok_or("no VmRSS")?
        .parse()?;
    Ok((fds, rss))
}

/// Processes whose parent is remod and that are zombies, and remod's
/// children in all.
fn children(pid: u32) -> Res<(usize, usize)> {
    let (mut zombies, mut all) = (0, 0);
    for e in std::fs::read_dir("/proc")? {
        let name = e?.file_name();
        let Some(n) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{n}/stat")) else {
            continue;
        };
        // pid (comm) state ppid …: comm may hold spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().unwrap_or("");
        let ppid: u32 = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == pid {
            all += 1;
            if state == "Z" {
                zombies += 1;
            }
        }
    }
    Ok((zombies, all))
}

/// Runs `job(session, k)` `total` times over `conc` concurrent clients
/// (each on one of the sessions, round robin); (jobs per second, failures).
async fn load<F, Fut>(
    sessions: &[Arc<Session>],
    conc: usize,
    total: usize,
    job: F,
) -> Res<(f64, usize)>
where
    F: Fn(Arc<Session>, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Res<()>> + Send,
{
    let failed = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let per = total / conc;
    let mut tasks = Vec::new();
    for i in 0..conc {
        let s = sessions[i % sessions.len()].clone();
        let (failed, job) = (failed.clone(), job.clone());
        tasks.push(tokio::spawn(async move {
            for k in 0..per {
                if job(s.clone(), k).await.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok((
        (per * conc) as f64 / t.elapsed().as_secs_f64(),
        failed.load(Ordering::Relaxed),
    ))
}

/// `cmd true` `total` times.
async fn cmds(sessions: &[Arc<Session>], conc: usize, total: usize) -> Res<(f64, usize)> {
    load(sessions, conc, total, |s, _| async move {
        let c = s
            .call_raw(remo::ops::OpName::Cmd, &json!({"argv": ["true"]}))
            .await?;
        c.result.map(drop).map_err(|e| e.to_string().into())
    })
    .await
}

/// One interactive process to its end: `true` (ends at once), or `cat`
/// whose input is then closed (`edt`); polled until `running` is false.
async fn one_icm(s: &Session, cat: bool) -> Res<()> {
    let argv = if cat { json!(["cat"]) } else { json!(["true"]) };
    let c = s
        .call_raw(remo::ops::OpName::Icm, &json!({"argv": argv, "wait_ms": 0}))
        .await?;
    let m = c.result.map_err(|e| e.to_string())?;
    let id = m
        .get("id")
        .and_then(Value::as_str)
        .ok_or("no id")?
        .to_string();
    let mut running = m.get("running").and_then(Value::as_bool).unwrap_or(true);
    let mut op = if cat {
        remo::ops::OpName::Edt
    } else {
        remo::ops::OpName::Idt
    };
    let t = Instant::now();
    while running {
        if t.elapsed() > Duration::from_secs(30) {
            return Err(format!("icm {id} still running after 30 s").into());
        }
        let c = s.call_raw(op, &json!({"id": id, "wait_ms": 2000})).await?;
        let m = c.result.map_err(|e| e.to_string())?;
        running = m.get("running").and_then(Value::as_bool).unwrap_or(false);
        op = remo::ops::OpName::Idt;
    }
    Ok(())
}

/// `total` interactive processes, half `true`, half `cat`.
async fn icms(sessions: &[Arc<Session>], conc: usize, total: usize) -> Res<(f64, usize)> {
    load(sessions, conc, total, |s, k| async move {
        one_icm(&s, k % 2 == 1).await
    })
    .await
}

#[tokio::main]
async fn main() -> Res<()> {
    let url = env("REMO_URL")?;
    let pid: u32 = env("REMOD_PID")?.parse()?;
    let n_cmds = env_num("SOAK_CMDS", 100_000)?;
    let n_icms = env_num("SOAK_ICMS", 10_000)?;
    let conc = env_num("SOAK_CONC", 8)?.max(1);
    let pin = info(&url).await?.public_key()?;
    let http = http_client()?;
    let mut sessions = Vec::new();
    for pair in env("SOAK_USERS")?.split(',') {
        let (user, key) = pair
            .split_once('=')
            .ok_or("SOAK_USERS wants NAME=KEYFILE,…")?;
        let id = load_identity(Path::new(key), &PassphraseSource::None)?;
        sessions.push(Arc::new(
            Session::login_with(http.clone(), &url, user, &id, &pin).await?,
        ));
    }
    println!(
        "soak: {} users, {conc} clients, remod pid {pid}",
        sessions.len()
    );

    // Warm up (allocator arenas of every worker and blocking thread,
    // tokio's pools), a tenth of the run, then take the baseline.
    cmds(&sessions, conc, (n_cmds / 10).max(conc)).await?;
    icms(&sessions, conc, (n_icms / 10).max(conc)).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (fd0, rss0) = usage(pid)?;
    println!("baseline after warm-up: {fd0} descriptors, {rss0} KiB RSS");

    let (rate, cmd_failed) = cmds(&sessions, conc, n_cmds).await?;
    println!("{n_cmds} commands: {rate:.0}/s, {cmd_failed} failed");
    let (rate, icm_failed) = icms(&sessions, conc, n_icms).await?;
    println!("{n_icms} interactive processes: {rate:.0}/s, {icm_failed} failed");

    // Let the reaper and the idle timers settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (fd1, rss1) = usage(pid)?;
    let (zombies, kids) = children(pid)?;
    let fd_pct = (fd1 as f64 - fd0 as f64) * 100.0 / fd0 as f64;
    let rss_pct = (rss1 as f64 - rss0 as f64) * 100.0 / rss0 as f64;
    println!("after: {fd1} descriptors ({fd_pct:+.1} %), {rss1} KiB RSS ({rss_pct:+.1} %)");
    println!("remod's children: {kids}, zombies: {zombies}");
    let mut bad = Vec::new();
    if cmd_failed + icm_failed > 0 {
        bad.push(format!("{} requests failed", cmd_failed + icm_failed));
    }
    if zombies > 0 {
        bad.push(format!("{zombies} zombies"));
    }
    if fd_pct > 10.0 {
        bad.push(format!("descriptors grew {fd_pct:.1} %"));
    }
    if rss_pct > 10.0 {
        bad.push(format!("RSS grew {rss_pct:.1} %"));
    }
    if bad.is_empty() {
        println!("soak: ok");
        Ok(())
    } else {
        Err(format!("soak failed: {}", bad.join(", ")).into())
    }
}
