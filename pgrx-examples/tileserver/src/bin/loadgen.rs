//! A bounded load run against the tile server: `--concurrency` clients request random tiles from
//! a list for `--seconds`, then print per group the tiles/s, p50/p99 latency and errors, and the
//! server's resident memory (from /proc) at the start, its peak and at the end.
//!
//! The list (`--tiles FILE`) holds one `group path` per line, e.g.
//! `pyramid /activities_heat/14/8187/5448.png`. Groups named `revalidate...` send the ETag last
//! seen for their path as If-None-Match, as a browser revalidating its cache does: a 304 counts
//! as success there. Exit status 1 when any request failed.

use rand::seq::IndexedRandom;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[derive(Default)]
struct Group {
    latencies_ms: Vec<f64>,
    errors: u64,
    statuses: BTreeMap<u16, u64>,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base = arg(&args, "--url", "http://127.0.0.1:8787");
    let seconds: u64 = arg(&args, "--seconds", "30")
        .parse()
        .expect("--seconds takes a number");
    let concurrency: usize = arg(&args, "--concurrency", "8")
        .parse()
        .expect("--concurrency takes a number");
    let pid = arg(&args, "--pid", "");
    let list = std::fs::read_to_string(arg(&args, "--tiles", "tiles.txt"))
        .expect("--tiles names a readable file");
    let tiles: Vec<(String, String)> = list
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(g, p)| (g.to_string(), p.trim().to_string()))
        .collect();
    assert!(!tiles.is_empty(), "the tile list is empty");
    let tiles = Arc::new(tiles);
    let groups: Arc<Mutex<BTreeMap<String, Group>>> = Arc::default();
    let etags: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client builds");
    let rss_start = rss_kib(&pid);
    let peak = Arc::new(Mutex::new(rss_start.unwrap_or(0)));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let sampler = {
        let (pid, peak) = (pid.clone(), peak.clone());
        tokio::spawn(async move {
            while Instant::now() < deadline {
                if let Some(r) = rss_kib(&pid) {
                    let mut p = peak.lock().expect("not poisoned");
                    *p = (*p).max(r);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, tiles, groups, base, etags) = (
                client.clone(),
                tiles.clone(),
                groups.clone(),
                base.clone(),
                etags.clone(),
            );
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let (group, path) = tiles.choose(&mut rand::rng()).expect("not empty").clone();
                    let revalidate = group.starts_with("revalidate");
                    let known = if revalidate {
                        etags.lock().expect("not poisoned").get(&path).cloned()
                    } else {
                        None
                    };
                    let mut request = client.get(format!("{base}{path}"));
                    if let Some(etag) = &known {
                        request = request.header("if-none-match", etag);
                    }
                    let t0 = Instant::now();
                    let result = request.send().await;
                    let (status, ok) = match result {
                        Ok(r) if r.status().as_u16() == 304 && known.is_some() => (304, true),
                        Ok(r) => {
                            let status = r.status().as_u16();
                            if let Some(etag) =
                                r.headers().get("etag").and_then(|v| v.to_str().ok())
                            {
                                etags
                                    .lock()
                                    .expect("not poisoned")
                                    .insert(path.clone(), etag.to_string());
                            }
                            let png = r
                                .headers()
                                .get("content-type")
                                .is_some_and(|v| v == "image/png");
                            let body = r.bytes().await.map(|b| b.len()).unwrap_or(0);
                            (status, status == 200 && png && body > 0)
                        }
                        Err(_) => (0, false),
                    };
                    let ms = t0.elapsed().as_secs_f64() * 1000.0;
                    let mut g = groups.lock().expect("not poisoned");
                    let g = g.entry(group).or_default();
                    g.latencies_ms.push(ms);
                    *g.statuses.entry(status).or_default() += 1;
                    if !ok {
                        g.errors += 1;
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("worker finishes");
    }
    let elapsed = started.elapsed().as_secs_f64();
    sampler.await.expect("sampler finishes");
    let rss_end = rss_kib(&pid);
    let groups = groups.lock().expect("not poisoned");
    println!("load run: {seconds} s, {concurrency} concurrent clients, {base}");
    println!(
        "  {:12} {:>9} {:>9} {:>9} {:>9} {:>7}  statuses",
        "group", "tiles", "tiles/s", "p50 ms", "p99 ms", "errors"
    );
    let mut errors = 0;
    for (name, g) in groups.iter() {
        let mut l = g.latencies_ms.clone();
        l.sort_by(f64::total_cmp);
        let pct = |p: f64| l[((l.len() - 1) as f64 * p).round() as usize];
        println!(
            "  {:12} {:>9} {:>9.1} {:>9.2} {:>9.2} {:>7}  {:?}",
            name,
            l.len(),
            l.len() as f64 / elapsed,
            pct(0.5),
            pct(0.99),
            g.errors,
            g.statuses
        );
        errors += g.errors;
    }
    let mib =
        |k: Option<u64>| k.map_or("?".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    println!(
        "  server memory (RSS): start {}, peak {}, end {}",
        mib(rss_start),
        mib(Some(*peak.lock().expect("not poisoned"))),
        mib(rss_end)
    );
    if errors > 0 {
        eprintln!("load run: {errors} failed requests");
        std::process::exit(1);
    }
}
