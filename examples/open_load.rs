//! An open-loop load: requests sent on a fixed schedule, whatever the server answers.
//!
//! `wrk` (bench/registration-load.sh) runs a closed loop: each of its connections sends
//! its next request when the last one is answered, as fast as the server goes. That
//! measures the highest rate, but not the wait of people who arrive on their own: in a
//! closed loop of C connections the mean latency is C divided by the rate, whatever
//! the server does, and a pause of the server also pauses the load, so the requests
//! that would have arrived during it are never counted.
//!
//! Here the requests are due at fixed times, `rate` a second spread over
//! `connections` connections (connection `k` sends its `j`th request at
//! `(k + j * connections) / rate` seconds), and each latency is counted from the time
//! the request was due, not from the time it could be sent. When the server falls
//! behind, a connection sends its late requests at once, and the wait before sending
//! is part of their latency (the scheme of wrk2). "late" counts the requests sent more
//! than a millisecond after they were due.
//!
//! ```text
//! cargo run --release --example open_load -- --url http://127.0.0.1:8080/api/v1/windows/ID/entries \
//!     --rate 2500 --connections 256 --seconds 15 --run 3 [--get] [--timeline FILE] [--samples FILE]
//! ```
//!
//! Without `--get` every request is a new, valid registration (a different person,
//! document, e-mail address and phone number, as bench/register.lua makes them; `--run`
//! from 0 to 9 keeps the people of successive runs on one window apart). With `--get`,
//! every request is a `GET` of the URL. Prints one line
//! `RESULT sent=… ok=… other=… errors=… late=… offered_per_s=… ok_per_s=… p50_ms=…
//! p90_ms=… p99_ms=… p999_ms=… max_ms=…` (ok: answered 2xx), and with `--timeline`
//! writes, for each second of the schedule, the requests due in it and their p50,
//! p99 and longest latency, after a line giving the wall-clock time of second 0 (to
//! line the seconds up with the server's log). With `--samples FILE` it writes every
//! request as a line "due_µs latency_µs" (µs from the start of the schedule), to see
//! which requests a stall held and when they were answered.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tirage::demo::letters;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

struct Args {
    url: String,
    rate: f64,
    connections: usize,
    seconds: f64,
    run: u32,
    get: bool,
    timeline: Option<std::path::PathBuf>,
    samples: Option<std::path::PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        url: String::new(),
        rate: 1000.0,
        connections: 64,
        seconds: 15.0,
        run: 0,
        get: false,
        timeline: None,
        samples: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value()?,
            "--rate" => args.rate = number(&flag, &value()?)?,
            "--connections" => args.connections = number(&flag, &value()?)?,
            "--seconds" => args.seconds = number(&flag, &value()?)?,
            "--run" => args.run = number(&flag, &value()?)?,
            "--timeline" => args.timeline = Some(value()?.into()),
            "--samples" => args.samples = Some(value()?.into()),
            "--get" => args.get = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.url.is_empty() {
        return Err("--url is required".into());
    }
    if !(args.rate > 0.0 && args.seconds > 0.0 && args.connections > 0 && args.run < 10) {
        return Err("--rate, --seconds and --connections must be above 0, --run 0 to 9".into());
    }
    Ok(args)
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{flag}: not a number: {text}"))
}

/// `http://host:port/path` split into the address to connect to, the `Host` header and
/// the path.
fn split_url(url: &str) -> Result<(String, String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("--url must start with http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let address = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((address, authority.to_string(), path.to_string()))
}

/// One answered (or failed) request: when it was due, in µs from the start of the
/// schedule, and how long after that (or after its send, if it went out early) it was
/// answered.
struct Sample {
    due_us: u64,
    latency_us: u64,
    outcome: Outcome,
}

#[derive(Clone, Copy, PartialEq)]
enum Outcome {
    Ok,
    Other,
    Error,
}

#[derive(Default)]
struct Tally {
    samples: Vec<Sample>,
    late: u64,
}

struct Plan {
    address: String,
    head: String,
    get: bool,
    run: u32,
    rate: f64,
    connections: usize,
    seconds: f64,
    people: AtomicU32,
}

impl Plan {
    /// The next request's bytes: a `GET`, or a registration of a person nobody else in
    /// this run (or in another run number) is.
    fn request(&self) -> Vec<u8> {
        if self.get {
            return format!("GET {}\r\n\r\n", self.head).into_bytes();
        }
        let n = self.people.fetch_add(1, Ordering::Relaxed);
        let k = self.run * 10_000_000 + n;
        let body = format!(
            r#"{{"family_name":"Charge{}","given_names":"Awa","birth_date":"1990-05-17","nationality":"SEN","document":{{"kind":"foreigner_number","number":"{k:010}","country":"FRA"}},"email":"charge{k}@example.org","phone":"+336{k:08}","permit_expires_on":"2027-01-20","language":"fr"}}"#,
            letters(k)
        );
        let mut bytes = format!(
            "POST {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.head,
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(body.as_bytes());
        bytes
    }
}

struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    line: String,
}

impl Connection {
    async fn open(address: &str) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        let (read, writer) = stream.into_split();
        Ok(Connection {
            reader: BufReader::new(read),
            writer,
            line: String::new(),
        })
    }

    /// Sends one request and reads its whole answer; returns its status.
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<u16> {
        self.writer.write_all(request).await?;
        let status = self.read_line().await?;
        let status: u16 = status
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| broken("no status line"))?;
        let mut length = 0usize;
        let mut chunked = false;
        loop {
            let line = self.read_line().await?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').ok_or_else(|| broken("bad header"))?;
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().map_err(|_| broken("bad content-length"))?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
        if chunked {
            loop {
                let size = self.read_line().await?;
                let size = usize::from_str_radix(size.split(';').next().unwrap_or(""), 16)
                    .map_err(|_| broken("bad chunk size"))?;
                if size == 0 {
                    while !self.read_line().await?.is_empty() {}
                    break;
                }
                self.skip(size + 2).await?;
            }
        } else {
            self.skip(length).await?;
        }
        Ok(status)
    }

    async fn read_line(&mut self) -> std::io::Result<String> {
        self.line.clear();
        if self.reader.read_line(&mut self.line).await? == 0 {
            return Err(broken("connection closed"));
        }
        Ok(self.line.trim_end_matches(['\r', '\n']).to_string())
    }

    async fn skip(&mut self, n: usize) -> std::io::Result<()> {
        let copied = tokio::io::copy(
            &mut (&mut self.reader).take(n as u64),
            &mut tokio::io::sink(),
        )
        .await?;
        if copied as usize != n {
            return Err(broken("connection closed in a body"));
        }
        Ok(())
    }
}

fn broken(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string())
}

/// Connection `k`'s part of the schedule, from `start`.
async fn connection(
    plan: Arc<Plan>,
    k: usize,
    mut open: Option<Connection>,
    start: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let every = Duration::from_secs_f64(plan.connections as f64 / plan.rate);
    let first = Duration::from_secs_f64(k as f64 / plan.rate);
    let end = Duration::from_secs_f64(plan.seconds);
    for j in 0u32.. {
        let offset = first + every * j;
        if offset >= end {
            break;
        }
        let due = start + offset;
        // the timer wakes up to a millisecond after its deadline: it is set a
        // millisecond early, and a request sent before it is due is timed from its send
        tokio::time::sleep_until(due - Duration::from_millis(1)).await;
        let sent = Instant::now();
        if sent > due + Duration::from_millis(1) {
            tally.late += 1;
        }
        let request = plan.request();
        let outcome = match open.as_mut() {
            Some(connection) => match connection.exchange(&request).await {
                Ok(status) if (200..300).contains(&status) => Outcome::Ok,
                Ok(_) => Outcome::Other,
                Err(_) => Outcome::Error,
            },
            None => Outcome::Error,
        };
        tally.samples.push(Sample {
            due_us: offset.as_micros() as u64,
            latency_us: sent.max(due).elapsed().as_micros() as u64,
            outcome,
        });
        if outcome == Outcome::Error {
            // a new connection for the next request
            open = Connection::open(&plan.address).await.ok();
        }
    }
    tally
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn main() {
    let parsed = args().and_then(|args| split_url(&args.url).map(|parts| (args, parts)));
    let (args, (address, host, path)) = match parsed {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("open_load: {message}");
            std::process::exit(2);
        }
    };
    let plan = Arc::new(Plan {
        address,
        head: format!("{path} HTTP/1.1\r\nHost: {host}"),
        get: args.get,
        run: args.run,
        rate: args.rate,
        connections: args.connections,
        seconds: args.seconds,
        people: AtomicU32::new(0),
    });
    // one thread: the load's own CPU stays small beside the server's on a small machine
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (tallies, wall) = runtime.block_on(async {
        let mut opened = Vec::with_capacity(plan.connections);
        for _ in 0..plan.connections {
            opened.push(Connection::open(&plan.address).await.ok());
        }
        let start = Instant::now() + Duration::from_millis(50);
        let wall = std::time::SystemTime::now() + Duration::from_millis(50);
        let tasks: Vec<_> = opened
            .into_iter()
            .enumerate()
            .map(|(k, open)| tokio::spawn(connection(plan.clone(), k, open, start)))
            .collect();
        let mut tallies = Vec::with_capacity(tasks.len());
        for task in tasks {
            tallies.push(task.await.expect("a connection's task"));
        }
        (tallies, wall)
    });
    let late: u64 = tallies.iter().map(|t| t.late).sum();
    let mut samples: Vec<Sample> = tallies.into_iter().flat_map(|t| t.samples).collect();
    let count = |outcome| samples.iter().filter(|s| s.outcome == outcome).count();
    let (ok, other, errors) = (
        count(Outcome::Ok),
        count(Outcome::Other),
        count(Outcome::Error),
    );
    let mut latencies: Vec<u64> = samples.iter().map(|s| s.latency_us).collect();
    latencies.sort_unstable();
    println!(
        "RESULT sent={} ok={ok} other={other} errors={errors} late={late} offered_per_s={:.1} ok_per_s={:.1} \
         p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} p999_ms={:.2} max_ms={:.2}",
        samples.len(),
        args.rate,
        ok as f64 / args.seconds,
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        percentile(&latencies, 99.9),
        percentile(&latencies, 100.0),
    );
    if let Some(file) = args.samples {
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(file).expect("the samples file"));
        for sample in &samples {
            writeln!(out, "{} {}", sample.due_us, sample.latency_us).expect("the samples file");
        }
    }
    if let Some(file) = args.timeline {
        samples.sort_unstable_by_key(|s| s.due_us);
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(&file).expect("the timeline file"));
        let since_epoch = wall
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        writeln!(
            out,
            "# second 0 began {:.3} s after the Unix epoch",
            since_epoch.as_secs_f64()
        )
        .expect("the timeline file");
        writeln!(out, "second due p50_ms p99_ms max_ms").expect("the timeline file");
        for (second, group) in samples
            .chunk_by(|a, b| a.due_us / 1_000_000 == b.due_us / 1_000_000)
            .map(|g| (g[0].due_us / 1_000_000, g))
        {
            let mut latencies: Vec<u64> = group.iter().map(|s| s.latency_us).collect();
            latencies.sort_unstable();
            writeln!(
                out,
                "{second} {} {:.2} {:.2} {:.2}",
                group.len(),
                percentile(&latencies, 50.0),
                percentile(&latencies, 99.0),
                percentile(&latencies, 100.0)
            )
            .expect("the timeline file");
        }
    }
}
